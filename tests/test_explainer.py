"""The learned explainer (Zeng et al. 2021): branch shapes, loss, training, targets, method, checkpoints."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from robustxai.attribution import make_method
from robustxai.attribution.shards import AttributionShard, write_shard
from robustxai.attribution.targets import normalise_per_image
from robustxai.data.builtin import make_builtin_splits
from robustxai.data.splits import save_split
from robustxai.metrics.sanity import gaussian_conv_weights, last_conv_block
from robustxai.models import build_classifier, load_checkpoint, save_checkpoint
from robustxai.models.explainer import ExplainerBranch, branch_settings, build_branch, default_strides
from robustxai.pipeline.models import target_maps, train_model_job
from robustxai.training.algorithms import ExplainerTraining, alignment_loss, make_algorithm
from robustxai.training.loop import TrainingSettings, augment, train

CPU = torch.device("cpu")


def explainer_model(arch="cifar_resnet_tiny", image_size=32, widths=(8, 8, 4)):
    model = build_classifier(arch, 10, (0.5,) * 3, (0.25,) * 3)
    model.explainer = build_branch(branch_settings(model.net, image_size, {"widths": list(widths)}))
    return model.eval()


@pytest.mark.parametrize("size,feature,strides", [(32, 4, (2, 2, 2, 1)), (64, 8, (2, 2, 2, 1))])
def test_branch_maps_resnet18_features_to_input_size(size, feature, strides):
    assert default_strides(feature, size, 4) == strides
    branch = ExplainerBranch(512, strides=strides).eval()
    maps = branch(torch.randn(2, 512, feature, feature))
    assert maps.shape == (2, 1, size, size) and (maps >= 0).all()
    assert sum(p.numel() for p in branch.parameters()) == pytest.approx(1.55e6, rel=0.02)  # the reference's count


@pytest.mark.parametrize("size", [32, 64])
def test_branch_on_a_registered_arch_reaches_the_input_size(size):
    model = explainer_model(image_size=size)
    assert model.explainer.settings["strides"] == [2, 2, 1, 1]  # tiny ResNet: stride 4 overall
    images = torch.rand(3, 3, size, size)
    logits, maps = model.classify_and_explain(images)
    assert logits.shape == (3, 10) and maps.shape == (3, 1, size, size)
    assert torch.allclose(logits, model(images), atol=1e-5)  # one backbone pass serves both heads


def test_branch_kernel_and_stride_choices():
    assert ExplainerBranch(4, (4,), kernel=4, strides=(2, 2))(torch.zeros(1, 4, 5, 5)).shape == (1, 1, 20, 20)
    with pytest.raises(ValueError, match="kernel 4 cannot upsample by exactly 1"):
        ExplainerBranch(4, (4,), kernel=4, strides=(2, 1))
    with pytest.raises(ValueError, match="cannot upsample a 8-px feature map to 24 px"):
        default_strides(8, 24, 4)
    with pytest.raises(ValueError, match="4 layers"):
        ExplainerBranch(4, (4, 4, 4), strides=(2, 2))
    with pytest.raises(ValueError, match="upsample the 8-px feature map to 16 px"):
        branch_settings(build_classifier("cifar_resnet_tiny", 10).net, 32, {"strides": [2, 1, 1, 1]})


def test_alignment_loss_equals_a_hand_computation():
    predicted = torch.zeros(2, 1, 2, 2)
    target = torch.stack([torch.ones(1, 2, 2), 3 * torch.ones(1, 2, 2)])
    assert alignment_loss(predicted, target, "l2").item() == pytest.approx((2 + 6) / 2)  # ||1||=2, ||3||=6
    assert alignment_loss(predicted, target, "mse").item() == pytest.approx((1 + 9) / 2)

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.explainer = nn.Linear(1, 1), nn.Identity()

        def classify_and_explain(self, images, pre_activation=False):
            assert pre_activation  # the loss fits the maps before the final ReLU
            return torch.zeros(len(images), 4), torch.zeros(len(images), 1, 2, 2)

    loss, logits = ExplainerTraining(weight=0.35).loss(Fixed(), torch.zeros(2, 3, 2, 2), torch.tensor([0, 3]), target)
    assert loss.item() == pytest.approx(math.log(4) + 0.35 * 4.0) and logits.shape == (2, 4)
    assert ExplainerTraining().epoch_summary() == {"alignment_loss": 0.0}


def test_augmentation_keeps_image_and_target_map_aligned():
    n, size = 64, 16
    generator = torch.Generator().manual_seed(0)
    spots = torch.randint(3, size - 3, (n, 2), generator=generator)
    stacked = torch.zeros(n, 4, size, size)
    for i, (y, x) in enumerate(spots.tolist()):
        stacked[i, :3, y, x] = 1.0  # a marked pixel in the image
        stacked[i, 3, y, x] = 1.0   # the one-hot target map at the same pixel
    for pad in ("reflect", "zeros"):
        out = augment(stacked, translate=2, hflip=True, generator=generator, pad=pad)
        image_spot, map_spot = out[:, 0].flatten(1).argmax(1), out[:, 3].flatten(1).argmax(1)
        assert torch.equal(image_spot, map_spot)
        assert not torch.equal(map_spot, stacked[:, 3].flatten(1).argmax(1))  # they did move


@pytest.fixture(scope="module")
def digits():
    splits = make_builtin_splits({"train": 512, "val": 64, "test": 1, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=2)
    return splits


def test_frozen_backbone_keeps_every_backbone_weight_and_statistic(digits):
    model = explainer_model()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    branch_before = {k: v.clone() for k, v in model.explainer.state_dict().items()}
    x, y = digits["train"].tensors()
    maps = torch.rand(len(x), 1, 32, 32)
    result = train(model, make_algorithm("explainer", settings={"freeze_backbone": True}),
                   TrainingSettings(epochs=1, batch_size=64), x, y, *digits["val"].tensors(), device=CPU, train_maps=maps)
    assert all(torch.equal(before[k], v) for k, v in result.model.net.state_dict().items())
    assert any(not torch.equal(branch_before[k], v) for k, v in result.model.explainer.state_dict().items())
    assert "alignment_loss" in result.history[0] and all(p.requires_grad for p in result.model.parameters())


def test_joint_training_learns_the_targets_and_the_checkpoint_round_trips(digits, tmp_path):
    x, y = digits["train"].tensors()
    targets = torch.from_numpy(digits["train"].masks).float()[:, None]  # the digits' masks: learnable from the image
    # the initial weights are seeded: at this size (512 images, 5 epochs) the branch settles on the mean
    # map from 1 of 4 initialisations (seeds 0-3: seed 0, with timm's ResNet as with ours), whatever runs first
    torch.manual_seed(1)
    model = explainer_model()
    result = train(model, make_algorithm("explainer"), TrainingSettings(epochs=5, batch_size=16, lr=0.05), x, y,
                   *digits["val"].tensors(), device=CPU, train_maps=targets)
    losses = [row["alignment_loss"] for row in result.history]
    assert losses[-1] < 0.75 * losses[0]
    val_images, val_masks = digits["val"].tensors()[0], torch.from_numpy(digits["val"].masks).float()
    maps = result.model.explain(val_images)[:, 0]
    mass_in_mask = ((maps * val_masks).sum((1, 2)) / maps.sum((1, 2)).clamp_min(1e-9)).mean()
    assert (maps >= 0).all() and mass_in_mask > 3 * val_masks.mean()  # far above the mask's share of the image
    save_checkpoint(result.model, tmp_path / "m.pt", "cifar_resnet_tiny", 10)
    loaded, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["explainer"]["strides"] == [2, 2, 1, 1]
    assert torch.equal(loaded.explain(x[:4]), result.model.explain(x[:4]))
    with pytest.raises(ValueError, match="needs one target map per training image"):
        train(explainer_model(), make_algorithm("explainer"), TrainingSettings(epochs=1), x, y, x, y, CPU)


def test_train_model_job_reads_targets_from_shards_and_starts_from_init(digits, tmp_path):
    save_split(digits["train"], tmp_path / "train.h5")
    save_split(digits["val"], tmp_path / "val.h5")
    vanilla = build_classifier("cifar_resnet_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    save_checkpoint(vanilla, tmp_path / "vanilla.pt", "cifar_resnet_tiny", 10)
    paths = []
    for k, index in enumerate((np.arange(0, 200), np.arange(200, 512))):  # two shards, as the workflow writes
        paths.append(tmp_path / f"shard-{k}.h5")
        write_shard(AttributionShard(maps=np.full((len(index), 32, 32), k + 1.0, np.float32), index=index,
                                     target=np.zeros(len(index)), predicted=np.zeros(len(index)),
                                     probs=np.zeros((len(index), 10))), paths[-1])
    maps = target_maps([str(p) for p in paths], 512)
    assert maps.shape == (512, 1, 32, 32) and maps[199].max() == 1 and maps[200].min() == 2
    with pytest.raises(ValueError, match="cover 200 of 512 images"):
        target_maps([str(paths[0])], 512)
    entry = {"arch": "cifar_resnet_tiny", "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3, "arch_args": {},
             "algorithm": "explainer", "image_size": 32, "init_from": "vanilla",
             "explainer": {"lambda": 0.35, "loss": "l2", "freeze_backbone": True, "branch_lr_scale": 0.1,
                           "branch": {"widths": [8, 8, 4]}},
             "training": {"epochs": 1, "batch_size": 64}}
    train_model_job("x", entry, str(tmp_path / "train.h5"), str(tmp_path / "val.h5"), str(tmp_path / "x.pt"),
                    str(tmp_path / "x.csv"), device=CPU, target_paths=[str(p) for p in paths],
                    init_path=str(tmp_path / "vanilla.pt"))
    trained, payload = load_checkpoint(tmp_path / "x.pt")
    assert payload["meta"]["algorithm"] == "explainer" and trained.explainer is not None
    assert all(torch.equal(v, vanilla.net.state_dict()[k]) for k, v in trained.net.state_dict().items())


def test_explainer_method_is_the_branch_output_in_one_forward_pass():
    torch.manual_seed(0)
    model, other = explainer_model(), explainer_model()
    images = torch.rand(5, 3, 32, 32)
    method = make_method("explainer", batch_size=2)
    calls = []
    model.net.layer1.register_forward_hook(lambda *args: calls.append(1))  # one backbone pass per batch
    maps = method.explain(model, images, torch.zeros(5, dtype=torch.long))
    assert len(calls) == 3  # 3 batches of at most 2 images, one backbone pass each
    assert maps.std() > 0  # a real map (an all-zero one, the final ReLU's floor, would match anything)
    assert torch.allclose(maps, model.explain(images)[:, 0], atol=1e-5)  # batches of 2 round differently than of 5
    assert not maps.requires_grad
    borrowed = make_method("explainer", explainer="other").bind_models({"explainer": other})
    assert torch.allclose(borrowed.explain(model, images, torch.zeros(5, dtype=torch.long)), other.explain(images)[:, 0])
    vanilla = build_classifier("cifar_resnet_tiny", 10).eval()
    with pytest.raises(ValueError, match="no explainer branch"):
        make_method("explainer").explain(vanilla, images, torch.zeros(5, dtype=torch.long))
    cls = type(method)
    with pytest.raises(ValueError, match=r"\['plain'\] have no explainer branch"):
        cls.check_models({}, {"plain": {"algorithm": "vanilla"}, "e": {"algorithm": "explainer"}}, {})
    cls.check_models({"explainer": "e"}, {"plain": {"algorithm": "vanilla"}}, {"e": {"algorithm": "explainer"}})


def test_alignment_target_is_the_normalised_smoothgrad_magnitude():
    weights = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # class x channel

    class Linear(nn.Module):  # logit_k = sum_c w_kc * mean over pixels of channel c (times pixel weights)
        def forward(self, x):
            return torch.einsum("kc,nchw,hw->nk", weights, x, pixel)

    pixel = torch.tensor([[1.0, 2.0], [0.0, -4.0]])
    images = torch.rand(2, 3, 2, 2)
    targets = torch.tensor([0, 1])
    method = make_method("alignment_target", samples=5, batch_size=4)
    maps = method.explain(Linear(), images, targets)
    # the gradient is w_kc * pixel_hw whatever the noise: |.| averaged over channels, divided by the max
    expected = weights[targets].abs().mean(1).view(2, 1, 1) * pixel.abs()
    assert torch.allclose(maps, expected / expected.flatten(1).amax(1).view(2, 1, 1), atol=1e-6)
    assert maps.amax((1, 2)).tolist() == [1.0, 1.0] and method.channel_rule.startswith("abs_mean")
    squared = make_method("alignment_target", samples=2, reduction="square_mean", normaliser="none").explain(
        Linear(), images, targets)
    assert torch.allclose(squared, weights[targets].pow(2).mean(1).view(2, 1, 1) * pixel ** 2, atol=1e-5)
    assert torch.equal(normalise_per_image(torch.ones(1, 2, 2), "minmax"), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        make_method("alignment_target", reduction="sum")


def test_last_block_randomisation_draws_kaiming_noise_in_the_last_residual_block_only():
    model = explainer_model()
    assert last_conv_block(model) == "net.layer4.0"
    assert last_conv_block(build_classifier("cifar_vgg_tiny", 10)) == "net.features.17"  # the last conv (then BN and ReLU)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    block = model.get_submodule("net.layer4.0")
    gaussian_conv_weights(block, seed=1)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"net.layer4.0.conv1.weight", "net.layer4.0.conv2.weight"}  # BN and the branch kept
    weight = block.conv1.weight
    assert weight.mean().abs() < 0.01 and weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
