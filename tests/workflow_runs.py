"""Running Snakemake on the workflow from tests: the smoke config and a ``snakemake`` helper."""
import subprocess
import sys
from pathlib import Path

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
