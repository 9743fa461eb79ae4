import copy
from pathlib import Path

import pytest
import yaml

from robustxai.config import ConfigError, load_config, resolve_model, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return load_config(ROOT / "config.yaml")


def test_default_study_has_two_architectures_times_three_algorithms_and_the_explainer_study(config):
    entries = [resolve_model(config, name) for name in config["attribution"]["models"]]
    pairs = {(e["arch"], e["algorithm"]) for e in entries}
    archs = {arch for arch, _ in pairs}
    assert len(archs) >= 2 and pairs == {(a, alg) for a in archs for alg in ("vanilla", "adversarial", "advprop")}
    assert all(resolve_model(config, name)["source"] == "train" for name in config["models"])
    explainers = {name: resolve_model(config, name)["explainer"] for name in config["models"]
                  if config["models"][name].get("algorithm") == "explainer"}
    assert sorted(e["alignment"] for e in explainers.values()) == ["robust", "standard"]
    twins = {e["alignment"]: resolve_model(config, e["twin"]) for e in explainers.values()}
    assert twins["robust"]["attack"]["norm"] == "l2" and twins["robust"]["attack"]["eps"] == 1.5
    assert twins["standard"]["algorithm"] == "vanilla" and twins["robust"]["arch"] == twins["standard"]["arch"]


@pytest.mark.parametrize("config_file", ["config.yaml", "tests/configs/smoke.yaml", "configs/cifar10.yaml",
                                         "configs/imagenet.yaml", "configs/tinyimagenet.yaml"])
def test_shipped_configs_are_valid(config_file):
    load_config(ROOT / config_file)


def test_misspelt_key_is_named(config):
    bad = copy.deepcopy(config)
    bad["models"]["vgg_tiny-vanilla"]["trainig"] = {"epochs": 1}
    with pytest.raises(ConfigError, match=r"config\.models\.vgg_tiny-vanilla: unknown key\(s\) \['trainig'\]; "
                                          r"allowed: \['algorithm', 'arch', 'arch_args', "):
        validate_config(bad)


def test_wrong_type_is_named(config):
    bad = copy.deepcopy(config)
    bad["training"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"config\.training\.epochs: 'ten' is not of type 'integer'"):
        validate_config(bad)


def test_model_settings_merge_defaults_and_only_adversarial_models_get_an_attack(config):
    vanilla = resolve_model(config, "vgg_tiny-vanilla")
    adversarial = resolve_model(config, "vgg_tiny-pgd_linf")
    assert "attack" not in vanilla and "clean_epochs" not in vanilla["training"]
    assert adversarial["training"]["clean_epochs"] == config["training"]["clean_epochs"]
    assert adversarial["attack"]["eps"] == config["attack"]["eps"]
    assert adversarial["training"]["precision"] == config["models"]["vgg_tiny-pgd_linf"]["training"]["precision"]
    assert adversarial["training"]["precision"] != vanilla["training"]["precision"]  # a model's key overrides
    assert adversarial["training"]["lr"] == config["training"]["lr"]
    assert vanilla["num_classes"] == 10 and vanilla["mean"] == config["dataset"]["mean"]


def test_resolved_settings_do_not_depend_on_key_order(config):
    reordered = copy.deepcopy(config)
    reordered["training"] = dict(reversed(list(config["training"].items())))
    assert list(resolve_model(reordered, "vgg_tiny-pgd_linf").items()) == \
        list(resolve_model(config, "vgg_tiny-pgd_linf").items())
    assert str(resolve_model(reordered, "vgg_tiny-pgd_linf")) == str(resolve_model(config, "vgg_tiny-pgd_linf"))


def test_file_source_needs_a_checksum(config):
    config["models"]["zoo"] = {"arch": "resnet50", "source": "file", "file": "w.pt"}
    with pytest.raises(ConfigError, match="sha256"):
        resolve_model(config, "zoo")
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        resolve_model(config, "nope")


