import os
import re
import sys

from snakemake.utils import min_version, validate

# Jobs import the robustxai package from this checkout, also inside --use-conda environments.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
# Shards are written under a temporary name and renamed, so HDF5's own file locks (which fail on many
# network file systems) are not needed.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
# Job processes wait for OpenMP work passively (robustxai/__init__.py says why); set here too so that
# it holds for any job that loads torch before robustxai.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from robustxai import results_lock
from robustxai.cluster import placeholder_message, placeholder_resources
from robustxai.data.extract import check_unpack_target
from robustxai.data.kinds import dataset_kind, missing_inputs_message, missing_local_inputs
from robustxai.pipeline import resources as job_memory
from robustxai.config import (
    ConfigError,
    METRIC_SELECTION_KEYS,
    all_split_names,
    attribution_jobs,
    canonical,
    check_download_checksums,
    check_imported_models,
    check_model_architectures,
    check_unique_keys,
    explainer_models,
    fraction_label,
    needed_models,
    models_by_source,
    models_to_download,
    resolve_alignment,
    resolve_attribution,
    resolve_latency,
    resolve_metrics,
    resolve_model,
    resolve_roar,
    roar_anchor_models,
    roar_recipe,
    split_names,
    TRUE_OBJECTS,
    UNMODIFIED,
    validate_config,
)

min_version("9.0")


for config_file in workflow.configfiles:  # a repeated key would be dropped silently by the YAML loader
    check_unique_keys(config_file)
validate_config(config)  # one line per problem, naming the key (snakemake's validate prints the whole schema)
validate(config, "../schemas/config.schema.yaml")  # fills in the schema's defaults
check_download_checksums(config)
check_imported_models(config)
check_model_architectures(config)
_raw = lambda resources: {name: getattr(value, "raw", value) for name, value in (resources or {}).items()}  # noqa: E731
_placeholders = placeholder_resources(
    _raw(workflow.resource_settings.default_resources),
    {rule: _raw(r) for rule, r in workflow.resource_settings.overwrite_resources.items()},
)
if _placeholders:  # the SLURM profile as shipped: refused before any job is planned, dry runs included
    raise ConfigError(placeholder_message(_placeholders))


R = config["results"]
TUNING = "off" if config["tuning"] in ("off", False) else "auto"  # YAML reads a bare `off` as false
TUNING_CACHE = f"{R}/.tuning"
DATASET = canonical(config["dataset"])
SPLITS = split_names(DATASET)
MODELS = list(config["models"])
EVALUATION = canonical(config.get("evaluation", {}))
ATTRIBUTION = resolve_attribution(config)  # None when the config has no attribution section
METRICS = resolve_metrics(config, ATTRIBUTION)  # None when the config has no metrics section
ALIGNMENT = resolve_alignment(config)  # None when no model is an explainer
LATENCY = resolve_latency(config, ATTRIBUTION)  # None when the config has no latency section
ROAR = resolve_roar(config, ATTRIBUTION)  # None when the config has no roar section
ROAR_ANCHORS = roar_anchor_models(config, ROAR)  # model -> the model whose anchors / positive controls it shares
ATTRIBUTION_JOBS = attribution_jobs(ATTRIBUTION, ALIGNMENT, ROAR)  # "<split>/<method>" -> what its shard jobs do
AGGREGATION = {"resamples": 1000, "seed": 0, "grid_images": 6, **config.get("aggregation", {})}
ENV = "../../envs/robustxai.yaml"


# Splits read from folders that are downloaded and unpacked first (ImageNet OOD sets with archives):
# split -> {"folder", "archives", "strip_components"}; the folder is the split's configured root.
FOLDER_DOWNLOADS = dataset_kind(DATASET["kind"]).folder_downloads(DATASET)
for _split, _download in FOLDER_DOWNLOADS.items():  # Snakemake deletes a directory output before remaking it
    check_unpack_target(_download["folder"], f"config.dataset.{DATASET['kind']}.ood.{_split}.images")
