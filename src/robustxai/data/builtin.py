"""The built-in dataset: real handwritten digits on cluttered backgrounds, with exact boxes and masks.

The 1,797 8x8 digits shipped with scikit-learn (no download) are split by writer sample into
train / val / test pools, scaled to a random size (at most half the image side, so the object covers
at most a quarter of the image), tinted with a colour that contrasts with the local background, and
pasted at a random position onto a generated background:

- ``texture`` backgrounds (train, val, test): multi-scale coloured noise plus distractor strokes;
- ``grating`` backgrounds (the ``ood_background`` split): oriented stripes plus distractor blobs,
  a family never seen in training;
- ``ood_corruption``: test-family scenes with Gaussian noise, blur or low contrast at three severities.

Everything is a deterministic function of the seed.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom
from tqdm import tqdm

from robustxai.data.corruptions import corrupt_images
from robustxai.data.splits import ImageSplit, boxes_from_masks

CLASS_NAMES = [str(d) for d in range(10)]
IN_DISTRIBUTION_SPLITS = ("train", "val", "test")
OOD_SPLITS = ("ood_background", "ood_corruption")
SPLITS = IN_DISTRIBUTION_SPLITS + OOD_SPLITS
POOL_FRACTIONS = {"train": 0.6, "val": 0.15, "test": 0.25}  # share of digit samples per pool
ALPHA_CUTOFF = 0.2  # digit opacity below this is dropped, so the mask is exactly the changed pixels


def texture_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-scale coloured noise with 2-5 distractor strokes: float (size, size, 3) in [0, 1]."""
    base = rng.uniform(0.15, 0.85, 3)
    coarse_grid = rng.normal(0, 0.18, (size // 8 + 2, size // 8 + 2, 3))
    coarse = zoom(coarse_grid, (size / coarse_grid.shape[0], size / coarse_grid.shape[1], 1), order=1)
    fine = gaussian_filter(rng.normal(0, 0.12, (size, size, 3)), sigma=(0.8, 0.8, 0))
    image = base + coarse[:size, :size] + fine
    for _ in range(rng.integers(2, 6)):
        _draw_stroke(image, rng)
    return np.clip(image, 0, 1)


def grating_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Oriented two-colour stripes with 1-3 distractor blobs: float (size, size, 3) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.08, 0.25), rng.uniform(0, 2 * np.pi)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
    colour_a, colour_b = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    image = wave[..., None] * colour_a + (1 - wave[..., None]) * colour_b
    for _ in range(rng.integers(1, 4)):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, size / 8)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.uniform(0, 1, 3)
    return image


BACKGROUNDS = {"texture": texture_background, "grating": grating_background}


def _draw_stroke(image: np.ndarray, rng: np.random.Generator) -> None:
    """Draw, in place, a 1-px polyline of 2-3 random segments in a random colour."""
    size = image.shape[0]
    points = rng.uniform(0, size - 1, (rng.integers(3, 5), 2))
    colour = rng.uniform(0, 1, 3)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        steps = int(np.hypot(y1 - y0, x1 - x0) * 2) + 2
        ys = np.round(np.linspace(y0, y1, steps)).astype(int)
        xs = np.round(np.linspace(x0, x1, steps)).astype(int)
        image[ys, xs] = colour


def digit_alpha(digit: np.ndarray, side: int) -> np.ndarray:
    """Opacity (side, side) in [0, 1] of an 8x8 scikit-learn digit (values 0-16) scaled to ``side`` px.

    Opacities below ``ALPHA_CUTOFF`` are set to 0, so every non-zero pixel visibly changes the image.
    """
    alpha = np.clip(zoom(digit.astype(np.float64) / 16.0, side / digit.shape[0], order=1) * 1.25, 0, 1)
    alpha = alpha[:side, :side]
    alpha[alpha < ALPHA_CUTOFF] = 0.0
    return alpha


