"""Training algorithms: a registry mapping config names to objects with a uniform interface.

Each algorithm may convert the model before training (``prepare``), sets the modules' modes for a
training epoch (``train_mode``), computes the loss of one batch (``loss``; algorithms that learn maps
also get each image's target map, augmented like the image), reports per-epoch extras for the
history (``epoch_summary``) and converts the model back before it is saved (``finalize``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from robustxai.training.attacks import NORMS, eval_mode, pgd_attack
from robustxai.training.dual_bn import auxiliary_bn, convert_to_dual_bn, strip_aux_bn


@dataclass(frozen=True)
class AttackSettings:
    """A PGD threat model: ``norm`` ball of radius ``eps`` ([0, 1] pixel units), ``steps`` steps of
    ``step_size`` (default 2.5 * eps / steps), random start on or off."""

    norm: str = "linf"
    eps: float = 8 / 255
    steps: int = 7
    step_size: float | None = None
    random_init: bool = True

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"attack norm must be one of {NORMS}, got '{self.norm}'")

    def scaled(self, factor: float) -> "AttackSettings":
        """The same threat model with eps (and an explicit step size) multiplied by ``factor``."""
        step_size = None if self.step_size is None else self.step_size * factor
        return replace(self, eps=self.eps * factor, step_size=step_size)

    def attack(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images (N, C, H, W) for this threat model, crafted with BN in eval mode."""
        with eval_mode(model):
            return pgd_attack(model, images, labels, eps=self.eps, steps=self.steps, step_size=self.step_size,
                              norm=self.norm, random_init=self.random_init)


class VanillaTraining:
    """Cross-entropy on clean images."""

    #: whether ``loss`` needs a target map per training image (the loop then augments it with the image)
    needs_target_maps = False

    def __init__(self, attack: AttackSettings | None = None) -> None:
        del attack

    def set_eps_scale(self, factor: float) -> None:
        """Scale the training threat model's eps by ``factor`` in [0, 1] (the loop's eps ramp)."""

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def train_mode(self, model: nn.Module) -> None:
        """Put ``model`` in the modes of a training epoch (all modules in train mode)."""
        model.train()

    def parameter_groups(self, model: nn.Module) -> list[dict]:
        """The optimiser's parameter groups: ``params`` and ``lr_scale`` (a multiple of the schedule's
        learning rate); one group of every trainable parameter by default."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             maps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (scalar loss, (N, K) logits whose accuracy is logged); ``maps`` (N, 1, H, W) target maps
        are given to algorithms that ``needs_target_maps``."""
        logits = model(images)
        return F.cross_entropy(logits, labels), logits

    def epoch_summary(self) -> dict:
        """Extra history columns of the epoch that just ended (and a fresh count for the next)."""
        return {}

    def finalize(self, model: nn.Module) -> nn.Module:
        return model


class AdversarialTraining(VanillaTraining):
    """PGD adversarial training (Madry et al. 2018): cross-entropy on PGD examples only.

    The examples are crafted with batch norm in eval mode, so attack batches do not move the running
    statistics; the update itself runs in train mode.
    """

    def __init__(self, attack: AttackSettings | None = None) -> None:
        self.full_attack = attack or AttackSettings()
        self.attack = self.full_attack

    def set_eps_scale(self, factor: float) -> None:
        self.attack = self.full_attack.scaled(factor)

    def loss(self, model, images, labels, maps=None):
        adversarial = self.attack.attack(model, images, labels)
        logits = model(adversarial)
        return F.cross_entropy(logits, labels), logits


class AdvPropTraining(AdversarialTraining):
    """AdvProp (Xie et al. 2020): clean images through the main BNs, PGD images (crafted and trained
    through the auxiliary BNs) through the auxiliary ones; loss = CE(clean) + CE(adversarial)."""

    def prepare(self, model):
        return convert_to_dual_bn(model)

    def loss(self, model, images, labels, maps=None):
        with auxiliary_bn(model):
            adversarial = self.attack.attack(model, images, labels)
            adversarial_loss = F.cross_entropy(model(adversarial), labels)
        logits = model(images)
        return F.cross_entropy(logits, labels) + adversarial_loss, logits

    def finalize(self, model):
        return strip_aux_bn(model)


ALIGNMENT_LOSSES = ("l2", "mse")


