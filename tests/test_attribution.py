import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import InputXGradient as CaptumIxG
from captum.attr import LayerAttribution, LayerGradCam
from captum.attr import Occlusion as CaptumOcclusion
from captum.attr import Saliency
from torch import nn

from robustxai.attribution import METHODS, make_method
from robustxai.attribution.cam import find_feature_layer
from robustxai.attribution.lime import superpixels, weighted_ridge
from robustxai.attribution.meaningful import blur, total_variation
from robustxai.attribution.perturbation import rise_masks
from robustxai.models import build_classifier


class Linear(nn.Module):
    """logits = W flatten(x) + b: every gradient method has a closed form."""

    def __init__(self, shape=(3, 6, 6), classes=4):
        super().__init__()
        self.fc = nn.Linear(int(torch.tensor(shape).prod()), classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return Linear().eval()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.rand(5, 3, 6, 6), torch.tensor([0, 1, 2, 3, 1])


def weights_of(model, targets):
    return model.fc.weight[targets].view(len(targets), 3, 6, 6).detach()


def test_linear_model_closed_forms(linear, batch):
    images, targets = batch
    w = weights_of(linear, targets)
    assert torch.allclose(make_method("gradient").explain(linear, images, targets), w.sum(1), atol=1e-6)
    assert torch.allclose(make_method("input_x_gradient").explain(linear, images, targets), (images * w).sum(1),
                          atol=1e-6)
    ig = make_method("integrated_gradients", steps=8, baseline="grey").explain(linear, images, targets)
    assert torch.allclose(ig, ((images - 0.5) * w).sum(1), atol=1e-5)  # IG = (x - b) * w
    smooth = make_method("smoothgrad", samples=7, noise=0.3).explain(linear, images, targets)
    assert torch.allclose(smooth, w.sum(1), atol=1e-5)  # the gradient is the same everywhere
    shap = make_method("gradient_shap", samples=9, baseline="black").explain(linear, images, targets)
    assert torch.allclose(shap, (images * w).sum(1), atol=1e-5)


def test_integrated_gradients_completeness_on_a_cnn():
    torch.manual_seed(0)
    model = build_classifier("cifar_vgg_tiny", 10).eval()
    images, targets = torch.rand(4, 3, 32, 32), torch.tensor([0, 3, 5, 9])
    maps = make_method("integrated_gradients", steps=200, batch_size=100).explain(model, images, targets)
    with torch.no_grad():
        difference = (model(images) - model(torch.zeros_like(images))).gather(1, targets[:, None])[:, 0]
    assert torch.allclose(maps.sum((1, 2)), difference, rtol=0.01)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(2)
    model = build_classifier("cifar_resnet_tiny", 10).eval()
    return model, torch.rand(3, 3, 32, 32), torch.tensor([1, 4, 7])


def test_gradient_methods_agree_with_captum(cnn):
    model, images, targets = cnn
    saliency = Saliency(model).attribute(images, target=targets, abs=False).sum(1)
    assert torch.allclose(make_method("gradient", batch_size=2).explain(model, images, targets), saliency, atol=1e-5)
    ixg = CaptumIxG(model).attribute(images, target=targets).sum(1)
    assert torch.allclose(make_method("input_x_gradient").explain(model, images, targets), ixg, atol=1e-5)
    # captum's trapezoid weights are 1/n on n nodes spaced 1/(n - 1), so they sum to (n - 1)/n and its
    # IG misses completeness by 1/n; ours sums to 1. Rescaled, the two must agree.
    ig = CaptumIG(model).attribute(images, baselines=0.0, target=targets, n_steps=21,
                                   method="riemann_trapezoid").sum(1) * 21 / 20
    ours = make_method("integrated_gradients", steps=20, batch_size=16).explain(model, images, targets)
    assert torch.allclose(ours, ig, atol=1e-4)


def test_smoothgrad_without_noise_is_the_gradient(cnn):
    model, images, targets = cnn
    assert torch.allclose(make_method("smoothgrad", samples=3, noise=0.0).explain(model, images, targets),
                          make_method("gradient").explain(model, images, targets), atol=1e-6)


def test_gradcam_agrees_with_captum_and_finds_the_last_feature_layer(cnn):
    model, images, targets = cnn
    assert find_feature_layer(model, (3, 32, 32)) == "net.layer4"
    assert find_feature_layer(build_classifier("cifar_vgg_tiny", 10), (3, 32, 32)) == "net.features"
    layer = model.get_submodule("net.layer4")
    reference = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
    reference = LayerAttribution.interpolate(reference, (32, 32), interpolate_mode="bilinear")[:, 0]
    ours = make_method("gradcam", batch_size=2).explain(model, images, targets)
    assert torch.allclose(ours, reference, atol=1e-5)
    assert (ours >= 0).all() and ours.shape == (3, 32, 32)


def test_gradcam_plus_plus_on_a_hand_computed_layer():
    class OneLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Conv2d(2, 2, 1, bias=False)  # identity weights: A = x, with a graph
            nn.init.eye_(self.features.weight[:, :, 0, 0])

        def forward(self, x):  # logit = sum of squares of channel 0 + sum of channel 1
            a = self.features(x)
            return torch.stack([a[:, 0].pow(2).sum((1, 2)) + a[:, 1].sum((1, 2))], 1)

    a = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]])
    cam = make_method("gradcam_plus_plus", layer="features").explain(OneLayer(), a, torch.tensor([0]))
    g0, g1 = 2 * a[0, 0], torch.ones(2, 2)
    alpha0 = g0 ** 2 / torch.where(2 * g0 ** 2 + 4 * g0 ** 3 != 0, 2 * g0 ** 2 + 4 * g0 ** 3, torch.ones(2, 2))
    alpha1 = g1 ** 2 / (2 * g1 ** 2 + 4 * g1 ** 3)
    expected = (alpha0 * g0).sum() * a[0, 0] + (alpha1 * g1).sum() * a[0, 1]
    assert torch.allclose(cam[0], F.relu(expected), atol=1e-6)


