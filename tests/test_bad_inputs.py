"""Bad input gets a clear error at plan time, naming the key or the file; nothing is silently wrong.

One test (or parameter) per case; each asserts the exact error text, or the NaN and its count.
Cases of the data readers are in ``test_bad_inputs_data.py``, of corrupt intermediates in
``test_integrity.py``.
"""
import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from robustxai.config import (
    ConfigError,
    check_download_checksums,
    check_imported_models,
    load_config,
    resolve_attribution,
    resolve_metrics,
    validate_config,
)
from robustxai.metrics import MetricBatch, make_metric
from robustxai.models.checkpoint import save_checkpoint
from robustxai.models.wrapper import build_classifier
from robustxai.pipeline.attribute import shard_indices
from robustxai.pipeline.models import import_checkpoint_job

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return load_config(ROOT / "config.yaml")


def plan(config):
    """The plan-time checks the Snakefile runs, in its order."""
    validate_config(config)
    check_download_checksums(config)
    check_imported_models(config)
    resolve_metrics(config, resolve_attribution(config))


# 1. images without a box are never scored

def box_batch():
    """Two 8x8 maps peaking at (2, 2); image 0 has a box around the peak, image 1 none (-1s)."""
    maps = torch.zeros(2, 8, 8)
    maps[:, 2, 2] = 1.0
    boxes = torch.tensor([[1, 1, 4, 4], [-1, -1, -1, -1]])
    return MetricBatch(torch.rand(2, 3, 8, 8), maps, torch.tensor([0, 1]), boxes)


@pytest.mark.parametrize("metric, column, value", [("pointing_game", "pointing_game", 1.0),
                                                   ("energy_in_box", "energy_in_box", 1.0),
                                                   ("box_iou", "box_iou", 1 / 9),
                                                   ("box_iou", "box_localised", 0.0)])
def test_an_image_without_a_box_scores_nan(metric, column, value):
    values = make_metric(metric)(None, box_batch())[column]
    assert values[0].item() == pytest.approx(value) and math.isnan(values[1].item())


@pytest.mark.parametrize("box", [[5, 5, 5, 7], [6, 2, 3, 7], [-1, -1, -1, -1]])  # zero area, inverted, missing
def test_degenerate_boxes_count_as_missing(box):
    batch = MetricBatch(torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8), torch.tensor([0]), torch.tensor([box]))
    assert not batch.has_box().item() and math.isnan(make_metric("energy_in_box")(None, batch)["energy_in_box"].item())


@pytest.mark.parametrize("metric", ["pointing_game", "energy_in_box", "box_iou"])
def test_box_metrics_are_refused_on_cifar10(metric):
    cifar = load_config(ROOT / "configs" / "cifar10.yaml")
    cifar["metrics"][metric] = {}
    with pytest.raises(ConfigError, match=rf"^config\.metrics\.{metric}: {metric} scores maps against ground-truth "
                                          r"boxes, but the 'test' split of dataset kind 'cifar10' has none; remove it$"):
        plan(cifar)


def test_box_metrics_are_refused_on_an_imagefolder_split_without_annotations():
    imagenet = load_config(ROOT / "configs" / "imagenet.yaml")
    imagenet["dataset"]["imagefolder"]["splits"]["test"]["annotations"] = None
    with pytest.raises(ConfigError, match=r"^config\.metrics\.pointing_game: pointing_game scores maps against "
                                          r"ground-truth boxes, but the 'test' split of dataset kind 'imagefolder'"):
        plan(imagenet)


# 2. names that would share files

@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a b"])
def test_names_must_be_path_safe(config, name):
    config["models"][name] = config["models"].pop("resnet_tiny-vanilla")
    with pytest.raises(ConfigError, match=rf"config\.models: '{name}' does not match .* \(a path-safe name: letters, "
                                          r"digits, _ \. \+ -, not starting with a dot\)"):
        validate_config(config)


def test_dataset_and_method_names_must_be_path_safe(config):
    config["dataset"]["name"] = ".."
    with pytest.raises(ConfigError, match=r"config\.dataset\.name: '\.\.' does not match"):
        validate_config(config)
    config["dataset"]["name"] = "builtin"
    config["attribution"]["methods"][".."] = {"method": "gradient"}
    with pytest.raises(ConfigError, match=r"config\.attribution\.methods: '\.\.' does not match"):
        validate_config(config)


