"""Localisation metrics against ground-truth boxes: pointing game, energy in box, box IoU.

None runs the model. Maps are cleaned with ``finite_maps`` first (see ``robustxai.metrics.base``).
An image without a box (``MetricBatch.has_box``) gets NaN in every column, which every mean and
statistic of the aggregation leaves out.

Energy in box and box IoU follow their reference codes and min-max rescale each map first
(``rescale: minmax``, the default), so a map's offset does not count: a map on a positive floor
(RISE's) is scored like the same map on zero. ``rescale: none`` scores the raw map (its positive
part). A constant map (flagged ``degenerate``) rescales to zero everywhere: no mass, no region.
All three are computed for the whole batch at once: boxes are broadcast as row and column spans,
connected components are labelled in one call.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from robustxai.metrics.base import Metric, MetricBatch, finite_maps

#: how energy in box and box IoU rescale each map before scoring it
RESCALES = ("minmax", "none")


def check_rescale(rescale: str) -> str:
    """``rescale`` if it is one of ``RESCALES``, else ValueError naming them."""
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {list(RESCALES)}, got {rescale!r}")
    return rescale


def maps_and_range(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, H, W) maps cleaned by ``finite_maps`` (float32, NaN and +-inf -> 0; always a new tensor,
    which callers may change in place) and each map's (N,) minimum and maximum (``amin`` and ``amax``:
    on CPU both together take a fiftieth of ``aminmax``)."""
    maps = finite_maps(maps)
    flat = maps.flatten(1)
    return maps, flat.amin(1), flat.amax(1)


@contextmanager
def one_cpu_thread(device: torch.device):
    """Run torch's CPU work on one intra-op thread, then restore the count. These metrics are a few
    passes over memory: on an idle 2-core machine two threads save a third of a millisecond per 32
    maps at 224 px, on a busy one (load 6) they cost 10x, as each pass waits for a descheduled worker."""
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def box_spans(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H) and (N, W) float: 1 on the rows and columns each (x0, y0, x1, y1) box covers (exclusive
    ends); their outer product is the box's mask."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    x0, y0, x1, y1 = boxes.unsqueeze(2).unbind(1)
    return ((rows >= y0) & (rows < y1)).float(), ((cols >= x0) & (cols < x1)).float()


class BoxMetric(Metric):
    """A metric against ground-truth boxes: subclasses implement ``score``; ``__call__`` sets NaN for
    images without a box."""

    needs_boxes = True

    def score(self, batch: MetricBatch) -> dict[str, torch.Tensor]:
        """Per-image columns, name -> (N,) float tensor (values of images without a box are ignored)."""
        raise NotImplementedError

    def __call__(self, model, batch: MetricBatch):
        with one_cpu_thread(batch.maps.device):
            present = batch.has_box()
            return {name: torch.where(present, values.float(), torch.nan)
                    for name, values in self.score(batch).items()}


class PointingGame(BoxMetric):
    """Hit (1.0) if the map's maximum (the first in raster order on ties) lies within ``tolerance``
    pixels of the box, else 0.0 (Zhang et al. 2018; TorchRay's 15 px). ``tolerance`` is given for
    ``reference_size`` (224) pixels and scaled to the image: 15 px at 224 is 2.14 px at 32. The
    maximum is the same whether or not the map is min-max rescaled."""

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
    """Share of the map's mass inside the box, in [0, 1]: Score-CAM's energy-based pointing game
    (Wang et al. 2020, section 4.2), which min-max rescales each map first (``rescale: minmax``, the
    default; a map plus a constant scores as the map). ``rescale: none`` takes the raw map's positive
    part instead. A map with no mass (a constant map, or no positive value with ``none``) scores the
    box's share of the image, as a uniform map does."""

    higher_is_better = {"energy_in_box": True}

    def __init__(self, rescale: str = "minmax") -> None:
        self.rescale = check_rescale(rescale)

    def score(self, batch: MetricBatch):
        n, h, w = batch.maps.shape
        maps = finite_maps(batch.maps)  # a new tensor: changed in place below
        # min-max: the division by (max - min) cancels in the share, so only the minimum is taken off
        mass = maps.sub_(maps.flatten(1).amin(1).view(n, 1, 1)) if self.rescale == "minmax" else maps.clamp_min_(0)
        rows, cols = box_spans(batch.boxes, h, w)
        # one pass over the maps: row sums inside the box's rows and over all rows, (N, 2, W)
        sums = torch.bmm(torch.stack([rows, torch.ones_like(rows)], 1), mass)
        inside, total = (sums[:, 0] * cols).sum(1), sums[:, 1].sum(1)
        area_share = rows.sum(1) * cols.sum(1) / (h * w)
        return {"energy_in_box": torch.where(total > 0, inside / total.clamp_min(1e-30), area_share)}


