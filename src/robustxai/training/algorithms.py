"""Training algorithms: a registry mapping config names to objects with a uniform interface.

Each algorithm may convert the model before training (``prepare``), computes the loss of one batch
(``loss``) and converts the model back before it is saved (``finalize``).
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

    def __init__(self, attack: AttackSettings | None = None) -> None:
        del attack

    def set_eps_scale(self, factor: float) -> None:
        """Scale the training threat model's eps by ``factor`` in [0, 1] (the loop's eps ramp)."""

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (scalar loss, (N, K) logits whose accuracy is logged)."""
        logits = model(images)
        return F.cross_entropy(logits, labels), logits

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

    def loss(self, model, images, labels):
        adversarial = self.attack.attack(model, images, labels)
        logits = model(adversarial)
        return F.cross_entropy(logits, labels), logits


class AdvPropTraining(AdversarialTraining):
    """AdvProp (Xie et al. 2020): clean images through the main BNs, PGD images (crafted and trained
    through the auxiliary BNs) through the auxiliary ones; loss = CE(clean) + CE(adversarial)."""

    def prepare(self, model):
        return convert_to_dual_bn(model)

    def loss(self, model, images, labels):
        with auxiliary_bn(model):
            adversarial = self.attack.attack(model, images, labels)
            adversarial_loss = F.cross_entropy(model(adversarial), labels)
        logits = model(images)
        return F.cross_entropy(logits, labels) + adversarial_loss, logits

    def finalize(self, model):
        return strip_aux_bn(model)


ALGORITHMS = {"vanilla": VanillaTraining, "adversarial": AdversarialTraining, "advprop": AdvPropTraining}


def make_algorithm(name: str, attack: dict | None = None) -> VanillaTraining:
    """Build the algorithm registered as ``name`` with ``attack`` settings (a dict of AttackSettings fields)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown training algorithm '{name}', expected one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name](AttackSettings(**attack) if attack else None)
