"""ROAD: noisy linear imputation (exact on linear images, equal to a sparse solve and to pytorch-grad-cam's
copy of the reference) and the metric's curves on a hand-built model."""
import numpy as np
import pytest
import torch
from scipy.sparse import lil_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

from robustxai.metrics import MetricBatch, make_metric
from robustxai.metrics.road import linear_imputation, noisy_linear_imputation

OFFSETS = {(dy, dx): (1 / 12 if dy and dx else 1 / 6) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx}


def sparse_solve(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The reference system solved exactly with scipy, one image (C, H, W) and mask (H, W)."""
    c, h, w = image.shape
    unknown = np.flatnonzero(removed)
    position = {p: k for k, p in enumerate(unknown)}
    matrix, rhs = lil_matrix((len(unknown), len(unknown))), np.zeros((len(unknown), c))
    for k, p in enumerate(unknown):
        y, x = divmod(p, w)
        for (dy, dx), weight in OFFSETS.items():
            if 0 <= y + dy < h and 0 <= x + dx < w:
                matrix[k, k] += weight
                q = (y + dy) * w + x + dx
                if removed.flat[q]:
                    matrix[k, position[q]] -= weight
                else:
                    rhs[k] += weight * image[:, y + dy, x + dx]
    out = image.reshape(c, -1).copy()
    out[:, unknown] = spsolve(matrix.tocsc(), rhs).reshape(len(unknown), c).T
    return out.reshape(c, h, w)


def test_imputation_reproduces_linear_images_exactly():
    ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(10.0), indexing="ij")
    ramp = torch.stack([0.05 * ys + 0.02 * xs, 0.9 - 0.03 * xs, 0.1 + 0.04 * ys])[None]  # (1, 3, 12, 10)
    removed = torch.rand(1, 12, 10, generator=torch.Generator().manual_seed(0)) < 0.6
    removed[0, :, 0] = False  # keep the boundary of the ramp known
    removed[0, :, -1] = removed[0, 0, :] = removed[0, -1, :] = False
    imputed = linear_imputation(ramp, removed)
    assert removed.sum() > 40 and torch.allclose(imputed, ramp, atol=1e-5)
    # kept pixels are never touched
    assert torch.equal(imputed[0][:, ~removed[0]], ramp[0][:, ~removed[0]])


@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.95])
def test_imputation_equals_an_exact_sparse_solve(fraction):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 16, 16, generator=generator)
    removed = torch.rand(4, 16, 16, generator=generator) < fraction
    ours = linear_imputation(images, removed).numpy()
    for i in range(4):
        np.testing.assert_allclose(ours[i], sparse_solve(images[i].numpy(), removed[i].numpy()), atol=1e-4)


def test_imputation_agrees_with_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    generator = torch.Generator().manual_seed(2)
    images = torch.rand(3, 3, 20, 20, generator=generator)
    removed = torch.rand(3, 20, 20, generator=generator) < 0.5
    ours = linear_imputation(images, removed)
    theirs = torch.stack([NoisyLinearImputer(noise=0.0)(images[i], (~removed[i]).float()) for i in range(3)])
    assert (ours - theirs).abs().max() < 1e-4
    # with noise: the imputed entries scatter around the noiseless values by the noise's sd
    noisy = noisy_linear_imputation(images, removed, 0.01, torch.Generator().manual_seed(0))
    spread = (noisy - ours)[removed[:, None].expand_as(noisy)]
    assert abs(spread.std().item() - 0.01) < 0.001 and torch.equal(noisy[~removed[:, None].expand_as(noisy)],
                                                                     images[~removed[:, None].expand_as(noisy)])


def test_an_image_with_every_pixel_removed_gets_its_channel_means():
    images = torch.rand(2, 3, 6, 6)
    removed = torch.zeros(2, 6, 6, dtype=torch.bool)
    removed[0] = True
    imputed = linear_imputation(images, removed)
    assert torch.allclose(imputed[0], images[0].mean((1, 2), keepdim=True).expand(3, 6, 6))
    assert torch.equal(imputed[1], images[1])


class BrightCentre(nn.Module):
    """Two classes: logit 1 = 10 x (mean of the central 4 x 4 pixels - 0.5), logit 0 = 0."""

    def forward(self, images):
        centre = images[..., 2:6, 2:6].mean((1, 2, 3))
        return torch.stack([torch.zeros_like(centre), 10 * (centre - 0.5)], 1)


def test_road_curves_reward_the_map_that_points_at_the_evidence():
    images = torch.zeros(2, 3, 8, 8)
    images[..., 2:6, 2:6] = 1.0  # a bright centre on a dark background: class 1
    faithful = torch.zeros(2, 8, 8)
    faithful[:, 2:6, 2:6] = 1.0
    metric = make_metric("road", fractions=[0.25, 0.5], noise=0.0)
    model = BrightCentre()
    targets = torch.ones(2, dtype=torch.long)
    good = metric(model, MetricBatch(images, faithful, targets, torch.zeros(2, 4)))
    bad = metric(model, MetricBatch(images, -faithful, targets, torch.zeros(2, 4)))
    assert set(good) >= {"road_morf", "road_lerf", "road_morf_prob_0.25", "road_lerf_correct_0.5"}
    # MoRF of the faithful map removes the 16 centre pixels first, imputed from the dark ring around them
    assert torch.allclose(good["road_morf_prob_0.25"], torch.sigmoid(torch.tensor(-5.0)), atol=1e-4)
    assert (good["road_morf_correct_0.25"] == 0).all() and (bad["road_morf_correct_0.5"] == 1).all()
    # ... while the reversed map removes background, and LeRF mirrors both
    assert (bad["road_morf_prob_0.25"] > 0.99).all() and (good["road_lerf_prob_0.5"] > 0.99).all()
    assert (good["road_morf"] < bad["road_morf"] - 0.4).all() and (good["road_lerf"] > bad["road_lerf"] + 0.4).all()
    # the AUC is the trapezoid of the probability over [0, 0.5], over 0.5
    clean = model(images).softmax(1)[:, 1]
    expected = ((clean + good["road_morf_prob_0.25"]) / 2 * 0.25
                + (good["road_morf_prob_0.25"] + good["road_morf_prob_0.5"]) / 2 * 0.25) / 0.5
    assert torch.allclose(good["road_morf"], expected)


def test_road_settings_are_checked():
    with pytest.raises(ValueError, match="fractions"):
        make_metric("road", fractions=[0.5, 0.2])
    with pytest.raises(ValueError, match="orders"):
        make_metric("road", orders=["most"])
