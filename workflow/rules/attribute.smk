# One job per (model, method, shard); a method's jobs depend only on its own settings (and, for
# robust_counterpart, on the counterpart's checkpoint), so adding or changing a method adds or reruns
# only that method's jobs.
if ATTRIBUTION is not None:

    rule attribute:
        input:
            checkpoint=f"{R}/models/{{model}}.pt",
            split=split_path(ATTRIBUTION["split"]),
            counterpart=counterpart_checkpoint,
        output:
            f"{R}/attributions/{DATASET['name']}/{{model}}/{{method}}/shard-{{shard}}.h5",
        wildcard_constraints:
            method=names_regex(list(ATTRIBUTION["methods"])),
            shard=r"\d+",
        params:
            settings=lambda wildcards: ATTRIBUTION["methods"][wildcards.method],
            images_per_shard=ATTRIBUTION["images_per_shard"],
            images_per_batch=ATTRIBUTION["images_per_batch"],
            target=ATTRIBUTION["target"],
            dtype=ATTRIBUTION["dtype"],
            gpu_usage=gpu_usage_file("attribute/{model}/{method}/shard-{shard}"),
        log:
            f"{R}/logs/attribute/{{model}}/{{method}}/shard-{{shard}}.log",
        benchmark:
            benchmark_file("attribute/{model}/{method}/shard-{shard}")
        threads: job_resources("attribute", "threads", 1)
        resources:
            gpu=job_resources("attribute", "gpu", 1),
            mem_mb=job_resources("attribute", "mem_mb", 4000),
            runtime=job_resources("attribute", "runtime", 60),
        conda:
            ENV
        script:
            "../scripts/attribute_shard.py"
