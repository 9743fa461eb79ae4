# One rule per weight source; each model is produced by exactly one of them.


rule train_model:
    input:
        unpack(training_inputs),
        train=split_path("train"),
        val=split_path("val"),
    output:
        checkpoint=checkpoint_path(),
        history=f"{R}/models/{{model}}.history.csv",
    log:
        f"{R}/logs/train/{{model}}.log",
    benchmark:
        benchmark_file("train/{model}")
    wildcard_constraints:
        model=names_regex(models_by_source(config, "train")),
    conda:
        ENV
    threads: job_resources("train", "threads", 1)
    resources:
        gpu=job_resources("train", "gpu", 1),
        mem_mb=job_resources("train", "mem_mb", 4000),
        runtime=job_resources("train", "runtime", 120),
    params:
        entry=model_entry,
        gpu_usage=gpu_usage_file("train/{model}"),
        tuning=TUNING,
        tuning_cache=TUNING_CACHE,
    script:
        "../scripts/train_model.py"


rule fetch_timm_model:
    output:
        checkpoint=checkpoint_path(),
        history=f"{R}/models/{{model}}.history.csv",
    log:
        f"{R}/logs/fetch/{{model}}.log",
    wildcard_constraints:
        model=names_regex(models_by_source(config, "timm")),
    conda:
        ENV
    params:
        entry=model_entry,
    script:
        "../scripts/fetch_model.py"


rule download_model_weights:
    output:
        f"{R}/downloads/models/{{model}}.weights",
    log:
        f"{R}/logs/fetch/{{model}}.download.log",
    wildcard_constraints:
        model=names_regex(models_to_download(config)),
    conda:
        ENV
    params:
        url=lambda wildcards: model_entry(wildcards)["url"],
        sha256=lambda wildcards: model_entry(wildcards).get("sha256"),
        lock=config.get("weights_lock"),
    script:
        "../scripts/download_weights.py"


rule import_checkpoint:
    input:
        weights=model_weights_file,
    output:
        checkpoint=checkpoint_path(),
        history=f"{R}/models/{{model}}.history.csv",
    log:
        f"{R}/logs/fetch/{{model}}.log",
    wildcard_constraints:
        model=names_regex(models_by_source(config, "file")),
    conda:
        ENV
    params:
        entry=model_entry,
        lock=config.get("weights_lock"),
    script:
        "../scripts/fetch_model.py"