@pytest.mark.parametrize("section", ["models", "metrics"])
def test_names_equal_up_to_case_are_refused(config, section):
    first = next(iter(config[section]))
    config[section][first.upper()] = copy.deepcopy(config[section][first])
    with pytest.raises(ConfigError, match=rf"^config\.{section}: '{first}' and '{first.upper()}' differ only in case, "
                                          "so their files collide on case-insensitive file systems; rename one$"):
        validate_config(config)


# 4. late or unclear errors become plan-time errors naming the key

def test_a_misspelt_method_setting_fails_at_plan_time(config):
    config["attribution"]["methods"]["smoothgrad"] = {"sample": 10}
    with pytest.raises(ConfigError, match=r"^config\.attribution\.methods\.smoothgrad: method 'smoothgrad': unknown "
                                          r"setting\(s\) \['sample'\]; allowed: \['batch_size', 'noise', 'samples', "
                                          r"'seed'\]$"):
        plan(config)


def test_a_misspelt_metric_setting_fails_at_plan_time(config):
    config["metrics"]["insertion"] = {"step": 16}
    with pytest.raises(ConfigError, match=r"^config\.metrics\.insertion: metric 'insertion': unknown setting\(s\) "
                                          r"\['step'\]; allowed: \["):
        plan(config)


def test_an_out_of_range_metric_setting_fails_at_plan_time(config):
    config["metrics"]["box_iou"] = {"threshold": 2}
    with pytest.raises(ConfigError, match=r"^config\.metrics\.box_iou: threshold must be in \[0, 1\], got 2$"):
        plan(config)


def test_an_unknown_box_metric_rescale_fails_at_plan_time(config):
    config["metrics"]["energy_in_box"] = {"rescale": "max"}
    with pytest.raises(ConfigError, match=r"^config\.metrics\.energy_in_box: rescale must be one of "
                                          r"\['auto', 'minmax', 'abs', 'positive', 'none'\], got 'max'$"):
        plan(config)


def test_more_shards_than_the_split_fills_fails_at_plan_time(config):
    config["attribution"].update(shards=20, images_per_shard=64)  # the test split has 1000 images
    with pytest.raises(ConfigError, match=r"^config\.attribution: shards x images_per_shard = 20 x 64 images, but "
                                          r"the 'test' split has 1000, so shard 19 would hold none; use at most 16 "
                                          r"shards or fewer images_per_shard$"):
        resolve_attribution(config)
    config["attribution"]["shards"] = 16  # the last shard part-filled (40 images) is fine
    assert resolve_attribution(config)["shards"] == 16


def test_a_shard_past_the_split_names_the_keys_in_the_job():
    with pytest.raises(ValueError, match=r"^shard 2 of 64 images starts past the split's 100 images: lower "
                                         r"attribution\.shards or attribution\.images_per_shard$"):
        shard_indices(100, 2, 64)


@pytest.mark.parametrize("where", [("attack",), ("models", "resnet_tiny-pgd_linf", "attack")])
def test_a_linf_radius_above_1_is_refused(config, where):
    section = config
    for key in where:
        section = section.setdefault(key, {})
    section.update(norm="linf", eps=8)
    with pytest.raises(ConfigError, match=rf"config\.{'.'.join(where)}\.eps: 8 is greater than the maximum of 1 "
                                          r"\(a Linf radius is in \[0, 1\] pixel units \(8/255 = 0\.0313725\)\)"):
        validate_config(config)
    section["norm"] = "l2"  # an L2 radius may exceed 1
    validate_config(config)


def test_an_unknown_top_level_key_lists_the_allowed_ones_only(config):
    config["metric"] = {}
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    assert str(raised.value) == ("invalid configuration:\n  config: unknown key(s) ['metric']; allowed: ['aggregation', "
                                 "'alignment', 'attack', 'attribution', 'dataset', 'evaluation', 'latency', "
                                 "'metrics', 'models', 'resources', 'results', 'roar', 'training', 'tuning', "
                                 "'weights_lock']")


def test_tuning_takes_auto_or_off_including_yaml_s_bare_off(config):
    config.update(yaml.safe_load("tuning: off"))  # YAML 1.1 reads a bare off as false
    assert config["tuning"] is False
    validate_config(config)
    config["tuning"] = "fast"
    with pytest.raises(ConfigError, match="tuning"):
        validate_config(config)


# 3. nothing is downloaded without a checksum

@pytest.mark.parametrize("config_file, kind", [("configs/cifar10.yaml", "cifar10"),
                                               ("configs/tinyimagenet.yaml", "tinyimagenet")])
