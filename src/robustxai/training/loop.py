"""The training loop shared by every algorithm: SGD with momentum, a warm-up + cosine, step, constant or
plateau LR schedule, translation / flip augmentation, per-epoch validation, and resumable epochs.

The plateau schedule trains at a constant LR until the training accuracy stops rising (``plateau_start``),
then decays it to 0 over ``decay_epochs`` and stops: each run gets the epochs it needs, up to ``epochs``.

Speed: batches are made from uint8 tensors on the fly; the memory layout (NCHW or channels-last) of
the training passes is measured per machine (``robustxai.tuning``, mode "off" keeps NCHW), and
``precision`` "auto" trains under bfloat16 autocast where the device computes it natively (weights,
optimiser and loss stay float32), else in float32."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robustxai.errors import NonFiniteError
from robustxai.data.splits import unit_float
from robustxai.integrity import CorruptFileError
from robustxai.models.checkpoint import load_payload, save_payload
from robustxai.models.inference import predict_logits
from robustxai.training.algorithms import VanillaTraining
from robustxai.tuning import LAYOUTS, adopt_fastest_layout

log = logging.getLogger(__name__)
SCHEDULES = ("cosine", "step", "constant", "plateau")
PADDINGS = ("reflect", "zeros")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainingSettings:
    """Optimiser, schedule and augmentation settings of one model (all from its config entry).

    Adversarial / AdvProp curriculum: the first ``clean_epochs`` train with eps = 0, then eps grows
    linearly to its configured value over ``eps_ramp_epochs`` (both 0 = full eps from the start).
    Small nets trained from scratch at full eps can stall at chance.

    Plateau schedule (``schedule: plateau``): ``epochs`` is the most a run may take. After warm-up the LR is
    constant until the training accuracy has risen by less than ``plateau_gain`` over ``plateau_patience``
    epochs while above ``plateau_floor`` (a plateau near chance, before a model finds its features, is not the
    end); then it decays to 0 (half cosine) over ``decay_epochs`` and the run stops. A run that never
    plateaus starts its decay ``decay_epochs`` before ``epochs``.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    translate: int = 2
    pad: str = "reflect"
    hflip: bool = False
    clean_epochs: float = 0.0
    eps_ramp_epochs: float = 0.0
    plateau_patience: int = 3
    plateau_gain: float = 0.01
    plateau_floor: float = 0.0
    decay_epochs: int = 3
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got '{self.schedule}'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got '{self.precision}'")
        if self.pad not in PADDINGS:
            raise ValueError(f"pad must be one of {PADDINGS}, got '{self.pad}'")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.schedule == "plateau" and not 0 < self.decay_epochs <= self.epochs:
            raise ValueError(f"decay_epochs must be in 1..epochs ({self.epochs}), got {self.decay_epochs}")
        if self.plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1, got {self.plateau_patience}")

    def plateau_epoch(self, train_accuracies: list[float]) -> int | None:
        """The number of epochs after which the training accuracies (in [0, 1], one per epoch run so far)
        first plateaued, or None: the first k after warm-up and after ``plateau_patience`` epochs, and at most
        ``epochs - decay_epochs``, with accuracy[k - 1] >= ``plateau_floor`` and accuracy[k - 1] -
        accuracy[k - 1 - patience] < ``plateau_gain``. Stable as epochs are added, so a resumed run decides
        as the uninterrupted one did."""
        first = max(self.plateau_patience + 1, math.ceil(self.warmup_epochs))  # a gain needs patience + 1 epochs
        for k in range(first, min(len(train_accuracies), self.epochs - self.decay_epochs) + 1):
            now, before = train_accuracies[k - 1], train_accuracies[k - 1 - self.plateau_patience]
            if now >= self.plateau_floor and now - before < self.plateau_gain:
                return k
        return None

    def decay_start(self, train_accuracies: list[float]) -> int:
        """The epoch (0-based) at which the plateau schedule's final decay starts, given the training
        accuracies of the epochs run so far: the plateau's (``plateau_epoch``), else ``epochs - decay_epochs``."""
        plateau = self.plateau_epoch(train_accuracies)
        return self.epochs - self.decay_epochs if plateau is None else plateau

    def final_epoch(self, train_accuracies: list[float]) -> int:
        """How many epochs the run takes in all, given the accuracies so far: ``epochs``, or for the plateau
        schedule its decay start (``decay_start``) plus ``decay_epochs``."""
        if self.schedule != "plateau":
            return self.epochs
        return self.decay_start(train_accuracies) + self.decay_epochs

    def eps_scale(self, step: int, steps_per_epoch: int) -> float:
        """Fraction of the training eps used at optimiser step ``step`` (see ``clean_epochs``)."""
        ramp_step = step + 1 - self.clean_epochs * steps_per_epoch
        if ramp_step <= 0:
            return 0.0
        if self.eps_ramp_epochs <= 0:
            return 1.0
        return min(1.0, ramp_step / (self.eps_ramp_epochs * steps_per_epoch))

    def lr_factor(self, step: int, steps_per_epoch: int, decay_start: int | None = None) -> float:
        """Multiplier of ``lr`` at optimiser step ``step`` (linear warm-up, then the schedule); ``decay_start``:
        the plateau schedule's (``decay_start``; None: ``epochs - decay_epochs``)."""
        epoch = step / steps_per_epoch
        if epoch < self.warmup_epochs:
            return (step + 1) / (self.warmup_epochs * steps_per_epoch)
        if self.schedule == "plateau":
            start = self.epochs - self.decay_epochs if decay_start is None else decay_start
            return 0.5 * (1 + math.cos(math.pi * min(max(epoch - start, 0.0) / self.decay_epochs, 1.0)))
        if self.schedule == "cosine":
            progress = (epoch - self.warmup_epochs) / max(self.epochs - self.warmup_epochs, 1e-8)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if self.schedule == "step":
            return self.gamma ** sum(epoch >= m for m in self.milestones)
        return 1.0


