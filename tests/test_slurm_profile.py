"""profiles/slurm sends every rule that asks for a GPU to the GPU partition (found by walking the
workflow's rules under every shipped config, not from a list), and a profile whose placeholders were
never filled in is refused before any job is planned."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

from robustxai.cluster import placeholder_resources
from workflow_runs import make_local_inputs

ROOT = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
#: every shipped study: config file(s) merged in order (the fine-tuning config is an overlay of imagenet.yaml)
CONFIGS = [[ROOT / "config.yaml"], [ROOT / "tests" / "configs" / "smoke.yaml"],
           *[[path] for path in sorted((ROOT / "configs").glob("*.yaml")) if path.stem != "imagenet-finetune"],
           [ROOT / "configs" / "imagenet.yaml", ROOT / "configs" / "imagenet-finetune.yaml"]]


def gpu_rules(config_files: list[Path], tmp_path: Path) -> set[str]:
    """Names of the rules that declare a ``gpu`` resource when the Snakefile is parsed with ``config_files``
    (rules of sections the config lacks are not defined), in ``tmp_path`` with stand-ins for its local data."""
    make_local_inputs(config_files, tmp_path)
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                                config_settings=ConfigSettings(configfiles=config_files,
                                                               config={"results": str(tmp_path / "results")}),
                                snakefile=ROOT / "Snakefile", workdir=tmp_path)
        return {rule.name for rule in workflow._workflow.rules if "gpu" in rule.resources}


def test_every_gpu_rule_of_every_config_goes_to_the_gpu_partition(tmp_path):
    found = set().union(*(gpu_rules(config, tmp_path) for config in CONFIGS))
    assert {"train_model", "attribute", "metrics", "roar", "roar_leakage", "latency"} <= found  # the walk works
    partitions = {rule: resources["slurm_partition"] for rule, resources in PROFILE["set-resources"].items()
                  if "slurm_partition" in resources}
    gpu_partition = partitions["train_model"]
    assert gpu_partition != PROFILE["default-resources"]["slurm_partition"]
    missing = sorted(found - set(partitions))
    assert not missing, f"GPU rules left on the default (CPU) partition: {missing}"
    assert {rule: partitions[rule] for rule in found} == dict.fromkeys(found, gpu_partition)
    assert set(partitions) == found, "set-resources names a rule that asks for no GPU"


def test_placeholders_are_found_wherever_a_site_resource_holds_one():
    assert placeholder_resources({"slurm_partition": '"CHANGE_ME_partition"', "mem_mb": 4000},
                                 {"roar": {"slurm_partition": "CHANGE_ME_gpu", "slurm_extra": "CHANGE_ME"}}) == [
        "default-resources: slurm_partition", "set-resources: roar: slurm_partition"]
    assert placeholder_resources({"slurm_partition": "cpu", "slurm_account": "lab"}, {"roar": {"slurm_partition": "gpu"}}) == []


@pytest.mark.workflow
def test_the_shipped_profile_is_refused_with_what_to_fill_in(tmp_path):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm", "--config",
                             f"results={tmp_path / 'results'}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "the SLURM profile still holds placeholder values" in output
    assert "set-resources: roar: slurm_partition" in output and "default-resources: slurm_account" in output
    assert "Job stats" not in output  # refused before planning
