"""The peers' implementations of robustxai's methods and metrics, set up to compute the same values
on the same model and inputs: captum 0.9.0, pytorch-grad-cam 1.5.7 and Quantus 0.6.0 (the ``bench``
extra: ``pip install -e .[bench]``). Used by benchmarks/peers.py (speed and agreement against every
peer) and benchmarks/attributions.py (speed against captum).

Every call returns what robustxai returns: maps (N, H, W) (per-channel attributions summed over
channels; pytorch-grad-cam's maps come min-max scaled per image, which only an affine-invariant
comparison such as Pearson r can absorb) or per-image metric values (N,).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from robustxai.metrics import MetricBatch

Call = Callable[[], torch.Tensor]

#: method -> how captum batches it: the ``attribute`` option, and how ours maps onto it
#: ("inputs": model inputs per pass, as our batch size; "per_image": per image of the call)
CAPTUM_BATCHING = {
    "integrated_gradients": ("internal_batch_size", "inputs"),
    "smoothgrad": ("nt_samples_batch_size", "per_image"),
    "occlusion": ("perturbations_per_eval", "per_image"),
    "lime": ("perturbations_per_eval", "inputs"),  # captum's Lime explains one image per call
}


def captum_batching(name: str, batch_size: int, images: int) -> dict:
    """captum's batching option for ``name`` set so that one pass holds at most ``batch_size``
    model inputs, as ours does; {} where captum has no such option."""
    if name not in CAPTUM_BATCHING:
        return {}
    option, unit = CAPTUM_BATCHING[name]
    return {option: batch_size if unit == "inputs" else max(1, batch_size // images)}


def _summed(attributions: torch.Tensor) -> torch.Tensor:
    return attributions.detach().sum(1)


def _lime_kernel(width: float):
    """LIME's (lime_image's) sample weight sqrt(exp(-d^2 / width^2)), d the cosine distance of the
    on/off vector to all-ones, as robustxai's LIME computes it; captum's own kernel measures the
    distance between images instead."""
    def similarity(original, perturbed, interpretable, **kwargs):
        on = interpretable.float().flatten()
        cosine = on.sum() / (on.norm() * on.numel() ** 0.5).clamp_min(1e-12)
        return math.sqrt(math.exp(-float(1 - cosine) ** 2 / width ** 2))
    return similarity


def captum_call(name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, settings: dict,
                batching: dict | None = None) -> Call | None:
    """captum's ``name`` with our ``settings`` (the method's, as ``make_method`` takes them) and its
    ``batching`` option (None or {}: captum's default); None where captum has no such method."""
    from captum.attr import (DeepLift, GradientShap, GuidedBackprop, InputXGradient, IntegratedGradients,
                             LayerAttribution, LayerGradCam, Lime, NoiseTunnel, Occlusion, Saliency)

    from robustxai.attribution.propagation import out_of_place

    batching = batching or {}
    if name == "gradient":
        return lambda: _summed(Saliency(model).attribute(images, target=targets, abs=False))
    if name == "input_x_gradient":
        return lambda: _summed(InputXGradient(model).attribute(images, target=targets))
    if name == "deeplift":
        def deeplift():
            with out_of_place(model):  # captum's hooks need activation inputs intact
                return _summed(DeepLift(model).attribute(images, baselines=0.0, target=targets))
        return deeplift
    if name == "guided_backprop":
        def guided():
            with out_of_place(model):
                return _summed(GuidedBackprop(model).attribute(images, target=targets))
        return guided
    if name == "integrated_gradients":  # our trapezoid over `steps` intervals = captum's over steps + 1 points
        steps = settings.get("steps", 50)
        return lambda: _summed(IntegratedGradients(model).attribute(
            images, baselines=0.0, target=targets, n_steps=steps + 1, method="riemann_trapezoid", **batching))
    if name == "smoothgrad":  # ours: std = noise x (max - min) per image; captum takes one std per call
        spread = float((images.flatten(1).amax(1) - images.flatten(1).amin(1)).mean())
        return lambda: _summed(NoiseTunnel(Saliency(model)).attribute(
            images, nt_type="smoothgrad", nt_samples=settings.get("samples", 50),
            stdevs=settings.get("noise", 0.15) * spread, target=targets, abs=False, **batching))
    if name == "gradient_shap":  # our noise baselines: `samples` uniform images
        samples = settings.get("samples", 50)
        generator = torch.Generator().manual_seed(settings.get("seed", 0))

        def shap():
            baselines = torch.rand((samples, *images.shape[1:]), generator=generator).to(images)
            return _summed(GradientShap(model).attribute(images, baselines=baselines, n_samples=samples,
                                                         stdevs=settings.get("noise", 0.0), target=targets))
        return shap
    if name in ("gradcam", "gradcam_plus_plus"):
        if name == "gradcam_plus_plus":
            return None
        from robustxai.attribution.cam import find_feature_layer

        layer = model.get_submodule(settings.get("layer") or find_feature_layer(model, tuple(images.shape[1:])))

        def gradcam():
            cam = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
            return LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), "bilinear").detach()[:, 0]
        return gradcam
    if name == "occlusion":
        window, stride = settings.get("window", 8), settings.get("stride", 4)
        channels = images.shape[1]
        return lambda: Occlusion(model).attribute(
            images, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
            baselines=settings.get("fill", 0.0), target=targets, **batching).detach()[:, 0]
    if name == "lime":
        return _captum_lime(model, images, targets, settings, batching)
    return None