def test_yaml_round_trip_of_the_schema_defaults(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load_config(path) == config


def test_attribution_section_defaults_and_errors(config):
    from robustxai.config import resolve_attribution

    assert resolve_attribution({k: v for k, v in config.items() if k != "attribution"}) is None
    assert set(resolve_attribution(config)["methods"]) >= {"gradient", "gradcam", "rise", "random"}  # default study
    config["attribution"] = {"methods": {"gradcam": {}}}
    section = resolve_attribution(config)
    assert section["split"] == "test" and section["shards"] == 1 and section["images_per_shard"] == 100
    assert section["models"] == list(config["models"])
    with pytest.raises(ConfigError, match=r"config\.attribution\.methods: unknown \['lrp'\]"):
        resolve_attribution({**config, "attribution": {"methods": {"lrp": {}}}})
    with pytest.raises(ConfigError, match=r"config\.attribution\.models: \['ghost'\]"):
        resolve_attribution({**config, "attribution": {"methods": {"gradcam": {}}, "models": ["ghost"]}})
    with pytest.raises(ConfigError, match="'holdout' is not one of"):
        resolve_attribution({**config, "attribution": {"methods": {"gradcam": {}}, "split": "holdout"}})


def test_attribution_method_aliases_and_counterparts(config):
    from robustxai.config import resolve_attribution

    config["attribution"] = {"methods": {
        "ig_noise": {"method": "integrated_gradients", "baseline": "noise"},
        "sg_robust": {"method": "robust_counterpart", "counterpart": "vgg_tiny-pgd_linf", "base": "smoothgrad"}}}
    assert set(resolve_attribution(config)["methods"]) == {"ig_noise", "sg_robust"}
    config["attribution"]["methods"]["sg_robust"]["counterpart"] = "nobody"
    with pytest.raises(ConfigError, match=r"sg_robust: 'counterpart' must name a configured model, got 'nobody'"):
        resolve_attribution(config)
    config["attribution"]["methods"] = {"x": {"method": "lrp"}}
    with pytest.raises(ConfigError, match=r"unknown \['x'\]"):
        resolve_attribution(config)


def test_metrics_section_defaults_and_errors(config):
    from robustxai.config import resolve_attribution, resolve_metrics

    config["attribution"] = {"methods": {
        "gradient": {}, "sg_robust": {"method": "robust_counterpart", "counterpart": "vgg_tiny-pgd_linf"}}}
    attribution = resolve_attribution(config)
    metrics = resolve_metrics({**config, "metrics": {"deletion": {"steps": 8}}}, attribution)
    assert metrics["deletion"] == {"methods": ["gradient", "sg_robust"], "models": list(config["models"]), "steps": 8,
                                   "metric": "deletion",
                                   "pairs": [[m, method] for method in ("gradient", "sg_robust") for m in config["models"]]}
    assert resolve_metrics({k: v for k, v in config.items() if k != "metrics"}, attribution) is None
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        resolve_metrics({**config, "metrics": {"auc": {}}}, attribution)
    with pytest.raises(ConfigError, match=r"config\.metrics\.deletion\.methods: \['rise'\]"):
        resolve_metrics({**config, "metrics": {"deletion": {"methods": ["rise"]}}}, attribution)
    with pytest.raises(ConfigError, match=r"sanity_randomisation\.methods: \['sg_robust'\] take maps from another"):
        resolve_metrics({**config, "metrics": {"sanity_randomisation": {}}}, attribution)
    with pytest.raises(ConfigError, match="add an 'attribution' section"):
        resolve_metrics({**config, "metrics": {"deletion": {}}}, None)


def explainer_config(config, **explainer):
    config["models"]["resnet_tiny-explainer"] = {"arch": "cifar_resnet_tiny", "algorithm": "explainer",
                                                 "explainer": {"twin": "resnet_tiny-pgd_l2", **explainer}}
    return config


def test_explainer_models_name_a_suitable_twin(config):
    entry = resolve_model(explainer_config(config), "resnet_tiny-explainer")
    assert entry["explainer"] == {"alignment": "robust", "branch": {}, "freeze_backbone": False, "lambda": 0.35,
                                  "loss": "l2", "twin": "resnet_tiny-pgd_l2", "branch_lr_scale": 0.1}
    assert entry["image_size"] == 32 and "attack" not in entry
    with pytest.raises(ConfigError, match="alignment 'standard' learns the maps of a vanilla model, but twin "
                                          "'resnet_tiny-pgd_l2' is adversarial"):
        resolve_model(explainer_config(config, alignment="standard"), "resnet_tiny-explainer")
    with pytest.raises(ConfigError, match="explainer.twin must name the configured model"):
        resolve_model(explainer_config(config, twin="ghost"), "resnet_tiny-explainer")
    with pytest.raises(ConfigError, match="freeze_backbone .* set init_from"):
        resolve_model(explainer_config(config, freeze_backbone=True), "resnet_tiny-explainer")
    config["models"]["resnet_tiny-explainer"]["init_from"] = "resnet_tiny-vanilla"
    assert resolve_model(config, "resnet_tiny-explainer")["init_from"] == "resnet_tiny-vanilla"
    config["models"]["resnet_tiny-vanilla"]["explainer"] = {"twin": "resnet_tiny-pgd_l2"}
    with pytest.raises(ConfigError, match="'explainer' is a setting of trained models with algorithm: explainer"):
        resolve_model(config, "resnet_tiny-vanilla")
    with pytest.raises(ConfigError, match="init_from must name another configured model"):
        resolve_model({**config, "models": {"a": {"arch": "x", "init_from": "a"}}}, "a")


def test_alignment_targets_are_attribution_jobs_of_the_train_split(config):
    from robustxai.config import attribution_jobs, resolve_alignment, resolve_attribution

    assert resolve_alignment({**config, "models": {"v": {"arch": "cifar_vgg_tiny"}}}) is None
    explainer_config(config)
    alignment = resolve_alignment(config)
    train_size = config["dataset"]["builtin"]["sizes"]["train"]
    assert alignment["twins"] == ["resnet_tiny-pgd_l2", "resnet_tiny-vanilla"]
    assert alignment["shards"] == -(-train_size // config["alignment"]["images_per_shard"])
    assert resolve_alignment({**config, "alignment": {"images_per_shard": 1000}})["shards"] == -(-train_size // 1000)
    jobs = attribution_jobs(resolve_attribution(config), alignment)
    target = jobs["train/alignment_target"]
    assert target["models"] == alignment["twins"] and target["target"] == "label"
    assert target["settings"] == config["alignment"]["target"]
    assert jobs["test/gradient"]["target"] == "predicted" and "models" not in jobs["test/gradient"]["settings"]
    folder = {**config, "dataset": {"name": "x", "kind": "imagefolder",
                                    "imagefolder": {"num_classes": 3, "splits": {"train": {"images": "t"},
                                                                                  "test": {"images": "v"}}}}}
    with pytest.raises(ConfigError, match="config.alignment.shards: the size of the train split"):
        resolve_alignment(folder)


def test_methods_explain_their_own_models_and_declare_the_models_they_need(config):
    from robustxai.config import resolve_attribution, resolve_latency, resolve_metrics

    explainer_config(config)
    config["attribution"] = {"models": ["resnet_tiny-vanilla"], "methods": {
        "gradient": {}, "explainer": {"models": ["resnet_tiny-explainer"]},
        "borrowed": {"method": "explainer", "explainer": "resnet_tiny-explainer"}}}
    section = resolve_attribution(config)
    assert section["models"] == ["resnet_tiny-vanilla", "resnet_tiny-explainer"]
    assert section["methods"]["borrowed"]["models"] == ["resnet_tiny-vanilla"]
    metrics = resolve_metrics({**config, "metrics": {
        "energy_in_box": {}, "last_block": {"metric": "sanity_randomisation", "mode": "last_block",
                                            "methods": ["gradient", "explainer"]}}}, section)
    assert sorted(metrics["energy_in_box"]["pairs"]) == [["resnet_tiny-explainer", "explainer"],
                                                         ["resnet_tiny-vanilla", "borrowed"],
                                                         ["resnet_tiny-vanilla", "gradient"]]
    assert metrics["last_block"]["metric"] == "sanity_randomisation"
    with pytest.raises(ConfigError, match=r"sanity_randomisation\.methods: \['borrowed'\] take maps from another"):
        resolve_metrics({**config, "metrics": {"sanity_randomisation": {}}}, section)
    config["attribution"]["methods"]["explainer"] = {}
    with pytest.raises(ConfigError, match=r"methods\.explainer: \['resnet_tiny-vanilla'\] have no explainer branch"):
        resolve_attribution(config)
    config["attribution"]["methods"]["explainer"] = {"models": ["resnet_tiny-explainer"]}
    latency = resolve_latency({**config, "latency": {"methods": {"occlusion": {}}}}, section)
    assert latency["models"] == section["models"] and latency["threads"] == 1
    assert latency["methods"]["occlusion"]["models"] == section["models"]
    assert latency["methods"]["explainer"]["models"] == ["resnet_tiny-explainer"]
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        resolve_metrics({**config, "metrics": {"x": {"metric": "nope"}}}, section)
