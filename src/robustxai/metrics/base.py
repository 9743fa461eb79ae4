"""The interface every explainability metric shares, and map hygiene.

A metric is an object built from its config settings; calling it on a ``MetricBatch`` returns
per-image columns, name -> (N,) tensor. Metrics that run the model say so with ``needs_model``.
Maps that are constant or hold NaN/inf are "degenerate": they get a defined value (non-finite
entries count as 0, a constant map ranks its pixels in index order) and are flagged in the
``degenerate`` column that every metric table carries, so they are counted, never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustxai.attribution.base import AttributionMethod


@dataclass
class MetricBatch:
    """Inputs of a metric for N images of size H x W.

    images (N, C, H, W) in [0, 1]; maps (N, H, W) raw attributions; targets (N,) the class each map
    explains (the class predicted on the clean image); boxes (N, 4) ground-truth boxes as pixel
    (x0, y0, x1, y1) with exclusive ends, (-1, -1, -1, -1) where an image has none; masks (N, H, W) bool object masks, or None; method the
    attribution method that made the maps (for metrics that recompute them), or None.
    """

    images: torch.Tensor
    maps: torch.Tensor
    targets: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor | None = None
    method: AttributionMethod | None = None

    def has_box(self) -> torch.Tensor:
        """(N,) bool: the image has a ground-truth box (``has_box``)."""
        return has_box(self.boxes)

    def box_masks(self) -> torch.Tensor:
        """(N, H, W) bool: True inside each image's box."""
        n, h, w = self.maps.shape
        rows = torch.arange(h, device=self.boxes.device).view(1, h, 1)
        cols = torch.arange(w, device=self.boxes.device).view(1, 1, w)
        x0, y0, x1, y1 = (self.boxes[:, i].view(n, 1, 1) for i in range(4))
        return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def has_box(boxes: torch.Tensor) -> torch.Tensor:
    """(N,) bool of (N, 4) (x0, y0, x1, y1) boxes: a box with positive area inside the image's
    coordinates; a missing box is stored as (-1, -1, -1, -1)."""
    x0, y0, x1, y1 = boxes.unbind(1)
    return (x0 >= 0) & (y0 >= 0) & (x1 > x0) & (y1 > y0)


class Metric:
    """Base class: settings go to ``__init__``; ``__call__`` scores a batch of maps."""

    #: whether ``__call__`` runs the model (the workflow then loads it and tags the job GPU)
    needs_model = False
    #: whether ``__call__`` recomputes maps with ``batch.method``
    needs_method = False
    #: whether it scores maps against ground-truth boxes: images without one get NaN (left out of
    #: every mean and statistic), and the config check refuses it on splits without boxes
    needs_boxes = False
    #: whether the model inputs it builds are stored like the model's weights (NCHW or channels-last;
    #: ``robustxai.tuning``), which the job's memory-layout choice then assumes
    inputs_in_model_layout = False
    #: the columns that score explainability, each -> whether higher is better (the aggregation
    #: ranks methods and compares models on these; other columns are diagnostics)
    higher_is_better: dict[str, bool] = {}
    #: how each map is turned into what the metric scores (localisation's ``rescale``), recorded with its
    #: tables; None for metrics that take maps as they are
    rescale: str | None = None

    @classmethod
    def settings_for_maps(cls, settings: dict, signed: bool) -> dict:
        """``settings`` (a config entry: may hold keys that are not the metric's) with the choices left to
        the maps made for maps that can hold negative values (``signed``) or cannot; a new dict. Metrics
        without such a choice return them unchanged."""
        return dict(settings)

    def __call__(self, model: nn.Module | None, batch: MetricBatch) -> dict[str, torch.Tensor]:
        """Per-image values, column name -> (N,) tensor."""
        raise NotImplementedError

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        """How many model inputs the metric runs per image (what its job's tuning is sized by)."""
        return 1

    def tune(self, model: nn.Module, image_shape: tuple[int, ...], device: torch.device, images: int) -> None:
        """Settle tunable settings (a batch size "auto") for a job that scores ``images`` images
        (C, H, W) = ``image_shape`` on ``device``; a no-op for metrics without any."""


def degenerate_maps(maps: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the map holds a non-finite value or is constant."""
    flat = maps.flatten(1)
    finite = torch.isfinite(flat).all(1)
    clean = finite_maps(maps).flatten(1)
    return ~finite | (clean.amax(1) == clean.amin(1))


def finite_maps(maps: torch.Tensor) -> torch.Tensor:
    """``maps`` with NaN and +-inf replaced by 0, as float32."""
    return torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0)