def _captum_lime(model, images, targets, settings, batching) -> Call:
    """captum's Lime, one image per call (its batch rule for per-image feature masks), with our
    superpixels, mean-colour fill, ridge surrogate (alpha 1), kernel and probability output; the SLIC
    segmentation runs inside the call, as in ours."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    from robustxai.attribution import make_method
    from robustxai.attribution.lime import superpixels

    ours = make_method("lime", **settings)  # for its settings and its mean-colour fill only
    lime = Lime(lambda x: model(x).softmax(1), interpretable_model=SkLearnRidge(alpha=ours.alpha),
                similarity_func=_lime_kernel(ours.kernel_width))

    def call():
        maps = []
        for image, target in zip(images, targets):
            labels = superpixels(image, ours.segments, ours.compactness, ours.sigma)
            fill = ours.fill_image(image, labels, int(labels.max()) + 1)
            maps.append(lime.attribute(image[None], baselines=fill[None], target=target[None],
                                       feature_mask=labels[None, None], n_samples=ours.samples,
                                       **batching).detach()[0, 0])
        return torch.stack(maps)
    return call


def grad_cam_call(name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: str
                  ) -> Call | None:
    """pytorch-grad-cam's GradCAM / GradCAMPlusPlus on ``layer``: maps (N, H, W), min-max scaled per
    image by the library. Its hooks are registered and released inside every call, so they never
    run during the other implementations' calls."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kind = {"gradcam": GradCAM, "gradcam_plus_plus": GradCAMPlusPlus}.get(name)
    if kind is None:
        return None

    def call():
        with kind(model=model, target_layers=[model.get_submodule(layer)]) as cam:
            maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        return torch.from_numpy(maps)
    return call


def _replace_from(arr: np.ndarray, indices: np.ndarray, source: np.ndarray, **kwargs) -> np.ndarray:
    """Quantus perturbation: the flattened elements ``indices`` (N, I) of ``arr`` (N, F) take
    ``source``'s values ((N, F) or (1, F))."""
    out = arr.copy()
    rows = np.arange(len(arr))[:, None]
    out[rows, indices] = np.broadcast_to(source, arr.shape)[rows, indices]
    return out


