"""Study configuration: schema validation, defaults, and per-model settings.

The Snakefile validates with the same schema (``workflow/schemas/config.schema.yaml``); these helpers
let tests and the package resolve a model's full settings exactly as the workflow does.
"""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_MEAN, DEFAULT_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
NUM_CLASSES = {"builtin": 10, "cifar10": 10}
ADVERSARIAL_ALGORITHMS = ("adversarial", "advprop")
CURRICULUM_KEYS = ("clean_epochs", "eps_ramp_epochs")  # training keys that only adversarial models use


class ConfigError(ValueError):
    """A config value is missing, misspelt or of the wrong type; the message names it."""


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Check ``config`` against the schema; raise ConfigError naming the offending key and path."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"config.{'.'.join(str(p) for p in error.path) or '<root>'}: {error.message}" for error in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return config


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    return validate_config(yaml.safe_load(Path(path).read_text()) or {})


def split_names(dataset: dict) -> dict[str, list[str]]:
    """Split names of a dataset config: {"train": [...], "eval": ["test"], "ood": [...]}.

    Built-in: train/val/test + ood_background + ood_corruption. CIFAR-10: train/val/test +
    ood_corruption. ImageFolder: the configured folders + ood_corruption (built from test).
    """
    kind = dataset["kind"]
    if kind == "builtin":
        return {"fit": ["train", "val"], "test": ["test"], "ood": ["ood_background", "ood_corruption"]}
    if kind == "cifar10":
        return {"fit": ["train", "val"], "test": ["test"], "ood": ["ood_corruption"]}
    folders = dataset["imagefolder"]["splits"]
    return {"fit": [s for s in ("train", "val") if s in folders], "test": ["test"], "ood": ["ood_corruption"]}


def all_split_names(dataset: dict) -> list[str]:
    """Every split file the dataset preparation writes."""
    names = split_names(dataset)
    return names["fit"] + names["test"] + names["ood"]


def num_classes(dataset: dict) -> int:
    """Number of classes of the configured dataset."""
    if dataset["kind"] == "imagefolder":
        return int(dataset["imagefolder"]["num_classes"])
    return NUM_CLASSES[dataset["kind"]]


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares a job's params with the recorded ones as text, so a reordered YAML file would
    otherwise rerun every job; canonical params change only when a value does.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def resolve_model(config: dict, name: str) -> dict:
    """The full settings of model ``name``: its entry with defaults filled in.

    Trained models get ``training`` = global defaults updated by their own, ``attack`` likewise for
    adversarial / AdvProp models (absent for vanilla ones, as are the curriculum keys, so changing
    them does not retrain vanilla models), and the dataset's normalisation. Only this dict feeds a
    model's jobs, so editing one model's entry reruns only that model. Keys come out sorted.
    """
    if name not in config["models"]:
        raise ConfigError(f"unknown model '{name}'; configured: {sorted(config['models'])}")
    entry = copy.deepcopy(config["models"][name])
    entry.setdefault("source", "train")
    entry.setdefault("algorithm", "vanilla")
    entry.setdefault("arch_args", {})
    entry["num_classes"] = num_classes(config["dataset"])
    if entry["source"] == "train":
        entry["training"] = {**config.get("training", {}), **entry.get("training", {})}
        if entry["algorithm"] in ADVERSARIAL_ALGORITHMS:
            entry["attack"] = {**config.get("attack", {}), **entry.get("attack", {})}
        else:
            entry.pop("attack", None)
            for key in CURRICULUM_KEYS:
                entry["training"].pop(key, None)
        entry.setdefault("mean", list(config["dataset"].get("mean", DEFAULT_MEAN)))
        entry.setdefault("std", list(config["dataset"].get("std", DEFAULT_STD)))
    elif entry["source"] == "file" and not ((entry.get("file") or entry.get("url")) and entry.get("sha256")):
        raise ConfigError(f"model '{name}': source 'file' needs 'file' (or 'url') and its 'sha256'")
    return canonical(entry)


def models_to_download(config: dict) -> list[str]:
    """Names of the models whose checkpoint is downloaded from a ``url`` (source file)."""
    return [name for name in models_by_source(config, "file") if config["models"][name].get("url")]


def models_by_source(config: dict, source: str) -> list[str]:
    """Names of the configured models whose weights come from ``source`` (train, timm or file)."""
    return [name for name, entry in config["models"].items() if entry.get("source", "train") == source]


ATTRIBUTION_DEFAULTS = {"split": "test", "shards": 1, "images_per_shard": 100, "images_per_batch": 32,
                        "target": "predicted", "dtype": "float32"}


def method_name(key: str, settings: dict) -> str:
    """The registered method a config entry of attribution.methods uses: its 'method' key, else its name."""
    return settings.get("method", key)


def resolve_attribution(config: dict) -> dict | None:
    """The attribution section with defaults filled in and its names checked, or None if absent."""
    if "attribution" not in config:
        return None
    from robustxai.attribution import METHODS  # torch-heavy import only when attribution is configured

    section = {**ATTRIBUTION_DEFAULTS, **config["attribution"]}
    section.setdefault("models", list(config["models"]))
    unknown_methods = sorted(key for key, settings in section["methods"].items()
                             if method_name(key, settings) not in METHODS)
    if unknown_methods:
        raise ConfigError(f"config.attribution.methods: unknown {unknown_methods}; known: {sorted(METHODS)} "
                          "(or name one with 'method:')")
    for key, settings in section["methods"].items():
        if method_name(key, settings) == "robust_counterpart" and settings.get("counterpart") not in config["models"]:
            raise ConfigError(f"config.attribution.methods.{key}: 'counterpart' must name a configured model, "
                              f"got {settings.get('counterpart')!r}")
    unknown_models = sorted(set(section["models"]) - set(config["models"]))
    if unknown_models:
        raise ConfigError(f"config.attribution.models: {unknown_models} are not configured models")
    if section["split"] not in all_split_names(config["dataset"]):
        raise ConfigError(f"config.attribution.split: '{section['split']}' is not one of "
                          f"{all_split_names(config['dataset'])}")
    return canonical(section)


def resolve_metrics(config: dict, attribution: dict | None) -> dict | None:
    """The metrics section (name -> settings) with each metric's ``methods`` and ``models`` filled in
    (default: every attributed method and model) and its names checked, or None if absent."""
    if "metrics" not in config:
        return None
    if attribution is None:
        raise ConfigError("config.metrics scores attribution maps: add an 'attribution' section")
    from robustxai.metrics import METRICS, metric_class  # torch import only when metrics are configured

    resolved = {}
    for name, settings in config["metrics"].items():
        if name not in METRICS:
            raise ConfigError(f"config.metrics: unknown metric '{name}'; known: {sorted(METRICS)}")
        entry = {"methods": list(attribution["methods"]), "models": list(attribution["models"]), **settings}
        for key, known in (("methods", attribution["methods"]), ("models", attribution["models"])):
            unknown = sorted(set(entry[key]) - set(known))
            if unknown:
                raise ConfigError(f"config.metrics.{name}.{key}: {unknown} are not attributed {key}")
        counterparts = sorted(m for m in entry["methods"]
                              if method_name(m, attribution["methods"][m]) == "robust_counterpart")
        if counterparts and metric_class(name).needs_method:
            raise ConfigError(f"config.metrics.{name}.methods: {counterparts} take maps from another model, "
                              f"which {name} cannot recompute on a randomised one; leave them out")
        resolved[name] = entry
    return canonical(resolved)
