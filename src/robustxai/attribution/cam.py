"""Class activation maps: Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018).

Both weight the activations A (N, K, h, w) of a convolutional layer by gradients of the target logit,
keep the positive part, and upsample bilinearly to the image size. No normalisation is applied. The
layers before A run without autograd (``layer_activations_and_score``), which makes a map cheaper
than captum's LayerGradCam, which records the whole forward pass.
The layer is named by its dotted module path (e.g. ``net.layer4``) or found automatically: the module
that produces the last feature map with a spatial size above 1 (the outermost one, if several return
the same tensor).
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from robustxai.attribution.base import AttributionMethod, target_logits


_found_layers: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]]" = weakref.WeakKeyDictionary()


def find_feature_layer(model: nn.Module, image_shape: tuple[int, int, int]) -> str:
    """Dotted name of the module producing the last (N, K, h, w) output with h, w > 1 (searched with
    one forward pass per model and image shape, then remembered while the model lives)."""
    found = _found_layers.setdefault(model, {})
    if tuple(image_shape) not in found:
        found[tuple(image_shape)] = _search_feature_layer(model, image_shape)
    return found[tuple(image_shape)]


def _search_feature_layer(model: nn.Module, image_shape: tuple[int, int, int]) -> str:
    produced: list[tuple[str, torch.Tensor]] = []
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: produced.append((name, o)))
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *image_shape), device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    maps = [(name, out) for name, out in produced
            if isinstance(out, torch.Tensor) and out.dim() == 4 and min(out.shape[-2:]) > 1]
    if not maps:
        raise ValueError("the model has no layer with a spatial feature map; name one with 'layer'")
    last = maps[-1][1]
    return min((name for name, out in maps if out is last), key=lambda name: name.count("."))


class GradCAM(AttributionMethod):
    """Grad-CAM: relu(sum_k mean_ij(d logit / d A_k) A_k), upsampled to (H, W). No channel rule:
    the map is already 2-D."""

    family = "cam"

    channel_rule = "none (a weighted sum of feature maps)"
    signed_maps = False  # the ReLU, then bilinear upsampling (convex weights)

    def __init__(self, layer: str | None = None, batch_size: int | str = 256) -> None:
        super().__init__(batch_size)
        self.layer = layer

    def layer_name(self, model: nn.Module, image_shape: tuple[int, int, int]) -> str:
        """The configured layer, else the one ``find_feature_layer`` picks."""
        return self.layer or find_feature_layer(model, image_shape)

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) activations and gradients -> (N, h, w) map before the ReLU."""
        return (gradients.mean((2, 3), keepdim=True) * activations).sum(1)

    def compute(self, model, images, targets):
        layer = model.get_submodule(self.layer_name(model, tuple(images.shape[1:])))
        maps = []
        for start in range(0, len(images), self.batch_size):
            activations, score = layer_activations_and_score(model, layer, images[start:start + self.batch_size],
                                                             targets[start:start + self.batch_size])
            (grads,) = torch.autograd.grad(score, activations)
            cam = F.relu(self.combine(activations.detach(), grads))
            maps.append(F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear",
                                      align_corners=False)[:, 0])
        return torch.cat(maps)


def layer_activations_and_score(model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer``'s output A (N, K, h, w) as a leaf that requires grad, and the summed target logits
    (a scalar) whose graph starts at A: the layers before it run without autograd, which records
    nothing and keeps no activations for them."""
    captured = {}

    def detach_output(module, inputs, output):
        torch.set_grad_enabled(True)  # from here on the forward pass is recorded
        captured["a"] = output.detach().requires_grad_(True)
        return captured["a"].clone()  # a non-leaf copy, so in-place layers after it stay legal

    hook = layer.register_forward_hook(detach_output)
    try:
        with torch.no_grad():
            score = target_logits(model, images, targets).sum()
    finally:
        hook.remove()
    return captured["a"], score


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: channel weights sum_ij alpha_ij relu(g_ij) with
    alpha = g^2 / (2 g^2 + sum_ij(A) g^3) (the exponential-score closed form)."""

    def combine(self, activations, gradients):
        g2, g3 = gradients.pow(2), gradients.pow(3)
        denominator = 2 * g2 + activations.sum((2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        weights = (alpha * F.relu(gradients)).sum((2, 3), keepdim=True)
        return (weights * activations).sum(1)