class _PixelMajor(nn.Module):
    """``model`` on images given pixel-major as (N, 1, H, W C) (see ``quantus_call``)."""

    def __init__(self, model: nn.Module, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.model, self.shape = model, (channels, height, width)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return self.model(x.reshape(-1, h, w, c).permute(0, 3, 1, 2).contiguous())


def quantus_call(name: str, model: nn.Module, batch: MetricBatch, settings: dict) -> Call | None:
    """Quantus 0.6.0's equivalent of our metric ``name`` with our ``settings``; None where it has none.

    insertion / deletion: ``PixelFlipping`` with a perturbation that copies elements from our curve's
    end image; the start and end images are ours (blurred start, normalisation-mean substrate).
    PixelFlipping ranks the map broadcast over the input's elements and asserts that a step's
    ``features_in_step`` divides H x W, so whole-pixel steps (channels x pixels per step) fit only if
    H W is a multiple of the channel count; the images are therefore handed over pixel-major, as
    (N, 1, H, W C) with ``_PixelMajor`` turning them back into (N, C, H, W) for the model: a pixel's C
    elements are adjacent and tie, each step replaces our pixels per step, with the same number of
    forward passes as ours. PixelFlipping scores the curve after each step, not before the first, so
    the clean score comes from one more forward pass; its AUC helper calls ``np.trapz``, gone in
    NumPy 2.4, so the trapezoid rule is applied here to its curves.
    energy_in_box: ``RelevanceMassAccuracy`` of the mass our metric scores, ``map_mass(maps, rescale)``
    with our ``rescale`` (default ``auto``, decided per map as our metric does when called with it:
    |map| for a map with a negative value, the map minus its minimum for any other; ``minmax``, ``abs``,
    ``positive`` and ``none`` as named); Quantus takes the map as given. pointing_game:
    ``PointingGame`` (no tolerance: our ``tolerance`` must be 0). box_iou: Quantus has no equivalent.
    """
    import quantus

    from robustxai.metrics.causal import blurred_start, normalisation_mean, step_pixels
    from robustxai.metrics.localisation import DEFAULT_RESCALE, check_rescale, map_mass

    quiet = {"abs": False, "normalise": False, "disable_warnings": True}
    images, maps, targets = batch.images, batch.maps, batch.targets
    n, c, h, w = images.shape
    device = str(images.device)
    if name in ("insertion", "deletion"):
        steps = settings.get("steps", 224)
        per_step = step_pixels(h, w, steps)
        if (h * w) % per_step:
            raise ValueError(f"PixelFlipping needs H W divisible by the pixels per step: pick steps so that "
                             f"{h * w} % ceil({h * w} / steps) == 0 (steps={steps} gives {per_step})")

        def curve():
            mean = normalisation_mean(model, c).to(images)
            if name == "deletion":
                start, finish = images, mean.view(1, c, 1, 1).expand(1, c, h, w)
            else:
                start, finish = blurred_start(images, mean, settings.get("blur_size", 11),
                                              settings.get("blur_sigma", 5.0)), images
            pixel_major = lambda t: t.permute(0, 2, 3, 1).reshape(len(t), 1, h, w * c).cpu().numpy()
            ranked = maps[:, :, :, None].expand(n, h, w, c).reshape(n, 1, h, w * c).cpu().numpy()
            source = pixel_major(finish).reshape(len(finish), -1)
            metric = quantus.PixelFlipping(features_in_step=c * per_step, perturb_func=_replace_from,
                                           perturb_func_kwargs={"source": source}, **quiet)
            after = torch.tensor(metric(model=_PixelMajor(model, c, h, w), x_batch=pixel_major(start),
                                        y_batch=targets.cpu().numpy(), a_batch=ranked, channel_first=True,
                                        softmax=True, device=device, batch_size=max(64, n)))
            with torch.no_grad():
                first = model(start).softmax(1).gather(1, targets[:, None]).cpu()
            scores = torch.cat([first, after], 1)
            return (scores.sum(1) - scores[:, 0] / 2 - scores[:, -1] / 2) / (scores.shape[1] - 1)
        return curve
    if name in ("energy_in_box", "pointing_game"):
        if name == "pointing_game" and settings.get("tolerance", 15.0) != 0:
            raise ValueError("Quantus's PointingGame has no tolerance: compare with tolerance 0")

        def localisation():
            metric = (quantus.RelevanceMassAccuracy(**quiet) if name == "energy_in_box"
                      else quantus.PointingGame(**quiet))
            shown = maps
            if name == "energy_in_box":  # Quantus takes the map as given: hand it the mass ours scores
                shown = map_mass(maps, check_rescale(settings.get("rescale", DEFAULT_RESCALE)))
            values = metric(model=None, x_batch=images.cpu().numpy(), y_batch=targets.cpu().numpy(),
                            a_batch=shown[:, None].cpu().numpy(), s_batch=batch.box_masks()[:, None].cpu().numpy(),
                            channel_first=True)
            return torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
        return localisation
    return None
