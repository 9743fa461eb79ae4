"""Localisation metrics against ground-truth boxes: pointing game, energy in box, box IoU.

None runs the model. Maps are cleaned with ``finite_maps`` first (see ``robustxai.metrics.base``).
An image without a box (``MetricBatch.has_box``) gets NaN in every column, which every mean and
statistic of the aggregation leaves out.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from robustxai.metrics.base import Metric, MetricBatch, finite_maps


class BoxMetric(Metric):
    """A metric against ground-truth boxes: subclasses implement ``score``; ``__call__`` sets NaN for
    images without a box."""

    needs_boxes = True

    def score(self, batch: MetricBatch) -> dict[str, torch.Tensor]:
        """Per-image columns, name -> (N,) float tensor (values of images without a box are ignored)."""
        raise NotImplementedError

    def __call__(self, model, batch: MetricBatch):
        present = batch.has_box()
        return {name: torch.where(present, values.float(), torch.nan) for name, values in self.score(batch).items()}


class PointingGame(BoxMetric):
    """Hit (1.0) if the map's maximum (the first in raster order on ties) lies within ``tolerance``
    pixels of the box, else 0.0 (Zhang et al. 2018; TorchRay's 15 px). ``tolerance`` is given for
    ``reference_size`` (224) pixels and scaled to the image: 15 px at 224 is 2.14 px at 32."""

    higher_is_better = {"pointing_game": True}

    def __init__(self, tolerance: float = 15.0, reference_size: int = 224) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.tolerance, self.reference_size = tolerance, reference_size

    def score(self, batch: MetricBatch):
        n, h, w = batch.maps.shape
        radius = self.tolerance * min(h, w) / self.reference_size
        peak = finite_maps(batch.maps).flatten(1).argmax(1)
        y, x = (peak // w).float(), (peak % w).float()
        x0, y0, x1, y1 = batch.boxes.float().unbind(1)
        dx = torch.clamp(torch.maximum(x0 - x, x - (x1 - 1)), min=0)
        dy = torch.clamp(torch.maximum(y0 - y, y - (y1 - 1)), min=0)
        return {"pointing_game": (dx.pow(2) + dy.pow(2) <= radius ** 2 + 1e-9).float()}


class EnergyInBox(BoxMetric):
    """Share of the map's positive mass inside the box (Score-CAM's energy-based pointing game), in
    [0, 1]. A map with no positive mass scores the box's share of the image, as a uniform map does."""

    higher_is_better = {"energy_in_box": True}

    def score(self, batch: MetricBatch):
        positive = finite_maps(batch.maps).clamp_min(0)
        inside = batch.box_masks()
        total = positive.flatten(1).sum(1)
        area_share = inside.flatten(1).float().mean(1)
        share = (positive * inside).flatten(1).sum(1) / total.clamp_min(1e-30)
        return {"energy_in_box": torch.where(total > 0, share, area_share)}


def component_box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1), exclusive ends, of the largest 4-connected component of a (H, W) bool
    array (the lowest label on ties), or None if it is empty."""
    labels, count = ndimage.label(region)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    rows, cols = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes with exclusive ends."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class BoxIoU(BoxMetric):
    """Weakly-supervised localisation (Zhou et al. 2016): keep pixels above ``threshold`` x the map's
    maximum (positive maps only), box the largest connected component, and report its IoU with the
    ground-truth box and whether it is at least ``hit_iou`` (0.5). No positive value: IoU 0."""

    higher_is_better = {"box_iou": True}

    def __init__(self, threshold: float = 0.2, hit_iou: float = 0.5) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold, self.hit_iou = threshold, hit_iou

    def score(self, batch: MetricBatch):
        maps = finite_maps(batch.maps).cpu().numpy()
        values = []
        for single, box in zip(maps, batch.boxes.cpu().tolist()):
            peak = single.max()
            predicted = component_box(single >= self.threshold * peak) if peak > 0 else None
            values.append(box_iou(predicted, tuple(box)) if predicted else 0.0)
        iou = torch.tensor(values, dtype=torch.float32)
        return {"box_iou": iou, "box_localised": (iou >= self.hit_iou).float()}
