"""Checkpoints: a plain dict of tensors and primitives, loadable with ``weights_only=True``.

Layout: ``{"format", "arch", "arch_args", "num_classes", "mean", "std", "state_dict", "meta"}``,
where ``state_dict`` is the :class:`ImageClassifier`'s (normaliser buffers included) and ``meta``
holds provenance (algorithm, training settings, seed, package versions); explainer models add
``"explainer"``, the settings their branch is rebuilt from. Every payload written by :func:`save_payload`
(checkpoints and training resume files) also holds ``"content_sha256"``, the checksum of the rest, which
:func:`load_payload` verifies.
"""
from __future__ import annotations

import os
import pickle

from pathlib import Path

import torch

from robustxai.files import atomic_output
from robustxai.integrity import CHECKSUM_KEY, CorruptFileError, check_checksum, content_sha256
from robustxai.models.wrapper import ImageClassifier, build_classifier

FORMAT = "robustxai-checkpoint-v1"


def save_checkpoint(model: ImageClassifier, path: str | os.PathLike, arch: str, num_classes: int,
                    arch_args: dict | None = None, meta: dict | None = None) -> None:
    """Write ``model`` to ``path`` atomically (temp name, then rename)."""
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
    save_payload(payload, path)


def save_payload(payload: dict, path: str | os.PathLike) -> None:
    """``torch.save`` a dict of tensors and primitives to ``path`` atomically, with its ``content_sha256``."""
    with atomic_output(path) as tmp:
        try:
            torch.save({**payload, CHECKSUM_KEY: content_sha256(payload)}, tmp)
        except (RuntimeError, OSError) as error:  # a full disk surfaces as torch's "unexpected pos" RuntimeError
            import shutil

            free = shutil.disk_usage(Path(tmp).parent).free
            raise OSError(f"{path}: writing the checkpoint failed ({error}); {free / 2**20:.0f} MiB free on its "
                          "disk: free space (or point config.results elsewhere) and rerun; nothing was replaced") from error


def load_payload(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The dict :func:`save_payload` wrote (``weights_only=True``), its checksum verified (files written
    before checksums have none); :class:`~robustxai.integrity.CorruptFileError` naming ``path`` when it is
    truncated or damaged."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise CorruptFileError.unreadable(path, "torch file", error) from error
    if not isinstance(payload, dict):
        raise CorruptFileError(path, f"a torch file holding a {type(payload).__name__}, not a dict")
    check_checksum(path, payload.get(CHECKSUM_KEY),
                   content_sha256({k: v for k, v in payload.items() if k != CHECKSUM_KEY}))
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[ImageClassifier, dict]:
    """Rebuild the model of a checkpoint (``weights_only=True``, ``strict=True``); returns (model, payload).

    The model is returned in eval mode.
    """
    payload = load_payload(path, map_location)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    model = build_classifier(payload["arch"], payload["num_classes"], payload["mean"], payload["std"],
                             payload["arch_args"], explainer=payload.get("explainer"))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval(), payload