def augment(images: torch.Tensor, translate: int, hflip: bool, generator: torch.Generator,
            pad: str = "reflect") -> torch.Tensor:
    """Random translation by up to ``translate`` px (the image padded by ``translate`` px, "reflect" or
    "zeros", then randomly cropped back) and optional horizontal flips.

    images: (N, C, H, W); returns a new tensor of the same shape. Every channel of an image moves
    alike, so target maps stacked as extra channels stay aligned with their image.
    """
    n, _, h, w = images.shape
    out = images
    if translate > 0:
        padded = F.pad(images, (translate,) * 4, mode="reflect" if pad == "reflect" else "constant")
        offsets = torch.randint(0, 2 * translate + 1, (n, 2), generator=generator)
        out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
    return out


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (CUDA: compute capability >= 8.0;
    CPU: oneDNN's bf16 kernels, e.g. AVX512-BF16 / AMX), where they are faster than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training passes under ``precision`` ("fp32": None, no autocast; "bf16":
    bfloat16; "auto": bfloat16 where ``native_bf16``, else None)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


def settings_digest(*parts: dict) -> str:
    """A short stable hash of JSON-able settings (guards resume files against changed configs)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class TrainingResult:
    """What a finished training run returns: the final model, one history row per epoch, the epoch count
    after which ``train``'s ``stop`` ended it (None: it was not stopped) and, under the plateau schedule, the
    epoch count after which its training accuracy levelled off (``TrainingSettings.plateau_epoch``; None
    where it never did or another schedule ran)."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    stopped_at: int | None = None
    plateau_epoch: int | None = None