SPLIT_OF_FOLDER = {download["folder"]: split for split, download in FOLDER_DOWNLOADS.items()}


def folder_archive(split, url):
    """Where one archive of a split's folder is downloaded: under its own file name."""
    return f"{R}/downloads/{DATASET['name']}/{split}/{os.path.basename(url)}"


def split_path(split):
    """Path of one prepared split file of the configured dataset."""
    return f"{R}/data/{DATASET['name']}/{split}.h5"


# A study whose local data are missing stops here, before any job is planned, naming each key and path.
_missing = missing_local_inputs(
    dataset_kind(DATASET["kind"]), DATASET, [split_path(s) for s in all_split_names(DATASET)]
)
if _missing:
    raise ConfigError(missing_inputs_message(_missing))


def checkpoint_path(model="{model}"):
    """A model's checkpoint (the wildcard pattern by default)."""
    return f"{R}/models/{model}.pt"


def evaluation_path(model="{model}"):
    """A model's evaluation row (JSON)."""
    return f"{R}/evaluation/{model}.json"


def shard_path(split="{split}", model="{model}", method="{method}", shard="{shard}"):
    """One attribution shard: maps of one method for one model on one shard of one split."""
    return f"{R}/attributions/{DATASET['name']}/{split}/{model}/{method}/shard-{shard}.h5"


def shard_paths(split, model, method, count=None):
    """The first ``count`` attribution shards of one (split, model, method) (default: as many as the
    attribution section's metrics, or the explainers' training, read)."""
    count = ATTRIBUTION_JOBS[f"{split}/{method}"]["shards"] if count is None else count
    return [shard_path(split, model, method, k) for k in range(count)]


def metrics_folder(model="{model}", method="{method}"):
    """The per-image metric tables of one model's maps of one method (one metrics job writes them all)."""
    return f"{R}/metrics/{DATASET['name']}/{model}/{method}"


def metric_path(model, method, metric):
    """One per-image metric table of one model's maps of one method."""
    return f"{metrics_folder(model, method)}/{metric}.parquet"


def roar_path(model="{model}", method="{method}", fraction="{fraction}", repeat="{repeat}"):
    """One ROAR cell: a retraining on images with the top ``fraction`` removed by ``method``'s maps."""
    return f"{R}/roar/{DATASET['name']}/{model}/{method}/{fraction}-{repeat}.json"


def leakage_path(model="{model}", method="{method}", fraction="{fraction}"):
    """The mask-only control of one ROAR cell."""
    return f"{R}/roar/{DATASET['name']}/{model}/{method}/{fraction}-leakage.json"


def latency_path(model="{model}"):
    """One model's latency rows (CSV)."""
    return f"{R}/latency/{model}.csv"


def names_regex(names):
    """A wildcard constraint matching exactly these names (and nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def model_entry(wildcards):
    """A model's full resolved settings: the only config its jobs depend on."""
    return resolve_model(config, wildcards.model)


def model_weights_file(wildcards):
    """The checkpoint file a 'file'-source model imports: its local 'file', or its downloaded 'url'."""
    entry = model_entry(wildcards)
    return entry["file"] if entry.get("file") else f"{R}/downloads/models/{wildcards.model}.weights"


def benchmark_file(name):
    """A rule's Snakemake benchmark file, e.g. benchmark_file('train/{model}') (wildcards kept)."""
    return f"{R}/benchmarks/{name}.tsv"


def gpu_usage_file(name):
    """The sidecar of benchmark_file(name) with the job's GPU time and peak GPU memory; the job writes
    it (robustxai.workflow_io.job_logging) only when it ran on a GPU, so it is not a declared output."""
    return f"{R}/benchmarks/{name}.gpu.tsv"


def job_resources(stage, key, default):
    """A resource of a stage's jobs from config 'resources', e.g. job_resources('train', 'mem_mb', 4000)."""
    return config.get("resources", {}).get(stage, {}).get(key, default)