@pytest.mark.parametrize("name,reference_class", [("gradcam", "GradCAM"), ("gradcam_plus_plus", "GradCAMPlusPlus")])
def test_cams_agree_with_the_grad_cam_package_after_its_normalisation(cnn, name, reference_class):
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class Scaled(nn.Module):  # logits x 1000: the package's eps = 1e-6 in Grad-CAM++'s alpha becomes negligible
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return 1e3 * self.model(x)

    cnn_model, images, targets = cnn
    model = Scaled(cnn_model)
    layer = model.get_submodule("model.net.layer4")
    with getattr(pytorch_grad_cam, reference_class)(model=model, target_layers=[layer]) as cam:
        reference = torch.from_numpy(cam(images, targets=[ClassifierOutputTarget(int(t)) for t in targets]))
    ours = make_method(name, layer="model.net.layer4").explain(model, images, targets)
    low, high = ours.flatten(1).amin(1).view(-1, 1, 1), ours.flatten(1).amax(1).view(-1, 1, 1)
    scaled = (ours - low) / (high - low + 1e-7)  # the package min-max scales each map (after resizing)
    assert torch.allclose(scaled, reference, atol=2e-3)


def test_occlusion_agrees_with_captum(cnn):
    model, images, targets = cnn
    reference = CaptumOcclusion(model).attribute(images, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                                 baselines=0.0, target=targets)
    ours = make_method("occlusion", window=8, stride=4, batch_size=50).explain(model, images, targets)
    assert torch.allclose(ours, reference[:, 0], atol=1e-4)


def test_rise_matches_the_paper_formula_on_a_toy_model():
    class CornerDetector(nn.Module):  # class 0 gets more likely the brighter the top-left quarter is
        def forward(self, x):
            corner = x[:, :, :4, :4].mean((1, 2, 3))
            return torch.stack([4 * corner, torch.zeros_like(corner)], 1)

    images, targets = torch.ones(2, 3, 8, 8), torch.tensor([0, 1])
    method = make_method("rise", masks=64, cells=2, p_keep=0.5, seed=3, batch_size=10)
    maps = method.explain(CornerDetector(), images, targets)
    masks = rise_masks(64, 2, 0.5, 8, 8, seed=3)
    for i in range(2):  # direct, unbatched: sum_i P(x * M_i) M_i / (N p)
        expected = sum(torch.softmax(CornerDetector()(images[i:i + 1] * m), 1)[0, targets[i]] * m for m in masks)
        assert torch.allclose(maps[i], expected / (64 * 0.5), atol=1e-5)
    assert maps[0, :4, :4].mean() > maps[0, 4:, 4:].mean()  # the evidence sits in the corner
    assert maps[1, :4, :4].mean() < maps[1, 4:, 4:].mean()
    assert masks.min() >= 0 and masks.max() <= 1 and masks.shape == (64, 8, 8)


