# Remove and retrain (Hooker et al. 2019; Zeng et al. 2021 Table 1). One job per (model, method,
# fraction, repeat) retrains a fresh model on the train split with the top fraction of pixels (by the
# method's maps of the explained model) replaced by the train mean, and tests it on the test split
# modified alike; the unmodified anchor (fraction 0) once per (model, repeat). Next to every cell the
# mask-only control trains a classifier on the removal masks alone, with the cell's recipe; its positive
# control ranks by the true objects (true_objects: must be flagged), random is its negative control. A job depends on its model's
# recipe, its method's maps and its own fraction / repeat, so adding a method or fraction adds only
# its jobs, and a killed retraining resumes from its last epoch. With roar.leaking_cells: skip (the default)
# a cell waits for its mask-only control and is not retrained where that control flags leakage: its
# accuracy would measure the removal's shape, and the findings do not count it (ROAD decides there).
if ROAR is not None:

    localrules:
        roar_table,

    rule roar:
        input:
            unpack(roar_map_inputs),
            unpack(roar_leakage_input),
            train=split_path("train"),
            test=split_path("test"),
        output:
            roar_path(),
        log:
            f"{R}/logs/roar/{{model}}/{{method}}/{{fraction}}-{{repeat}}.log",
        benchmark:
            benchmark_file("roar/{model}/{method}/{fraction}-{repeat}")
        wildcard_constraints:
            model=names_regex(ROAR["models"]),
            method=names_regex([*ROAR["entries"], UNMODIFIED]),
            fraction=r"[0-9.]+",
            repeat=r"\d+",
        conda:
            ENV
        threads: job_resources("roar", "threads", 1)
        resources:
            gpu=job_resources("roar", "gpu", 1),
            mem_mb=job_resources("roar", "mem_mb", 8000),
            runtime=job_resources("roar", "runtime", 240),
        params:
            entry=roar_entry,
            recipe=lambda wildcards: roar_recipe(config, ROAR, wildcards.model, int(wildcards.repeat)),
            ranking=ROAR["ranking"],
            splits=ROAR["splits"],
            gpu_usage=gpu_usage_file("roar/{model}/{method}/{fraction}-{repeat}"),
            tuning=TUNING,
            tuning_cache=TUNING_CACHE,
        script:
            "../scripts/roar_retrain.py"

    rule roar_leakage:
        input:
            unpack(roar_map_inputs),
            train=split_path("train"),
            test=split_path("test"),
        output:
            leakage_path(),
        log:
            f"{R}/logs/roar/{{model}}/{{method}}/{{fraction}}-leakage.log",
        benchmark:
            benchmark_file("roar/{model}/{method}/{fraction}-leakage")
        wildcard_constraints:
            model=names_regex(ROAR["models"]),
            method=names_regex(list(leakage_entries())),
            fraction=r"[0-9.]+",
        conda:
            ENV
        threads: job_resources("roar", "threads", 1)
        resources:
            gpu=job_resources("roar", "gpu", 1),
            mem_mb=job_resources("roar", "mem_mb", 8000),
            runtime=job_resources("roar", "runtime", 240),
        params:
            entry=roar_entry,
            recipe=lambda wildcards: roar_recipe(config, ROAR, wildcards.model, leakage=True),
            ranking=ROAR["ranking"],
            splits=ROAR["splits"],
            margin=ROAR["leakage"]["margin"],
            gpu_usage=gpu_usage_file("roar/{model}/{method}/{fraction}-leakage"),
            tuning=TUNING,
            tuning_cache=TUNING_CACHE,
        script:
            "../scripts/roar_leakage.py"

    rule roar_table:
        input:
            cells=[roar_path(**cell) for cell in roar_cells()],
            leakage=[leakage_path(**cell) for cell in leakage_cells()],
            evaluations=[evaluation_path(model) for model in ROAR["models"]],
        output:
            table=report(f"{R}/tables/roar.csv", caption="../report/roar.rst", category="7. Learned explainer"),
            leakage=report(
                f"{R}/tables/roar_leakage.csv", caption="../report/roar_leakage.rst", category="7. Learned explainer"
            ),
            plot=report(f"{R}/plots/roar.png", caption="../report/roar.rst", category="7. Learned explainer"),
        log:
            f"{R}/logs/aggregate/roar.log",
        conda:
            ENV
        params:
            models=ROAR["models"],
            anchors=ROAR_ANCHORS,
        script:
            "../scripts/roar_table.py"
