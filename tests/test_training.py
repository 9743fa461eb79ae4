import pytest
import torch

from robustxai.data.builtin import make_builtin_splits
from robustxai.data.splits import save_split
from robustxai.models import load_checkpoint
from robustxai.pipeline.models import train_model_job
from robustxai.models import build_classifier
from robustxai.training.algorithms import AdversarialTraining, AttackSettings, make_algorithm
from robustxai.training import loop
from robustxai.training.loop import TrainingSettings, augment, autocast_dtype, settings_from_config, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    splits = make_builtin_splits({"train": 2000, "val": 300, "test": 1, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=1)
    return splits["train"].tensors() + splits["val"].tensors()


def test_vanilla_training_beats_chance_by_far(digits):
    model = build_classifier("cifar_vgg_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    result = train(model, make_algorithm("vanilla"),
                   TrainingSettings(epochs=6, lr=0.05, batch_size=32, weight_decay=0.0), *digits, device=CPU)
    assert [row["epoch"] for row in result.history] == list(range(1, 7))
    assert result.history[-1]["val_accuracy"] > 0.35  # chance is 0.1
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert not result.model.training


def test_precision_auto_is_bfloat16_only_where_the_device_computes_it_natively(monkeypatch):
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    assert autocast_dtype("auto", CPU) is None
    monkeypatch.setattr(loop, "native_bf16", lambda device: True)
    assert autocast_dtype("auto", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainingSettings(precision="fp16")


def test_bfloat16_training_beats_chance_and_keeps_float32_weights(digits):
    torch.manual_seed(0)
    model = build_classifier("cifar_vgg_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    result = train(model, make_algorithm("vanilla"),
                   TrainingSettings(epochs=6, lr=0.05, batch_size=32, weight_decay=0.0, precision="bf16"),
                   *digits, device=CPU)
    assert {row["precision"] for row in result.history} == {"bfloat16"}
    assert result.history[-1]["val_accuracy"] > 0.35  # chance is 0.1
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in result.model.parameters())


class CrashAt:
    """Wraps an algorithm and raises at a given optimiser step, like a killed job."""

    def __init__(self, inner, step):
        self.inner, self.step, self.calls = inner, step, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, model, images, labels):
        self.calls += 1
        if self.calls == self.step:
            raise KeyboardInterrupt("simulated crash")
        return self.inner.loss(model, images, labels)


def test_a_crashed_run_resumes_to_identical_weights(digits, tmp_path):
    x, y, xv, yv = (t[:256] for t in digits)
    settings = TrainingSettings(epochs=3, batch_size=64, lr=0.05, eps_ramp_epochs=1)
    attack = AttackSettings(eps=0.03, steps=1)

    def run(algorithm, resume):
        torch.manual_seed(123)  # a different global state must not matter: train() seeds itself
        model = build_classifier("cifar_vgg_tiny", 10)
        return train(model, algorithm, settings, x, y, xv, yv, CPU, resume_path=resume, resume_key="k")

    reference = run(AdversarialTraining(attack), None)
    with pytest.raises(KeyboardInterrupt):
        run(CrashAt(AdversarialTraining(attack), step=4 * 2 + 2), tmp_path / "state")  # in epoch 3
    assert (tmp_path / "state").exists()
    resumed = run(AdversarialTraining(attack), tmp_path / "state")
    assert not (tmp_path / "state").exists()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in reference.history]
    for a, b in zip(resumed.model.state_dict().values(), reference.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_state_from_other_settings_is_ignored(digits, tmp_path):
    x, y, xv, yv = (t[:64] for t in digits)
    settings = TrainingSettings(epochs=1, batch_size=64)
    train(build_classifier("cifar_vgg_tiny", 10), CrashAt(make_algorithm("vanilla"), step=99), settings,
          x, y, xv, yv, CPU, resume_path=tmp_path / "s", resume_key="old")
    result = train(build_classifier("cifar_vgg_tiny", 10), make_algorithm("vanilla"),
                   TrainingSettings(epochs=2, batch_size=64), x, y, xv, yv, CPU, resume_path=tmp_path / "s",
                   resume_key="new")
    assert len(result.history) == 2


def test_schedules():
    s = TrainingSettings(epochs=10, warmup_epochs=1, schedule="cosine", eps_ramp_epochs=2)
    assert s.lr_factor(0, 100) == pytest.approx(0.01)
    assert s.lr_factor(99, 100) == pytest.approx(1.0)
    assert s.lr_factor(550, 100) == pytest.approx(0.5)  # half way through the cosine part
    assert s.lr_factor(999, 100) < 1e-3
    assert s.eps_scale(49, 100) == pytest.approx(0.25) and s.eps_scale(500, 100) == 1.0
    curriculum = TrainingSettings(epochs=10, clean_epochs=2, eps_ramp_epochs=4)
    assert curriculum.eps_scale(199, 100) == 0.0  # last step of the clean epochs
    assert curriculum.eps_scale(399, 100) == pytest.approx(0.5) and curriculum.eps_scale(600, 100) == 1.0
    assert TrainingSettings(clean_epochs=1).eps_scale(100, 100) == 1.0  # no ramp: full eps after the clean part
    step = TrainingSettings(epochs=10, warmup_epochs=0, schedule="step", milestones=[5, 8], gamma=0.1)
    assert [step.lr_factor(e * 10, 10) for e in (0, 5, 8)] == pytest.approx([1.0, 0.1, 0.01])


def test_plateau_schedule_decays_once_training_accuracy_stops_rising_above_its_floor():
    s = TrainingSettings(epochs=20, warmup_epochs=1, schedule="plateau", plateau_patience=2, plateau_gain=0.02,
                         plateau_floor=0.5, decay_epochs=3)
    chance_then_climb = [0.10, 0.11, 0.11, 0.12, 0.30, 0.60, 0.80, 0.90, 0.91, 0.915]
    # flat near chance (epochs 2-4) is below the floor; the first flat stretch above it ends at epoch 10
    assert s.decay_start(chance_then_climb[:9]) == 17  # not decided yet: the latest start, epochs - decay_epochs
    assert s.decay_start(chance_then_climb) == 10 and s.final_epoch(chance_then_climb) == 13
    assert s.decay_start(chance_then_climb + [0.99, 0.99]) == 10  # stable as epochs are added (resume)
    assert s.decay_start([0.1 + 0.05 * k for k in range(20)]) == 17  # never plateaus: decays at the end
    assert s.plateau_epoch(chance_then_climb) == 10 and s.plateau_epoch([0.1 + 0.05 * k for k in range(20)]) is None
    fast = [0.131, 0.441, 0.746, 0.869, 0.934, 0.969]  # vgg_tiny on the digits: above the floor by epoch 3
    assert [s.plateau_epoch(fast[:k]) for k in range(1, 7)] == [None] * 6  # a gain needs patience + 1 epochs
    assert s.final_epoch([0.1 + 0.05 * k for k in range(20)]) == 20
    assert [s.lr_factor(e * 10, 10, decay_start=10) for e in (0, 5, 10)] == pytest.approx([0.1, 1.0, 1.0])
    assert s.lr_factor(115, 10, decay_start=10) == pytest.approx(0.5)  # half way through the 3-epoch decay
    assert s.lr_factor(129, 10, decay_start=10) < 0.01 and s.lr_factor(15 * 10, 10) == 1.0  # undecided: constant
    assert TrainingSettings(epochs=20, schedule="cosine").final_epoch([0.99] * 5) == 20
    with pytest.raises(ValueError, match="decay_epochs must be in 1..epochs"):
        TrainingSettings(epochs=2, schedule="plateau", decay_epochs=3)


def test_plateau_schedule_stops_a_run_early_and_a_resumed_run_stops_alike(digits, tmp_path):
    x, y, xv, yv = (t[:512] for t in digits)
    settings = TrainingSettings(epochs=12, batch_size=64, lr=0.05, schedule="plateau", plateau_patience=1,
                                plateau_gain=1.0, plateau_floor=0.0, decay_epochs=2)  # any epoch is a plateau

    def run(algorithm, resume=None):
        return train(build_classifier("cifar_vgg_tiny", 10), algorithm, settings, x, y, xv, yv, CPU,
                     resume_path=resume, resume_key="k")

    reference = run(make_algorithm("vanilla"))
    assert [row["epoch"] for row in reference.history] == [1, 2, 3, 4]  # plateau after epoch 2, 2 decay epochs
    assert reference.plateau_epoch == 2 and reference.stopped_at is None
    assert reference.history[-1]["lr"] < 0.05 * 0.01
    with pytest.raises(KeyboardInterrupt):
        run(CrashAt(make_algorithm("vanilla"), step=8 + 3), tmp_path / "state")  # in epoch 2
    resumed = run(make_algorithm("vanilla"), tmp_path / "state")
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in reference.history]


