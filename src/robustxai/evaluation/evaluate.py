"""One evaluation row per model: accuracy on every split, robust accuracy, confidence, ECE, cost."""
from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm import tqdm

from robustxai.evaluation.calibration import accuracy, confidences, expected_calibration_error
from robustxai.evaluation.complexity import count_macs, count_parameters
from robustxai.models.inference import predict_logits
from robustxai.training.algorithms import AttackSettings

log = logging.getLogger(__name__)


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: AttackSettings,
                    batch_size: int = 256, device: torch.device | None = None) -> float:
    """Accuracy on PGD examples (N, C, H, W) crafted against ``model`` in eval mode."""
    device = device or next(model.parameters()).device
    correct = 0
    for start in tqdm(range(0, len(images), batch_size), desc=f"PGD {attack.norm} eps={attack.eps:.4g}",
                      mininterval=5.0):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        adversarial = attack.attack(model, x, y)
        with torch.no_grad():
            correct += (model(adversarial).argmax(1) == y).sum().item()
    return correct / max(len(images), 1)


def evaluate_classifier(model: nn.Module, test: tuple[torch.Tensor, torch.Tensor],
                        ood: dict[str, tuple[torch.Tensor, torch.Tensor]], attacks: dict[str, AttackSettings],
                        robust_images: int | None = None, batch_size: int = 256,
                        calibration_bins: int = 15) -> dict:
    """Evaluate ``model`` (in eval mode, on its current device).

    Args:
        test: clean test images (N, C, H, W) in [0, 1] and labels (N,).
        ood: OOD split name -> (images, labels).
        attacks: name -> threat model; robust accuracy is measured on the first ``robust_images`` test images.
    Returns:
        a flat dict: clean_accuracy, ood_accuracy_<split>, ood_accuracy (mean over splits),
        robust_accuracy_<attack>, confidence_mean / confidence_median (softmax of the predicted class on
        the clean test set), ece, params, macs, test_images, robust_images. Accuracies are in [0, 1].
    """
    model.eval()
    images, labels = test
    logits = predict_logits(model, images, batch_size)
    conf = confidences(logits)
    row = {"clean_accuracy": accuracy(logits, labels),
           "confidence_mean": conf.mean().item(), "confidence_median": conf.median().item(),
           "ece": expected_calibration_error(logits, labels, calibration_bins)}
    for name, (ood_images, ood_labels) in ood.items():
        row[f"ood_accuracy_{name}"] = accuracy(predict_logits(model, ood_images, batch_size), ood_labels)
    if ood:
        row["ood_accuracy"] = sum(row[f"ood_accuracy_{name}"] for name in ood) / len(ood)
    subset = slice(0, robust_images)
    for name, attack in attacks.items():
        row[f"robust_accuracy_{name}"] = robust_accuracy(model, images[subset], labels[subset], attack, batch_size)
        log.info("robust accuracy %s: %.4f", name, row[f"robust_accuracy_{name}"])
    row.update(params=count_parameters(model), macs=count_macs(model, tuple(images.shape[1:])),
               test_images=len(images), robust_images=len(images[subset]))
    return row
