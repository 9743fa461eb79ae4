import pytest
import torch
import torch.nn.functional as F

from robustxai.training.attacks import eval_mode, pgd_attack, project


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_stays_in_eps_ball_and_unit_box(tiny_classifier, norm, eps):
    images = torch.rand(16, 3, 8, 8)
    images[:4] = 0.0  # corners of the box: clipping must still hold
    images[4:8] = 1.0
    labels = torch.randint(0, 3, (16,))
    adversarial = pgd_attack(tiny_classifier.eval(), images, labels, eps=eps, steps=10, norm=norm)
    delta = (adversarial - images).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert size.max() > 0.5 * eps  # it moved, not a no-op


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_pgd_increases_the_loss(tiny_classifier, norm, eps):
    images, labels = torch.rand(32, 3, 8, 8) * 0.5 + 0.25, torch.randint(0, 3, (32,))
    model = tiny_classifier.eval()
    adversarial = pgd_attack(model, images, labels, eps=eps, steps=10, norm=norm, random_init=False)
    with torch.no_grad():
        assert F.cross_entropy(model(adversarial), labels) > F.cross_entropy(model(images), labels) + 1e-3


def test_pgd_on_a_linear_model_takes_the_signed_gradient_step():
    # logits = [w.x, -w.x]; for label 0 the loss grows fastest along -sign(w) (Linf).
    w = torch.tensor([1.0, -2.0, 0.5, -0.25]).view(1, 1, 2, 2)

    def model(x):
        score = (x * w).sum((1, 2, 3))
        return torch.stack([score, -score], 1)

    x = torch.full((1, 1, 2, 2), 0.5)
    adversarial = pgd_attack(model, x, torch.tensor([0]), eps=0.1, steps=3, norm="linf", random_init=False)
    assert torch.allclose(adversarial - x, -0.1 * w.sign())


def test_l2_projection_scales_only_outside_the_ball():
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4]]).view(2, 1, 1, 2)
    projected = project(delta, 1.0, "l2")
    assert torch.allclose(projected[0].flatten(), torch.tensor([0.6, 0.8]))
    assert torch.allclose(projected[1], delta[1])


def test_eval_mode_restores_each_module_flag(tiny_classifier):
    tiny_classifier.train()
    tiny_classifier.net.bn.eval()
    with eval_mode(tiny_classifier):
        assert not any(m.training for m in tiny_classifier.modules())
    assert tiny_classifier.training and tiny_classifier.net.conv.training and not tiny_classifier.net.bn.training


def test_unknown_norm_is_rejected(tiny_classifier):
    with pytest.raises(ValueError, match="unknown norm"):
        pgd_attack(tiny_classifier, torch.rand(1, 3, 8, 8), torch.tensor([0]), eps=0.1, steps=1, norm="l1")