def test_random_baseline_is_seeded_and_registry_errors_name_the_problem(linear, batch):
    images, targets = batch
    a = make_method("random", seed=1).explain(linear, images, targets)
    assert torch.equal(a, make_method("random", seed=1).explain(linear, images, targets))
    assert not torch.equal(a, make_method("random", seed=2).explain(linear, images, targets))
    with pytest.raises(ValueError, match="unknown attribution method 'lrp'"):
        make_method("lrp")
    with pytest.raises(ValueError, match="method 'rise'.*'cell'"):
        make_method("rise", cell=7)
    assert {"gradient", "integrated_gradients", "smoothgrad", "gradcam", "rise", "occlusion", "random"} <= set(METHODS)


def test_deeplift_on_a_linear_model_and_completeness_on_a_relu_cnn(linear, batch, cnn):
    images, targets = batch
    maps = make_method("deeplift", baseline="grey").explain(linear, images, targets)
    assert torch.allclose(maps, ((images - 0.5) * weights_of(linear, targets)).sum(1), atol=1e-5)
    model, cnn_images, cnn_targets = cnn  # ResNet without max-pool: summation-to-delta is exact
    maps = make_method("deeplift", batch_size=2).explain(model, cnn_images, cnn_targets)
    with torch.no_grad():
        delta = (model(cnn_images) - model(torch.zeros_like(cnn_images))).gather(1, cnn_targets[:, None])[:, 0]
    assert torch.allclose(maps.sum((1, 2)), delta, rtol=1e-3, atol=1e-5)


def test_guided_backprop_closed_form_and_inplace_flags_restored():
    torch.manual_seed(0)
    hidden = nn.Linear(12, 5, bias=False)
    out = nn.Linear(5, 2, bias=False)
    with torch.no_grad():  # all hidden units active on positive inputs; v has negative entries
        hidden.weight.abs_()
        out.weight[1] = torch.tensor([1.0, -2.0, 0.5, -1.0, 3.0])
    model = nn.Sequential(nn.Flatten(), hidden, nn.ReLU(inplace=True), out)
    x, target = torch.rand(1, 3, 2, 2), torch.tensor([1])
    h = hidden(x.flatten(1))
    v = out.weight[1]
    # guided: the gradient reaching each ReLU is v; keep its positive part where the ReLU was active
    expected = ((torch.relu(v) * (h[0] > 0)) @ hidden.weight).view(3, 2, 2).sum(0)
    maps = make_method("guided_backprop").explain(model, x, target)
    assert torch.allclose(maps[0], expected.detach(), atol=1e-6)
    assert not torch.allclose(make_method("gradient").explain(model, x, target)[0], expected.detach(), atol=1e-3)
    assert model[2].inplace  # switched off only during the call


