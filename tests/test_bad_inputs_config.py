"""Bad configs refused at plan time, naming the key (issue 24 rows 3, 6, 7)."""
import copy
from pathlib import Path

import pytest

from robustxai.config import ConfigError, check_results_folder, check_unique_keys, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_config():
    return load_config(ROOT / "config.yaml")


@pytest.mark.parametrize("results, message", [
    ("", r"^config\.results: empty; every output would be planned at the file-system root"),
    ("  ", r"^config\.results: empty"),
    ("/", r"^config\.results: '/' is the file-system root"),
    (".", r"^config\.results: '\.' is the working directory itself"),
    ("../elsewhere", r"^config\.results: '\.\./elsewhere' leaves the working directory \(.*\) through '\.\.'"),
    ("results/../..", r"leaves the working directory"),
])
def test_a_results_folder_outside_the_working_directory_is_refused(tmp_path, results, message):
    with pytest.raises(ConfigError, match=message):
        check_results_folder(results, tmp_path)


@pytest.mark.parametrize("results", ["results", "out/run-1", str(Path("/tmp") / "scratch" / "results"), "a/../b"])
def test_results_folders_inside_the_working_directory_or_absolute_are_accepted(tmp_path, results):
    check_results_folder(results, tmp_path)


def test_the_results_check_runs_with_the_schema(default_config):
    config = copy.deepcopy(default_config)
    config["results"] = ""
    with pytest.raises(ConfigError, match=r"^config\.results: empty"):
        validate_config(config)