def attribute_mem_mb(wildcards):
    """mem_mb of an attribute job: the config's resources.attribute.mem_mb, else an estimate from the
    image size, the job's images per shard and per batch and its method's batch size and pass kind
    (robustxai.pipeline.resources)."""
    from robustxai.attribution import method_class
    from robustxai.config import method_name

    job = attribution_job(wildcards)
    pass_kind = method_class(method_name(job["method"], job["settings"])).pass_kind
    return job_resources("attribute", "mem_mb", None) or job_memory.attribute_mem_mb(
        DATASET["image_size"],
        job["images_per_batch"],
        job["images_per_shard"],
        job["settings"].get("batch_size", "auto"),
        pass_kind,
    )


def metric_mem_mb(metric, method):
    """mem_mb of one metric of a metrics job: an estimate from the image size, the images it scores and,
    for a metric that runs the model, its pass kind (a metric class may declare pass_kind; gradient, the
    larger, otherwise) and batch size (robustxai.pipeline.resources)."""
    cls = registered_metric(metric)
    job = ATTRIBUTION_JOBS[f"{ATTRIBUTION['split']}/{method}"]
    images = job["shards"] * job["images_per_shard"]
    cap = METRICS[metric].get("images")
    return job_memory.metric_mem_mb(
        DATASET["image_size"],
        min(images, cap) if cap else images,
        getattr(cls, "pass_kind", "gradient") if cls.needs_model else None,
        METRICS[metric].get("batch_size", "auto"),
    )


def metrics_mem_mb(wildcards):
    """mem_mb of a metrics job: the config's resources.metrics.mem_mb, else its largest metric's estimate
    (they run one after another)."""
    return job_resources("metrics", "mem_mb", None) or max(
        metric_mem_mb(metric, wildcards.method) for metric in pair_metrics(wildcards)
    )


def attribution_outputs():
    """Every attribution shard the config asks for: the attribution section's and explainer targets'."""
    return [
        path
        for job in ATTRIBUTION_JOBS.values()
        for model in job["models"]
        for path in shard_paths(job["split"], model, job["method"])
    ]


def attribution_job(wildcards):
    """What the shard jobs of one (split, method) do (``robustxai.config.attribution_jobs``)."""
    return ATTRIBUTION_JOBS[f"{wildcards.split}/{wildcards.method}"]


def needed_checkpoints(wildcards):
    """Setting name -> checkpoint of the other models the method of an attribution job needs (e.g.
    robust_counterpart's counterpart); none for most methods."""
    job = attribution_job(wildcards)
    return {key: checkpoint_path(model) for key, model in needed_models(job["method"], job["settings"]).items()}


def methods_of(model):
    """The attribution section's methods that explain ``model``, in config order."""
    return [method for method, settings in ATTRIBUTION["methods"].items() if model in settings["models"]]


def metric_outputs():
    """The folder of per-image metric tables of every (model, method) some metric scores (none without a
    metrics section)."""
    return list(dict.fromkeys(metrics_folder(table["model"], table["method"]) for table in metric_tables()))


def pair_metrics(wildcards):
    """The metrics (config names, in config order) that score one (model, method) of a metrics job."""
    return [
        table["metric"]
        for table in metric_tables()
        if (table["model"], table["method"]) == (wildcards.model, wildcards.method)
    ]


def registered_metric(metric):
    """The registered metric class of a configured metric (config entries may name one with 'metric:')."""
    from robustxai.metrics import metric_class

    return metric_class(METRICS[metric]["metric"])


def metric_settings(metric, method):
    """A metric's settings for a method (config names), without the keys that only select its jobs (what
    its table depends on): what the metric leaves to the maps (box metrics' ``rescale: auto``) is decided
    here from the method's declaration, so the protocol is in the params and recorded in every table."""
    from robustxai.config import method_name, method_settings
    from robustxai.metrics import settings_for_method

    entry = METRICS[metric]
    settings = {key: value for key, value in entry.items() if key not in METRIC_SELECTION_KEYS}
    configured = ATTRIBUTION["methods"][method]
    return settings_for_method(entry["metric"], settings, method_name(method, configured), method_settings(configured))