class TwoClassLinear(nn.Module):
    """logits = [w.x + b, 0]: the decision boundary is the hyperplane w.x + b = 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.w = nn.Parameter(torch.randn(3, 6, 6) * 0.5)
        self.b = nn.Parameter(torch.tensor(-2.0))

    def forward(self, x):
        score = (x * self.w).sum((1, 2, 3)) + self.b
        return torch.stack([score, torch.zeros_like(score)], 1)


def test_boundary_search_on_a_linear_model_finds_the_hyperplane():
    model = TwoClassLinear()
    torch.manual_seed(5)
    images = torch.rand(6, 3, 6, 6) * 0.3 + 0.35  # away from the [0, 1] box edges
    with torch.no_grad():
        predicted = model(images).argmax(1)
        exact = model(images)[:, 0].abs() / model.w.norm()  # |w.x + b| / ||w||
    bsm = make_method("bsm", eps=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), pgd_steps=20, cw_steps=200, cw_lr=0.01)
    maps = bsm.explain(model, images, predicted)
    extras = bsm.per_image_extras()
    assert extras["boundary_success"].all()
    # the closer of PGD and CW lands just beyond the hyperplane: within 10 % of the exact distance
    assert torch.allclose(torch.from_numpy(extras["boundary_distance"]), exact, rtol=0.1)
    w_for_class = torch.where(predicted.view(-1, 1, 1, 1) == 0, model.w.detach(), torch.zeros_like(model.w))
    assert torch.allclose(maps, w_for_class.sum(1), atol=1e-5)  # BSM of a linear model = its gradient
    pgd_only = make_method("bsm", eps=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), pgd_steps=20, use_cw=False)
    pgd_only.explain(model, images, predicted)
    pgd_distance = torch.from_numpy(pgd_only.per_image_extras()["boundary_distance"])
    assert (pgd_distance >= exact - 1e-4).all()  # PGD overshoots to the next eps of the list


def test_big_integrates_from_the_boundary_point():
    model = TwoClassLinear()
    torch.manual_seed(6)  # on the class-0 side of the hyperplane: w.x + b > 0
    w = model.w.detach()
    shift = (2.0 + 1.5 - 0.5 * w.sum()) / w.abs().sum()  # puts 0.5 + shift * sign(w) at score 1.5
    images = (0.5 + shift * w.sign() + 0.01 * torch.randn(4, 3, 6, 6)).clamp(0, 1)
    with torch.no_grad():
        predicted = model(images).argmax(1)
        score = model(images)[:, 0]
    assert (predicted == 0).all()
    big = make_method("big", steps=8, eps=(0.1, 0.2, 0.4, 0.8, 1.6, 3.2), pgd_steps=20, cw_steps=200)
    maps = big.explain(model, images, predicted)
    assert big.per_image_extras()["boundary_success"].all()
    # IG of a linear logit from x' to x is exact: it sums to f(x) - f(x'), and f(x') is just below 0
    # (the class flipped) and close to it (the point is the closest one found).
    assert (maps.sum((1, 2)) >= score - 1e-4).all()
    assert torch.allclose(maps.sum((1, 2)), score, rtol=0.15)
    assert maps.shape == (4, 6, 6)


def test_robust_counterpart_takes_the_map_from_the_bound_model(linear, batch):
    images, targets = batch
    torch.manual_seed(9)
    other = Linear().eval()
    method = make_method("robust_counterpart", counterpart="twin", base="gradient")
    assert type(method).needed_models({"counterpart": "twin", "base": "gradient"}) == {"counterpart": "twin"}
    with pytest.raises(RuntimeError, match="bind the model named by 'counterpart'"):
        method.explain(linear, images, targets)
    maps = method.bind_models({"counterpart": other}).explain(linear, images, targets)
    assert torch.allclose(maps, weights_of(other, targets).sum(1), atol=1e-6)
    assert not torch.allclose(maps, weights_of(linear, targets).sum(1), atol=1e-3)
    with pytest.raises(ValueError, match="cannot use itself"):
        make_method("robust_counterpart", counterpart="twin", base="robust_counterpart")


@pytest.mark.parametrize("name,settings", [
    ("smoothgrad", {"samples": 4}), ("gradient_shap", {"samples": 4}),
    ("integrated_gradients", {"steps": 4, "baseline": "noise", "trials": 2}), ("deeplift", {"baseline": "noise"}),
    ("random", {}), ("rise", {"masks": 30, "cells": 3}), ("bsm", {"pgd_steps": 3, "cw_steps": 5}),
    ("lime", {"samples": 40, "segments": 10}),
    ("meaningful_perturbation", {"iterations": 5, "blur_sigma": 2, "jitter": 2})])
def test_maps_do_not_depend_on_batching(cnn, name, settings):
    model, images, targets = cnn
    method = make_method(name, **settings)
    together = method.explain(model, images, targets)
    apart = torch.cat([make_method(name, **settings).explain(model, images[i:i + 1], targets[i:i + 1])
                       for i in range(len(images))])
    assert torch.allclose(together, apart, atol=1e-5)


def test_weighted_ridge_matches_scikit_learn():
    from sklearn.linear_model import Ridge

    generator = torch.Generator().manual_seed(0)
    features = torch.randint(0, 2, (200, 7), generator=generator).float()
    targets, weights = torch.rand(200, generator=generator), torch.rand(200, generator=generator)
    reference = Ridge(alpha=1.0).fit(features.numpy(), targets.numpy(), sample_weight=weights.numpy()).coef_
    assert torch.allclose(weighted_ridge(features, targets, weights, 1.0), torch.from_numpy(reference).double(), atol=1e-5)


def test_lime_recovers_superpixel_contributions_of_a_linear_model(linear, batch):
    """With a zero fill the target logit of a linear model is exactly linear in the on/off vector:
    logit = b + sum_s z_s <w, x restricted to superpixel s>, so LIME's ridge fit recovers each term."""
    images, targets = batch
    method = make_method("lime", samples=300, segments=6, compactness=1, sigma=0, fill=0.0, output="logit",
                         alpha=1e-6)
    maps = method.explain(linear, images, targets)
    contributions = (weights_of(linear, targets) * images).sum(1)  # (N, H, W) per pixel
    for image, contribution, lime_map in zip(images, contributions, maps):
        labels = superpixels(image, 6, 1, 0)
        assert labels.max() >= 2  # several superpixels, not a trivial one-segment split
        for label in labels.unique():
            inside = labels == label
            assert torch.allclose(lime_map[inside], contribution[inside].sum().expand(int(inside.sum())), atol=1e-3)
    with pytest.raises(ValueError, match="fill must be"):
        make_method("lime", fill="grey")


