import math
import time

import pytest
import torch
from torch import nn

from robustxai.attribution import AttributionMethod, make_method
from robustxai.evaluation import latency
from robustxai.evaluation.latency import COLUMNS, latency_table, measure_latency, plot_latency
from robustxai.models.wrapper import build_classifier


class Sleeper(AttributionMethod):
    """A fake method whose every call takes 20 ms whatever the batch."""

    family = "baseline"
    pass_kind = "forward"

    def compute(self, model, images, targets):
        time.sleep(0.02)
        return torch.zeros(images.shape[0], *images.shape[2:])


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_classifier("cifar_resnet_tiny", 10, (0.5,) * 3, (0.25,) * 3).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])


class ClockedLinear(nn.Module):
    """A linear classifier that counts the images through its forward pass; ``now`` reads that count
    as milliseconds, a clock that measures model passes only (a method's own work takes no time)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return self.fc(images.flatten(1))

    def now(self) -> float:
        return self.images_seen / 1000


@pytest.fixture(scope="module")
def results(images):
    """Latency of gradient, SmoothGrad (10 samples) and occlusion (49 windows), timed by the images
    they pass through a ClockedLinear."""
    model = ClockedLinear().eval()
    methods = {"gradient": make_method("gradient", batch_size=64),
               "smoothgrad": make_method("smoothgrad", samples=10, batch_size=64),
               "occlusion": make_method("occlusion", window=8, stride=4, batch_size=64)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(latency.time, "perf_counter", model.now)
        return {name: measure_latency(model, method, *images, repeats=3) | {"family": method.family}
                for name, method in methods.items()}


def test_values_are_finite_and_positive(results):
    for result in results.values():
        assert result["images_per_call"] == 4 and result["batch_size"] == 64
        for key, value in result.items():
            if key != "family":
                assert math.isfinite(value) and value > 0, key


def test_ratios_follow_pass_counts(results):
    """With one millisecond per image through the model, times are image counts."""
    for name, copies in (("gradient", 1),  # the image, once (the backward pass is not counted)
                         ("smoothgrad", 10),  # 10 noisy copies
                         ("occlusion", 50)):  # the clean image and its 49 occluded copies
        result = results[name]
        figures = [result[key] for key in ("ms_batch1", "ms_batched", "ratio_batch1", "ratio_batched")]
        assert result["forward_ms_batch1"] == pytest.approx(1) and result["forward_ms_batched"] == pytest.approx(1)
        assert figures == pytest.approx([copies] * 4), name


def test_constant_time_method_and_auto_batch_size(resnet, images):
    method = Sleeper(batch_size="auto")
    result = measure_latency(resnet, method, *images, repeats=3, batch_images=8)
    assert 20 <= result["ms_batch1"] <= 40
    assert 20 / 8 <= result["ms_batched"] <= 40 / 8  # one call for 8 images
    assert result["images_per_call"] == 8
    assert isinstance(result["batch_size"], int)


def test_table_order_and_plot(results, tmp_path):
    rows = [result | {"model": model, "method": name, "threads": 1, "device": "cpu"}
            for model in ("resnet_b", "resnet_a") for name, result in results.items()]
    table = latency_table(rows)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["model"]) == ["resnet_b"] * 3 + ["resnet_a"] * 3
    for _, part in table.groupby("model"):
        assert part["ms_batch1"].is_monotonic_increasing
    with pytest.raises(ValueError, match="threads"):
        latency_table([{k: v for k, v in row.items() if k != "threads"} for row in rows])
    png = tmp_path / "plots" / "latency.png"
    plot_latency(table, str(png))
    assert png.stat().st_size > 5000
