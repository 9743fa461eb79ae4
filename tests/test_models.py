import pytest
import timm
import torch

from robustxai.data.download import file_digest
from robustxai.models import build_classifier, load_checkpoint, save_checkpoint
from robustxai.models.architectures import register_in_timm
from robustxai.pipeline.models import fetch_timm_job, import_checkpoint_job


@pytest.mark.parametrize("arch,feature_side", [("cifar_resnet_tiny", 8), ("cifar_vgg_tiny", 8), ("cifar_resnet18", 4)])
def test_cifar_architectures_keep_a_useful_feature_map(arch, feature_side):
    model = build_classifier(arch, 10)
    register_in_timm()
    assert arch in timm.list_models("cifar_*")
    assert isinstance(timm.create_model(arch, num_classes=3), type(model.net))
    features = model.net.forward_features(torch.rand(1, 3, 32, 32)) if hasattr(model.net, "forward_features") \
        else model.net.features(torch.rand(1, 3, 32, 32))
    assert features.shape[-2:] == (feature_side, feature_side)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("arch,layers,channels,kwargs", [
    ("cifar_resnet_tiny", (1, 1, 1, 1), (16, 32, 64, 64), {"output_stride": 16, "zero_init_last": False}),
    ("cifar_resnet18", (2, 2, 2, 2), (64, 128, 256, 512), {})])
def test_cifar_resnets_are_timm_resnets_with_a_cifar_stem(arch, layers, channels, kwargs):
    """Built without timm, they are its ResNet with the 3x3/1 stem: the same state dict keys and shapes,
    and the same outputs for the same weights (in training mode too: batch norm, dilation, shortcuts)."""
    from timm.models.resnet import BasicBlock, ResNet

    reference = ResNet(block=BasicBlock, layers=layers, channels=channels, num_classes=7, stem_type="deep",
                       stem_width=channels[0] // 2, **kwargs)
    reference.conv1 = torch.nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
    reference.maxpool = torch.nn.Identity()
    ours = build_classifier(arch, 7).net
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(4, 3, 32, 32)
    for mode in (True, False):
        ours.train(mode), reference.train(mode)
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
        assert torch.allclose(ours.forward_features(x), reference.forward_features(x), atol=1e-5)


def test_normalisation_lives_inside_the_model():
    model = build_classifier("cifar_vgg_tiny", 10, mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.125)).eval()
    x = torch.rand(2, 3, 32, 32)
    expected = model.net((x - torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1))
                         / torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1))
    assert torch.allclose(model(x), expected)


def test_unknown_architecture_names_the_problem():
    with pytest.raises(ValueError, match="unknown architecture 'no_such_net'"):
        build_classifier("no_such_net", 10)


def test_checkpoint_round_trip_is_exact_and_weights_only(tmp_path):
    model = build_classifier("cifar_resnet_tiny", 10, (0.1, 0.2, 0.3), (0.3, 0.2, 0.1)).eval()
    save_checkpoint(model, tmp_path / "m.pt", "cifar_resnet_tiny", 10, meta={"algorithm": "vanilla"})
    torch.load(tmp_path / "m.pt", weights_only=True)  # would raise on pickled objects
    loaded, payload = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert payload["meta"]["algorithm"] == "vanilla" and payload["mean"] == pytest.approx([0.1, 0.2, 0.3])


def test_checkpoint_with_a_missing_key_fails_strict_loading(tmp_path):
    model = build_classifier("cifar_vgg_tiny", 10)
    save_checkpoint(model, tmp_path / "m.pt", "cifar_vgg_tiny", 10)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["state_dict"]["net.fc.bias"], payload["content_sha256"]  # hand-edited: no checksum to fail first
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(RuntimeError, match="net.fc.bias"):
        load_checkpoint(tmp_path / "broken.pt")


def _entry(**kw):
    return {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 10, "algorithm": "adversarial", **kw}


def test_import_plain_state_dict_with_prefix_and_sha256(tmp_path):
    source = build_classifier("cifar_vgg_tiny", 10).eval()
    state = {"module.model." + k: v for k, v in source.net.state_dict().items()}
    state["module.normalizer.new_mean"] = torch.zeros(3)  # zoo extras without the prefix are dropped
    torch.save({"model": state, "epoch": 90}, tmp_path / "zoo.pt")
    entry = _entry(source="file", file=str(tmp_path / "zoo.pt"), sha256=file_digest(tmp_path / "zoo.pt"),
                   state_dict_key="model", strip_prefix="module.model.", mean=[0.5] * 3, std=[0.25] * 3)
    import_checkpoint_job("zoo", entry, entry["file"], str(tmp_path / "out.pt"), str(tmp_path / "out.csv"))
    loaded, payload = load_checkpoint(tmp_path / "out.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), source.net(x))
    assert payload["meta"]["source"] == "file" and payload["meta"]["algorithm"] == "adversarial"


def test_import_refuses_a_file_with_the_wrong_sha256(tmp_path):
    torch.save({}, tmp_path / "zoo.pt")
    with pytest.raises(ValueError, match="sha256"):
        import_checkpoint_job("zoo", _entry(sha256="0" * 64), str(tmp_path / "zoo.pt"),
                              str(tmp_path / "o.pt"), str(tmp_path / "o.csv"))


def test_timm_pretrained_weights_from_a_local_file(tmp_path):
    # Offline stand-in for the hub: timm's own loader reads the weights file named in the entry.
    reference = timm.create_model("resnet10t").eval()  # 1000 classes, like the hub weights
    torch.save(reference.state_dict(), tmp_path / "resnet10t.pth")
    entry = {"arch": "resnet10t", "arch_args": {}, "num_classes": 1000, "algorithm": "vanilla",
             "file": str(tmp_path / "resnet10t.pth"), "sha256": file_digest(tmp_path / "resnet10t.pth")}
    fetch_timm_job("r10", entry, str(tmp_path / "r10.pt"), str(tmp_path / "r10.csv"))
    loaded, _ = load_checkpoint(tmp_path / "r10.pt")
    assert loaded.normalize.mean.flatten().tolist() == pytest.approx(reference.pretrained_cfg["mean"])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), reference(x), atol=1e-5)
    with pytest.raises(ValueError, match="predicts 1000 classes but the dataset has 10"):
        fetch_timm_job("r10", {**entry, "num_classes": 10}, str(tmp_path / "x.pt"), str(tmp_path / "x.csv"))
