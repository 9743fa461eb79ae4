# The archive the dataset's kind downloads, {"url", "md5", "sha256"}, or None (built-in, ImageFolder,
# Tiny ImageNet from an extracted root): only kinds with one get the download rule.
DATASET_ARCHIVE = dataset_kind(DATASET["kind"]).archive(DATASET)
# where it is kept: under the archive's own file name (cifar-10-python.tar.gz, tiny-imagenet-200.zip)
ARCHIVE = f"{R}/downloads/{DATASET['name']}/{os.path.basename(DATASET_ARCHIVE['url'])}" if DATASET_ARCHIVE else None
# Local files the preparation reads besides archives and image folders (an ImageFolder class_names_file),
# so editing one reruns it.
DATASET_FILES = dataset_kind(DATASET["kind"]).input_files(DATASET)


if DATASET_ARCHIVE:

    rule download_dataset_archive:
        output:
            ARCHIVE,
        log:
            f"{R}/logs/data/download.log",
        conda:
            ENV
        params:
            archive=DATASET_ARCHIVE,
        script:
            "../scripts/download_dataset.py"


if FOLDER_DOWNLOADS:

    rule download_folder_archive:
        output:
            folder_archive("{split}", "{file}"),
        log:
            f"{R}/logs/data/download-{{split}}-{{file}}.log",
        wildcard_constraints:
            split=names_regex(list(FOLDER_DOWNLOADS)),
        conda:
            ENV
        params:
            archive=lambda w: next(
                a for a in FOLDER_DOWNLOADS[w.split]["archives"] if os.path.basename(a["url"]) == w.file
            ),
        script:
            "../scripts/download_dataset.py"

    rule unpack_folder:
        input:
            lambda w: [
                folder_archive(SPLIT_OF_FOLDER[w.folder], a["url"])
                for a in FOLDER_DOWNLOADS[SPLIT_OF_FOLDER[w.folder]]["archives"]
            ],
        output:
            directory("{folder}"),
        log:
            f"{R}/logs/data/unpack/{{folder}}.log",
        wildcard_constraints:
            folder=names_regex(list(SPLIT_OF_FOLDER)),
        conda:
            ENV
        params:
            strip_components=lambda w: FOLDER_DOWNLOADS[SPLIT_OF_FOLDER[w.folder]]["strip_components"],
        script:
            "../scripts/unpack_folder.py"


rule prepare_dataset:
    input:
        archive=[ARCHIVE] if DATASET_ARCHIVE else [],
        folders=list(SPLIT_OF_FOLDER),
        files=DATASET_FILES,
    output:
        **{split: split_path(split) for split in all_split_names(DATASET)},
    log:
        f"{R}/logs/data/prepare.log",
    benchmark:
        benchmark_file("data/prepare")
    conda:
        ENV
    threads: job_resources("data", "threads", 1)
    resources:
        mem_mb=job_resources("data", "mem_mb", 4000),
        runtime=job_resources("data", "runtime", 30),
    params:
        dataset=DATASET,
    script:
        "../scripts/prepare_dataset.py"
