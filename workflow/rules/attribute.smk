# One job per (split, model, method, shard): the attribution section's maps (its split) and the
# target maps of explainer models (alignment_target on the train split of their twins). A method's
# jobs depend only on its own settings and on the checkpoints of the models it runs (the explained
# one and any its settings name, e.g. robust_counterpart's counterpart), so adding or changing a
# method adds or reruns only that method's jobs.
rule attribute:
    input:
        checkpoint=checkpoint_path(),
        split=lambda wildcards: split_path(wildcards.split),
        needed=lambda wildcards: list(needed_checkpoints(wildcards).values()),
    output:
        shard_path(),
    log:
        f"{R}/logs/attribute/{{split}}/{{model}}/{{method}}/shard-{{shard}}.log",
    benchmark:
        benchmark_file("attribute/{split}/{model}/{method}/shard-{shard}")
    wildcard_constraints:
        split=names_regex(sorted({job["split"] for job in ATTRIBUTION_JOBS.values()})),
        method=names_regex(sorted({job["method"] for job in ATTRIBUTION_JOBS.values()})),
        shard=r"\d+",
    conda:
        ENV
    threads: job_resources("attribute", "threads", 1)
    resources:
        gpu=job_resources("attribute", "gpu", 1),
        mem_mb=attribute_mem_mb,  # scales with image size and batch (robustxai.pipeline.resources)
        runtime=job_resources("attribute", "runtime", 60),
    params:
        settings=lambda wildcards: attribution_job(wildcards)["settings"],
        images_per_shard=lambda wildcards: attribution_job(wildcards)["images_per_shard"],
        images_per_batch=lambda wildcards: attribution_job(wildcards)["images_per_batch"],
        target=lambda wildcards: attribution_job(wildcards)["target"],
        dtype=lambda wildcards: attribution_job(wildcards)["dtype"],
        needed=lambda wildcards: list(needed_checkpoints(wildcards)),
        gpu_usage=gpu_usage_file("attribute/{split}/{model}/{method}/shard-{shard}"),
        tuning=TUNING,
        tuning_cache=TUNING_CACHE,
    script:
        "../scripts/attribute_shard.py"