def metrics_settings(wildcards):
    """What a metrics job computes: table name -> {"metric": the registered metric, "settings"}."""
    return {
        metric: {"metric": METRICS[metric]["metric"], "settings": metric_settings(metric, wildcards.method)}
        for metric in pair_metrics(wildcards)
    }


def runs_model(wildcards):
    """Whether some metric of a metrics job runs the model (localisation metrics read maps and boxes only)."""
    return any(registered_metric(metric).needs_model for metric in pair_metrics(wildcards))


def metrics_checkpoint(wildcards):
    """The model's checkpoint when some metric of the job runs the model."""
    return [checkpoint_path(wildcards.model)] if runs_model(wildcards) else []


def metrics_method_settings(wildcards):
    """The method's settings when some metric of the job recomputes maps (sanity checks), else None."""
    if not any(registered_metric(metric).needs_method for metric in pair_metrics(wildcards)):
        return None
    return ATTRIBUTION_JOBS[f"{ATTRIBUTION['split']}/{wildcards.method}"]["settings"]


def metrics_gpus(wildcards):
    """GPUs of a metrics job: the stage's setting when it runs the model, else 0."""
    return job_resources("metrics", "gpu", 1) if runs_model(wildcards) else 0


def metric_tables():
    """Every per-image metric table as {model, method, metric, path}: each metric's (model, method) pairs."""
    if METRICS is None:
        return []
    return [
        {"model": model, "method": method, "metric": metric, "path": metric_path(model, method, metric)}
        for metric, settings in METRICS.items()
        for model, method in settings["pairs"]
    ]


def scored_metric_classes():
    """The registered metrics the metrics section uses, once each (what the aggregation's score
    directions and columns come from)."""
    return sorted({settings["metric"] for settings in METRICS.values()})


def run_summary():
    """One line naming the run for findings.md: dataset, images, metrics (each study's section names
    its own models and methods)."""
    return (
        f"Dataset `{DATASET['name']}`; at most {ATTRIBUTION['shards'] * ATTRIBUTION['images_per_shard']} "
        f"images of split `{ATTRIBUTION['split']}` per (model, method); metrics: {', '.join(METRICS)}."
    )


SUMMARY_PLOTS = {
    "heatmap": "metric means per model and method",
    "confidence": "per-image insertion and deletion against confidence",
    "tradeoff": "explainability score against accuracy and MACs",
    "sanity": "cascading model randomisation curves",
}


def summary_plot_outputs():
    """Named outputs of summary_plots: <plot> (PNG, in the report) and <plot>_data (CSV) for each plot
    the metrics allow (sanity curves only with sanity_randomisation)."""
    outputs = {}
    for plot in SUMMARY_PLOTS:
        if plot == "sanity" and "sanity_randomisation" not in METRICS:
            continue
        outputs[plot] = report(f"{R}/plots/{plot}.png", caption=f"../report/{plot}.rst", category="6. Plots")
        outputs[f"{plot}_data"] = f"{R}/plots/{plot}.csv"
    return outputs


def aggregation_outputs():
    """The aggregation's final files (none without a metrics section)."""
    if METRICS is None:
        return []
    return [
        f"{R}/findings.md",
        f"{R}/report/findings.html",
        f"{R}/report/tables.html",
        f"{R}/tables/explainability.csv",
        f"{R}/correlations/across_models.csv",
        *[f"{R}/plots/{plot}.png" for plot in SUMMARY_PLOTS if plot != "sanity" or "sanity_randomisation" in METRICS],
        *expand(f"{R}/plots/maps/{{model}}.png", model=ATTRIBUTION["models"]),
    ]


