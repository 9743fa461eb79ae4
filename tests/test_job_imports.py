"""Cheap jobs stay cheap to start: importing an attribute or metric job's entry points loads none of
the heavy packages it does not need to import (timm loads when a timm model is built, never for the
project's own cifar_* models, pandas when a table is made, scipy and scikit-image with the metric or method that uses them). Timings: benchmarks/job_imports.py."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("timm", "torchvision", "scipy", "skimage", "pandas", "pyarrow", "matplotlib", "sklearn", "jsonschema",
        "yaml", "snakemake")


def script_imports(name: str) -> str:
    """The import statements of ``workflow/scripts/<name>`` (Snakemake injects ``snakemake``, not imports it)."""
    tree = ast.parse((ROOT / "workflow" / "scripts" / name).read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


@pytest.mark.parametrize("statement", [
    "import robustxai.pipeline.attribute",
    "import robustxai.pipeline.metrics",
    "import robustxai.workflow_io",
    script_imports("attribute_shard.py"),
    script_imports("metrics.py"),
    "import torch\nfrom robustxai.models import build_classifier, load_checkpoint, save_checkpoint\n"
    "save_checkpoint(build_classifier('cifar_resnet_tiny', 10), 'm.pt', 'cifar_resnet_tiny', 10)\n"
    "load_checkpoint('m.pt'); build_classifier('cifar_vgg_tiny', 10)",
], ids=["pipeline.attribute", "pipeline.metrics", "workflow_io", "attribute_shard.py", "metrics.py", "cifar model load"])
def test_job_entry_points_leave_heavy_packages_unimported(statement, tmp_path):
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "torch" in loaded  # the statement ran
    assert not loaded & set(LAZY), f"{statement!r} imports {sorted(loaded & set(LAZY))}"


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(preset, expected):
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, robustxai.pipeline.attribute\nprint(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
