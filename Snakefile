# robustxai: how explainable are vanilla, adversarially robust and AdvProp CNNs?
# One DAG: dataset -> models -> evaluation -> attributions -> metrics -> tables/plots, with the
# learned explainer's targets (attributions of the train split) feeding its training. See README.md.

# The default study, unless a study config came with --configfile (Snakemake would merge the two,
# mixing their model lists).
if "models" not in config:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/attribute.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/latency.smk"
include: "workflow/rules/roar.smk"


# One run at a time per results folder (robustxai.results_lock): Snakemake locks only the working
# directory, so two checkouts or configs sharing `results` would mix their files.
onstart:
    results_lock.acquire(R, {"workdir": os.getcwd(), "configfiles": [str(f) for f in workflow.configfiles]})


onsuccess:
    results_lock.release(R)


onerror:
    results_lock.release(R)


rule all:
    default_target: True
    input:
        rules.aggregate_models.output,
        attribution_outputs(),
        metric_outputs(),
        aggregation_outputs(),
        latency_outputs(),
        roar_outputs(),
