"""Evaluate one model checkpoint on the test, OOD and adversarial data; write one JSON row."""
from __future__ import annotations

import json
import logging

import numpy as np
import torch

from robustxai.data.splits import iter_split, load_split
from robustxai.errors import NonFiniteError
from robustxai.files import write_json
from robustxai.evaluation.evaluate import evaluate_classifier
from robustxai.models.checkpoint import load_checkpoint
from robustxai.models.inference import default_device
from robustxai.models.preprocessing import native_input_size
from robustxai.training.algorithms import AttackSettings

log = logging.getLogger(__name__)
#: images of the test or an OOD split held in memory (as float) at a time: 512 x 224 x 224 x 3 x 4 B = 0.3 GB
PART_IMAGES = 512


def evaluate_model_job(name: str, checkpoint_path: str, test_path: str, ood_paths: dict[str, str],
                       settings: dict, output_path: str) -> dict:
    """Evaluate model ``name``; ``settings`` is the config's evaluation section; the test and OOD
    splits are read ``PART_IMAGES`` at a time. Returns the row written;
    ``input_size`` is the side (px) of the test images it is evaluated on, ``native_input_size`` the one its
    weights were made for (``robustxai.models.preprocessing.native_input_size``)."""
    torch.manual_seed(0)  # PGD's random starts: the same checkpoint always gets the same robust accuracy
    device = default_device()
    model, payload = load_checkpoint(checkpoint_path)
    model = model.to(device)
    attacks = {attack_name: AttackSettings(**attack) for attack_name, attack in settings.get("attacks", {}).items()}
    parts = {split: (part for _, part in iter_split(path, PART_IMAGES)) for split, path in ood_paths.items()}
    try:
        row = evaluate_classifier(model, (part for _, part in iter_split(test_path, PART_IMAGES)), parts, attacks,
                                  robust_images=settings.get("robust_images"),
                                  batch_size=settings.get("batch_size", 256),
                                  calibration_bins=settings.get("calibration_bins", 15))
    except NonFiniteError as error:
        raise NonFiniteError(f"model '{name}' ({checkpoint_path}): {error}") from error
    input_size = int(load_split(test_path, np.arange(1)).images.shape[2])
    meta = payload.get("meta", {})
    row = {"model": name, "arch": payload["arch"], "algorithm": meta.get("algorithm", "unknown"),
           "source": meta.get("source", "unknown"), "input_size": input_size,
           "native_input_size": native_input_size(meta, input_size), **row}
    write_json(row, output_path, indent=2)
    log.info("%s", json.dumps(row))
    return row
