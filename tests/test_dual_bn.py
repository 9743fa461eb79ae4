import copy

import torch

from robustxai.models import build_classifier, load_checkpoint, save_checkpoint
from robustxai.training.algorithms import AdvPropTraining, AttackSettings
from robustxai.training.dual_bn import DualBatchNorm, auxiliary_bn, convert_to_dual_bn, strip_aux_bn


def _trained_stats(model):
    """Give BN layers non-trivial statistics so equality checks mean something."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 3, 8, 8))
    return model.eval()


def test_dual_bn_model_in_eval_mode_equals_source(tiny_classifier):
    source = _trained_stats(tiny_classifier)
    dual = convert_to_dual_bn(copy.deepcopy(source)).eval()
    assert sum(isinstance(m, DualBatchNorm) for m in dual.modules()) == 1
    x = torch.rand(8, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(dual(x), source(x))
        with auxiliary_bn(dual):  # aux starts as an exact copy
            assert torch.equal(dual(x), source(x))


def test_aux_statistics_change_only_with_adversarial_batches(tiny_classifier):
    model = convert_to_dual_bn(_trained_stats(tiny_classifier))
    dual = next(m for m in model.modules() if isinstance(m, DualBatchNorm))
    main_before, aux_before = dual.main.running_mean.clone(), dual.aux.running_mean.clone()
    algorithm = AdvPropTraining(AttackSettings(norm="linf", eps=0.1, steps=2))
    model.train()
    images, labels = torch.rand(16, 3, 8, 8), torch.randint(0, 3, (16,))
    with torch.no_grad():
        model(images)  # a clean batch: main moves, aux does not
    assert not torch.equal(dual.main.running_mean, main_before)
    assert torch.equal(dual.aux.running_mean, aux_before)
    main_after_clean = dual.main.running_mean.clone()
    with auxiliary_bn(model), torch.no_grad():
        model(images + 0.1)  # an adversarial batch: aux moves, main does not
    assert torch.equal(dual.main.running_mean, main_after_clean)
    assert not torch.equal(dual.aux.running_mean, aux_before)
    aux_after = dual.aux.running_mean.clone()
    algorithm.attack.attack(model, images, labels)  # crafting runs in eval mode: nothing moves
    assert torch.equal(dual.aux.running_mean, aux_after) and torch.equal(dual.main.running_mean, main_after_clean)


def test_advprop_loss_trains_both_branches(tiny_classifier):
    model = AdvPropTraining(AttackSettings(eps=0.1, steps=1)).prepare(tiny_classifier).train()
    dual = next(m for m in model.modules() if isinstance(m, DualBatchNorm))
    loss, logits = AdvPropTraining(AttackSettings(eps=0.1, steps=1)).loss(
        model, torch.rand(8, 3, 8, 8), torch.randint(0, 3, (8,)))
    loss.backward()
    assert logits.shape == (8, 3)
    assert dual.main.weight.grad.abs().sum() > 0 and dual.aux.weight.grad.abs().sum() > 0


def test_stripped_advprop_checkpoint_loads_strictly_into_plain_architecture(tmp_path):
    model = build_classifier("cifar_vgg_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    convert_to_dual_bn(model)
    assert any(".aux." in key for key in model.state_dict())
    stripped = strip_aux_bn(model).eval()
    assert not any(".aux." in key or ".main." in key for key in stripped.state_dict())
    save_checkpoint(stripped, tmp_path / "m.pt", "cifar_vgg_tiny", 10)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")  # strict=True inside
    plain = build_classifier("cifar_vgg_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), stripped(x))