def latency_outputs():
    """The latency table and plot (none without a latency section)."""
    return [] if LATENCY is None else [f"{R}/tables/latency.csv", f"{R}/plots/latency.png"]


def latency_checkpoints(wildcards):
    """Setting name -> checkpoint of every other model a latency job's methods need, per method
    (flattened as "<method>:<setting>" keys)."""
    return {
        f"{method}:{key}": checkpoint_path(other)
        for method, settings in LATENCY["methods"].items()
        if wildcards.model in settings["models"]
        for key, other in needed_models(method, settings).items()
    }


def training_inputs(wildcards):
    """Extra inputs of a model's training: the target shards an explainer learns (its twin's
    alignment_target maps of the train split) and the checkpoint of the model it starts from (init_from)."""
    entry = model_entry(wildcards)
    inputs = {}
    if entry["algorithm"] == "explainer":
        inputs["targets"] = shard_paths("train", entry["explainer"]["twin"], "alignment_target")
    if entry.get("init_from"):
        inputs["init"] = checkpoint_path(entry["init_from"])
    return inputs


def scored_methods():
    """Settings of the attribution methods some metric scores, by name (what the tables depend on)."""
    scored = {method for settings in METRICS.values() for method in settings["methods"]}
    return {name: settings for name, settings in ATTRIBUTION["methods"].items() if name in scored}


def roar_cells():
    """Every ROAR output as {model, method, fraction (label), repeat}: each entry's models x fractions x
    repeats, plus each model's unmodified anchor (fraction 0) per repeat."""
    if ROAR is None:
        return []
    cells = [
        {"model": model, "method": name, "fraction": fraction_label(fraction), "repeat": repeat}
        for name, entry in ROAR["entries"].items()
        for model in entry["models"]
        for fraction in ROAR["fractions"]
        for repeat in range(ROAR["repeats"])
    ]
    cells += [
        {"model": model, "method": UNMODIFIED, "fraction": "0", "repeat": repeat}
        for model in anchor_models()
        for repeat in range(ROAR["repeats"])
    ]
    return cells


def anchor_models():
    """The ROAR models that run the unmodified anchors and the positive leakage control: one per recipe
    (``robustxai.config.roar_anchor_models``), the others share theirs."""
    return [model for model in ROAR["models"] if ROAR_ANCHORS[model] == model]


def positive_leakage_control():
    """The mask-only control's positive control, a removal ranked by the true objects (which must be
    flagged), as a ROAR entry; None when switched off or a ROAR split has no boxes to rank by."""
    kind = dataset_kind(DATASET["kind"])
    if not ROAR["leakage"]["positive_control"] or not all(kind.has_boxes(DATASET, split) for split in ROAR["splits"]):
        return None
    return {"method": None, "blur_sigma": None, "maps": "objects", "control": "positive", "models": anchor_models()}


def leakage_entries():
    """The rows of the mask-only control, name -> ROAR entry: every ROAR entry (the random baseline is the
    negative control) and, where the splits have boxes, the positive control (``TRUE_OBJECTS``)."""
    positive = positive_leakage_control()
    return {**ROAR["entries"], **({TRUE_OBJECTS: positive} if positive else {})}


def leakage_cells():
    """Every mask-only control as {model, method, fraction (label)}: each leakage entry's models x fractions."""
    if ROAR is None:
        return []
    return [
        {"model": model, "method": name, "fraction": fraction_label(fraction)}
        for name, entry in leakage_entries().items()
        for model in entry["models"]
        for fraction in ROAR["fractions"]
    ]


def roar_map_inputs(wildcards):
    """The map shards a ROAR job reads: its method's maps of the ROAR images of the train and test
    splits (none for the unmodified anchor and the positive leakage control, which ranks by the objects)."""
    if wildcards.method in (UNMODIFIED, TRUE_OBJECTS):
        return {"train_maps": [], "test_maps": []}
    method = ROAR["entries"][wildcards.method]["method"]
    return {
        f"{split}_maps": shard_paths(split, wildcards.model, method, plan["shards"])
        for split, plan in ROAR["splits"].items()
    }