def train(model: nn.Module, algorithm: VanillaTraining, settings: TrainingSettings,
          train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
          val_labels: torch.Tensor, device: torch.device, resume_path: str | os.PathLike | None = None,
          resume_key: str = "", train_maps: torch.Tensor | None = None,
          stop: Callable[[list[dict]], bool] | None = None) -> TrainingResult:
    """Train ``model`` with ``algorithm``; returns the finalised model (on CPU) and the history.

    Args:
        train_images: (N, C, H, W) float in [0, 1], or uint8 in 0..255 (made float batch by batch, so a
            large training split takes a quarter of the memory); val_images: (M, C, H, W) float in
            [0, 1]; labels (N,) and (M,) int64.
        train_maps: (N, 1, H, W) target maps of the training images, for algorithms that
            ``needs_target_maps``; each is augmented together with its image.
        resume_path: where the state after each epoch is kept; a run with the same ``resume_key`` (a
            digest of the settings) continues from it, so a crash loses at most one epoch. Removed at
            the end.
        stop: called with the history before each epoch; True ends the run there (e.g. a mask-only
            control whose leak is already established).
    History rows: epoch, lr, loss, train_accuracy (on the batches the loss saw: adversarial ones for
    adversarial training), val_accuracy (clean), seconds, precision (the autocast dtype used: "float32"
    or "bfloat16") and layout (of the training passes).
    """
    if algorithm.needs_target_maps and (train_maps is None or len(train_maps) != len(train_images)):
        raise ValueError(f"{type(algorithm).__name__} needs one target map per training image")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = algorithm.prepare(model).to(device)
    optimizer = torch.optim.SGD(algorithm.parameter_groups(model), lr=settings.lr, momentum=settings.momentum,
                                nesterov=settings.nesterov, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_images) / settings.batch_size)
    dtype = autocast_dtype(settings.precision, device)
    precision = str(dtype or torch.float32).removeprefix("torch.")

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    with autocast():
        layout = adopt_fastest_layout(model, tuple(train_images.shape[1:]), "train", device,
                                      batch_size=settings.batch_size, inputs_in_model_layout=True,
                                      expected_inputs=settings.epochs * len(train_images))
    log.info("training passes: %s, %s", precision, layout)
    history, start_epoch = [], 0
    resume_path = Path(resume_path) if resume_path else None
    state = _resume_state(resume_path, device) if resume_path and resume_path.exists() else None
    if state is not None:
        if state.get("key") == resume_key:
            model.load_state_dict(state["model"], strict=True)
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history, start_epoch = state["history"], state["epoch"]
            log.info("resumed from %s after epoch %d", resume_path, start_epoch)
        else:
            log.info("ignoring %s: it was written for other settings", resume_path)
    accuracies, stopped_at = [row["train_accuracy"] for row in history], None
    for epoch in range(start_epoch, settings.epochs):
        if epoch >= settings.final_epoch(accuracies):
            break
        if stop is not None and history and stop(history):
            stopped_at = len(history)
            break
        decay_start = settings.decay_start(accuracies) if settings.schedule == "plateau" else None
        algorithm.train_mode(model)
        started = time.time()
        order = torch.randperm(len(train_images), generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}", mininterval=5.0)
        for batch in bar:
            step = epoch * steps_per_epoch + batch
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * settings.lr_factor(step, steps_per_epoch, decay_start) * group["lr_scale"]
            algorithm.set_eps_scale(settings.eps_scale(step, steps_per_epoch))
            idx = order[batch * settings.batch_size:(batch + 1) * settings.batch_size]
            batch_images = unit_float(train_images[idx])
            batch_images = batch_images if train_maps is None else torch.cat([batch_images, train_maps[idx]], 1)
            batch_images = augment(batch_images, settings.translate, settings.hflip, generator, settings.pad).to(device)
            images, maps = batch_images[:, :train_images.shape[1]], batch_images[:, train_images.shape[1]:]
            images = images.contiguous(memory_format=LAYOUTS[layout])
            labels = train_labels[idx].to(device)
            with autocast():
                loss, logits = (algorithm.loss(model, images, labels) if train_maps is None
                                else algorithm.loss(model, images, labels, maps))
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteError(
                    f"training diverged: the loss is {value} at epoch {epoch + 1}, step {batch + 1} of {steps_per_epoch} "
                    f"(lr {optimizer.param_groups[0]['lr']:.3g}); lower training.lr or check the data. Nothing was saved "
                    "from this epoch")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += value * len(idx)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        val_accuracy = (predict_logits(model, val_images).argmax(1) == val_labels).float().mean().item()
        history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "loss": total_loss / seen,
                        "train_accuracy": correct / seen, "val_accuracy": val_accuracy,
                        **algorithm.epoch_summary(), "seconds": time.time() - started, "precision": precision,
                        "layout": layout})
        accuracies.append(correct / seen)
        log.info("epoch %d: %s", epoch + 1, json.dumps(history[-1]))
        if resume_path:
            save_payload({"key": resume_key, "epoch": epoch + 1, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                          "torch_rng": torch.get_rng_state(), "history": history}, resume_path)
    model = algorithm.finalize(model).cpu().eval().to(memory_format=torch.contiguous_format)
    if resume_path:
        resume_path.unlink(missing_ok=True)
    plateau = settings.plateau_epoch(accuracies) if settings.schedule == "plateau" else None
    return TrainingResult(model=model, history=history, stopped_at=stopped_at, plateau_epoch=plateau)


def _resume_state(path: Path, device: torch.device) -> dict | None:
    """The state a resume file holds, or None (logged, naming the file) when it is corrupt: training then
    starts over, as the file only saves time."""
    try:
        return load_payload(path, map_location=device)
    except CorruptFileError as error:
        log.warning("ignoring %s: it is corrupt (%s); training starts from the first epoch", path, error.reason)
        return None


def settings_from_config(entry: dict) -> TrainingSettings:
    """TrainingSettings from a config mapping; unknown keys are an error naming them."""
    known = set(TrainingSettings.__dataclass_fields__)
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
    return TrainingSettings(**entry)


