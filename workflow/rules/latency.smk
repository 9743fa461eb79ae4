# Milliseconds per explanation (Zeng et al. 2021, Table 3): one job per model times every configured
# method on it at batch 1 and batched, under a fixed thread count, with one forward pass as the unit
# that makes the numbers comparable across machines; then one table and plot for the study.
if LATENCY is not None:

    localrules:
        latency_table,

    # A latency job runs alone: jobs beside it slow its timed calls by however much they happen to
    # load the cores (in the default study one method's cost in forward passes differed 2.2-7.5x
    # between the two models' jobs). On a local run it claims every core given (--cores), so the
    # scheduler starts nothing beside it; its torch still uses LATENCY["threads"] threads
    # (params.threads). On SLURM the job gets a node of its own (slurm_extra "--exclusive" in
    # profiles/slurm) whatever it asks for, so there it asks for LATENCY["threads"] (a cluster run's
    # --cores is the number of jobs in flight, not a machine's cores).
    LATENCY_JOB_THREADS = (
        (workflow.resource_settings.cores or LATENCY["threads"]) if workflow.local_exec else LATENCY["threads"]
    )

    rule latency:
        input:
            checkpoint=checkpoint_path(),
            split=split_path(LATENCY["split"]),
            needed=lambda wildcards: list(latency_checkpoints(wildcards).values()),
        output:
            latency_path(),
        log:
            f"{R}/logs/latency/{{model}}.log",
        benchmark:
            benchmark_file("latency/{model}")
        wildcard_constraints:
            model=names_regex(LATENCY["models"]),
        conda:
            ENV
        threads: LATENCY_JOB_THREADS
        resources:
            gpu=job_resources("latency", "gpu", 1),
            mem_mb=job_resources("latency", "mem_mb", 4000),
            runtime=job_resources("latency", "runtime", 60),
        params:
            methods=lambda wildcards: {
                method: settings
                for method, settings in LATENCY["methods"].items()
                if wildcards.model in settings["models"]
            },
            needed=lambda wildcards: list(latency_checkpoints(wildcards)),
            threads=LATENCY["threads"],
            repeats=LATENCY["repeats"],
            images=LATENCY["images"],
            gpu_usage=gpu_usage_file("latency/{model}"),
            tuning=TUNING,
            tuning_cache=TUNING_CACHE,
        script:
            "../scripts/latency.py"

    rule latency_table:
        input:
            [latency_path(model) for model in LATENCY["models"]],
        output:
            table=report(f"{R}/tables/latency.csv", caption="../report/latency.rst", category="7. Learned explainer"),
            plot=report(f"{R}/plots/latency.png", caption="../report/latency.rst", category="7. Learned explainer"),
        log:
            f"{R}/logs/aggregate/latency.log",
        conda:
            ENV
        script:
            "../scripts/latency_table.py"
