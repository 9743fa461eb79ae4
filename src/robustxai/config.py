"""Study configuration: schema validation, defaults, and per-model settings.

The Snakefile validates with the same schema (``workflow/schemas/config.schema.yaml``); these helpers
let tests and the package resolve a model's full settings exactly as the workflow does.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jsonschema and yaml load where a config is read or checked, not with every job
    import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_MEAN, DEFAULT_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
ADVERSARIAL_ALGORITHMS = ("adversarial", "advprop")
CURRICULUM_KEYS = ("clean_epochs", "eps_ramp_epochs")  # training keys that only adversarial models use
#: defaults of an explainer model's ``explainer`` block (Zeng et al. 2021: lambda 0.35, L2 loss, joint)
EXPLAINER_DEFAULTS = {"alignment": "robust", "lambda": 0.35, "loss": "l2", "freeze_backbone": False,
                      "branch_lr_scale": 0.1, "branch": {}}
#: the training algorithms a twin of each alignment may have (robust: adversarially trained)
TWIN_ALGORITHMS = {"robust": ("adversarial",), "standard": ("vanilla",)}


class ConfigError(ValueError):
    """A config value is missing, misspelt or of the wrong type; the message names it."""


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Check ``config`` against the schema; raise ConfigError naming the offending key and path."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_schema_error_line(e) for e in errors))
    check_finite_numbers(config)
    check_names(config)
    if "results" in config:
        check_results_folder(config["results"])
    check_threat_models(config)
    return config


def check_results_folder(results: str, workdir: str | Path | None = None) -> None:
    """Raise ConfigError naming ``config.results`` when the folder would put outputs where the workflow
    must not write: empty (every output at the file-system root), the file-system root itself, the bare
    working directory (``workdir``, default the current one: outputs among the checkout's own files), or a
    relative path whose ``..`` leaves the working directory. An absolute path elsewhere (a scratch disk)
    is accepted."""
    workdir = Path(workdir or Path.cwd()).resolve()
    if not str(results).strip():
        raise ConfigError("config.results: empty; every output would be planned at the file-system root. "
                          "Name a folder, e.g. results")
    folder = Path(results)
    resolved = (workdir / folder).resolve()
    if resolved == Path(resolved.anchor):
        raise ConfigError(f"config.results: '{results}' is the file-system root; name a folder, e.g. results")
    if resolved == workdir:
        raise ConfigError(f"config.results: '{results}' is the working directory itself, so outputs would mix with "
                          "its files; name a folder inside it, e.g. results")
    if not folder.is_absolute() and workdir not in resolved.parents:
        raise ConfigError(f"config.results: '{results}' leaves the working directory ({workdir}) through '..'; "
                          "use a folder inside it or an absolute path")


def check_finite_numbers(value, where: str = "config") -> None:
    """Raise ConfigError naming the key of the first NaN or infinite number in ``value`` (a config or
    a part of it): YAML's ``.nan`` and ``.inf`` are numbers to the schema, and every range check
    passes NaN (``lr: .inf`` would train to NaN weights, ``eps: .nan`` attack with NaN images)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite_numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite_numbers(item, f"{where}.{index}")


#: the norm of an attack block that names none (``robustxai.training.algorithms.AttackSettings``)
DEFAULT_NORM = "linf"


def check_threat_models(config: dict) -> None:
    """Raise ConfigError when a threat model is out of range once merged: each adversarial / AdvProp
    model's ``attack`` is the global block updated by its own (``resolve_model``), so a global L2 eps 3
    and a model's ``norm: linf`` make Linf eps 3, which each block alone does not show; evaluation
    attacks are checked alike. A Linf radius must lie in [0, 1] pixel units."""
    blocks = {f"config.evaluation.attacks.{name}": attack
              for name, attack in ((config.get("evaluation") or {}).get("attacks") or {}).items()}
    for name, entry in (config.get("models") or {}).items():
        if entry.get("source", "train") == "train" and entry.get("algorithm", "vanilla") in ADVERSARIAL_ALGORITHMS:
            blocks[f"config.models.{name}.attack"] = {**(config.get("attack") or {}), **(entry.get("attack") or {})}
    for where, attack in blocks.items():
        norm, eps = attack.get("norm", DEFAULT_NORM), attack.get("eps")
        if eps == 0 and where.startswith("config.models."):
            raise ConfigError(f"{where}: merged with the global attack it has eps 0, so adversarial training would "
                              "train on clean images; set eps > 0, or algorithm: vanilla")
        if norm == "linf" and eps is not None and eps > 1:
            raise ConfigError(f"{where}: merged with the global attack it is Linf eps {eps:g}, but a Linf radius is in "
                              "[0, 1] pixel units (8/255 = 0.0313725); set eps, or norm: l2")


def check_unique_keys(path: str | Path) -> None:
    """Raise ConfigError naming the file, key and both lines when a YAML mapping repeats a key: YAML
    loaders keep the last one silently (a second ``models:`` block drops the first block's models)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{path}: key '{key}' appears twice in one mapping (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}); the loader would keep only the last. Merge them")
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    yaml.load(Path(path).read_text(), Loader=StrictLoader)


def _schema_error_line(error: jsonschema.ValidationError) -> str:
    """One line per schema error: the key's path, jsonschema's message, then the allowed keys (for an
    unknown key) or the failing rule's description (e.g. what a name may hold), never the schema itself."""
    where = "config." + ".".join(str(p) for p in error.path) if error.path else "config"
    if error.validator == "additionalProperties" and "properties" in error.schema:
        unknown = sorted(set(error.instance) - set(error.schema["properties"]))
        return f"{where}: unknown key(s) {unknown}; allowed: {sorted(error.schema['properties'])}"
    hint = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f"{where}: {error.message}" + (f" ({hint})" if hint else "")


def check_names(config: dict) -> None:
    """Raise ConfigError when two models, two attribution methods or two metrics would share files:
    names equal up to case name the same file on case-insensitive file systems (macOS, Windows)."""
    groups = {"models": config.get("models", {}),
              "attribution.methods": (config.get("attribution") or {}).get("methods", {}),
              "metrics": config.get("metrics", {})}
    for where, names in groups.items():
        seen: dict[str, str] = {}
        for name in names:
            other = seen.setdefault(name.casefold(), name)
            if other != name:
                raise ConfigError(f"config.{where}: '{other}' and '{name}' differ only in case, so their files "
                                  "collide on case-insensitive file systems; rename one")


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    import yaml

    check_unique_keys(path)
    return validate_config(yaml.safe_load(Path(path).read_text()) or {})


def split_names(dataset: dict) -> dict[str, list[str]]:
    """Split names of a dataset config by role: {"fit": [...], "test": ["test"], "ood": [...]}.

    The dataset's kind decides (``robustxai.data.kinds``), e.g. built-in: train/val/test +
    ood_background + ood_corruption; ImageFolder: the configured folders + ood_corruption.
    """
    from robustxai.data.kinds import dataset_kind  # the kinds import this module

    return dataset_kind(dataset["kind"]).split_names(dataset)


def all_split_names(dataset: dict) -> list[str]:
    """Every split file the dataset preparation writes."""
    names = split_names(dataset)
    return names["fit"] + names["test"] + names["ood"]


def num_classes(dataset: dict) -> int:
    """Number of classes of the configured dataset (its kind decides, see ``robustxai.data.kinds``)."""
    from robustxai.data.kinds import dataset_kind  # the kinds import this module

    return dataset_kind(dataset["kind"]).num_classes(dataset)


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
        if entry["algorithm"] == "explainer":
            entry["explainer"] = _explainer_settings(config, name, entry)
            entry["image_size"] = config["dataset"].get("image_size", 32)
        if entry.get("init_from") is not None:
            _check_init_from(config, name, entry)
    elif entry["source"] == "file" and not ((entry.get("file") or entry.get("url"))
                                            and (entry.get("sha256") or config.get("weights_lock"))):
        raise ConfigError(f"model '{name}': source 'file' needs 'file' (or 'url') and its 'sha256' (or a top-level "
                          "weights_lock that records it on first download)")
    for key in ("explainer", "init_from"):
        if key in entry and (entry["source"] != "train" or (key == "explainer" and entry["algorithm"] != "explainer")):
            raise ConfigError(f"model '{name}': '{key}' is a setting of trained models"
                              + (" with algorithm: explainer" if key == "explainer" else ""))
    return canonical(entry)


def _check_init_from(config: dict, name: str, entry: dict) -> None:
    """Raise ConfigError unless model ``name``'s ``init_from`` names another configured model of the same
    ``arch`` and ``arch_args`` (the class count is the dataset's for both), with no cycle of init_from."""
    start = entry["init_from"]
    if start not in set(config["models"]) - {name}:
        raise ConfigError(f"model '{name}': init_from must name another configured model, got {start!r}")
    other = config["models"][start]
    if (other["arch"], other.get("arch_args", {})) != (entry["arch"], entry["arch_args"]):
        differ = [(key, value) for key, value in (("arch", other["arch"]), ("arch_args", other.get("arch_args", {})))
                  if value != entry[key]]
        raise ConfigError(f"model '{name}': init_from '{start}' is a {other['arch']} (arch_args "
                          f"{other.get('arch_args', {})}), but '{name}' is a {entry['arch']} (arch_args "
                          f"{entry['arch_args']}); fine-tuning starts from the same network: set "
                          + " and ".join(f"config.models.{name}.{key} to {value!r}" for key, value in differ))
    chain = [name, start]
    while (start := config["models"].get(start, {}).get("init_from")) is not None:
        if start in chain:
            raise ConfigError(f"model '{name}': init_from goes round in a circle: {' -> '.join([*chain, start])}")
        chain.append(start)


def _explainer_settings(config: dict, name: str, entry: dict) -> dict:
    """An explainer model's ``explainer`` block with defaults, its twin and alignment checked."""
    settings = {**EXPLAINER_DEFAULTS, **entry.get("explainer", {})}
    twin, alignment = settings.get("twin"), settings["alignment"]
    if twin not in set(config["models"]) - {name}:
        raise ConfigError(f"model '{name}': explainer.twin must name the configured model whose SmoothGrad maps it "
                          f"learns (its robust twin, or a vanilla model for alignment: standard), got {twin!r}")
    twin_algorithm = config["models"][twin].get("algorithm", "vanilla")
    if twin_algorithm not in TWIN_ALGORITHMS[alignment]:
        raise ConfigError(f"model '{name}': alignment '{alignment}' learns the maps of a {' or '.join(TWIN_ALGORITHMS[alignment])} "
                          f"model, but twin '{twin}' is {twin_algorithm}")
    if settings["freeze_backbone"] and not entry.get("init_from"):
        raise ConfigError(f"model '{name}': explainer.freeze_backbone trains only the branch, on a backbone "
                          "that must come from another model: set init_from")
    return settings


def check_download_checksums(config: dict) -> None:
    """Raise ConfigError when the dataset's archive would be downloaded without a checksum to verify
    (a non-default ``url`` needs its own ``sha256`` or ``md5``), as would an archive of a split's folder
    (``DatasetKind.folder_downloads``), or two of one split's would share a file name; models' downloads need their
    ``sha256``, or a ``weights_lock`` that records it on first download, by ``resolve_model``."""
    from robustxai.data.kinds import dataset_kind

    kind = dataset_kind(config["dataset"]["kind"])
    archive = kind.archive(config["dataset"])
    if archive is not None and not (archive.get("sha256") or archive.get("md5")):
        raise ConfigError(f"config.dataset.{kind.name}: the archive {archive['url']} has no checksum to verify it "
                          f"by; set config.dataset.{kind.name}.sha256 (or md5)")
    for split, download in kind.folder_downloads(config["dataset"]).items():
        names = [Path(a["url"]).name for a in download["archives"]]
        if len(set(names)) < len(names):
            raise ConfigError(f"config.dataset.{kind.name}.ood.{split}.archives: two urls end in the same file name "
                              f"{names}; they would be downloaded to one file")
        for a in download["archives"]:
            if not (a.get("sha256") or a.get("md5")):
                raise ConfigError(f"config.dataset.{kind.name}.ood.{split}.archives: {a['url']} has no checksum to "
                                  "verify it by; set its sha256 (or md5)")


def check_imported_models(config: dict) -> None:
    """Raise ConfigError when a 'file'-source model's local checkpoint does not fit its entry (another
    architecture or class count, or weights the entry's network does not have), or when its entry
    lacks the file or its sha256 (and no weights_lock records it), before any job runs. Files still to be
    downloaded are checked by their import job."""
    import pickle

    import torch

    from robustxai.pipeline.models import weights_mismatch

    for name in models_by_source(config, "file"):
        entry = resolve_model(config, name)  # raises for a missing file/url or sha256
        path = entry.get("file")
        if not path or not Path(path).is_file():
            continue
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
            raise ConfigError(f"config.models.{name}.file: {path} cannot be read as a checkpoint ({error}); "
                              "replace it") from error
        problem = weights_mismatch(name, entry, payload)
        if problem:
            raise ConfigError(f"config.models.{name}.file: {path}: {problem}")


def check_model_architectures(config: dict) -> None:
    """Raise ConfigError naming ``config.models.<name>`` when a model's ``arch`` is not a known
    architecture or its ``arch_args`` are not arguments of it, before any job runs: each network is
    built on the meta device (no memory for weights). Imported checkpoints are checked against their
    file by ``check_imported_models``."""
    import torch

    from robustxai.models.wrapper import build_classifier

    for name in config["models"]:
        entry = resolve_model(config, name)
        try:
            with torch.device("meta"):
                build_classifier(entry["arch"], entry["num_classes"], arch_args=entry["arch_args"])
        except (ValueError, TypeError, RuntimeError) as error:
            key = "arch" if "unknown architecture" in str(error) else "arch_args"
            raise ConfigError(f"config.models.{name}.{key}: {entry['arch']} with arch_args {entry['arch_args']} "
                              f"cannot be built: {error}") from error


def algorithm_settings(entry: dict) -> dict:
    """The training algorithm's own settings of a resolved model entry (``make_algorithm``'s ``settings``):
    an explainer's weight (lambda), loss, freeze_backbone and branch_lr_scale; nothing for other algorithms."""
    if entry["algorithm"] != "explainer":
        return {}
    explainer = entry["explainer"]
    return {"weight": explainer["lambda"], "loss": explainer["loss"], "freeze_backbone": explainer["freeze_backbone"],
            "branch_lr_scale": explainer["branch_lr_scale"]}


def models_to_download(config: dict) -> list[str]:
    """Names of the models whose checkpoint is downloaded from a ``url`` (source file)."""
    return [name for name in models_by_source(config, "file") if config["models"][name].get("url")]


def models_by_source(config: dict, source: str) -> list[str]:
    """Names of the configured models whose weights come from ``source`` (train, timm or file)."""
    return [name for name, entry in config["models"].items() if entry.get("source", "train") == source]


ATTRIBUTION_DEFAULTS = {"split": "test", "shards": 1, "images_per_shard": 100, "images_per_batch": 32,
                        "target": "predicted", "dtype": "float32"}
#: keys of an attribution.methods entry that are not the method's own settings
METHOD_SELECTION_KEYS = ("models",)
#: the registered method that makes explainer models' target maps, and its name in attribution paths
ALIGNMENT_METHOD = "alignment_target"
ALIGNMENT_DEFAULTS = {"images_per_shard": 5000, "images_per_batch": 250, "target": {}}


def method_name(key: str, settings: dict) -> str:
    """The registered method a config entry of attribution.methods uses: its 'method' key, else its name."""
    return settings.get("method", key)


def method_settings(settings: dict) -> dict:
    """A method entry without its selection keys (``models``): what its maps depend on."""
    return {key: value for key, value in settings.items() if key not in METHOD_SELECTION_KEYS}


def needed_models(key: str, settings: dict) -> dict[str, str]:
    """Setting name -> model name of the other models a method entry needs (its class declares which
    settings name models, e.g. robust_counterpart's 'counterpart'); their checkpoints are inputs of its jobs."""
    from robustxai.attribution import method_class

    return method_class(method_name(key, settings)).needed_models(method_settings(settings))


def split_sizes(dataset: dict) -> dict[str, int]:
    """Images per split where the dataset kind knows them before the data exist (may be partial)."""
    from robustxai.data.kinds import dataset_kind

    return dataset_kind(dataset["kind"]).split_sizes(dataset)


def resolve_methods(config: dict, methods: dict[str, dict], models: list[str], where: str) -> dict[str, dict]:
    """Method entries (name -> settings) with each one's ``models`` filled in (default ``models``) and
    checked: registered methods, configured models, the models their settings name configured and
    suited to the method (e.g. ``explainer`` needs models with an explainer branch)."""
    from robustxai.attribution import METHODS, make_method, method_class  # torch-heavy: only when methods are configured

    unknown_methods = sorted(key for key, settings in methods.items() if method_name(key, settings) not in METHODS)
    if unknown_methods:
        raise ConfigError(f"{where}.methods: unknown {unknown_methods}; known: {sorted(METHODS)} "
                          "(or name one with 'method:')")
    resolved = {}
    for key, settings in methods.items():
        entry_where = f"{where}.methods.{key}"
        chosen = settings.get("models", models)
        if set(chosen) - set(config["models"]):
            raise ConfigError(f"{entry_where}.models: {sorted(set(chosen) - set(config['models']))} are not configured models")
        needed = needed_models(key, settings)
        for setting, other in needed.items():
            if other not in config["models"]:
                raise ConfigError(f"{entry_where}: '{setting}' must name a configured model, got {other!r}")
        try:
            method_class(method_name(key, settings)).check_models(
                method_settings(settings), {m: resolve_model(config, m) for m in chosen},
                {m: resolve_model(config, m) for m in needed.values()})
            make_method(method_name(key, settings),  # a misspelt or out-of-range setting fails here, not in a job
                        **{k: v for k, v in method_settings(settings).items() if k != "method"})
        except ValueError as error:
            raise ConfigError(f"{entry_where}: {error}") from error
        resolved[key] = {**settings, "models": list(chosen)}
    return resolved


LATENCY_DEFAULTS = {"threads": 1, "repeats": 5, "images": 16, "split": "test"}


def resolve_latency(config: dict, attribution: dict | None) -> dict | None:
    """The latency section: ``models`` (default: the attributed ones), ``methods`` (the attribution
    methods, each on its models, plus the section's own entries), ``threads``, ``repeats``, ``images``
    (per batched call) and ``split``; None if absent."""
    if "latency" not in config:
        return None
    section = {**LATENCY_DEFAULTS, **config["latency"]}
    inherited = attribution["methods"] if attribution is not None else {}
    section.setdefault("models", list(attribution["models"]) if attribution is not None else list(config["models"]))
    unknown = sorted(set(section["models"]) - set(config["models"]))
    if unknown:
        raise ConfigError(f"config.latency.models: {unknown} are not configured models")
    own = resolve_methods(config, section.get("methods", {}), section["models"], "config.latency")
    methods = {key: {**settings, "models": [m for m in settings["models"] if m in section["models"]]}
               for key, settings in inherited.items()}
    section["methods"] = {key: settings for key, settings in {**methods, **own}.items() if settings["models"]}
    if section["split"] not in all_split_names(config["dataset"]):
        raise ConfigError(f"config.latency.split: '{section['split']}' is not one of {all_split_names(config['dataset'])}")
    return canonical(section)


def resolve_attribution(config: dict) -> dict | None:
    """The attribution section with defaults filled in and its names checked, or None if absent. Each
    method's ``models`` default to the section's; the section's ``models`` become every model some
    method explains."""
    if "attribution" not in config:
        return None
    section = {**ATTRIBUTION_DEFAULTS, **config["attribution"]}
    section.setdefault("models", list(config["models"]))
    unknown_models = sorted(set(section["models"]) - set(config["models"]))
    if unknown_models:
        raise ConfigError(f"config.attribution.models: {unknown_models} are not configured models")
    if ALIGNMENT_METHOD in section["methods"]:
        raise ConfigError(f"config.attribution.methods: '{ALIGNMENT_METHOD}' names explainer targets (the "
                          "alignment section); give the method another name")
    section["methods"] = resolve_methods(config, section["methods"], section["models"], "config.attribution")
    # every explained model: the section's (each method's default), then those only some methods name
    section["models"] = list(dict.fromkeys([*section["models"], *(model for settings in section["methods"].values()
                                                                   for model in settings["models"])]))
    if section["split"] not in all_split_names(config["dataset"]):
        raise ConfigError(f"config.attribution.split: '{section['split']}' is not one of "
                          f"{all_split_names(config['dataset'])}")
    size = split_sizes(config["dataset"]).get(section["split"])
    if size is not None:
        check_shards_fit(size, section["shards"], section["images_per_shard"], section["split"], "config.attribution")
    return canonical(section)


def check_shards_fit(size: int, shards: int, images_per_shard: int, split: str, where: str) -> None:
    """Raise ConfigError (naming ``where``'s keys) when the last of ``shards`` shards of
    ``images_per_shard`` images would hold no image of a ``size``-image split; a part-filled last
    shard is fine."""
    if (shards - 1) * images_per_shard >= size:
        raise ConfigError(f"{where}: shards x images_per_shard = {shards} x {images_per_shard} images, but the "
                          f"'{split}' split has {size}, so shard {shards - 1} would hold none; use at most "
                          f"{math.ceil(size / images_per_shard)} shards or fewer images_per_shard")


#: keys of a metrics entry that select its jobs (which (model, method) pairs it scores) rather than
#: configure the metric; the jobs do not depend on them
METRIC_SELECTION_KEYS = ("methods", "models", "pairs")
#: keys of a metrics entry that are not settings of the metric itself (which metric, which jobs, how many images)
METRIC_ENTRY_KEYS = ("metric", *METRIC_SELECTION_KEYS, "images")


def resolve_metrics(config: dict, attribution: dict | None) -> dict | None:
    """The metrics section (name -> settings) with each metric's ``metric`` (the registered metric: its
    ``metric`` key, else its name), ``methods`` and ``models`` filled in (default: every attributed
    method and model), and ``pairs``, the [model, method] pairs it scores (those of its models and
    methods that are attributed), its names checked; None if absent."""
    if "metrics" not in config:
        return None
    if attribution is None:
        raise ConfigError("config.metrics scores attribution maps: add an 'attribution' section")
    from robustxai.data.kinds import dataset_kind
    from robustxai.metrics import METRICS, make_metric, metric_class  # torch import only when metrics are configured

    kind = dataset_kind(config["dataset"]["kind"])

    resolved = {}
    for name, settings in config["metrics"].items():
        registered = settings.get("metric", name)
        if registered not in METRICS:
            raise ConfigError(f"config.metrics: unknown metric '{registered}'; known: {sorted(METRICS)} "
                              "(or name one with 'metric:')")
        try:  # a misspelt or out-of-range setting fails here, not after training and attribution
            make_metric(registered, **{k: v for k, v in settings.items() if k not in METRIC_ENTRY_KEYS})
        except ValueError as error:
            raise ConfigError(f"config.metrics.{name}: {error}") from error
        if metric_class(registered).needs_boxes and not kind.has_boxes(config["dataset"], attribution["split"]):
            raise ConfigError(f"config.metrics.{name}: {registered} scores maps against ground-truth boxes, but "
                              f"the '{attribution['split']}' split of dataset kind '{kind.name}' has none; remove it")
        entry = {"methods": list(attribution["methods"]), "models": list(attribution["models"]), **settings,
                 "metric": registered}
        for key, known in (("methods", attribution["methods"]), ("models", attribution["models"])):
            unknown = sorted(set(entry[key]) - set(known))
            if unknown:
                raise ConfigError(f"config.metrics.{name}.{key}: {unknown} are not attributed {key}")
        borrowed = sorted(m for m in entry["methods"] if needed_models(m, attribution["methods"][m]))
        if borrowed and metric_class(registered).needs_method:
            raise ConfigError(f"config.metrics.{name}.methods: {borrowed} take maps from another model, "
                              f"which {registered} cannot recompute on a randomised one; leave them out")
        entry["pairs"] = [[model, method] for method in entry["methods"] for model in entry["models"]
                          if model in attribution["methods"][method]["models"]]
        resolved[name] = entry
    return canonical(resolved)


def explainer_models(config: dict) -> list[str]:
    """The trained models with an explainer branch (``algorithm: explainer``), in config order."""
    return [name for name in models_by_source(config, "train") if config["models"][name].get("algorithm") == "explainer"]


def explainer_twins(config: dict) -> list[str]:
    """The models whose alignment targets trained explainer models learn (their ``explainer.twin``)."""
    return sorted({resolve_model(config, name)["explainer"]["twin"] for name in explainer_models(config)})


def resolve_alignment(config: dict) -> dict | None:
    """The alignment section (how explainer models' target maps are made: ``target``, the
    alignment_target method's settings; ``images_per_shard``, ``images_per_batch``, ``shards`` over the
    train split; ``twins``, the models they are made with), or None when no model is an explainer.
    ``shards`` defaults to covering the train split where its size is known before the data exist."""
    twins = explainer_twins(config)
    if not twins:
        return None
    section = {**ALIGNMENT_DEFAULTS, **config.get("alignment", {}), "twins": twins}
    if "shards" not in section:
        train_size = split_sizes(config["dataset"]).get("train")
        if train_size is None:
            raise ConfigError(f"config.alignment.shards: the size of the train split of dataset kind "
                              f"'{config['dataset']['kind']}' is not known before it is read; set how many shards "
                              f"of images_per_shard = {section['images_per_shard']} images cover it")
        section["shards"] = max(1, math.ceil(train_size / section["images_per_shard"]))
    return canonical(section)


ROAR_DEFAULTS = {"fractions": [0.2, 0.4, 0.6, 0.8], "repeats": 3, "ranking": "pixel", "reduction": "abs_sum",
                 "tie_break_seed": 0, "images_per_shard": 5000, "train_images": None, "test_images": None,
                 "training": {}, "leakage": {}, "blur": None, "leaking_cells": "skip"}
LEAKAGE_DEFAULTS = {"training": {}, "margin": 0.05, "positive_control": True}
#: the positive control of the mask-only check: removal ranked by the true objects (masks, else boxes)
TRUE_OBJECTS = "true_objects"
#: the ROAR splits: the retrained model learns the modified train split and is tested on the test split
ROAR_SPLITS = ("train", "test")
#: the name of the ROAR anchor (fraction 0: unmodified images) in ROAR paths and tables
UNMODIFIED = "unmodified"
BLURRED_SUFFIX = "_blurred"


def fraction_label(fraction: float) -> str:
    """A removal fraction as it appears in paths and column names: 0.2 -> "0.2", 0.0 -> "0"."""
    return f"{float(fraction):g}"


def resolve_roar(config: dict, attribution: dict | None) -> dict | None:
    """The roar section, or None if absent: ``entries`` (ROAR row name -> ``method`` (attribution
    method), ``blur_sigma`` (None, or the blur control's sigma), ``models`` and ``control`` ("negative"
    for the random baseline, whose mask-only control must not flag leakage; else None)), ``models`` (every
    explained model), ``fractions``, ``repeats``, ``ranking`` (rank_pixels policy), ``training`` (overrides
    of each model's recipe), ``leakage``, ``leaking_cells`` ("skip": a cell whose mask-only control leaks is
    not retrained; "retrain") and ``splits``: per ROAR split its ``images`` (used),
    ``images_per_shard`` (the attribution section's where it covers that split) and ``shards``."""
    if "roar" not in config:
        return None
    if attribution is None:
        raise ConfigError("config.roar ranks pixels by attribution maps: add an 'attribution' section")
    section = {**ROAR_DEFAULTS, **config["roar"]}
    section.setdefault("models", list(attribution["models"]))
    methods = section["methods"]
    methods = {name: {} for name in methods} if isinstance(methods, list) else methods
    entries = {}
    for name, settings in methods.items():
        if name not in attribution["methods"]:
            raise ConfigError(f"config.roar.methods: '{name}' is not an attribution method; configured: "
                              f"{sorted(attribution['methods'])}")
        models = settings.get("models", section["models"])
        unexplained = sorted(set(models) - set(attribution["methods"][name]["models"]))
        if unexplained:
            raise ConfigError(f"config.roar.methods.{name}: {unexplained} are not explained by '{name}' in the "
                              "attribution section (its 'models')")
        entries[name] = {"method": name, "blur_sigma": None, "models": list(models),
                         "control": "negative" if method_name(name, attribution["methods"][name]) == "random" else None}
    registered = {name: method_name(name, attribution["methods"][name]) for name in entries}
    if "random" not in registered.values():
        raise ConfigError("config.roar.methods: add the random baseline (a method 'random'), the reference every "
                          "ROAR drop is read against")
    if section["blur"] is not None:
        blurred = section["blur"].get("methods", [m for m in entries if registered[m] != "random"])
        unknown = sorted(set(blurred) - set(entries))
        if unknown:
            raise ConfigError(f"config.roar.blur.methods: {unknown} are not ROAR methods")
        for name in blurred:
            if name + BLURRED_SUFFIX in entries:
                raise ConfigError(f"config.roar: '{name}{BLURRED_SUFFIX}' names both a method and the blur control of '{name}'")
            entries[name + BLURRED_SUFFIX] = {**entries[name], "blur_sigma": section["blur"]["sigma"], "control": None}
    for reserved, what in ((UNMODIFIED, "the anchor (unmodified images)"), (TRUE_OBJECTS, "the leakage check's positive control")):
        if reserved in entries:
            raise ConfigError(f"config.roar.methods: '{reserved}' names {what}; rename the method")
    fractions = sorted(set(float(f) for f in section["fractions"]))
    sizes = split_sizes(config["dataset"])
    splits = {}
    for split in ROAR_SPLITS:
        if split not in all_split_names(config["dataset"]):
            raise ConfigError(f"config.roar: the dataset has no '{split}' split")
        known, chosen = sizes.get(split), section[f"{split}_images"]
        if known is None and chosen is None:
            raise ConfigError(f"config.roar.{split}_images: the size of the {split} split of dataset kind "
                              f"'{config['dataset']['kind']}' is not known before it is read; set how many images ROAR uses")
        images = min(n for n in (known, chosen) if n is not None)
        per_shard = attribution["images_per_shard"] if attribution["split"] == split else section["images_per_shard"]
        splits[split] = {"images": images, "images_per_shard": per_shard, "shards": math.ceil(images / per_shard)}
    return canonical({
        "entries": entries, "models": list(dict.fromkeys(m for e in entries.values() for m in e["models"])),
        "fractions": fractions, "repeats": section["repeats"],
        "ranking": {key: section[key] for key in ("ranking", "reduction", "tie_break_seed")},
        "training": section["training"], "leakage": {**LEAKAGE_DEFAULTS, **section["leakage"]},
        "leaking_cells": section["leaking_cells"], "splits": splits})


def roar_recipe(config: dict, roar: dict, model: str, repeat: int = 0, leakage: bool = False) -> dict:
    """What a ROAR retraining of ``model`` depends on: ``arch``, ``arch_args``, ``num_classes``,
    ``mean``, ``std`` and ``training``: the model's own training settings (the config's defaults for
    models not trained here), vanilla (no adversarial curriculum), updated by ``roar.training`` (and
    ``roar.leakage.training`` for the mask-only control), the seed shifted by ``repeat``."""
    entry = resolve_model(config, model)
    training = {**config.get("training", {}), **entry.get("training", {}), **roar["training"]}
    if leakage:
        training.update(roar["leakage"]["training"])
    for key in CURRICULUM_KEYS:
        training.pop(key, None)
    training["seed"] = training.get("seed", 0) + repeat
    return canonical({"arch": entry["arch"], "arch_args": entry["arch_args"], "num_classes": entry["num_classes"],
                      "mean": entry.get("mean", list(config["dataset"].get("mean", DEFAULT_MEAN))),
                      "std": entry.get("std", list(config["dataset"].get("std", DEFAULT_STD))), "training": training})


def roar_anchor_models(config: dict, roar: dict | None) -> dict[str, str]:
    """ROAR model -> the model whose unmodified anchors and positive leakage controls it shares: the first
    ROAR model with the same retraining recipes (``roar_recipe``, of the cells and of the mask-only
    control). Neither job reads anything of its model but the recipe (the anchor removes nothing, the
    positive control ranks by the true objects), so models trained alike (the two explainers of the
    default study) would otherwise repeat identical retrainings. Empty without a roar section."""
    if roar is None:
        return {}
    first: dict[str, str] = {}
    return {model: first.setdefault(repr([roar_recipe(config, roar, model), roar_recipe(config, roar, model, leakage=True)]),
                                    model) for model in roar["models"]}


def attribution_jobs(attribution: dict | None, alignment: dict | None, roar: dict | None = None) -> dict[str, dict]:
    """Every kind of attribution job, keyed "<split>/<method>": the split, method (config name),
    settings (what the maps depend on), models, shards (how many the attribution section's metrics
    read), images_per_shard, images_per_batch, target (predicted or label) and dtype. The attribution
    section gives one per method; explainer models' targets one more (``alignment_target`` on the
    train split of the twins, explaining the label); ROAR the maps of its methods on the train and
    test splits (the section's own where it covers the split; more shards of them)."""
    jobs = {}
    if attribution is not None:
        common = {key: attribution[key] for key in ("shards", "images_per_shard", "images_per_batch", "target", "dtype")}
        for method, settings in attribution["methods"].items():
            jobs[f"{attribution['split']}/{method}"] = {"split": attribution["split"], "method": method,
                                                         "settings": method_settings(settings),
                                                         "models": settings["models"], **common}
    if alignment is not None:
        jobs[f"train/{ALIGNMENT_METHOD}"] = {
            "split": "train", "method": ALIGNMENT_METHOD, "settings": alignment["target"], "models": alignment["twins"],
            "shards": alignment["shards"], "images_per_shard": alignment["images_per_shard"],
            "images_per_batch": alignment["images_per_batch"], "target": "label", "dtype": "float32"}
    if roar is not None:
        for entry in roar["entries"].values():
            for split, plan in roar["splits"].items():
                key = f"{split}/{entry['method']}"
                job = jobs.setdefault(key, {
                    "split": split, "method": entry["method"], "models": [],
                    "settings": method_settings(attribution["methods"][entry["method"]]), "shards": 0,
                    "images_per_shard": plan["images_per_shard"], "images_per_batch": attribution["images_per_batch"],
                    "target": attribution["target"], "dtype": attribution["dtype"]})
                job["models"] = list(dict.fromkeys([*job["models"], *entry["models"]]))
    return canonical(jobs)
