"""Batch-size and layout tuning: bounded, robust to load, cached per machine, and off when asked."""
import time

import pytest
import torch
from torch import nn

from robustxai import tuning
from robustxai.attribution import make_method
from robustxai.models import build_classifier
from robustxai.tuning import (LAYOUTS, adopt_fastest_layout, choose_batch_size, current_mode, default_batch_size,
                              measure_candidates, tuned_batch_size, tuning_mode)

CPU = torch.device("cpu")


class Sleeper(nn.Module):
    """A model whose pass over a batch of b inputs takes fixed + per_input * b^power seconds; it
    records the batch sizes it ran."""

    def __init__(self, fixed, per_input, power=1):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.fixed, self.per_input, self.power, self.sizes_run = fixed, per_input, power, []

    def forward(self, x):
        self.sizes_run.append(len(x))
        time.sleep(self.fixed + self.per_input * len(x) ** self.power)
        return self.scale * x.flatten(1)[:, :2]


class Counter(nn.Module):
    """A linear model that records the batch size of every pass."""

    def __init__(self):
        super().__init__()
        self.fc, self.sizes_run = nn.Linear(3 * 8 * 8, 4), []

    def forward(self, x):
        self.sizes_run.append(len(x))
        return self.fc(x.flatten(1))


def test_the_default_wins_unless_a_candidate_is_clearly_faster_at_the_median():
    # medians per input: 32 -> 1.0, 64 -> 0.97 (3 % faster: not enough), 128 -> 0.5 but timed once
    timings = {32: [1.0, 1.2, 0.9], 64: [0.97, 5.0, 0.96], 128: [0.5]}
    assert choose_batch_size(timings, 32) == 32
    timings[16] = [0.8, 9.0, 0.85]  # one load spike: the median still says 16 is 15 % faster
    assert choose_batch_size(timings, 32) == 16


def test_candidates_are_measured_in_interleaved_rounds_within_the_budget():
    calls = []

    def measure(size):
        calls.append(size)
        return 0.001 * size  # one second per thousand inputs, at every size

    per_input = measure_candidates(measure, [32, 64, 16], first_seconds=0.032, budget=10.0, rounds=3)
    # round 1: warm-up + timing for each new size; rounds 2 and 3 interleave every size once
    assert calls == [64, 64, 16, 16, 32, 64, 16, 32, 64, 16]
    assert {size: len(times) for size, times in per_input.items()} == {32: 3, 64: 3, 16: 3}
    calls.clear()
    measure_candidates(measure, [32, 64, 128], first_seconds=0.032, budget=0.2, rounds=3)
    assert sum(0.001 * size for size in calls) <= 0.2

    def superlinear(size):
        calls.append(size)
        return 1e-6 * size ** 2

    calls.clear()
    measure_candidates(superlinear, [32, 64, 16, 128, 256], first_seconds=1e-6 * 32 ** 2, budget=10.0)
    assert 128 not in calls and 256 not in calls  # 64 was already twice as slow per input


def test_tuning_picks_the_cheaper_size_and_stays_within_its_share_of_the_job():
    overhead_bound = Sleeper(fixed=0.01, per_input=1e-5)  # per-input time falls with the batch size
    expected = 200_000  # inputs: about 60 s of passes at the default batch of 32
    started = time.perf_counter()
    assert tuned_batch_size(overhead_bound, (1, 2, 2), "gradient", CPU, expected) == 256
    spent = time.perf_counter() - started
    job_seconds = expected / 32 * (0.01 + 32e-5)
    assert spent < tuning.TUNING_SHARE * job_seconds + 0.5
    superlinear = Sleeper(fixed=0.0, per_input=1e-4, power=2)  # per-input time grows with the batch size
    assert tuned_batch_size(superlinear, (1, 2, 2), "gradient", CPU, 100_000) in (4, 8)  # below half the default
    with pytest.raises(ValueError, match="kind must be"):
        tuned_batch_size(superlinear, (1, 2, 2), "backward", CPU, 10)


def test_auto_on_a_tiny_job_runs_no_tuning_pass_and_keeps_the_maps():
    torch.manual_seed(0)
    model, images, targets = Counter(), torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    method = make_method("smoothgrad", samples=4, batch_size="auto")
    started = time.perf_counter()
    maps = method.explain(model, images, targets)
    assert time.perf_counter() - started < 0.5
    assert method.batch_size == default_batch_size("gradient", CPU) == 32
    assert model.sizes_run == [16]  # the job's own 16 inputs, one pass: nothing was spent on tuning
    model.sizes_run.clear()
    assert torch.allclose(maps, make_method("smoothgrad", samples=4, batch_size=3).explain(model, images, targets),
                          atol=1e-6)
    assert model.sizes_run == [3, 3, 3, 3, 3, 1]  # noisy copies are built one batch at a time


def test_results_are_cached_across_jobs_through_the_cache_folder(tmp_path):
    with tuning_mode("auto", tmp_path):
        first = Sleeper(fixed=0.01, per_input=1e-5)
        size = tuned_batch_size(first, (1, 2, 2), "forward", CPU, 1_000_000)
        assert first.sizes_run and len(list(tmp_path.glob("*.json"))) == 1
        second = Sleeper(fixed=0.01, per_input=1e-5)  # another job, same architecture: no pass at all
        assert tuned_batch_size(second, (1, 2, 2), "forward", CPU, 1_000_000) == size
        assert second.sizes_run == []
        other_shape = Sleeper(fixed=0.01, per_input=1e-5)
        tuned_batch_size(other_shape, (1, 3, 3), "forward", CPU, 1_000_000)
        assert other_shape.sizes_run


