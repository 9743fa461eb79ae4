"""The interface every attribution method shares, and batched gradient helpers.

A method is an object built from its config settings; ``explain(model, images, targets)`` takes
(N, C, H, W) images in [0, 1] and (N,) target classes and returns raw maps (N, H, W) on the images'
device: signed, unless the method declares them non-negative (``signed_maps``). Maps are never min-max
rescaled. Methods that attribute per input channel reduce the channels by summing them (which keeps
completeness: the map sums to the total attribution); each method's docstring states its rule.
"""
from __future__ import annotations

import torch
from torch import nn


OUTPUTS = ("logit", "probability")


class AttributionMethod:
    """Base class: settings go to ``__init__``; ``explain`` is batched over images and samples.

    ``batch_size`` is how many model inputs (perturbed images, path points, noisy copies or images)
    go through the model at once; "auto" measures the fastest one for the model and device on the
    first call (see ``robustxai.tuning``). Subclasses implement ``compute``.
    """

    #: channel reduction applied to (N, C, H, W) attributions, documented per method
    channel_rule = "sum over channels"
    #: the kind of model pass the method repeats: "forward" or "gradient" (forward + input gradient)
    pass_kind = "gradient"
    #: the study's method family: "gradient", "perturbation", "cam", "boundary", "learned" or "baseline"
    family = ""
    #: settings that name other configured models the method runs (their checkpoints become inputs
    #: of its jobs, which load them and ``bind_models``), e.g. robust_counterpart's "counterpart"
    model_settings: tuple[str, ...] = ()
    #: whether the maps can hold negative values; False for maps non-negative by construction (a CAM
    #: after its ReLU, RISE's weighted masks, a mask to delete). Box metrics with ``rescale: auto`` score
    #: signed maps by their magnitude and min-max rescale non-negative ones (``robustxai.metrics.localisation``)
    signed_maps = True

    def __init__(self, batch_size: int | str = 256) -> None:
        if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch_size!r}")
        self.batch_size = batch_size

    def explain(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Maps (N, H, W) for ``images`` (N, C, H, W) in [0, 1] and ``targets`` (N,) int64."""
        self.tune(model, tuple(images.shape[1:]), images.device, len(images))
        return self.compute(model, images, targets)

    def inputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        """How many model inputs (passes of ``pass_kind``) the method runs per image (C, H, W) =
        ``image_shape``: path points, noisy copies, perturbations; what its batch size is tuned for."""
        return 1

    def tune(self, model: nn.Module, image_shape: tuple[int, ...], device: torch.device, images: int) -> None:
        """Resolve ``batch_size="auto"`` for a job that explains ``images`` images (C, H, W) =
        ``image_shape`` (``robustxai.tuning.tuned_batch_size``); a no-op for an integer batch size."""
        if self.batch_size == "auto":
            from robustxai.tuning import tuned_batch_size

            self.batch_size = tuned_batch_size(model, image_shape, self.pass_kind, device,
                                               expected_inputs=images * self.inputs_per_image(image_shape))

    def compute(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The method itself: ``explain`` with an integer ``batch_size``."""
        raise NotImplementedError

    @classmethod
    def maps_signed(cls, settings: dict) -> bool:
        """Whether maps of the method built with ``settings`` can hold negative values: ``signed_maps``,
        unless a method whose maps depend on its settings says otherwise."""
        return cls.signed_maps

    @classmethod
    def needed_models(cls, settings: dict) -> dict[str, str]:
        """Setting name -> model name of the other models these ``settings`` make the method run."""
        return {key: settings[key] for key in cls.model_settings if settings.get(key)}

    @classmethod
    def check_models(cls, settings: dict, explained: dict[str, dict], needed: dict[str, dict]) -> None:
        """Raise ValueError when the method cannot run with these ``settings`` on the ``explained``
        models or with the ``needed`` ones (name -> resolved config entry each); every model suits by default."""

    def bind_models(self, models: dict[str, nn.Module]) -> "AttributionMethod":
        """Use these loaded models (setting name -> model, in eval mode on the images' device; the
        ``needed_models``) for every later call."""
        self.bound_models = dict(models)
        return self

    def bound_model(self, setting: str) -> nn.Module:
        """The model bound for ``setting``; RuntimeError when the caller has not bound it."""
        model = getattr(self, "bound_models", {}).get(setting)
        if model is None:
            raise RuntimeError(f"{type(self).__name__}: bind the model named by '{setting}' first (bind_models)")
        return model

    def per_image_extras(self) -> dict:
        """Per-image side results of the calls so far (e.g. boundary distances), name -> (N,) array."""
        return {}


def target_logits(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logit of each row's target class: (M,) for inputs (M, C, H, W) and targets (M,)."""
    return model(inputs).gather(1, targets.view(-1, 1)).squeeze(1)


@torch.no_grad()
def target_scores(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, output: str) -> torch.Tensor:
    """Each row's target-class ``output`` (M,): "logit" or softmax "probability", without gradients."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got '{output}'")
    logits = model(inputs)
    values = logits.softmax(1) if output == "probability" else logits
    return values.gather(1, targets.view(-1, 1)).squeeze(1)


def input_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int
                    ) -> torch.Tensor:
    """d logit_target / d input, (M, C, H, W), computed ``batch_size`` inputs at a time.

    Parameter gradients are not accumulated; the model's train/eval mode is left as it is.
    """
    grads = torch.empty_like(inputs)
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size].detach().requires_grad_(True)
        (grads[start:start + batch_size],) = torch.autograd.grad(
            target_logits(model, chunk, targets[start:start + batch_size]).sum(), chunk)
    return grads


def summed_input_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, per_image: int,
                           make_inputs, batch_size: int, weigh=None) -> torch.Tensor:
    """Per image, the sum over its ``per_image`` model inputs of d logit_target / d input, (N, C, H, W).

    Inputs are built ``batch_size`` at a time, never all at once: ``make_inputs(rows, draws)`` returns
    the (M, C, H, W) inputs of image ``rows[m]``'s draw ``draws[m]`` (both (M,) int64 on the images'
    device, image-major), and ``weigh(gradients, rows, draws)``, if given, scales each input's gradient
    before the sum. Memory is that of one batch plus the (N, C, H, W) result, whatever ``per_image`` is
    (IG's path points, SmoothGrad's noisy copies). Each batch is summed in at most three parts (the end
    of one image, whole images, the start of another), found on the host: no device synchronisation,
    a fixed number of kernels per batch, and the same order of additions on every device."""
    total = torch.zeros_like(images)
    count = len(images) * per_image
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        flat = torch.arange(start, stop)
        rows, draws = (index.to(images.device) for index in (flat // per_image, flat % per_image))
        chunk = make_inputs(rows, draws).detach().requires_grad_(True)
        (grads,) = torch.autograd.grad(target_logits(model, chunk, targets[rows]).sum(), chunk)
        if weigh is not None:
            grads = weigh(grads, rows, draws)
        whole_from = min(stop, -(-start // per_image) * per_image)  # first image boundary in the batch
        whole_to = max(whole_from, stop // per_image * per_image)  # last one
        if whole_from > start:  # the end of an image begun in an earlier batch
            total[start // per_image] += grads[:whole_from - start].sum(0)
        if whole_to > whole_from:  # whole images
            part = grads[whole_from - start:whole_to - start]
            total[whole_from // per_image:whole_to // per_image] += part.view(-1, per_image, *part.shape[1:]).sum(1)
        if stop > whole_to:  # the start of an image that ends in a later batch
            total[whole_to // per_image] += grads[whole_to - start:].sum(0)
    return total
