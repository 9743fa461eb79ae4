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

from robustxai.config import (
    all_split_names,
    canonical,
    method_name,
    models_by_source,
    models_to_download,
    resolve_attribution,
    resolve_metrics,
    resolve_model,
    split_names,
)

min_version("9.0")


validate(config, "../schemas/config.schema.yaml")


R = config["results"]
DATASET = canonical(config["dataset"])
SPLITS = split_names(DATASET)
MODELS = list(config["models"])
EVALUATION = canonical(config.get("evaluation", {}))
ATTRIBUTION = resolve_attribution(config)  # None when the config has no attribution section
METRICS = resolve_metrics(config, ATTRIBUTION)  # None when the config has no metrics section
AGGREGATION = {"resamples": 1000, "seed": 0, "grid_images": 6, **config.get("aggregation", {})}
ENV = "../../envs/robustxai.yaml"
ARCHIVE = f"{R}/downloads/{DATASET['name']}/archive.tar.gz"  # kinds that need a download (CIFAR-10)


def split_path(split):
    """Path of one prepared split file of the configured dataset."""
    return f"{R}/data/{DATASET['name']}/{split}.npz"


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


def attribution_outputs():
    """Every attribution shard the config asks for (none without an attribution section)."""
    if ATTRIBUTION is None:
        return []
    return expand(
        f"{R}/attributions/{DATASET['name']}/{{model}}/{{method}}/shard-{{shard}}.h5",
        model=ATTRIBUTION["models"],
        method=list(ATTRIBUTION["methods"]),
        shard=range(ATTRIBUTION["shards"]),
    )


def counterpart_checkpoint(wildcards):
    """The other model's checkpoint a robust_counterpart method needs (none for other methods)."""
    settings = ATTRIBUTION["methods"][wildcards.method]
    if method_name(wildcards.method, settings) != "robust_counterpart":
        return []
    return [f"{R}/models/{settings['counterpart']}.pt"]


def shard_paths(model, method):
    """Every attribution shard of one (model, method)."""
    return expand(f"{R}/attributions/{DATASET['name']}/{model}/{method}/shard-{{shard}}.h5",
                  shard=range(ATTRIBUTION["shards"]))


def metric_outputs():
    """Every per-image metric table the config asks for (none without a metrics section)."""
    if METRICS is None:
        return []
    return [f"{R}/metrics/{DATASET['name']}/{model}/{method}/{metric}.parquet"
            for metric, settings in METRICS.items() for model in settings["models"] for method in settings["methods"]]


def metric_checkpoint(wildcards):
    """The model's checkpoint when the metric runs the model (none for localisation metrics)."""
    from robustxai.metrics import metric_class

    return [f"{R}/models/{wildcards.model}.pt"] if metric_class(wildcards.metric).needs_model else []


def metric_method_settings(wildcards):
    """The method's settings when the metric recomputes maps (sanity checks), else None."""
    from robustxai.metrics import metric_class

    return ATTRIBUTION["methods"][wildcards.method] if metric_class(wildcards.metric).needs_method else None


def metric_gpus(wildcards):
    """GPUs of a metric job: the stage's setting when it runs the model, else 0."""
    from robustxai.metrics import metric_class

    return job_resources("metrics", "gpu", 1) if metric_class(wildcards.metric).needs_model else 0


def metric_tables():
    """Every per-image metric table as {model, method, metric, path}, in metric_outputs() order."""
    return [{"model": model, "method": method, "metric": metric,
             "path": f"{R}/metrics/{DATASET['name']}/{model}/{method}/{metric}.parquet"}
            for metric, settings in METRICS.items() for model in settings["models"] for method in settings["methods"]]


def run_summary():
    """One line naming the run for findings.md: dataset, models, scored methods, images, metrics."""
    return (f"Dataset `{DATASET['name']}`; {len(ATTRIBUTION['models'])} models x {len(scored_methods())} "
            f"scored methods, {ATTRIBUTION['shards'] * ATTRIBUTION['images_per_shard']} images of split "
            f"`{ATTRIBUTION['split']}` at most; metrics: {', '.join(METRICS)}.")


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
    return [f"{R}/findings.md", f"{R}/tables/explainability.csv", f"{R}/correlations/across_models.csv",
            *[f"{R}/plots/{plot}.png" for plot in SUMMARY_PLOTS
              if plot != "sanity" or "sanity_randomisation" in METRICS],
            *expand(f"{R}/plots/maps/{{model}}.png", model=ATTRIBUTION["models"])]


def scored_methods():
    """Settings of the attribution methods some metric scores, by name (what the tables depend on)."""
    scored = {method for settings in METRICS.values() for method in settings["methods"]}
    return {name: settings for name, settings in ATTRIBUTION["methods"].items() if name in scored}
