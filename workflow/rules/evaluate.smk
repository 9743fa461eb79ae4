rule evaluate_model:
    input:
        checkpoint=checkpoint_path(),
        test=split_path("test"),
        ood=[split_path(split) for split in SPLITS["ood"]],
    output:
        evaluation_path(),
    log:
        f"{R}/logs/evaluate/{{model}}.log",
    benchmark:
        benchmark_file("evaluate/{model}")
    conda:
        ENV
    threads: job_resources("evaluate", "threads", 1)
    resources:
        gpu=job_resources("evaluate", "gpu", 1),
        mem_mb=job_resources("evaluate", "mem_mb", 4000),
        runtime=job_resources("evaluate", "runtime", 60),
    params:
        ood_splits=SPLITS["ood"],
        settings=EVALUATION,
        gpu_usage=gpu_usage_file("evaluate/{model}"),
    script:
        "../scripts/evaluate_model.py"
