import math

import numpy as np
import pytest
import torch
from torch import nn

from robustxai.data.splits import ImageSplit
from robustxai.evaluation.calibration import accuracy, confidences, expected_calibration_error
from robustxai.evaluation.complexity import count_macs, count_parameters
from robustxai.evaluation.evaluate import evaluate_classifier
from robustxai.training.algorithms import AttackSettings


def logits_for(probabilities):
    return torch.log(torch.tensor(probabilities))


def test_accuracy_and_confidence():
    logits = logits_for([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    labels = torch.tensor([0, 2, 2])
    assert accuracy(logits, labels) == pytest.approx(2 / 3)
    assert confidences(logits).tolist() == pytest.approx([0.7, 0.6, 0.5])
    assert math.isnan(accuracy(logits[:0], labels[:0]))


def test_ece_by_hand():
    # two bins used (10 bins): conf 0.95 x2 (one right) -> |0.5 - 0.95|; conf 0.55 x2 (both right) -> |1 - 0.55|
    logits = logits_for([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 0, 0])
    assert expected_calibration_error(logits, labels, bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45, abs=1e-6)
    perfect = logits_for([[1.0 - 1e-7, 1e-7]] * 4)
    assert expected_calibration_error(perfect, torch.zeros(4, dtype=torch.long)) == pytest.approx(0, abs=1e-5)


def test_macs_and_parameters_of_a_known_network():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    assert count_macs(model, (3, 16, 16)) == 16 * 16 * 8 * 3 * 9 + 8 * 16 * 16 * 10
    assert count_parameters(model) == 8 * 3 * 9 + 8 + 8 * 16 * 16 * 10 + 10


def test_evaluate_classifier_on_a_model_that_reads_the_label_from_one_pixel():
    # class = which channel of pixel (0, 0) is brightest; a tiny perturbation of that pixel flips it.
    class PixelReader(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(20.0))

        def forward(self, x):
            return self.scale * x[:, :, 0, 0]

    labels = torch.arange(30) % 3
    images = torch.full((30, 3, 4, 4), 0.5)
    images[torch.arange(30), labels, 0, 0] = 0.52  # margin 0.02 < eps
    ood_images = images.clone()
    ood_images[:10, :, 0, 0] = 0.5
    ood_images[:10, 0, 0, 0] = 0.6  # first 10 OOD images all read as class 0
    ood = ImageSplit(images=(ood_images * 255).round().byte().permute(0, 2, 3, 1).numpy(), labels=labels.numpy(),
                     boxes=np.full((30, 4), -1), class_names=["a", "b", "c"])
    test = ImageSplit(images=(images * 255).round().byte().permute(0, 2, 3, 1).numpy(), labels=labels.numpy(),
                      boxes=np.full((30, 4), -1), class_names=["a", "b", "c"])
    in_parts = [test.subset(np.arange(0, 12)), test.subset(np.arange(12, 30))]  # read part by part
    row = evaluate_classifier(PixelReader(), in_parts, {"shifted": [ood.subset(np.arange(0, 16)),
                                                                   ood.subset(np.arange(16, 30))]},
                              {"linf": AttackSettings(norm="linf", eps=0.05, steps=5)}, batch_size=7)
    assert row["clean_accuracy"] == 1.0
    assert row["ood_accuracy_shifted"] == pytest.approx(24 / 30)  # 4 of the first 10 are class 0
    assert row["ood_accuracy"] == row["ood_accuracy_shifted"]
    assert row["robust_accuracy_linf"] == 0.0
    margin = 20 * (133 - 128) / 255  # 0.52 and 0.5 stored as uint8
    assert row["confidence_mean"] == pytest.approx(torch.softmax(torch.tensor([margin, 0.0, 0.0]), 0)[0].item(), rel=1e-4)
    assert row["params"] == 1 and row["test_images"] == row["robust_images"] == 30
    few = evaluate_classifier(PixelReader(), in_parts, {}, {"linf": AttackSettings(norm="linf", eps=0.05, steps=5)},
                              robust_images=20, batch_size=7)  # the first 20 span both parts
    assert few["robust_images"] == 20 and few["test_images"] == 30 and few["robust_accuracy_linf"] == 0.0
