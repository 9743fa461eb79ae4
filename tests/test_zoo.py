"""The ImageNet zoo: Madry-lab checkpoints imported, the weights lock, fine-tuning from another model."""
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import timm
import torch
import torchvision
import yaml
from snakemake.utils import update_config

from robustxai.config import ConfigError, resolve_model, validate_config
from robustxai.data.builtin import make_builtin_splits
from robustxai.data.download import file_digest
from robustxai.data.splits import save_split
from robustxai.data.weights_lock import download_weights, pin_weights, record_path, verify_weights
from robustxai.models import build_classifier, load_checkpoint, save_checkpoint
from robustxai.models.preprocessing import native_input_size
from robustxai.models.wrapper import IMAGENET_MEAN, IMAGENET_STD
from robustxai.pipeline.evaluate import evaluate_model_job
from robustxai.pipeline.models import fetch_timm_job, import_checkpoint_job, train_model_job, weights_mismatch

ROOT = Path(__file__).resolve().parents[1]
MADRY_HOST = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/"


def imagenet_config(finetune: bool = False) -> dict:
    """configs/imagenet.yaml, merged with its fine-tuning overlay as Snakemake merges --configfile files."""
    config = yaml.safe_load((ROOT / "configs" / "imagenet.yaml").read_text())
    if finetune:
        update_config(config, yaml.safe_load((ROOT / "configs" / "imagenet-finetune.yaml").read_text()))
    return config