def roar_leakage_input(wildcards):
    """The mask-only control a ROAR cell waits for where leaking cells are skipped (``roar.leaking_cells``):
    the cell is retrained only if its control does not flag leakage; none for the anchor."""
    if ROAR["leaking_cells"] != "skip" or wildcards.method == UNMODIFIED:
        return {}
    return {"leakage": leakage_path(wildcards.model, wildcards.method, wildcards.fraction)}


def roar_entry(wildcards):
    """The ROAR row a job computes: method, blur_sigma and control (the anchor: no method)."""
    if wildcards.method == UNMODIFIED:
        return {"method": None, "blur_sigma": None}
    return {key: value for key, value in leakage_entries()[wildcards.method].items() if key != "models"}


def roar_outputs():
    """The ROAR table and plot (none without a roar section)."""
    return [] if ROAR is None else [f"{R}/tables/roar.csv", f"{R}/tables/roar_leakage.csv", f"{R}/plots/roar.png"]


def explainer_alignments():
    """Explainer model -> its alignment (robust / standard)."""
    return {name: resolve_model(config, name)["explainer"]["alignment"] for name in explainer_models(config)}


def explainer_study():
    """What the second study's findings need besides their input files (None without explainer models):
    the explainers' alignments, the last-block sanity metrics, and the settings of the methods they and
    ROAR score (whose families the findings read)."""
    if not explainer_alignments():
        return None
    last_block = [
        name
        for name, settings in METRICS.items()
        if settings["metric"] == "sanity_randomisation" and settings.get("mode") == "last_block"
    ]
    used = {method for name in last_block for method in METRICS[name]["methods"]}
    used |= {entry["method"] for entry in (ROAR["entries"].values() if ROAR is not None else [])}
    return {
        "alignments": explainer_alignments(),
        "last_block_metrics": last_block,
        "methods": {method: settings for method, settings in ATTRIBUTION["methods"].items() if method in used},
    }


def explainer_findings_inputs():
    """The tables the second study's findings read: ROAR, latency and the per-image metric values."""
    if not explainer_alignments():
        return {}
    inputs = {"per_image": f"{R}/tables/per_image.parquet"}
    if ROAR is not None:
        inputs["roar"] = f"{R}/tables/roar.csv"
        inputs["roar_leakage"] = f"{R}/tables/roar_leakage.csv"
    if LATENCY is not None:
        inputs["latency"] = f"{R}/tables/latency.csv"
    return inputs


def report_caption(name):
    """The caption of workflow/report/<name>.rst as the tables page's markdown (``code`` -> `code`)."""
    text = open(os.path.join(workflow.basedir, "workflow", "report", f"{name}.rst")).read()
    return " ".join(text.replace("``", "`").split())


def report_tables():
    """Title -> (CSV, caption name) of the report's tables page, for the sections the config has."""
    tables = {
        "Models": (f"{R}/tables/models.csv", "models"),
        "Explainability per (model, method)": (f"{R}/tables/explainability.csv", "explainability"),
        "Method ranking": (f"{R}/tables/method_ranking.csv", "method_ranking"),
        "Paired comparisons of the training algorithms": (f"{R}/tables/group_comparisons.csv", "group_comparisons"),
    }
    if explainer_models(config):
        tables["Learned explainer: explainability"] = (
            f"{R}/tables/explainer_explainability.csv",
            "explainer_explainability",
        )
    if LATENCY is not None:
        tables["Latency"] = (f"{R}/tables/latency.csv", "latency")
    if ROAR is not None:
        tables["ROAR (remove and retrain)"] = (f"{R}/tables/roar.csv", "roar")
        tables["ROAR mask-only controls"] = (f"{R}/tables/roar_leakage.csv", "roar_leakage")
    return tables


REPORT_TABLES = report_tables() if METRICS is not None else {}