def test_a_repeated_key_is_refused_naming_it_and_both_lines(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("results: results\nmodels:\n  a: {arch: x}\ndataset: {name: d}\nmodels:\n  b: {arch: y}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'models' appears twice in one mapping \(lines 2 and 5\)"):
        check_unique_keys(path)
    with pytest.raises(ConfigError, match="appears twice"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("models:\n  a:\n    arch: x\n    arch: y\n")
    with pytest.raises(ConfigError, match=r"key 'arch' appears twice in one mapping \(lines 3 and 4\)"):
        check_unique_keys(nested)
    check_unique_keys(ROOT / "config.yaml")  # the shipped configs have none
    for shipped in (ROOT / "configs").glob("*.yaml"):
        check_unique_keys(shipped)


def test_a_duplicate_key_stops_the_workflow_before_planning(tmp_path):
    from workflow_runs import snakemake

    text = (ROOT / "tests" / "configs" / "smoke.yaml").read_text()
    config = tmp_path / "twice.yaml"
    config.write_text(text + "\nresults: results\n")
    result = snakemake(tmp_path, "-n", config=config, check=False)
    assert result.returncode != 0
    assert "key 'results' appears twice in one mapping" in result.stdout + result.stderr


def test_the_merged_threat_model_is_validated(default_config):
    config = copy.deepcopy(default_config)
    config["attack"] = {"norm": "l2", "eps": 3}
    config["models"]["resnet_tiny-pgd_linf"]["attack"] = {"norm": "linf"}
    with pytest.raises(ConfigError, match=r"^config\.models\.resnet_tiny-pgd_linf\.attack: merged with the global "
                                          r"attack it is Linf eps 3, but a Linf radius is in \[0, 1\] pixel units"):
        validate_config(config)
    # a global L2 threat model and a model's larger L2 eps is legitimate (it was refused by the block alone)
    config = copy.deepcopy(default_config)
    config["attack"] = {"norm": "l2", "eps": 0.5}
    config["models"]["resnet_tiny-pgd_linf"]["attack"] = {"eps": 2}
    validate_config(config)
    # a model's eps above 1 under the default norm (Linf) is still refused, naming the model
    config["attack"] = {"eps": 0.03}
    with pytest.raises(ConfigError, match=r"^config\.models\.resnet_tiny-pgd_linf\.attack: merged .* Linf eps 2"):
        validate_config(config)
    config = copy.deepcopy(default_config)
    config["evaluation"]["attacks"]["bad"] = {"eps": 8}
    with pytest.raises(ConfigError, match=r"^config\.evaluation\.attacks\.bad: .* Linf eps 8"):
        validate_config(config)


@pytest.mark.parametrize("change, message", [
    ({"arch": "cifar_vgg_tinyy"}, r"^config\.models\.vgg_tiny-vanilla\.arch: cifar_vgg_tinyy with arch_args \{\} cannot be "
                                  r"built: unknown architecture 'cifar_vgg_tinyy'"),
    ({"arch_args": {"widthz": 3}}, r"^config\.models\.vgg_tiny-vanilla\.arch_args: cifar_vgg_tiny with arch_args "
                                   r"\{'widthz': 3\} cannot be built: .*widthz"),
])
def test_an_unknown_architecture_or_argument_is_refused_at_plan_time(default_config, change, message):
    from robustxai.config import check_model_architectures

    config = copy.deepcopy(default_config)
    check_model_architectures(config)  # the default study builds
    config["models"]["vgg_tiny-vanilla"].update(change)
    with pytest.raises(ConfigError, match=message):
        check_model_architectures(config)


def test_an_imported_checkpoint_with_other_arch_args_is_refused(default_config, tmp_path):
    from robustxai.models.checkpoint import save_checkpoint
    from robustxai.models.wrapper import build_classifier
    from robustxai.pipeline.models import weights_mismatch

    import torch

    model = build_classifier("cifar_resnet_tiny", 10, arch_args={"drop_rate": 0.5})
    save_checkpoint(model, tmp_path / "narrow.pt", "cifar_resnet_tiny", 10, {"drop_rate": 0.5})
    payload = torch.load(tmp_path / "narrow.pt", weights_only=True)
    entry = {"arch": "cifar_resnet_tiny", "num_classes": 10, "arch_args": {}}
    assert weights_mismatch("narrow", entry, payload) == ("the checkpoint's arch_args is {'drop_rate': 0.5}, but "
                                                          "config.models.narrow.arch_args is {}")
    assert weights_mismatch("narrow", {**entry, "arch_args": {"drop_rate": 0.5}}, payload) is None


def test_an_imported_checkpoint_with_another_normalisation_in_its_entry_is_refused(tmp_path):
    """The checkpoint keeps its own mean / std; an entry naming ImageNet's was accepted while the model
    kept 0.5 and its provenance said 0.485."""
    from robustxai.models.checkpoint import save_checkpoint
    from robustxai.models.wrapper import IMAGENET_MEAN, build_classifier
    from robustxai.pipeline.models import weights_mismatch

    import torch

    model = build_classifier("cifar_vgg_tiny", 10, (0.5,) * 3, (0.25,) * 3)
    save_checkpoint(model, tmp_path / "m.pt", "cifar_vgg_tiny", 10)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    entry = {"arch": "cifar_vgg_tiny", "num_classes": 10, "arch_args": {}}
    assert weights_mismatch("m", {**entry, "mean": [0.5] * 3, "std": [0.25] * 3}, payload) is None
    assert weights_mismatch("m", {**entry, "mean": list(IMAGENET_MEAN)}, payload) == (
        f"the checkpoint normalises with mean [0.5, 0.5, 0.5], but config.models.m.mean is {list(IMAGENET_MEAN)}; "
        "a robustxai checkpoint keeps its own: remove mean from the entry or make them equal")


def test_text_for_a_numeric_setting_is_refused_naming_it(default_config):
    from robustxai.config import resolve_attribution, resolve_metrics

    config = copy.deepcopy(default_config)
    config["metrics"]["insertion"]["steps"] = "8"
    with pytest.raises(ConfigError, match=r"^config\.metrics\.insertion: metric 'insertion': setting 'steps' is '8' "
                                          r"\(str\), but it takes a number like its default 224$"):
        resolve_metrics(config, resolve_attribution(config))


@pytest.mark.parametrize("key, value, message", [
    (("training", "lr"), float("inf"), r"^config\.training\.lr: inf is not a finite number$"),
    (("attack", "eps"), float("nan"), r"^config\.attack\.eps: nan is not a finite number$"),
    (("roar", "fractions"), [0.05, float("nan")], r"^config\.roar\.fractions\.1: nan is not a finite number$"),
])
def test_nan_and_infinite_numbers_are_refused_naming_the_key(default_config, key, value, message):
    """YAML's .nan / .inf are numbers to the schema and pass every range check (NaN < 0 is false)."""
    config = copy.deepcopy(default_config)
    config[key[0]][key[1]] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


@pytest.mark.parametrize("change, message", [
    ({"attack": {"steps": 0}}, r"config\.attack\.steps: 0 is less than the minimum of 1 \(PGD steps \(0 would be no "
                               r"attack"),
    ({"dataset": {"seed": 99999999999999999999}}, r"config\.dataset\.seed: 99999999999999999999 is greater than the "
                                                 r"maximum of 9223372036854775807 \(a random seed in 0 \.\. 2\*\*63 - 1"),
    ({"dataset": {"seed": -1}}, r"config\.dataset\.seed: -1 is less than the minimum of 0"),
    ({"roar": {"fractions": [0.1, 0.1]}}, r"config\.roar\.fractions: \[0\.1, 0\.1\] has non-unique elements"),
])
def test_out_of_range_attack_steps_seeds_and_repeated_fractions_are_refused(default_config, change, message):
    config = copy.deepcopy(default_config)
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_an_adversarial_model_whose_merged_eps_is_zero_is_refused(default_config):
    config = copy.deepcopy(default_config)
    config["models"]["resnet_tiny-pgd_linf"]["attack"] = {"eps": 0}
    with pytest.raises(ConfigError, match=r"^config\.models\.resnet_tiny-pgd_linf\.attack: merged with the global "
                                          r"attack it has eps 0, so adversarial training would train on clean images"):
        validate_config(config)
    config = copy.deepcopy(default_config)
    config["evaluation"]["attacks"]["none"] = {"norm": "linf", "eps": 0, "steps": 1}  # a sanity row: allowed
    validate_config(config)
