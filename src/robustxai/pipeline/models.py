"""Produce a model checkpoint from its config entry: train it, fetch timm weights, or import a file."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch

from robustxai.attribution.shards import gather_maps
from robustxai.config import algorithm_settings
from robustxai.data.download import verify_digest
from robustxai.data.splits import load_split
from robustxai.data.weights_lock import verify_weights
from robustxai.models.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from robustxai.models.explainer import branch_settings, build_branch
from robustxai.models.inference import default_device
from robustxai.models.preprocessing import weights_preprocessing
from robustxai.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, build_classifier
from robustxai.provenance import provenance
from robustxai.training.algorithms import make_algorithm
from robustxai.training.loop import settings_digest, settings_from_config, train

log = logging.getLogger(__name__)


def write_history(history: list[dict], path: str | Path) -> None:
    """Write per-epoch training rows as CSV (an empty file with no rows for non-trained models)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]) if history else ["epoch"])
        writer.writeheader()
        writer.writerows(history)


def target_maps(shard_paths: list[str], count: int) -> torch.Tensor:
    """The target maps (count, 1, H, W) of images 0..count-1 of a split, gathered from attribution shards
    (e.g. ``alignment_target`` shards of the train split); raises ValueError naming the missing images."""
    try:
        return torch.from_numpy(gather_maps(shard_paths, count))[:, None]
    except ValueError as error:
        raise ValueError(f"target maps of the training images: {error}; raise alignment.shards or "
                         "alignment.images_per_shard") from error


def initial_model(entry: dict, init_path: str | None) -> ImageClassifier:
    """The model training starts from: fresh weights (seeded by the caller), or those of the checkpoint
    at ``init_path`` (``init_from``: fine-tuning another model; the architecture must match, and an
    explainer branch is added fresh). Explainer models get their branch (``explainer.branch`` settings)."""
    model = build_classifier(entry["arch"], entry["num_classes"], entry["mean"], entry["std"], entry["arch_args"])
    if init_path is not None:
        start, payload = load_checkpoint(init_path)
        if payload["arch"] != entry["arch"] or payload["num_classes"] != entry["num_classes"]:
            raise ValueError(f"init_from checkpoint {init_path} is a {payload['arch']} with {payload['num_classes']} "
                             f"classes, not a {entry['arch']} with {entry['num_classes']}")
        model.net.load_state_dict(start.net.state_dict(), strict=True)
        model.normalize.load_state_dict(start.normalize.state_dict(), strict=True)
    if entry["algorithm"] == "explainer":
        image_size = entry["image_size"]
        model.explainer = build_branch(branch_settings(model.net, image_size, entry["explainer"].get("branch", {})))
    return model


def train_model_job(name: str, entry: dict, train_path: str, val_path: str, checkpoint_path: str,
                    history_path: str, device: torch.device | None = None, target_paths: list[str] | None = None,
                    init_path: str | None = None) -> list[dict]:
    """Train model ``name`` as its resolved config ``entry`` says; write checkpoint and history CSV.

    Explainer models learn the maps in the attribution shards ``target_paths`` (one per training
    image); ``init_path`` is the checkpoint of the model named by ``init_from``, if any. A crash loses
    at most one epoch: the state after each epoch is kept next to the checkpoint and a rerun with the
    same settings resumes from it.
    """
    device = device or default_device()
    settings = settings_from_config(entry.get("training", {}))
    algorithm = make_algorithm(entry["algorithm"], entry.get("attack"), algorithm_settings(entry))
    train_split, val_split = load_split(train_path), load_split(val_path)
    if len(train_split.class_names) != entry["num_classes"]:
        raise ValueError(f"{train_path} has {len(train_split.class_names)} classes, model expects {entry['num_classes']}")
    maps = target_maps(target_paths or [], len(train_split)) if algorithm.needs_target_maps else None
    train_images, train_labels = train_split.tensors("uint8")  # made float batch by batch
    class_names = [str(name) for name in train_split.class_names]
    del train_split  # its numpy copy: the training images are held once, as uint8
    torch.manual_seed(settings.seed)  # the initial weights are part of the run
    model = initial_model(entry, init_path)
    log.info("training %s (%s, %s) on %s for %d epochs on %s", name, entry["arch"], entry["algorithm"],
             train_path, settings.epochs, device)
    result = train(model, algorithm, settings, train_images, train_labels, *val_split.tensors(), device=device,
                   resume_path=Path(checkpoint_path).with_suffix(".resume"),
                   resume_key=settings_digest(entry), train_maps=maps)
    save_checkpoint(result.model, checkpoint_path, entry["arch"], entry["num_classes"], entry["arch_args"],
                    meta={"name": name, "source": "train", "algorithm": entry["algorithm"], "entry": entry,
                          "class_names": class_names, **provenance()})
    write_history(result.history, history_path)
    return result.history


