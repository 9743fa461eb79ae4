"""ROAR jobs: one retraining per (model, method, fraction, repeat), the mask-only control per (model,
method, fraction), and the table of every cell. Results are JSON files, so a finished cell is never
recomputed and a killed retraining resumes from its last epoch."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch

from robustxai.attribution.shards import gather_maps
from robustxai.data.splits import load_split
from robustxai.files import atomic_output, write_json
from robustxai.metrics.ranking import RankingPolicy
from robustxai.models.inference import default_device, predict_logits
from robustxai.models.wrapper import build_classifier
from robustxai.provenance import provenance
from robustxai.roar.leakage import chance_level, leak_established, leakage_verdict, mask_inputs
from robustxai.roar.removal import blur_maps, channel_mean, object_maps, object_share_removed, remove_top
from robustxai.training.algorithms import VanillaTraining
from robustxai.training.loop import settings_digest, settings_from_config, train

log = logging.getLogger(__name__)


def first_images(split_path: str, images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) in [0, 1], labels (N,) and true-object maps (N, H, W) (``object_maps``: masks,
    else boxes; all zero where the split has none) of the first ``images`` images of a split."""
    split = load_split(split_path)
    split_images, labels = split.tensors()
    n, _, height, width = split_images[:images].shape
    masks = None if split.masks is None else torch.from_numpy(split.masks[:images])
    objects = object_maps(torch.from_numpy(split.boxes[:images]).long(), masks, height, width)
    return split_images[:images], labels[:images], objects