@pytest.mark.parametrize("edited", [0, "abc", -4, True])
def test_an_edited_cache_record_is_ignored_naming_its_file(tmp_path, caplog, edited):
    import json
    import logging

    with tuning_mode("auto", tmp_path):
        tuned_batch_size(Sleeper(fixed=0.01, per_input=1e-5), (1, 2, 2), "forward", CPU, 1_000_000)
    record_path = next(tmp_path.glob("*.json"))
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "value": edited}))
    with tuning_mode("auto", tmp_path), caplog.at_level(logging.WARNING):
        again = Sleeper(fixed=0.01, per_input=1e-5)
        assert tuned_batch_size(again, (1, 2, 2), "forward", CPU, 1_000_000) >= 1
    assert again.sizes_run  # tuned again
    assert f"{record_path}: ignoring a tuning record whose value {edited!r} is not a valid result" in caplog.text


def test_mode_off_measures_nothing_and_uses_fixed_defaults():
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    with tuning_mode("off"):
        assert current_mode() == "off"
        assert tuned_batch_size(model, (3, 32, 32), "forward", CPU, 10**9) == 64
        model.to(memory_format=torch.channels_last)
        assert adopt_fastest_layout(model, (3, 32, 32), "gradient", CPU, batch_size=8) == "contiguous"
    assert calls == [] and current_mode() == "auto"
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous()
    with pytest.raises(ValueError, match="tuning must be one of"):
        with tuning_mode("fast"):
            pass


def test_candidates_stay_within_the_job_s_memory_request():
    from robustxai.tuning import available_bytes, candidate_sizes

    unbounded = available_bytes(CPU)
    with tuning_mode("auto", memory_mb=unbounded / 2**20 + 4096):
        assert available_bytes(CPU) == pytest.approx(unbounded, rel=0.2)  # a request above what is free: no cap
    with tuning_mode("auto", memory_mb=1):  # below what the process already holds
        assert available_bytes(CPU) == 0
    assert candidate_sizes(32, largest=100) == [32, 64, 16, 100, 4, 8]  # 4x and 8x capped at 100
    assert candidate_sizes(64, largest=10**6) == [64, 128, 32, 256, 8, 512, 16]  # down to an eighth
    assert candidate_sizes(32, largest=8) == [8, 4]


def test_adopted_layout_is_applied_and_keeps_the_outputs():
    torch.manual_seed(0)
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        before = model(images)
    layout = adopt_fastest_layout(model, (3, 32, 32), "gradient", CPU, batch_size=8)
    assert layout in LAYOUTS
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=LAYOUTS[layout])
    with torch.no_grad():
        assert torch.allclose(model(images), before, atol=1e-5)
    with pytest.raises(ValueError, match="kind must be"):
        adopt_fastest_layout(model, (3, 32, 32), "backward", CPU)
    small = build_classifier("cifar_resnet_tiny", 10).eval()
    calls = []
    small.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    assert adopt_fastest_layout(small, (3, 32, 32), "gradient", CPU, batch_size=8, expected_inputs=100) == "contiguous"
    assert calls == []  # a job of 100 inputs is too small to spend 8 passes of 8 timing layouts


def test_training_layout_is_timed_on_a_copy_so_statistics_and_gradients_stay_untouched():
    torch.manual_seed(0)
    model = build_classifier("cifar_resnet_tiny", 10).train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    layout = adopt_fastest_layout(model, (3, 32, 32), "train", CPU, batch_size=8)
    assert layout in LAYOUTS
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=LAYOUTS[layout])
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_integrated_gradients_never_holds_more_than_a_batch_of_path_points():
    torch.manual_seed(0)
    model, images, targets = Counter(), torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2])
    maps = make_method("integrated_gradients", steps=10, batch_size=4).explain(model, images, targets)
    assert max(model.sizes_run) == 4 and sum(model.sizes_run) == 3 * 11
    # a linear model's IG is exactly (x - 0) * w, summed over channels
    weights = model.fc.weight[targets].view(3, 3, 8, 8).detach()
    assert torch.allclose(maps, (images * weights).sum(1), atol=1e-6)


@pytest.mark.parametrize("per_image, batch_size", [(1, 4), (3, 2), (3, 3), (3, 7), (5, 4), (2, 64)])
def test_expanded_inputs_sum_into_their_own_image_whatever_the_batches(per_image, batch_size):
    from robustxai.attribution.base import summed_input_gradients

    torch.manual_seed(0)
    model, images, targets = Counter(), torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    draws_scale = torch.arange(1.0, per_image + 1)  # draw k of image i is (k + 1) * (i + 1) * image i
    total = summed_input_gradients(model, images, targets, per_image,
                                   lambda rows, draws: images[rows] * draws_scale[draws].view(-1, 1, 1, 1),
                                   batch_size, weigh=lambda g, rows, draws: g * (rows + 1).view(-1, 1, 1, 1))
    # a linear model's input gradient is its weight row: image i sums per_image x (i + 1) of them
    weights = model.fc.weight[targets].view(4, 3, 8, 8).detach()
    expected = weights * (per_image * torch.arange(1.0, 5)).view(-1, 1, 1, 1)
    assert torch.allclose(total, expected, atol=1e-5)
    assert max(model.sizes_run) <= batch_size and sum(model.sizes_run) == 4 * per_image
