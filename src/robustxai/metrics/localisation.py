"""Localisation metrics against ground-truth boxes: pointing game, energy in box, box IoU.

None runs the model. Maps are cleaned with ``finite_maps`` first (see ``robustxai.metrics.base``).
An image without a box (``MetricBatch.has_box``) gets NaN in every column, which every mean and
statistic of the aggregation leaves out.

Energy in box and box IoU score a non-negative "mass" made of each map by ``rescale`` (``map_mass``):

- ``minmax``: the map minus its minimum, i.e. min-max rescaled as CAM's (Zhou et al. 2016) and
  Score-CAM's (Wang et al. 2020) reference codes do, so a map's offset does not count (a map on a
  positive floor, RISE's, scores like the same map on zero). Right for non-negative maps only: it moves
  a signed map's zero to mid-grey, and a signed map then scores like the random baseline.
- ``abs``: the map's magnitude, |map|, as Quantus' AttributionLocalisation does by default
  (``abs=True``; its implementation of Kohlbrenner et al. 2020): strong negative evidence counts too.
- ``positive``: the map's positive part, max(map, 0): the positive relevance that Kohlbrenner et al.
  2020's attribution localisation and Arras et al. 2022's relevance mass accuracy (CLEVR-XAI) count.
- ``none``: the same as ``positive``, under the name the raw-map protocol had before issue 22.
- ``auto`` (the default): ``abs`` for signed maps, ``minmax`` for non-negative ones. The workflow
  decides it per method before the job runs (``robustxai.metrics.settings_for_method``, from the
  method's ``signed_maps`` declaration), so tables record ``abs`` or ``minmax``; a metric called with
  ``auto`` itself decides per map: a map with a negative value is scored by ``abs``, any other by ``minmax``.

A map without mass (a constant map under minmax, no positive value under positive) scores the box's
share of the image in energy in box and keeps no pixel in box IoU. All three metrics are computed for
the whole batch at once: boxes are broadcast as row and column spans, connected components are
labelled in one call.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from robustxai.metrics.base import Metric, MetricBatch, finite_maps

#: how energy in box and box IoU make each map's mass before scoring it (see the module doc)
RESCALES = ("auto", "minmax", "abs", "positive", "none")
#: the protocol of ``rescale`` when a config does not name one
DEFAULT_RESCALE = "auto"
#: what ``auto`` becomes for maps that can hold negative values (True) and for non-negative ones (False)
AUTO_RESCALE = {True: "abs", False: "minmax"}


def check_rescale(rescale: str) -> str:
    """``rescale`` if it is one of ``RESCALES``, else ValueError naming them."""
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {list(RESCALES)}, got {rescale!r}")
    return rescale


def map_mass(maps: torch.Tensor, rescale: str) -> torch.Tensor:
    """(N, H, W) non-negative float32 mass of (N, H, W) maps under protocol ``rescale`` (one of
    ``RESCALES``; the module doc gives each), the maps cleaned by ``finite_maps`` first (NaN, +-inf -> 0).
    ``minmax`` only takes each map's minimum off: the division by its range cancels in the share of
    energy in box and in box IoU's threshold relative to the maximum. A new tensor, which callers may
    change in place."""
    maps = finite_maps(maps)  # a new tensor: changed in place below
    if rescale in ("positive", "none"):
        return maps.clamp_min_(0)
    if rescale == "abs":
        return maps.abs_()
    low = maps.flatten(1).amin(1).view(-1, 1, 1)
    if rescale == "auto":  # per map: signed -> abs, non-negative -> minmax
        return torch.where(low < 0, maps.abs(), maps - low)
    return maps.sub_(low)


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


class RescaledBoxMetric(BoxMetric):
    """A box metric that scores each map's mass under ``rescale`` (``map_mass``; the module doc)."""

    def __init__(self, rescale: str = DEFAULT_RESCALE) -> None:
        self.rescale = check_rescale(rescale)

    @classmethod
    def settings_for_maps(cls, settings, signed):
        """``rescale: auto`` (also when not given) made ``abs`` for signed maps, ``minmax`` for non-negative ones."""
        if settings.get("rescale", DEFAULT_RESCALE) != "auto":
            return dict(settings)
        return {**settings, "rescale": AUTO_RESCALE[signed]}

    def mass(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, H, W) non-negative mass of (N, H, W) maps under the metric's ``rescale`` (``map_mass``)."""
        return map_mass(maps, self.rescale)


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


class EnergyInBox(RescaledBoxMetric):
    """Share of the map's mass (``rescale``, see the module doc) inside the box, in [0, 1]: Score-CAM's
    energy-based pointing game (Wang et al. 2020, section 4.2) with ``minmax``, which is ``auto``'s
    choice for non-negative maps (a map plus a constant scores as the map); with ``abs`` or
    ``positive``, the relevance mass ratio of Kohlbrenner et al. 2020 (Quantus' AttributionLocalisation)
    and Arras et al. 2022 (relevance mass accuracy). A map without mass (a constant map under minmax,
    no positive value under positive) scores the box's share of the image, as a uniform map does."""

    higher_is_better = {"energy_in_box": True}

    def score(self, batch: MetricBatch):
        _, h, w = batch.maps.shape
        mass = self.mass(batch.maps)
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


class BoxIoU(RescaledBoxMetric):
    """Weakly-supervised localisation (Zhou et al. 2016, CAM): keep the pixels whose mass (``rescale``,
    see the module doc) is at least ``threshold`` (0.2) x the map's largest, box the largest connected
    component, and report its IoU with the ground-truth box and whether it is at least ``hit_iou``
    (0.5). With ``minmax``, as in CAM's reference code and ``auto``'s choice for non-negative maps, the
    threshold is 20 % of the way from the map's minimum to its maximum and a map plus a constant scores
    as the map; with ``abs`` it is 20 % of the largest magnitude, with ``positive`` of the largest
    positive value. A map without mass (a constant map under minmax, no positive value under positive)
    keeps no pixel (IoU 0)."""

    higher_is_better = {"box_iou": True}

    def __init__(self, threshold: float = 0.2, hit_iou: float = 0.5, rescale: str = DEFAULT_RESCALE) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        super().__init__(rescale)
        self.threshold, self.hit_iou = threshold, hit_iou

    def regions(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, H, W) bool: the pixels kept of each (N, H, W) map."""
        mass = self.mass(maps)
        high = mass.flatten(1).amax(1).view(-1, 1, 1)
        return (mass >= self.threshold * high) & (high > 0)

    def score(self, batch: MetricBatch):
        predicted = torch.from_numpy(largest_component_boxes(self.regions(batch.maps).cpu().numpy()))
        iou = boxes_iou(predicted.to(batch.boxes.device), batch.boxes)
        return {"box_iou": iou, "box_localised": (iou >= self.hit_iou).float()}