def test_an_archive_from_another_url_needs_a_checksum(config_file, kind):
    config = load_config(ROOT / config_file)
    check_download_checksums(config)  # the official archive: its checksum is built in or configured
    config["dataset"][kind].update(url="https://mirror.example/archive", md5=None, sha256=None)
    with pytest.raises(ConfigError, match=rf"^config\.dataset\.{kind}: the archive https://mirror\.example/archive has "
                                          rf"no checksum to verify it by; set config\.dataset\.{kind}\.sha256 \(or md5\)$"):
        plan(config)


def test_a_model_download_needs_its_sha256(config):
    config["models"]["zoo"] = {"arch": "cifar_resnet_tiny", "source": "file", "url": "https://zoo.example/m.pt"}
    with pytest.raises(ConfigError, match=r"^model 'zoo': source 'file' needs 'file' \(or 'url'\) and its 'sha256' "
                                          r"\(or a top-level weights_lock"):
        plan(config)


# 4. imported checkpoints that do not fit their config entry

@pytest.fixture
def imported(config, tmp_path):
    """The default config with one model imported from a file: a tiny ResNet trained for 5 classes."""
    model = build_classifier("cifar_resnet_tiny", 5)
    path = tmp_path / "five.pt"
    save_checkpoint(model, path, "cifar_resnet_tiny", 5)
    config["models"]["imported"] = {"arch": "cifar_resnet_tiny", "source": "file", "file": str(path), "sha256": "0" * 64}
    return config, model, path


def test_an_imported_checkpoint_with_another_class_count_fails_at_plan_time(imported):
    config, _, path = imported
    with pytest.raises(ConfigError, match=rf"^config\.models\.imported\.file: {path}: the checkpoint's num_classes is 5, "
                                          r"but config\.models\.imported\.num_classes is 10$"):
        check_imported_models(config)


def test_an_imported_checkpoint_of_another_arch_fails_at_plan_time(imported):
    config, _, path = imported
    config["models"]["imported"]["arch"] = "cifar_vgg_tiny"
    with pytest.raises(ConfigError, match=r"the checkpoint's arch is 'cifar_resnet_tiny', but "
                                          r"config\.models\.imported\.arch is 'cifar_vgg_tiny'$"):
        check_imported_models(config)


def test_a_plain_state_dict_with_another_head_fails_at_plan_time(imported, tmp_path):
    config, model, _ = imported
    plain = tmp_path / "plain.pt"
    torch.save({f"module.{k}": v for k, v in model.net.state_dict().items()}, plain)
    config["models"]["imported"]["file"] = str(plain)
    with pytest.raises(ConfigError, match=r"weights cifar_resnet_tiny does not have \(first: \['module\.bn1\.bias'.*"
                                          r"set state_dict_key or strip_prefix\?\)$"):
        check_imported_models(config)
    config["models"]["imported"]["strip_prefix"] = "module."
    with pytest.raises(ConfigError, match=r"2 weights of another shape than config\.models\.imported \(num_classes 10\) "
                                          r"gives \(first: \['fc\.weight: \(5, 64\) vs \(10, 64\)', "):
        check_imported_models(config)


def test_a_truncated_checkpoint_to_import_fails_at_plan_time(imported):
    config, _, path = imported
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match=rf"^config\.models\.imported\.file: {path} cannot be read as a checkpoint "
                                          r"\(.*\); replace it$"):
        check_imported_models(config)


def test_the_import_job_refuses_a_mismatch_too(imported, tmp_path):
    """A downloaded file is checked by its job, after its checksum."""
    from robustxai.config import resolve_model
    from robustxai.data.download import file_digest

    config, _, path = imported
    entry = {**resolve_model(config, "imported"), "sha256": file_digest(path)}
    with pytest.raises(ValueError, match=rf"^{path}: the checkpoint's num_classes is 5, but "
                                         r"config\.models\.imported\.num_classes is 10$"):
        import_checkpoint_job("imported", entry, str(path), str(tmp_path / "out.pt"), str(tmp_path / "h.csv"))
    assert not (tmp_path / "out.pt").exists()


# the workflow prints the plan-time error, not a traceback or the schema

def test_snakemake_dry_run_names_the_bad_key(tmp_path):
    from workflow_runs import snakemake

    bad = yaml.safe_load((ROOT / "tests" / "configs" / "smoke.yaml").read_text())
    first = next(iter(bad["attribution"]["methods"]))
    bad["attribution"]["methods"][first]["no_such_setting"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake(tmp_path, "-n", config=path, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert (f"config.attribution.methods.{first}: method '{bad['attribution']['methods'][first].get('method', first)}': "
            "unknown setting(s) ['no_such_setting']") in output
    assert "Traceback" not in output
