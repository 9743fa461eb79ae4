"""Evaluate one model checkpoint on the test, OOD and adversarial data; write one JSON row."""
from __future__ import annotations

import json
import logging

import torch

from robustxai.data.splits import load_split
from robustxai.files import write_json
from robustxai.evaluation.evaluate import evaluate_classifier
from robustxai.models.checkpoint import load_checkpoint
from robustxai.models.inference import default_device
from robustxai.models.preprocessing import native_input_size
from robustxai.training.algorithms import AttackSettings

log = logging.getLogger(__name__)


def evaluate_model_job(name: str, checkpoint_path: str, test_path: str, ood_paths: dict[str, str],
                       settings: dict, output_path: str) -> dict:
    """Evaluate model ``name``; ``settings`` is the config's evaluation section. Returns the row written;
    ``input_size`` is the side (px) of the test images it is evaluated on, ``native_input_size`` the one its
    weights were made for (``robustxai.models.preprocessing.native_input_size``)."""
    torch.manual_seed(0)  # PGD's random starts: the same checkpoint always gets the same robust accuracy
    device = default_device()
    model, payload = load_checkpoint(checkpoint_path)
    model = model.to(device)
    attacks = {attack_name: AttackSettings(**attack) for attack_name, attack in settings.get("attacks", {}).items()}
    test = load_split(test_path).tensors()
    row = evaluate_classifier(model, test,
                              {split: load_split(path).tensors() for split, path in ood_paths.items()},
                              attacks, robust_images=settings.get("robust_images"),
                              batch_size=settings.get("batch_size", 256),
                              calibration_bins=settings.get("calibration_bins", 15))
    meta = payload.get("meta", {})
    row = {"model": name, "arch": payload["arch"], "algorithm": meta.get("algorithm", "unknown"),
           "source": meta.get("source", "unknown"), "input_size": int(test[0].shape[-1]),
           "native_input_size": native_input_size(meta, int(test[0].shape[-1])), **row}
    write_json(row, output_path, indent=2)
    log.info("%s", json.dumps(row))
    return row
