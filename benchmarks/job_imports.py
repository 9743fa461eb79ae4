"""Import cost of the cheap jobs' entry points and of building a model against a bare ``import torch``
(issue 16: at most 1.5x; issue 23: building the project's own models imports no timm).

An attribute or metric job is a fresh Python that imports its workflow script's modules, then works;
with thousands of such jobs in a study, what the imports cost is paid thousands of times. For each
entry point below, in fresh processes, repeats interleaved with ``import torch``:
- import seconds: the sum of the top-level cumulative times ``python -X importtime`` reports for the
  statement (the interpreter's own start-up imports are left out), median over the repeats;
- the ratio of that median to ``import torch``'s median from the same run;
- peak resident memory of the process after the imports (``VmHWM``: ``getrusage``'s ``ru_maxrss``
  would carry over the parent's peak through the exec);
- the 10 heaviest packages imported outside torch's own import (seconds of their modules' own time).
A workflow script's entry is the script's import statements without ``snakemake`` (Snakemake injects
the ``snakemake`` object; importing the snakemake package is not the job's cost).

Run: python benchmarks/job_imports.py [--repeats 7] [--checkout DIR]
(``--checkout`` measures another checkout's ``src`` and workflow scripts, e.g. HEAD's, to compare with
before a change: ``git archive HEAD src workflow/scripts | tar -x -C /tmp/before``, ``--checkout /tmp/before``.)
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("attribute_shard.py", "metrics.py", "metric.py")  # metric.py: the per-metric job before issue 23
MODULES = ("robustxai.pipeline.attribute", "robustxai.pipeline.metrics", "robustxai.workflow_io")
#: a job that loads one of the project's models imports what building it imports (timm, before issue 23)
MODEL_BUILD = "from robustxai.models import build_classifier\nbuild_classifier('cifar_resnet_tiny', 10)"
MARK = "--robustxai-import-benchmark--"
CHILD = """
import sys
sys.stderr.write({mark!r} + "\\n"); sys.stderr.flush()
{statement}
sys.stderr.flush()
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) / 1024)
"""
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def script_imports(path: Path) -> str:
    """The top-level import statements of a workflow script, without ``snakemake``."""
    tree = ast.parse(path.read_text())
    statements = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a for a in node.names if a.name.split(".")[0] != "snakemake"]
            if names:
                statements.append(ast.unparse(ast.Import(names=names)))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] != "snakemake":
            statements.append(ast.unparse(node))
    return "\n".join(statements)


def entries(root: Path) -> dict[str, str]:
    """Label -> import statement(s): ``import torch``, each entry module, each job script's imports."""
    table = {"torch": "import torch"}
    table.update({module: f"import {module}" for module in MODULES})
    table.update({f"scripts/{name}": script_imports(root / "workflow" / "scripts" / name) for name in SCRIPTS
                  if (root / "workflow" / "scripts" / name).exists()})
    table["build cifar_resnet_tiny"] = MODEL_BUILD
    return table


def measure(statement: str, env: dict) -> dict:
    """One fresh process: import seconds, peak MiB and self seconds per package outside torch's import."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD.format(mark=MARK, statement=statement)],
                          capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    rows = []
    for line in done.stderr.split(MARK, 1)[1].splitlines():
        if match := LINE.match(line):
            rows.append((int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
    total = sum(cumulative for _, cumulative, depth, _ in rows if depth == 0)
    packages: dict[str, float] = defaultdict(float)
    inside_torch_above = None  # depth of the torch import whose subtree we are in (importtime prints children first)
    for own, _, depth, name in reversed(rows):  # parents come after their children: walk backwards
        if inside_torch_above is not None and depth <= inside_torch_above:
            inside_torch_above = None
        if inside_torch_above is None and name.split(".")[0] == "torch":
            inside_torch_above = depth
            continue
        if inside_torch_above is None:
            packages[name.split(".")[0]] += own / 1e6
    return {"seconds": total / 1e6, "peak_mib": float(done.stdout.strip().splitlines()[-1]), "packages": packages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="a folder with src/robustxai and workflow/scripts to measure instead of this one")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.checkout.resolve() != ROOT:
        src = str((args.checkout / "src").resolve())
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    table = entries(args.checkout)
    runs: dict[str, list[dict]] = {label: [] for label in table}
    for _ in range(args.repeats):  # interleaved, so load on the machine falls on every entry alike
        for label, statement in table.items():
            runs[label].append(measure(statement, env))
    torch_seconds = statistics.median(r["seconds"] for r in runs["torch"])
    print(f"{'entry point':<34}{'import s':>9}{'x torch':>9}{'peak MiB':>10}  heaviest non-torch packages (s, median)")
    for label, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        peak = statistics.median(r["peak_mib"] for r in results)
        names = {name for r in results for name in r["packages"]}
        heaviest = sorted(((statistics.median(r["packages"].get(n, 0.0) for r in results), n) for n in names),
                          reverse=True)[:10]
        print(f"{label:<34}{seconds:>9.3f}{seconds / torch_seconds:>9.2f}{peak:>10.0f}  "
              + ", ".join(f"{n} {s:.3f}" for s, n in heaviest if s >= 0.0005))
    print(json.dumps({label: {"seconds": sorted(r["seconds"] for r in results),
                              "peak_mib": sorted(r["peak_mib"] for r in results)} for label, results in runs.items()}))


if __name__ == "__main__":
    main()
