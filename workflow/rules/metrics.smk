# One job per (model, method, metric): per-image values of one metric for one model's maps of one
# method. A metric's jobs depend on its own settings and on those maps only, so adding a metric adds
# only its jobs. Metrics that run the model (insertion, deletion, sanity checks, boundary alignment)
# read its checkpoint and are GPU-tagged; localisation metrics read maps and boxes only.
if METRICS is not None:

    rule metric:
        input:
            shards=lambda wildcards: shard_paths(ATTRIBUTION["split"], wildcards.model, wildcards.method),
            split=split_path(ATTRIBUTION["split"]),
            checkpoint=metric_checkpoint,
        output:
            metric_path(),
        wildcard_constraints:
            metric=names_regex(list(METRICS)),
            method=names_regex(list(ATTRIBUTION["methods"])),
        params:
            metric=lambda wildcards: METRICS[wildcards.metric]["metric"],
            settings=metric_settings,
            method_settings=metric_method_settings,
            gpu_usage=gpu_usage_file("metrics/{model}/{method}/{metric}"),
            tuning=TUNING,
            tuning_cache=TUNING_CACHE,
        log:
            f"{R}/logs/metrics/{{model}}/{{method}}/{{metric}}.log",
        benchmark:
            benchmark_file("metrics/{model}/{method}/{metric}")
        threads: job_resources("metrics", "threads", 1)
        resources:
            gpu=metric_gpus,
            mem_mb=metric_mem_mb,  # scales with image size and images (robustxai.pipeline.resources)
            runtime=job_resources("metrics", "runtime", 60),
        conda:
            ENV
        script:
            "../scripts/metric.py"