def largest_component_boxes(regions: np.ndarray) -> np.ndarray:
    """(N, 4) int64 boxes (x0, y0, x1, y1), exclusive ends, of the largest 4-connected component of
    each (H, W) bool region of (N, H, W) ``regions`` (the first in raster order on ties); -1s where a
    region is empty. All regions are labelled in one call (no connection across images)."""
    from scipy import ndimage  # only box IoU needs scipy

    n, h, w = regions.shape
    boxes = np.full((n, 4), -1, dtype=np.int64)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(regions, structure)
    if count == 0:
        return boxes
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    # labels are numbered in raster order, so image k holds labels first[k]..last[k] (none if first > last)
    last = np.maximum.accumulate(labels.reshape(n, -1).max(1)).astype(np.int64)
    first = np.concatenate([[1], last[:-1] + 1])
    present = last >= first
    # the largest component per image, the lowest label on ties: the largest key in its label range
    key = np.append(sizes.astype(np.int64) * (count + 1) - np.arange(1, count + 1), 0)
    best = count + 1 - np.maximum.reduceat(key, first - 1) % (count + 1)
    best = np.where(present, best, -1)
    component = labels == best.reshape(n, 1, 1)
    rows, cols = component.any(2), component.any(1)
    found = np.stack([cols.argmax(1), rows.argmax(1), w - cols[:, ::-1].argmax(1), h - rows[:, ::-1].argmax(1)], 1)
    boxes[present] = found[present]
    return boxes


def component_box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1), exclusive ends, of the largest 4-connected component of a (H, W) bool
    array (the first in raster order on ties), or None if it is empty."""
    box = largest_component_boxes(region[None])[0]
    return None if box[0] < 0 else tuple(int(v) for v in box)


def boxes_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) intersection over union of (N, 4) (x0, y0, x1, y1) boxes with exclusive ends; 0 where
    the union is empty or a box is missing (-1s)."""
    a, b = a.float(), b.float()
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = width * height
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    valid = (a[:, 0] >= 0) & (b[:, 0] >= 0) & (union > 0)
    return torch.where(valid, inter / union.clamp_min(1e-30), 0.0)


class BoxIoU(BoxMetric):
    """Weakly-supervised localisation (Zhou et al. 2016, CAM): keep pixels at or above ``threshold``
    (0.2) of the map, box the largest connected component, and report its IoU with the ground-truth
    box and whether it is at least ``hit_iou`` (0.5). As CAM's reference code does, each map is
    min-max rescaled first (``rescale: minmax``, the default), so the threshold is 20 % of the way
    from the map's minimum to its maximum and a map plus a constant scores as the map; a constant map
    keeps no pixel (IoU 0). ``rescale: none`` thresholds at ``threshold`` x the raw maximum (no
    positive value: IoU 0), which keeps the whole image for a map on a positive floor."""

    higher_is_better = {"box_iou": True}

    def __init__(self, threshold: float = 0.2, hit_iou: float = 0.5, rescale: str = "minmax") -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold, self.hit_iou, self.rescale = threshold, hit_iou, check_rescale(rescale)

    def regions(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, H, W) bool: the pixels kept of each (N, H, W) map."""
        maps, low, high = maps_and_range(maps)
        low, high = low.view(-1, 1, 1), high.view(-1, 1, 1)
        if self.rescale == "minmax":  # a constant map divides 0 by 0: NaN, no pixel kept
            return maps.sub_(low).div_(high - low) >= self.threshold
        return (maps >= self.threshold * high) & (high > 0)

    def score(self, batch: MetricBatch):
        predicted = torch.from_numpy(largest_component_boxes(self.regions(batch.maps).cpu().numpy()))
        iou = boxes_iou(predicted.to(batch.boxes.device), batch.boxes)
        return {"box_iou": iou, "box_localised": (iou >= self.hit_iou).float()}
