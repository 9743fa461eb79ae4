from robustxai.data.kinds import dataset_kind

# The archive the dataset's kind downloads, {"url", "md5", "sha256"}, or None (built-in, ImageFolder,
# Tiny ImageNet from an extracted root): only kinds with one get the download rule.
DATASET_ARCHIVE = dataset_kind(DATASET["kind"]).archive(DATASET)
# where it is kept: under the archive's own file name (cifar-10-python.tar.gz, tiny-imagenet-200.zip)
ARCHIVE = f"{R}/downloads/{DATASET['name']}/{os.path.basename(DATASET_ARCHIVE['url'])}" if DATASET_ARCHIVE else None


if DATASET_ARCHIVE:

    rule download_dataset_archive:
        output:
            ARCHIVE,
        params:
            archive=DATASET_ARCHIVE,
        log:
            f"{R}/logs/data/download.log",
        conda:
            ENV
        script:
            "../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        archive=[ARCHIVE] if DATASET_ARCHIVE else [],
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
