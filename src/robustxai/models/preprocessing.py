"""The preprocessing pretrained weights were made for, as their timm pretrained config states it.

The study evaluates every model on its dataset's own crop (short side resized to ``image_size``, then
centre-cropped); this record says where a model's native preprocessing differs (e.g. Inception-v3: 299 px).
"""
from __future__ import annotations

from collections.abc import Mapping


def weights_preprocessing(pretrained_cfg: Mapping) -> dict:
    """From a timm pretrained config: ``input_size`` [C, H, W] (px), ``interpolation`` (e.g. bicubic),
    ``crop_pct`` (the centre crop's fraction of the resized short side) and ``mean`` / ``std`` (RGB, of
    [0, 1] pixels); a key the config lacks is None."""
    record = {key: pretrained_cfg.get(key) for key in ("input_size", "interpolation", "crop_pct", "mean", "std")}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in record.items()}


def native_input_size(meta: Mapping, evaluated_size: int) -> int | None:
    """The input side (px) a checkpoint's weights were made for: that of its recorded ``preprocessing``,
    ``evaluated_size`` for models trained here (on the study's own images), None when unknown (imports)."""
    if meta.get("preprocessing"):
        return int(meta["preprocessing"]["input_size"][-1])
    return evaluated_size if meta.get("source") == "train" else None