def madry_checkpoint(net: torch.nn.Module) -> dict:
    """A checkpoint in the Madry lab's ``robustness`` layout: the weights under ``module.model.``, the
    attacker's copy under ``module.attacker.model.``, both normalisers' buffers, epoch and optimiser."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    state = {}
    for prefix in ("module.model.", "module.attacker.model."):
        state.update({prefix + key: value.clone() for key, value in net.state_dict().items()})
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        state.update({prefix + "new_mean": mean, prefix + "new_std": std})
    return {"model": state, "epoch": 90, "schedule": None,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}}


def test_a_madry_checkpoint_imports_and_predicts_exactly_like_its_source(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18()  # the robustness library's ResNets are torchvision's
    for module in source.modules():  # non-trivial batch-norm statistics, so a dropped buffer would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    source.eval()
    torch.save(madry_checkpoint(source), tmp_path / "resnet18_l2_eps3.ckpt")
    config = imagenet_config()
    config["weights_lock"] = str(tmp_path / "lock")
    config["models"]["resnet18-pgd_l2_eps3"]["url"] = (tmp_path / "resnet18_l2_eps3.ckpt").as_uri()
    entry = resolve_model(config, "resnet18-pgd_l2_eps3")  # no sha256: the lock records it
    weights = download_weights(entry["url"], tmp_path / "downloads" / "m.weights", "resnet18-pgd_l2_eps3",
                               entry.get("sha256"), config["weights_lock"])
    import_checkpoint_job("resnet18-pgd_l2_eps3", entry, str(weights), str(tmp_path / "m.pt"), str(tmp_path / "m.csv"),
                          config["weights_lock"])
    imported, payload = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(3, 3, 64, 64)  # [0, 1] images: the normalisation is the imported model's own layer
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = source((x - mean) / std)  # what robustness' AttackerModel computes
        assert torch.equal(imported(x), expected)
    assert expected.shape == (3, 1000) and expected.std() > 0
    assert payload["arch"] == "resnet18" and payload["meta"]["algorithm"] == "adversarial"
    assert yaml.safe_load(record_path(tmp_path / "lock", "resnet18-pgd_l2_eps3").read_text())["sha256"] == \
        file_digest(tmp_path / "resnet18_l2_eps3.ckpt")


def test_every_robust_resnet_of_the_zoo_fits_the_madry_layout():
    config = imagenet_config()
    imported = [name for name, entry in config["models"].items() if entry.get("source") == "file"]
    assert len(imported) == 6
    for name in imported:
        entry = resolve_model(config, name)
        assert entry["url"].startswith(MADRY_HOST) and entry["url"].endswith(".ckpt") and "sha256" not in entry
        with torch.device("meta"):  # key names and shapes only: no memory for the weights
            net = getattr(torchvision.models, entry["arch"])()
        assert weights_mismatch(name, entry, madry_checkpoint(net)) is None, name
    with torch.device("meta"):
        other = torchvision.models.resnet34()
    assert weights_mismatch("m", resolve_model(config, imported[0]), madry_checkpoint(other)).startswith(
        "96 weights resnet18 does not have (first: ['layer1.2.bn1.bias'")  # a ResNet-34 is refused


def test_the_imagenet_zoo_fills_every_cell_and_documents_its_source():
    config = imagenet_config()
    lines = (ROOT / "configs" / "imagenet.yaml").read_text().splitlines()
    assert len(config["models"]) >= 12
    for name in config["models"]:
        assert any(line.startswith(f"  {name}:") and "#" in line for line in lines), f"{name}: no source comment"
    merged = validate_config(imagenet_config(finetune=True))
    cells = {}
    for name in merged["models"]:
        entry = resolve_model(merged, name)  # init_from: same arch, configured, no cycle
        cells.setdefault(name.split("-")[0], set()).add(entry["algorithm"])
    for family in ("resnet18", "resnet50", "wide_resnet50_2", "efficientnet_b0", "efficientnet_b1"):
        assert cells[family] == {"vanilla", "adversarial", "advprop"}, family
    assert merged["dataset"]["imagefolder"]["splits"]["test"]["images"] == "data/imagenet/val"  # merged, not replaced
    del merged["weights_lock"]
    with pytest.raises(ConfigError, match=r"^model 'resnet18-pgd_l2_eps3': source 'file' needs .* weights_lock"):
        resolve_model(merged, "resnet18-pgd_l2_eps3")


def test_first_download_is_recorded_and_a_changed_file_is_refused(tmp_path, capfd):
    source, lock = tmp_path / "zoo" / "w.ckpt", tmp_path / "lock"
    source.parent.mkdir()
    source.write_bytes(b"weights v1" * 100)
    url = source.as_uri()
    download_weights(url, tmp_path / "a.weights", "m", lock_dir=lock)
    record_file = record_path(lock, "m")
    record = yaml.safe_load(record_file.read_text())
    assert record["url"] == url and record["size"] == 1000 and record["sha256"] == file_digest(source)
    assert f"recorded in {record_file}: url {url}, 1000 bytes, sha256 {record['sha256']}" in capfd.readouterr().err
    recorded = record_file.read_text()
    download_weights(url, tmp_path / "b.weights", "m", lock_dir=lock)  # the same bytes again
    assert (tmp_path / "b.weights").read_bytes() == source.read_bytes() and record_file.read_text() == recorded

    source.write_bytes(b"weights v2" * 100)
    with pytest.raises(ValueError, match=rf"^the weights of model 'm' from {url} do not match the weights lock "
                                         rf"{record_file}: they have sha256 {file_digest(source)} \(1000 bytes\), the "
                                         rf"lock recorded sha256 {record['sha256']} \(1000 bytes\) on .*delete "
                                         rf"{record_file} and rerun"):
        download_weights(url, tmp_path / "c.weights", "m", lock_dir=lock)
    assert not (tmp_path / "c.weights").exists() and not (tmp_path / "c.weights.part").exists()
    download_weights(url, tmp_path / "d.weights", "m", sha256=file_digest(source), lock_dir=lock)  # config wins
    assert record_file.read_text() == recorded
    with pytest.raises(ValueError, match=r"sha256 is .*, expected 0{64}"):
        download_weights(url, tmp_path / "e.weights", "m", sha256="0" * 64, lock_dir=lock)
    with pytest.raises(ValueError, match=r"^model 'm': nothing to verify .* set config\.models\.m\.sha256 or a "
                                         r"top-level weights_lock"):
        download_weights(url, tmp_path / "f.weights", "m")


def test_concurrent_first_downloads_keep_every_record(tmp_path):
    sources = []
    for k in range(8):
        sources.append(tmp_path / f"w{k}.ckpt")
        sources[-1].write_bytes(bytes([k]) * (k + 1) * 1000)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: download_weights(sources[k].as_uri(), tmp_path / f"d{k}", f"m{k}",
                                                 lock_dir=tmp_path / "lock"), range(8)))
    for k, source in enumerate(sources):
        record = yaml.safe_load(record_path(tmp_path / "lock", f"m{k}").read_text())
        assert (record["size"], record["sha256"]) == ((k + 1) * 1000, file_digest(source))


def test_concurrent_first_downloads_of_one_model_agree_on_one_record(tmp_path):
    """Six writers race to record one model: with the same bytes all pass; with two different files
    exactly the writers whose file matches the one record that won pass, the others are refused."""
    files = [tmp_path / "a.ckpt", tmp_path / "b.ckpt"]
    files[0].write_bytes(b"a" * 5000)
    files[1].write_bytes(b"b" * 5000)

    def race(lock: Path, which: list[int]) -> list[bool]:
        start = threading.Barrier(len(which))

        def pin(k: int) -> bool:
            start.wait()
            try:
                pin_weights(files[k], "m", "https://host/m.ckpt", lock)
                return True
            except ValueError as error:
                assert "do not match the weights lock" in str(error)
                return False

        with ThreadPoolExecutor(len(which)) as pool:
            return list(pool.map(pin, which))

    for trial in range(10):
        assert race(tmp_path / f"same{trial}", [0] * 6) == [True] * 6
        which = [0, 1] * 3
        passed = race(tmp_path / f"mixed{trial}", which)
        winner = yaml.safe_load(record_path(tmp_path / f"mixed{trial}", "m").read_text())["sha256"]
        assert passed == [file_digest(files[k]) == winner for k in which]
        assert sorted(p.name for p in (tmp_path / f"mixed{trial}").iterdir()) == ["m.yaml"]  # no temporary left


def test_an_imported_local_file_is_pinned_too(tmp_path):
    entry = {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 10, "algorithm": "vanilla", "source": "file",
             "file": str(tmp_path / "w.pt")}
    torch.manual_seed(0)
    torch.save(build_classifier("cifar_vgg_tiny", 10).net.state_dict(), tmp_path / "w.pt")
    import_checkpoint_job("local", entry, entry["file"], str(tmp_path / "a.pt"), str(tmp_path / "a.csv"),
                          str(tmp_path / "lock"))
    assert yaml.safe_load(record_path(tmp_path / "lock", "local").read_text())["url"] == (tmp_path / "w.pt").as_uri()
    torch.save(build_classifier("cifar_vgg_tiny", 10).net.state_dict(), tmp_path / "w.pt")  # other weights
    with pytest.raises(ValueError, match=rf"do not match the weights lock {tmp_path / 'lock' / 'local.yaml'}"):
        import_checkpoint_job("local", entry, entry["file"], str(tmp_path / "b.pt"), str(tmp_path / "b.csv"),
                              str(tmp_path / "lock"))
    assert not (tmp_path / "b.pt").exists()
    record_path(tmp_path / "lock", "local").write_text("url: [unclosed\n")
    with pytest.raises(ValueError, match=r"weights lock record .*local\.yaml is damaged .* delete it"):
        verify_weights(tmp_path / "w.pt", "local", "file:///x", lock_dir=tmp_path / "lock")


def test_init_from_needs_another_model_of_the_same_arch_and_no_cycle():
    config = {"dataset": {"name": "d", "kind": "builtin"},
              "models": {"a": {"arch": "cifar_vgg_tiny"},
                         "b": {"arch": "cifar_resnet_tiny", "algorithm": "advprop", "init_from": "a"}}}
    with pytest.raises(ConfigError, match=r"^model 'b': init_from 'a' is a cifar_vgg_tiny \(arch_args \{\}\), but 'b' "
                                          r"is a cifar_resnet_tiny .* set config\.models\.b\.arch to 'cifar_vgg_tiny'$"):
        resolve_model(config, "b")
    config["models"]["b"]["arch"] = "cifar_vgg_tiny"
    config["models"]["a"]["arch_args"] = {"widths": [8, 16]}  # only arch_args differ: the hint names them
    with pytest.raises(ConfigError, match=r"set config\.models\.b\.arch_args to \{'widths': \[8, 16\]\}$"):
        resolve_model(config, "b")
    del config["models"]["a"]["arch_args"]
    assert resolve_model(config, "b")["init_from"] == "a"
    config["models"]["a"]["init_from"] = "b"
    with pytest.raises(ConfigError, match=r"^model 'b': init_from goes round in a circle: b -> a -> b$"):
        resolve_model(config, "b")


def test_advprop_fine_tunes_another_models_weights(tmp_path):
    splits = make_builtin_splits({"train": 64, "val": 16, "test": 1, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=0)
    save_split(splits["train"], tmp_path / "train.h5")
    save_split(splits["val"], tmp_path / "val.h5")
    torch.manual_seed(123)
    start = build_classifier("cifar_vgg_tiny", 10, (0.3,) * 3, (0.2,) * 3)
    save_checkpoint(start, tmp_path / "start.pt", "cifar_vgg_tiny", 10)
    entry = {"arch": "cifar_vgg_tiny", "arch_args": {}, "num_classes": 10, "algorithm": "advprop", "init_from": "start",
             "mean": [0.5] * 3, "std": [0.25] * 3, "attack": {"eps": 0.03, "steps": 1},
             "training": {"epochs": 1, "batch_size": 32, "lr": 1e-6, "weight_decay": 0.0, "seed": 5}}
    jobs = {"tuned": str(tmp_path / "start.pt"), "fresh": None}
    nets = {}
    for name, init in jobs.items():
        train_model_job(name, entry, str(tmp_path / "train.h5"), str(tmp_path / "val.h5"), str(tmp_path / f"{name}.pt"),
                        str(tmp_path / f"{name}.csv"), device=torch.device("cpu"), init_path=init)
        nets[name] = load_checkpoint(tmp_path / f"{name}.pt")[0]
    conv = "net.features.0.weight"
    assert (nets["tuned"].state_dict()[conv] - start.state_dict()[conv]).abs().max() < 1e-4
    assert (nets["fresh"].state_dict()[conv] - start.state_dict()[conv]).abs().max() > 0.05
    assert nets["tuned"].normalize.mean.flatten().tolist() == pytest.approx([0.3] * 3)  # the start's normalisation
    assert not any("aux" in key for key in nets["tuned"].state_dict())  # AdvProp's auxiliary BNs stripped
    with pytest.raises(ValueError, match=r"init_from checkpoint .*start\.pt is a cifar_vgg_tiny with 10 classes, not a "
                                         r"cifar_resnet_tiny with 10"):
        train_model_job("x", {**entry, "arch": "cifar_resnet_tiny"}, str(tmp_path / "train.h5"),
                        str(tmp_path / "val.h5"), str(tmp_path / "x.pt"), str(tmp_path / "x.csv"),
                        device=torch.device("cpu"), init_path=str(tmp_path / "start.pt"))


def test_timm_weights_record_their_preprocessing_and_evaluation_names_the_native_size(tmp_path):
    reference = timm.create_model("resnet10t")  # offline stand-in for hub weights (1000 classes)
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    entry = {"arch": "resnet10t", "arch_args": {}, "num_classes": 1000, "algorithm": "vanilla",
             "file": str(tmp_path / "w.pth"), "sha256": file_digest(tmp_path / "w.pth")}
    fetch_timm_job("r10", entry, str(tmp_path / "r10.pt"), str(tmp_path / "r10.csv"))
    meta = load_checkpoint(tmp_path / "r10.pt")[1]["meta"]
    assert meta["preprocessing"] == {"input_size": [3, 176, 176], "interpolation": "bicubic", "crop_pct": 0.875,
                                     "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}  # resnet10t.c3_in1k
    splits = make_builtin_splits({"train": 1, "val": 1, "test": 8, "ood_background": 1, "ood_corruption": 1},
                                 image_size=32, seed=0)
    save_split(splits["test"], tmp_path / "test.h5")
    row = evaluate_model_job("r10", str(tmp_path / "r10.pt"), str(tmp_path / "test.h5"), {}, {"batch_size": 8},
                             str(tmp_path / "r10.json"))
    assert (row["input_size"], row["native_input_size"]) == (32, 176)
    assert native_input_size({"source": "train"}, 32) == 32 and native_input_size({"source": "file"}, 224) is None