def fetch_timm_job(name: str, entry: dict, checkpoint_path: str, history_path: str) -> None:
    """Save timm's pretrained weights for ``entry['arch']`` (e.g. ``resnet50.a1_in1k``) as a checkpoint,
    with the preprocessing they were made for (``meta['preprocessing']``: input size, interpolation, crop
    fraction, mean/std from their pretrained config).

    ``entry['file']`` (with ``sha256``) loads the weights from a local file instead of the hub.
    """
    if entry.get("file") and entry.get("sha256"):
        verify_digest(entry["file"], entry["sha256"])
    model = build_classifier(entry["arch"], entry["num_classes"], arch_args=entry["arch_args"], pretrained=True,
                             pretrained_file=entry.get("file"))
    save_checkpoint(model, checkpoint_path, entry["arch"], entry["num_classes"], entry["arch_args"],
                    meta={"name": name, "source": "timm", "algorithm": entry["algorithm"], "entry": entry,
                          "preprocessing": weights_preprocessing(model.net.pretrained_cfg), **provenance()})
    write_history([], history_path)


def _plain_state(entry: dict, payload: dict) -> dict:
    """The network's state dict inside a plain checkpoint: under ``state_dict_key`` if given, only the
    keys with ``strip_prefix``, the prefix removed."""
    state = payload[entry["state_dict_key"]] if entry.get("state_dict_key") else payload
    prefix = entry.get("strip_prefix", "")
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def weights_mismatch(name: str, entry: dict, payload: dict) -> str | None:
    """Why a loaded checkpoint file does not fit the resolved entry of configured model ``name``, or None.

    A robustxai checkpoint must have the entry's ``arch``, ``num_classes`` and ``arch_args``; a plain state dict
    must have exactly the keys and tensor shapes of the entry's network, which is built on the meta
    device (no memory for weights), so a plan-time check costs about the file's load."""
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        for key in ("arch", "num_classes", "arch_args"):
            if payload.get(key, {}) != entry[key]:
                return f"the checkpoint's {key} is {payload.get(key, {})!r}, but config.models.{name}.{key} is {entry[key]!r}"
        for key in ("mean", "std"):  # the checkpoint keeps its own normalisation: an entry's other one is a mistake
            if key in entry and not np.allclose(payload[key], entry[key], atol=1e-6):
                return (f"the checkpoint normalises with {key} {[round(v, 6) for v in payload[key]]}, but config.models.{name}.{key} is "
                        f"{entry[key]}; a robustxai checkpoint keeps its own: remove {key} from the entry or make "
                        "them equal")
        return None
    if not isinstance(payload, dict):
        return f"it holds a {type(payload).__name__}, not a state dict"
    if entry.get("state_dict_key") and entry["state_dict_key"] not in payload:
        return (f"it has no key '{entry['state_dict_key']}' (config.models.{name}.state_dict_key); "
                f"its keys: {sorted(payload)[:8]}")
    state = _plain_state(entry, payload)
    with torch.device("meta"):
        expected = build_classifier(entry["arch"], entry["num_classes"], arch_args=entry["arch_args"]).net.state_dict()
    problems = []
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing:
        problems.append(f"{len(missing)} weights of {entry['arch']} missing (first: {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} weights {entry['arch']} does not have (first: {unexpected[:3]}; "
                        "set state_dict_key or strip_prefix?)")
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if shapes:
        problems.append(f"{len(shapes)} weights of another shape than config.models.{name} "
                        f"(num_classes {entry['num_classes']}) gives (first: {shapes[:2]})")
    return "; ".join(problems) or None


def import_checkpoint_job(name: str, entry: dict, weights_path: str, checkpoint_path: str, history_path: str,
                          lock_dir: str | None = None) -> None:
    """Import a local or downloaded checkpoint after verifying it (``weights_only``, ``strict``): by the
    entry's ``sha256``, else by its record in the weights lock ``lock_dir`` (made on first use).

    The file may be a robustxai checkpoint, or a plain state dict of ``entry['arch']``, optionally under
    ``state_dict_key``; with ``strip_prefix`` only keys with that prefix are kept, without it (robust
    zoos store e.g. ``module.model.*`` next to copies of their normaliser and attacker). A file that
    does not fit the entry (``weights_mismatch``) raises ValueError naming it.
    """
    verify_weights(weights_path, name, entry.get("url") or Path(weights_path).resolve().as_uri(),
                   entry.get("sha256"), lock_dir)
    payload = torch.load(weights_path, map_location="cpu", weights_only=True)
    problem = weights_mismatch(name, entry, payload)
    if problem:
        raise ValueError(f"{weights_path}: {problem}")
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        model, payload = load_checkpoint(weights_path)
    else:
        model = build_classifier(entry["arch"], entry["num_classes"], entry.get("mean", IMAGENET_MEAN),
                                 entry.get("std", IMAGENET_STD), entry["arch_args"])
        model.net.load_state_dict(_plain_state(entry, payload), strict=True)
    save_checkpoint(model, checkpoint_path, entry["arch"], entry["num_classes"], entry["arch_args"],
                    meta={"name": name, "source": "file", "algorithm": entry["algorithm"], "entry": entry,
                          **provenance()})
    write_history([], history_path)
