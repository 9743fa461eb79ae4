"""Accuracy on OOD splits, read part by part: a split with a ``label_subset`` (ImageNet-A/R) is predicted
among its classes only, and a split whose images carry ``corruption`` and ``severity`` extras is also
scored per corruption and severity, with the mCE where they carry AlexNet's errors (ImageNet-C)."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from robustxai.data.splits import ImageSplit
from robustxai.models.inference import predict_logits


def predict_among(logits: torch.Tensor, label_subset: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class (N,) int64 in the full index space and its softmax probability (N,), of logits
    (N, C) restricted to the classes ``label_subset`` (K,) before the argmax and the softmax (all C if None)."""
    if label_subset is None:
        probs = logits.float().softmax(1)
        confidence, predicted = probs.max(1)
        return predicted, confidence
    classes = torch.as_tensor(label_subset, dtype=torch.long)
    confidence, position = logits[:, classes].float().softmax(1).max(1)
    return classes[position], confidence


def ood_outcomes(model: nn.Module, parts: Iterable[ImageSplit],
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Whether each image of a split (given as consecutive ImageSplit parts) is classified right (N,)
    bool, the confidence of the prediction (N,) float, and the split's extras (name -> (N,)); one
    part is held in memory as float at a time."""
    correct, confidence, extras = [], [], {}
    for part in parts:
        images, labels = part.tensors()
        predicted, probability = predict_among(predict_logits(model, images, batch_size), part.label_subset)
        correct.append((predicted == labels).numpy())
        confidence.append(probability.numpy())
        for name, values in part.extras.items():
            extras.setdefault(name, []).append(values)
    if not correct:
        raise ValueError("an OOD split has no images")
    return (np.concatenate(correct), np.concatenate(confidence),
            {name: np.concatenate(values) for name, values in extras.items()})


def corruption_cells(correct: np.ndarray, corruption: np.ndarray, severity: np.ndarray,
                     reference: np.ndarray | None = None) -> list[dict]:
    """Accuracy per (corruption, severity) cell of images with those extras (N,): one dict per cell,
    in order of first appearance, with corruption, severity, images, accuracy and (given the per-image
    ``reference`` error (N,), e.g. AlexNet's) reference_error."""
    cells = []
    for name, level in dict.fromkeys(zip(corruption.tolist(), severity.tolist())):
        rows = (corruption == name) & (severity == level)
        cell = {"corruption": name, "severity": int(level), "images": int(rows.sum()),
                "accuracy": float(correct[rows].mean())}
        if reference is not None:
            cell["reference_error"] = float(reference[rows][0])
        cells.append(cell)
    return cells


def corruption_scores(name: str, cells: list[dict]) -> dict[str, float]:
    """Of split ``name``'s cells (``corruption_cells``): ``ood_accuracy_<name>_<corruption>`` (mean over
    its severities) and, over the corruptions whose cells all have a finite reference error,
    ``mce_<name>`` = mean over corruptions of (sum over severities of the error) / (sum of the reference
    errors) (Hendrycks & Dietterich 2019, normalised by AlexNet's errors; 1 = AlexNet's robustness)."""
    scores, normalised = {}, []
    for corruption in dict.fromkeys(c["corruption"] for c in cells):
        own = [c for c in cells if c["corruption"] == corruption]
        scores[f"ood_accuracy_{name}_{corruption}"] = float(np.mean([c["accuracy"] for c in own]))
        reference = [c.get("reference_error", np.nan) for c in own]
        if np.all(np.isfinite(reference)):
            normalised.append(sum(1 - c["accuracy"] for c in own) / sum(reference))
    if normalised:
        scores[f"mce_{name}"] = float(np.mean(normalised))
    return scores


def ood_scores(model: nn.Module, name: str, parts: Iterable[ImageSplit], batch_size: int = 256) -> tuple[dict, list]:
    """Scores of OOD split ``name`` (consecutive ImageSplit parts): ``ood_accuracy_<name>`` (share of all
    its images right) and ``ood_confidence_<name>`` (mean confidence), plus :func:`corruption_scores`
    for a split with corruption and severity extras; and its cells (:func:`corruption_cells`, [] if none)."""
    correct, confidence, extras = ood_outcomes(model, parts, batch_size)
    scores = {f"ood_accuracy_{name}": float(correct.mean()), f"ood_confidence_{name}": float(confidence.mean())}
    cells = []
    if "corruption" in extras and "severity" in extras:
        cells = corruption_cells(correct, extras["corruption"], extras["severity"], extras.get("alexnet_error"))
        scores.update(corruption_scores(name, cells))
    return scores, cells