def paste_digit(background: np.ndarray, alpha: np.ndarray, top: int, left: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-blend a digit onto ``background`` in a colour contrasting with the covered region.

    Args:
        background: float (H, W, 3) in [0, 1].
        alpha: digit opacity (h, w) in [0, 1], see :func:`digit_alpha`.
        top, left: position of the digit's top-left corner in pixels.
    Returns:
        the composite float (H, W, 3) and the object mask (H, W) bool: exactly the pixels with alpha > 0.
    """
    h, w = alpha.shape
    region = background[top:top + h, left:left + w]
    bright_background = region.mean() > 0.5
    colour = rng.uniform(0.0, 0.25, 3) if bright_background else rng.uniform(0.75, 1.0, 3)
    full_alpha = np.zeros(background.shape[:2])
    full_alpha[top:top + h, left:left + w] = alpha
    image = background * (1 - full_alpha[..., None]) + colour * full_alpha[..., None]
    return image, full_alpha > 0


def render_scenes(digits: np.ndarray, labels: np.ndarray, count: int, background: str,
                  image_size: int, rng: np.random.Generator, desc: str = "") -> ImageSplit:
    """Render ``count`` scenes, each a random digit from ``digits`` (M, 8, 8) on a ``background``.

    The digit side is uniform in [0.34, 0.5] x ``image_size`` and its position uniform in the image.
    """
    make_background = BACKGROUNDS[background]
    images = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((count, image_size, image_size), dtype=bool)
    chosen = rng.integers(0, len(digits), count)
    smallest, largest = round(0.34 * image_size), image_size // 2
    for i in tqdm(range(count), desc=desc, mininterval=2.0):
        side = int(rng.integers(smallest, largest + 1))
        top, left = rng.integers(0, image_size - side + 1, 2)
        image, masks[i] = paste_digit(make_background(image_size, rng), digit_alpha(digits[chosen[i]], side),
                                      int(top), int(left), rng)
        images[i] = np.round(np.clip(image, 0, 1) * 255)
    return ImageSplit(images=images, labels=labels[chosen].astype(np.int64), boxes=boxes_from_masks(masks),
                      class_names=CLASS_NAMES, masks=masks)


def make_builtin_splits(sizes: dict[str, int], image_size: int = 32, seed: int = 0) -> dict[str, ImageSplit]:
    """Generate every split of the built-in dataset.

    Args:
        sizes: number of images per split name in ``SPLITS``.
        image_size: side of the square images in pixels (>= 16).
        seed: everything is a deterministic function of it.
    Returns:
        split name -> ImageSplit (uint8 images (N, S, S, 3), boxes, masks; ``ood_corruption`` also
        carries the extras ``corruption`` and ``severity``).
    """
    missing = set(SPLITS) - set(sizes)
    if missing:
        raise ValueError(f"built-in dataset needs a size for splits {sorted(missing)}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
    from sklearn.datasets import load_digits  # seconds to import: only when generating

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    n_train = int(POOL_FRACTIONS["train"] * len(order))
    n_val = int(POOL_FRACTIONS["val"] * len(order))
    pools = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    images8 = digits.images  # (1797, 8, 8), values 0..16
    plan = {"train": ("train", "texture"), "val": ("val", "texture"), "test": ("test", "texture"),
            "ood_background": ("test", "grating"), "ood_corruption": ("test", "texture")}
    splits = {}
    for name in SPLITS:
        pool, background = plan[name]
        split_rng = np.random.default_rng([seed, SPLITS.index(name)])
        idx = pools[pool]
        splits[name] = render_scenes(images8[idx], digits.target[idx], sizes[name], background,
                                     image_size, split_rng, desc=name)
    corrupted, corruption, severity = corrupt_images(splits["ood_corruption"].images, np.random.default_rng(seed))
    splits["ood_corruption"].images = corrupted
    splits["ood_corruption"].extras = {"corruption": corruption, "severity": severity}
    return splits