def test_augment_shifts_within_the_padding():
    images = torch.zeros(8, 1, 6, 6)
    images[:, :, 2, 3] = 1.0
    out = augment(images, translate=1, hflip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    for image in out:
        (row, col), = torch.nonzero(image[0] == 1.0).tolist()
        assert abs(row - 2) <= 1 and abs(col - 3) <= 1


def test_unknown_training_setting_is_named():
    with pytest.raises(ValueError, match="epochz"):
        settings_from_config({"epochz": 3})
    with pytest.raises(ValueError, match="unknown training algorithm 'free'"):
        make_algorithm("free")


def test_training_job_is_reproducible(tmp_path):
    splits = make_builtin_splits({"train": 64, "val": 16, "test": 1, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=0)
    save_split(splits["train"], tmp_path / "train.h5")
    save_split(splits["val"], tmp_path / "val.h5")
    entry = {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 10, "algorithm": "advprop",
             "mean": [0.5] * 3, "std": [0.25] * 3, "attack": {"eps": 0.03, "steps": 1},
             "training": {"epochs": 1, "batch_size": 32, "seed": 5}}
    states = []
    for run in ("a", "b"):
        torch.manual_seed(hash(run) % 1000)  # whatever the global RNG holds, the job seeds itself
        train_model_job("m", entry, str(tmp_path / "train.h5"), str(tmp_path / "val.h5"),
                        str(tmp_path / f"{run}.pt"), str(tmp_path / f"{run}.csv"))
        states.append(load_checkpoint(tmp_path / f"{run}.pt")[0].state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert (tmp_path / "a.csv").read_text().splitlines()[1].split(",")[:5] == \
        (tmp_path / "b.csv").read_text().splitlines()[1].split(",")[:5]


def test_uint8_training_images_train_exactly_as_float_ones():
    """A large split is held as uint8 and made float batch by batch: the same weights to the bit."""
    splits = make_builtin_splits({"train": 96, "val": 32, "test": 1, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=2)
    settings = TrainingSettings(epochs=1, lr=0.05, batch_size=32, weight_decay=0.0)
    weights = []
    for dtype in ("float", "uint8"):
        images, labels = splits["train"].tensors(dtype)
        assert images.dtype == (torch.uint8 if dtype == "uint8" else torch.float32)
        torch.manual_seed(0)  # the same initial weights
        result = train(build_classifier("cifar_vgg_tiny", 10), make_algorithm("vanilla"), settings, images, labels,
                       *splits["val"].tensors(), device=CPU)
        weights.append(result.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