def ranking_maps(entry: dict, map_paths: list[str], objects: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps that rank a removal: the true objects (N, H, W) for the positive control (``entry``
    with ``maps: objects``), else the method's maps in the shards ``map_paths`` (first N), blurred by the
    entry's ``blur_sigma`` if set."""
    if entry.get("maps") == "objects":
        return objects
    maps = torch.from_numpy(gather_maps(map_paths, len(objects)))
    return blur_maps(maps, entry["blur_sigma"]) if entry.get("blur_sigma") else maps


def removed_inputs(images: torch.Tensor, maps: torch.Tensor | None, fraction: float, fill: torch.Tensor,
                   policy: RankingPolicy) -> tuple[torch.Tensor, torch.Tensor]:
    """(modified images, removed) of images (N, C, H, W): the top ``fraction`` by ``maps`` (N, H, W)
    replaced by ``fill`` (C,); fraction 0 (the anchor, ``maps`` None) changes nothing."""
    if fraction == 0:
        return images, torch.zeros_like(images, dtype=torch.bool)
    return remove_top(images, maps, fraction, fill, policy)


def train_fresh(recipe: dict, images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                test_labels: torch.Tensor, device: torch.device, resume_path: Path, resume_key: str,
                mean: list[float] | None = None, std: list[float] | None = None, stop=None):
    """A fresh model of ``recipe`` (arch, num_classes, mean, std, arch_args, training) trained with
    vanilla training; the per-epoch "val_accuracy" of its history is on the (modified) test images,
    logged only: no epoch is selected, the final one is the result (``stop``: ``train``'s early stop)."""
    settings = settings_from_config(recipe["training"])
    torch.manual_seed(settings.seed)
    model = build_classifier(recipe["arch"], recipe["num_classes"], mean or recipe["mean"], std or recipe["std"],
                             recipe["arch_args"])
    return train(model, VanillaTraining(), settings, images, labels, test_images, test_labels, device=device,
                 resume_path=resume_path, resume_key=resume_key, stop=stop)


def roar_job(model_name: str, entry_name: str, entry: dict, fraction: float, repeat: int, recipe: dict,
             ranking: dict, splits: dict, train_path: str, test_path: str, train_maps: list[str],
             test_maps: list[str], output_path: str, device: torch.device | None = None,
             leakage_path: str | None = None) -> dict:
    """One ROAR cell: retrain a fresh model on the train split with the top ``fraction`` of pixels removed
    by ``entry``'s maps (``method``, ``blur_sigma``) and test it on the test split modified alike; write
    the final epoch's test accuracy with its settings and history as JSON (``plateau_epoch``: under the
    plateau schedule, the epoch its training accuracy levelled off, None where it never did). ``fraction`` 0
    is the unmodified anchor. ``splits``: per split the images used (``robustxai.config.resolve_roar``).
    ``leakage_path``: the cell's mask-only control (``leakage_job``'s JSON); where it flags leakage the
    cell is not retrained (``skipped_cell``)."""
    device = device or default_device()
    started = time.time()
    if leakage_path is not None:
        control = json.loads(Path(leakage_path).read_text())
        if control["leaked"]:
            return skipped_cell(model_name, entry_name, entry, fraction, repeat, recipe, ranking, control, output_path)
    policy = RankingPolicy(**ranking)
    train_images, train_y, train_objects = first_images(train_path, splits["train"]["images"])
    test_images, test_y, test_objects = first_images(test_path, splits["test"]["images"])
    fill = channel_mean(train_images)
    blur = entry.get("blur_sigma")
    maps = {"train": None, "test": None} if fraction == 0 else {
        "train": ranking_maps(entry, train_maps, train_objects), "test": ranking_maps(entry, test_maps, test_objects)}
    train_x, _ = removed_inputs(train_images, maps["train"], fraction, fill, policy)
    test_x, test_removed = removed_inputs(test_images, maps["test"], fraction, fill, policy)
    object_share = object_share_removed(test_removed, test_objects)
    log.info("ROAR %s / %s at %.2f (repeat %d): %d train and %d test images, %.4f of their elements (%.4f of the "
             "objects' pixels) replaced by %s", model_name, entry_name, fraction, repeat, len(train_x), len(test_x),
             test_removed.float().mean().item(), object_share, [round(v, 4) for v in fill.tolist()])
    key = settings_digest(recipe, entry, fraction, ranking, splits)
    result = train_fresh(recipe, train_x, train_y, test_x, test_y, device, Path(output_path).with_suffix(".resume"), key)
    accuracy = (predict_logits(result.model, test_x).argmax(1) == test_y).float().mean().item()
    payload = {"model": model_name, "method": entry_name, "attribution_method": entry.get("method"),
               "blur_sigma": blur, "fraction": fraction, "repeat": repeat, "accuracy": accuracy,
               "test_images": len(test_x), "train_images": len(train_x),
               "removed_share": test_removed.float().mean().item(), "object_removed_share": object_share, "fill": fill.tolist(), "ranking": ranking,
               "recipe": recipe, "history": result.history, "plateau_epoch": result.plateau_epoch,
               "wall_seconds": time.time() - started, **provenance()}
    write_json(payload, output_path)
    log.info("ROAR %s / %s at %.2f: final-epoch test accuracy %.4f", model_name, entry_name, fraction, accuracy)
    return payload


def skipped_cell(model_name: str, entry_name: str, entry: dict, fraction: float, repeat: int, recipe: dict,
                 ranking: dict, control: dict, output_path: str) -> dict:
    """The JSON of a ROAR cell that is not retrained because its mask-only ``control`` (``leakage_job``'s
    payload) flags leakage: accuracy NaN, ``skipped`` saying why, an empty history. Its accuracy could not be
    read: a retraining would learn the class from the removal's shape (Rong et al. 2022)."""
    reason = (f"not retrained: the mask-only control leaks (accuracy {control['accuracy']:.3f}, 95% low "
              f"{control['accuracy_low']:.3f}, chance {control['chance']:.3f} + margin {control['margin']:g})")
    payload = {"model": model_name, "method": entry_name, "attribution_method": entry.get("method"),
               "blur_sigma": entry.get("blur_sigma"), "fraction": fraction, "repeat": repeat, "accuracy": math.nan,
               "skipped": reason, "test_images": control["images"], "train_images": None, "removed_share": math.nan,
               "object_removed_share": control.get("object_removed_share", math.nan), "ranking": ranking,
               "recipe": recipe, "history": [], "wall_seconds": 0.0, **provenance()}
    write_json(payload, output_path)
    log.info("ROAR %s / %s at %.2f (repeat %d): %s", model_name, entry_name, fraction, repeat, reason)
    return payload


def leakage_job(model_name: str, entry_name: str, entry: dict, fraction: float, recipe: dict, ranking: dict,
                splits: dict, margin: float, train_path: str, test_path: str, train_maps: list[str],
                test_maps: list[str], output_path: str, device: torch.device | None = None) -> dict:
    """The mask-only control of one ROAR cell: a fresh model of ``recipe`` trained on the removal masks
    alone (``robustxai.roar.leakage``), its test accuracy against chance; written as JSON. Training stops
    after the first epoch whose test accuracy establishes the leak (``leak_established``; ``stopped_at_leak``:
    that epoch, else None)."""
    device = device or default_device()
    started = time.time()
    policy = RankingPolicy(**ranking)
    train_images, train_y, train_objects = first_images(train_path, splits["train"]["images"])
    test_images, test_y, test_objects = first_images(test_path, splits["test"]["images"])
    fill = torch.zeros(train_images.shape[1])  # only the masks matter
    _, train_removed = removed_inputs(train_images, ranking_maps(entry, train_maps, train_objects), fraction, fill, policy)
    _, test_removed = removed_inputs(test_images, ranking_maps(entry, test_maps, test_objects), fraction, fill, policy)
    train_x, test_x = mask_inputs(train_removed), mask_inputs(test_removed)
    channels = train_x.shape[1]
    key = settings_digest(recipe, entry, fraction, ranking, splits, "leakage")
    chance, epochs = chance_level(test_y), settings_from_config(recipe["training"]).epochs

    def established(history: list[dict]) -> bool:
        return leak_established(history[-1]["val_accuracy"], len(test_y), chance, margin, epochs)

    result = train_fresh(recipe, train_x, train_y, test_x, test_y, device, Path(output_path).with_suffix(".resume"),
                         key, mean=[fraction] * channels, std=[0.5] * channels, stop=established)
    verdict = leakage_verdict(predict_logits(result.model, test_x).argmax(1), test_y, margin)
    payload = {"model": model_name, "method": entry_name, "attribution_method": entry.get("method"),
               "control": entry.get("control") or "cell", "fraction": fraction, **verdict, "stopped_at_leak": result.stopped_at,
               "object_removed_share": object_share_removed(test_removed, test_objects), "ranking": ranking,
               "recipe": recipe, "history": result.history, "wall_seconds": time.time() - started, **provenance()}
    write_json(payload, output_path)
    log.info("mask-only control %s / %s at %.2f: accuracy %.4f (95%% low %.4f) vs chance %.4f -> leaked: %s",
             model_name, entry_name, fraction, verdict["accuracy"], verdict["accuracy_low"], verdict["chance"],
             verdict["leaked"])
    return payload


def share_anchors(payloads: list[dict], shared: dict[str, str], anchors: str = "unmodified") -> list[dict]:
    """``payloads`` (ROAR cells or mask-only controls) plus, for every model whose anchors and positive
    control another model ran (``shared``: model -> that model, ``robustxai.config.roar_anchor_models``), a
    copy of that model's anchor cells (method ``anchors``) and positive controls under its own name, with
    ``shared_from`` naming the model that ran them."""
    copies = [{**payload, "model": model, "shared_from": source} for model, source in shared.items() if model != source
              for payload in payloads if payload["model"] == source
              and (payload["method"] == anchors or payload.get("control") == "positive")]
    return payloads + copies


def roar_table_job(cell_paths: list[str], leakage_paths: list[str], evaluation_paths: dict[str, str],
                   table_path: str, leakage_table_path: str, plot_path: str, anchors: str = "unmodified",
                   shared: dict[str, str] | None = None):
    """``tables/roar.csv``, ``tables/roar_leakage.csv`` and ``plots/roar.png`` (``robustxai.roar.table``)
    from every ROAR cell and mask-only control; ``evaluation_paths`` (model -> evaluation JSON) give each
    explained model's own test accuracy, shown beside the unmodified anchor; ``shared`` (``share_anchors``)
    names the models that share another's anchors and positive controls."""
    from robustxai.roar.table import leakage_table, plot_roar, roar_table

    cells = share_anchors([json.loads(Path(path).read_text()) for path in cell_paths], shared or {}, anchors)
    leakage = share_anchors([json.loads(Path(path).read_text()) for path in leakage_paths], shared or {}, anchors)
    own = {model: json.loads(Path(path).read_text())["clean_accuracy"] for model, path in evaluation_paths.items()}
    table = roar_table(cells, leakage, anchors, own)
    for frame, path in ((table, table_path), (leakage_table(leakage), leakage_table_path)):
        with atomic_output(path) as tmp:
            frame.to_csv(tmp, index=False)
    plot_roar(table, plot_path)
    return table