def alignment_loss(predicted: torch.Tensor, target: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Distance of predicted maps (N, C, H, W) from target maps of the same shape, averaged over the
    batch: "l2" is the per-sample L2 norm ||E(h) - g||_2 of Zeng et al.'s Eq. 5, "mse" the per-sample
    mean squared difference."""
    difference = (predicted - target).flatten(1)
    if kind == "l2":
        return difference.norm(dim=1).mean()
    if kind == "mse":
        return difference.pow(2).mean(1).mean()
    raise ValueError(f"alignment loss must be one of {ALIGNMENT_LOSSES}, got '{kind}'")


class ExplainerTraining(VanillaTraining):
    """Zeng et al. 2021, Eq. 5: cross-entropy + ``weight`` x the alignment loss between the explainer
    branch's maps (before its final ReLU: see ``robustxai.models.explainer``) and the target maps (SmoothGrad of a robust twin, or of a standard model for the
    ablation), optimised jointly. With ``freeze_backbone`` only the branch learns (a post-hoc
    explainer of a given classifier): the net's weights and batch-norm statistics stay as loaded.
    The history gains ``alignment_loss`` per epoch.

    The branch learns at ``branch_lr_scale`` x the schedule's learning rate (the paper gives no
    branch learning rate). The L2-norm loss has a gradient of the same size however close the maps
    are, and the branch learns from it alone: at the backbone's rate its batch norms and ReLUs died
    and the maps became constant (tiny nets at lr 0.05, both seeds), at 0.1 x that rate they fit.
    """

    needs_target_maps = True

    def __init__(self, attack: AttackSettings | None = None, weight: float = 0.35, loss: str = "l2",
                 freeze_backbone: bool = False, branch_lr_scale: float = 0.1) -> None:
        del attack
        if loss not in ALIGNMENT_LOSSES:
            raise ValueError(f"alignment loss must be one of {ALIGNMENT_LOSSES}, got '{loss}'")
        self.weight, self.loss_kind, self.freeze_backbone = weight, loss, freeze_backbone
        self.branch_lr_scale = branch_lr_scale
        self._alignment_sum, self._seen = 0.0, 0

    def prepare(self, model):
        if getattr(model, "explainer", None) is None:
            raise ValueError("explainer training needs a model with an explainer branch")
        if self.freeze_backbone:
            for parameter in model.net.parameters():
                parameter.requires_grad_(False)
        return model

    def train_mode(self, model):
        model.train()
        if self.freeze_backbone:
            model.net.eval()

    def parameter_groups(self, model):
        branch = list(model.explainer.parameters())
        mine = {id(p) for p in branch}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in mine]
        return [{"params": rest, "lr_scale": 1.0}, {"params": branch, "lr_scale": self.branch_lr_scale}]

    def loss(self, model, images, labels, maps=None):
        if maps is None:
            raise ValueError("explainer training needs a target map per image")
        if self.freeze_backbone:
            with torch.no_grad():
                features = model.features(images)
                logits = model.net.forward_head(features)
            predicted = model.explainer.pre_activation(features)
        else:
            logits, predicted = model.classify_and_explain(images, pre_activation=True)
        alignment = alignment_loss(predicted, maps, self.loss_kind)
        self._alignment_sum += alignment.item() * len(images)
        self._seen += len(images)
        return F.cross_entropy(logits, labels) + self.weight * alignment, logits

    def epoch_summary(self):
        summary = {"alignment_loss": self._alignment_sum / max(self._seen, 1)}
        self._alignment_sum, self._seen = 0.0, 0
        return summary

    def finalize(self, model):
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model


ALGORITHMS = {"vanilla": VanillaTraining, "adversarial": AdversarialTraining, "advprop": AdvPropTraining,
              "explainer": ExplainerTraining}


def make_algorithm(name: str, attack: dict | None = None, settings: dict | None = None) -> VanillaTraining:
    """Build the algorithm registered as ``name`` with ``attack`` settings (a dict of AttackSettings
    fields) and its own ``settings`` (e.g. ExplainerTraining's weight, loss, freeze_backbone)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown training algorithm '{name}', expected one of {sorted(ALGORITHMS)}")
    try:
        return ALGORITHMS[name](AttackSettings(**attack) if attack else None, **(settings or {}))
    except TypeError as error:
        raise ValueError(f"training algorithm '{name}': {error}") from error
