"""Checkpoints: a plain dict of tensors and primitives, loadable with ``weights_only=True``.

Layout: ``{"format", "arch", "arch_args", "num_classes", "mean", "std", "state_dict", "meta"}``,
where ``state_dict`` is the :class:`ImageClassifier`'s (normaliser buffers included) and ``meta``
holds provenance (algorithm, training settings, seed, package versions); explainer models add
``"explainer"``, the settings their branch is rebuilt from.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from robustxai.models.wrapper import ImageClassifier, build_classifier

FORMAT = "robustxai-checkpoint-v1"


def save_checkpoint(model: ImageClassifier, path: str | os.PathLike, arch: str, num_classes: int,
                    arch_args: dict | None = None, meta: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "arch": arch,
        "arch_args": dict(arch_args or {}),
        "num_classes": int(num_classes),
        "mean": model.normalize.mean.flatten().tolist(),
        "std": model.normalize.std.flatten().tolist(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if model.explainer is not None:
        payload["explainer"] = dict(model.explainer.settings)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[ImageClassifier, dict]:
    """Rebuild the model of a checkpoint (``weights_only=True``, ``strict=True``); returns (model, payload).

    The model is returned in eval mode.
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    model = build_classifier(payload["arch"], payload["num_classes"], payload["mean"], payload["std"],
                             payload["arch_args"], explainer=payload.get("explainer"))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval(), payload
