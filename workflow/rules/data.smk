rule download_dataset_archive:
    output:
        ARCHIVE,
    params:
        source=lambda wildcards: DATASET.get(DATASET["kind"], {}),
    log:
        f"{R}/logs/data/download.log",
    conda:
        ENV
    script:
        "../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        archive=[ARCHIVE] if DATASET["kind"] == "cifar10" else [],
    output:
        **{split: split_path(split) for split in all_split_names(DATASET)},
    params:
        dataset=DATASET,
    log:
        f"{R}/logs/data/prepare.log",
    benchmark:
        benchmark_file("data/prepare")
    threads: job_resources("data", "threads", 1)
    resources:
        mem_mb=job_resources("data", "mem_mb", 4000),
        runtime=job_resources("data", "runtime", 30),
    conda:
        ENV
    script:
        "../scripts/prepare_dataset.py"
