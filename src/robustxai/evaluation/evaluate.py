"""One evaluation row per model: accuracy on every split, robust accuracy, confidence, ECE, cost."""
from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn
from tqdm import tqdm

from robustxai.data.splits import ImageSplit
from robustxai.evaluation.calibration import accuracy, confidences, expected_calibration_error
from robustxai.evaluation.complexity import count_macs, count_parameters
from robustxai.evaluation.ood import ood_scores
from robustxai.errors import NonFiniteError
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


def evaluate_classifier(model: nn.Module, test: Iterable[ImageSplit],
                        ood: dict[str, Iterable[ImageSplit]], attacks: dict[str, AttackSettings],
                        robust_images: int | None = None, batch_size: int = 256,
                        calibration_bins: int = 15) -> dict:
    """Evaluate ``model`` (in eval mode, on its current device).

    Args:
        test: the clean test split as consecutive ImageSplit parts, read one at a time (only the
            logits (N, classes) of the whole split are kept, and the first ``robust_images`` images).
        ood: OOD split name -> its images as consecutive ImageSplit parts (read one at a time; see
            ``robustxai.evaluation.ood.ood_scores`` for class subsets and corruption splits).
        attacks: name -> threat model; robust accuracy is measured on the first ``robust_images`` test
            images (all when None).
    Returns:
        a dict: clean_accuracy, ood_accuracy_<split>, ood_confidence_<split> (and per-corruption accuracies
        and mce_<split> of corruption splits), ood_accuracy (mean over splits),
        robust_accuracy_<attack>, confidence_mean / confidence_median (softmax of the predicted class on
        the clean test set), ece, params, macs, test_images, robust_images, and ood_cells (split ->
        accuracy per corruption and severity, for corruption splits). Accuracies are in [0, 1].
    """
    model.eval()
    logits, labels, kept = [], [], []
    wanted = float("inf") if robust_images is None else robust_images
    for part in test:
        images, part_labels = part.tensors()
        logits.append(predict_logits(model, images, batch_size))
        labels.append(part_labels)
        have = sum(len(x) for x, _ in kept)
        if have < wanted:
            take = int(min(wanted - have, len(images)))
            kept.append((images[:take], part_labels[:take]))
    logits, labels = torch.cat(logits), torch.cat(labels)
    bad = int((~torch.isfinite(logits)).any(1).sum())
    if bad:
        raise NonFiniteError(f"{bad} of {len(logits)} test images give non-finite logits (NaN or inf): the model's "
                             "weights or buffers hold NaN / inf (a diverged training or a damaged checkpoint); its "
                             "accuracy, confidence and ECE would be meaningless")
    image_shape = tuple(images.shape[1:])
    robust_set = (torch.cat([x for x, _ in kept]), torch.cat([y for _, y in kept]))
    conf = confidences(logits)
    row = {"clean_accuracy": accuracy(logits, labels),
           "confidence_mean": conf.mean().item(), "confidence_median": conf.median().item(),
           "ece": expected_calibration_error(logits, labels, calibration_bins)}
    cells = {}
    for name, parts in ood.items():
        scores, cells[name] = ood_scores(model, name, parts, batch_size)
        row.update(scores)
    if ood:
        row["ood_accuracy"] = sum(row[f"ood_accuracy_{name}"] for name in ood) / len(ood)
    for name, attack in attacks.items():
        row[f"robust_accuracy_{name}"] = robust_accuracy(model, *robust_set, attack, batch_size)
        log.info("robust accuracy %s: %.4f", name, row[f"robust_accuracy_{name}"])
    row.update(params=count_parameters(model), macs=count_macs(model, image_shape),
               test_images=len(labels), robust_images=len(robust_set[1]),
               ood_cells={name: split_cells for name, split_cells in cells.items() if split_cells})
    return row
