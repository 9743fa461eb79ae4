"""Common image corruptions (in the spirit of ImageNet-C) used to build OOD splits.

All functions take and return float images (N, H, W, 3) in [0, 1]; severity is 1, 2 or 3.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

NOISE_SIGMA = {1: 0.06, 2: 0.10, 3: 0.14}   # std of additive Gaussian noise, in [0, 1] units
BLUR_SIGMA = {1: 0.7, 2: 1.0, 3: 1.4}       # std of the Gaussian blur kernel, in pixels
CONTRAST_FACTOR = {1: 0.45, 2: 0.3, 3: 0.2}  # multiplier of the deviation from the image mean


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. Gaussian noise and clip to [0, 1]."""
    return np.clip(images + rng.normal(0.0, NOISE_SIGMA[severity], images.shape), 0.0, 1.0)


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur each channel spatially (not across images or channels)."""
    s = BLUR_SIGMA[severity]
    return gaussian_filter(images, sigma=(0, s, s, 0), mode="reflect")


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shrink each image towards its own mean colour."""
    mean = images.mean(axis=(1, 2), keepdims=True)
    return (images - mean) * CONTRAST_FACTOR[severity] + mean


CORRUPTIONS = {"gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "contrast": contrast}
SEVERITIES = (1, 2, 3)


def corrupt_images(images: np.ndarray, rng: np.random.Generator,
                   first_index: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one (corruption, severity) pair per image, cycling through all pairs.

    Args:
        images: uint8 (N, H, W, 3).
        rng: draws the noise.
        first_index: the position of ``images[0]`` in its split: image i gets pair
            (first_index + i) mod (number of pairs), so parts of a split cycle as the whole split would.
    Returns:
        corrupted uint8 images (N, H, W, 3), corruption names (N,) str, severities (N,) int.
    """
    pairs = [(name, sev) for name in CORRUPTIONS for sev in SEVERITIES]
    assignment = (first_index + np.arange(len(images))) % len(pairs)
    out = np.empty_like(images)
    for k, (name, severity) in enumerate(pairs):
        idx = np.flatnonzero(assignment == k)
        if idx.size:
            floats = images[idx].astype(np.float64) / 255.0
            out[idx] = np.round(CORRUPTIONS[name](floats, severity, rng) * 255.0).clip(0, 255).astype(np.uint8)
    names = np.array([pairs[k][0] for k in assignment], dtype=str)
    severities = np.array([pairs[k][1] for k in assignment], dtype=np.int64)
    return out, names, severities
