"""Running Snakemake on the workflow from tests: the smoke config, a ``snakemake`` helper, and stand-ins
for the local data a real-scale config names."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "configs" / "smoke.yaml"


def snakemake_command(workdir, *args, config=SMOKE):
    """The command line of ``snakemake --cores 2 *args`` on the workflow in ``workdir``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), "--cores", "2", *args]


def snakemake(workdir, *args, config=SMOKE, check=True):
    """Run ``snakemake --cores 2 *args`` on the workflow in ``workdir``; raise with its output when it fails."""
    result = subprocess.run(snakemake_command(workdir, *args, config=config), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def merged_config(config_files) -> dict:
    """The config Snakemake makes of ``config_files`` (later files override earlier ones key by key)."""
    from snakemake.utils import update_config

    config = {}
    for path in config_files:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    return config


def make_local_inputs(config_files, workdir) -> list[Path]:
    """Empty stand-ins, under ``workdir``, for every local folder the configs' dataset is read from (the
    kind's ``local_inputs``), so a dry run gets past the plan-time check that they exist."""
    from robustxai.data.kinds import dataset_kind

    dataset = merged_config(config_files)["dataset"]
    made = [Path(workdir) / path for path in dataset_kind(dataset["kind"]).local_inputs(dataset).values()]
    for path in made:
        path.mkdir(parents=True, exist_ok=True)
    return made
