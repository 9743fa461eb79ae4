import math
import re
import time

import pytest
import torch
import yaml
from torch import nn

from robustxai.attribution import AttributionMethod, make_method
from robustxai.evaluation import latency
from robustxai.evaluation.latency import COLUMNS, latency_table, measure_latency, plot_latency
from robustxai.models.wrapper import build_classifier
from workflow_runs import ROOT, snakemake


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
    """A linear classifier whose clock ``now`` (seconds) advances only with the images through its
    forward pass, a clock that measures model passes only (a method's own work takes no time): one
    millisecond per image, or three while the clock reads less than ``busy_until_ms`` (a machine that
    other jobs keep busy at first, then leave). With ``slice_ms``, other processes share the core:
    after every ``slice_ms`` of the model's work they run for ``others_ms``."""

    def __init__(self, busy_until_ms: float = 0, slice_ms: float = math.inf, others_ms: float = 0) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)
        self.busy_until_ms, self.slice_ms, self.others_ms = busy_until_ms, slice_ms, others_ms
        self.elapsed_ms = self.work_ms = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        work_before = self.work_ms
        self.work_ms += len(images) * (3 if self.elapsed_ms < self.busy_until_ms else 1)
        slices = self.work_ms // self.slice_ms - work_before // self.slice_ms
        self.elapsed_ms += self.work_ms - work_before + slices * self.others_ms
        return self.fc(images.flatten(1))

    def now(self) -> float:
        return self.elapsed_ms / 1000


#: (method, images it passes through the model per image explained): the image once (the backward
#: pass is not counted), 10 noisy copies, the clean image and its 49 occluded copies
PASS_COUNTS = (("gradient", 1), ("smoothgrad", 10), ("occlusion", 50))


def clocked_latency(images, repeats: int = 3, **clock) -> dict:
    """{method: measure_latency's result} of the PASS_COUNTS methods, timed by the images they pass
    through a ClockedLinear(**clock) (a fresh one per method, so each starts on a busy clock alike)."""
    methods = {"gradient": make_method("gradient", batch_size=64),
               "smoothgrad": make_method("smoothgrad", samples=10, batch_size=64),
               "occlusion": make_method("occlusion", window=8, stride=4, batch_size=64)}
    results = {}
    for name, method in methods.items():
        model = ClockedLinear(**clock).eval()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(latency.time, "perf_counter", model.now)
            results[name] = measure_latency(model, method, *images, repeats=repeats) | {"family": method.family}
    return results


@pytest.fixture(scope="module")
def results(images):
    """Latency of gradient, SmoothGrad (10 samples) and occlusion (49 windows) on an idle clock."""
    return clocked_latency(images)


def test_values_are_finite_and_positive(results):
    for result in results.values():
        assert result["images_per_call"] == 4 and result["batch_size"] == 64
        assert result["load_before"] >= 0 and result["load_after"] >= 0  # an idle machine reads 0.0
        for key, value in result.items():
            if key not in ("family", "load_before", "load_after"):
                assert math.isfinite(value) and value > 0, key


def test_ratios_follow_pass_counts(results):
    """With one millisecond per image through the model, times are image counts."""
    for name, copies in PASS_COUNTS:
        result = results[name]
        figures = [result[key] for key in ("ms_batch1", "ms_batched", "ratio_batch1", "ratio_batched")]
        assert result["forward_ms_batch1"] == pytest.approx(1) and result["forward_ms_batched"] == pytest.approx(1)
        assert figures == pytest.approx([copies] * 4), name


def test_forward_unit_is_timed_in_the_same_rounds_as_the_method(images):
    """The machine is busy (3 ms per image) for the first 20 ms, longer than the warm-up and five
    timed forward passes at batch 1 take (6 x 3 ms): timed in a block before the method's calls, every
    forward pass would be busy and every explanation idle, a ratio of a third of the pass count.
    Alternating forward and explain calls puts the idle rounds after the load under both."""
    for name, copies in PASS_COUNTS:
        result = clocked_latency(images, repeats=5, busy_until_ms=20)[name]
        assert result["forward_ms_batch1"] == pytest.approx(1), name
        assert result["ms_batch1"] == pytest.approx(copies), name
        assert result["ratio_batch1"] == pytest.approx(copies), name


def test_forward_unit_is_timed_over_as_long_as_an_explanation(images):
    """Other processes take the core for 10 ms after every 10 ms of the model's work, doubling the
    time of any call of 10 ms or more: a lone forward pass of 1 ms mostly runs between their turns, so
    ratios of lone passes would come out twice the pass count; blocks of passes as long as one
    explanation are slowed alike."""
    for name, copies in PASS_COUNTS:
        result = clocked_latency(images, repeats=5, slice_ms=10, others_ms=10)[name]
        if copies >= 10:
            assert result["ms_batch1"] == pytest.approx(2 * copies), name  # the load is there
        assert result["ratio_batch1"] == pytest.approx(copies), name
        assert result["ratio_batched"] == pytest.approx(copies, rel=0.1), name


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the process then takes CPU only while that thread works)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_constant_time_method_and_auto_batch_size(resnet, images, one_thread):
    method = Sleeper(batch_size="auto")
    result = measure_latency(resnet, method, *images, repeats=3, batch_images=8)
    assert 20 <= result["ms_batch1"] <= 40
    assert 20 / 8 <= result["ms_batched"] <= 40 / 8  # one call for 8 images
    assert result["images_per_call"] == 8
    assert isinstance(result["batch_size"], int)
    # 10 calls (2 warm-ups, 2 sizing, 6 timed) sleep 200 ms in all: wall time without CPU time
    assert 0 < result["cpu_seconds"] < result["wall_seconds"] - 0.15


def test_load_and_time_columns_of_a_real_measure(resnet, images):
    result = measure_latency(resnet, make_method("gradient"), *images, repeats=2)
    assert result["load_before"] >= 0 and result["load_after"] >= 0
    assert result["cpu_seconds"] > 0
    # the measurement holds, per setting, 2 timed explanations and 2 timed blocks of at least one
    # forward pass, each no faster than the fastest (batched figures are per image, 4 per call)
    timed_ms = (2 * result["ms_batch1"] + 2 * result["forward_ms_batch1"]
                + 4 * (2 * result["ms_batched"] + 2 * result["forward_ms_batched"]))
    assert 1000 * result["wall_seconds"] >= timed_ms


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


def planned_threads(output: str) -> list[tuple[str, int]]:
    """(rule, threads) of each job of a dry run's output (a job block prints ``threads:`` only above 1)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        if rule := re.match(r"(?:local)?rule (\w+):", block):
            threads = re.search(r"^\s*threads: (\d+)$", block, re.MULTILINE)
            jobs.append((rule.group(1), int(threads.group(1)) if threads else 1))
    return jobs


@pytest.mark.workflow
def test_latency_jobs_take_every_core_given_and_a_whole_slurm_node(tmp_path):
    """Nothing runs beside a latency job: locally it claims all of --cores, on SLURM a node."""
    jobs = planned_threads(snakemake(tmp_path, "-n", "--cores", "4", config=ROOT / "config.yaml").stdout)
    latency_threads = [threads for rule, threads in jobs if rule == "latency"]
    assert latency_threads == [4, 4]  # the default study times two models
    others = {rule for rule, threads in jobs if rule != "latency"}
    assert {"train_model", "attribute", "metrics"} <= others
    assert all(threads < 4 for rule, threads in jobs if rule != "latency")
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    assert "--exclusive" in profile["latency"]["slurm_extra"].split()
    assert profile["latency"]["slurm_partition"] == profile["attribute"]["slurm_partition"]  # the GPU one
