# One job per (model, method): every metric that scores that model's maps of that method, in one
# process (one start-up, one read of the maps, one model load), each written as its own per-image table
# <model>/<method>/<metric>.parquet in the job's folder. A job depends on its metrics' settings and on
# those maps only, so changing a metric reruns the pairs it scores. Jobs whose metrics run the model
# (insertion, deletion, ROAD, sanity checks, boundary alignment) read its checkpoint and are GPU-tagged;
# localisation metrics read maps and boxes only.
if METRICS is not None:

    rule metrics:
        input:
            shards=lambda wildcards: shard_paths(ATTRIBUTION["split"], wildcards.model, wildcards.method),
            split=split_path(ATTRIBUTION["split"]),
            checkpoint=metrics_checkpoint,
        output:
            directory(metrics_folder()),
        log:
            f"{R}/logs/metrics/{{model}}/{{method}}.log",
        benchmark:
            benchmark_file("metrics/{model}/{method}")
        wildcard_constraints:
            model=names_regex(sorted({table["model"] for table in metric_tables()})),
            method=names_regex(list(ATTRIBUTION["methods"])),
        conda:
            ENV
        threads: job_resources("metrics", "threads", 1)
        resources:
            gpu=metrics_gpus,
            mem_mb=metrics_mem_mb,  # scales with image size and images (robustxai.pipeline.resources)
            runtime=job_resources("metrics", "runtime", 60),
        params:
            metrics=metrics_settings,
            method_settings=metrics_method_settings,
            gpu_usage=gpu_usage_file("metrics/{model}/{method}"),
            tuning=TUNING,
            tuning_cache=TUNING_CACHE,
        script:
            "../scripts/metrics.py"