def test_lime_mean_fill_and_probability_map_is_constant_per_superpixel(cnn):
    model, images, targets = cnn
    method = make_method("lime", samples=64, segments=12)
    maps = method.explain(model, images[:1], targets[:1])
    labels = superpixels(images[0], 12, 30.0, 3.0)
    for label in labels.unique():
        values = maps[0][labels == label]
        assert torch.all(values == values[0])
    background = method.fill_image(images[0], labels, int(labels.max()) + 1)
    first = labels == 0
    assert torch.allclose(background[:, first], images[0][:, first].mean(1, keepdim=True).expand(-1, int(first.sum())))
    assert maps.abs().max() <= 1  # probability units


class RegionDetector(nn.Module):
    """Class 0's logit grows with the brightness of a 4 x 4 region; class 1's logit is constant."""

    def __init__(self):
        super().__init__()
        self.region = torch.zeros(1, 16, 16)
        self.region[:, 4:8, 9:13] = 1

    def forward(self, x):
        evidence = (x.mean(1) * self.region).sum((1, 2)) / self.region.sum()
        return torch.stack([12 * evidence - 6, torch.zeros_like(evidence)], 1)


def test_meaningful_perturbation_deletes_the_evidence_region():
    images = torch.zeros(2, 3, 16, 16)
    images[:, :, 4:8, 9:13] = 1
    images[1] += 0.1 * torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    model, targets = RegionDetector().eval(), torch.tensor([0, 0])
    for init in ("ones", "circular"):
        maps = make_method("meaningful_perturbation", iterations=150, blur_sigma=2, jitter=0, init=init, l1=1e-3,
                           tv=1e-3).explain(model, images, targets)
        region = model.region[0].bool()
        assert maps.shape == (2, 16, 16) and 0 <= maps.min() and maps.max() <= 1
        assert (maps[:, region].mean(1) > maps[:, ~region].mean(1) + 0.5).all(), init


def test_total_variation_and_blur_by_hand():
    masks = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    assert total_variation(masks, 3.0).item() == 2.0  # two unit steps, cubed
    flat = torch.full((1, 3, 9, 9), 0.25)
    assert torch.allclose(blur(flat, 2.0), flat)  # a blur keeps constants
    step = torch.zeros(1, 1, 1, 9)
    step[..., 4:] = 1
    smooth = blur(step.expand(1, 1, 9, 9), 1.0)[0, 0, 4]
    assert 0 < smooth[3] < 0.5 < smooth[4] < 1  # the edge is spread over neighbours
