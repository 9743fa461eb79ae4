"""Time `snakemake -n` on a paper-scale study: configs/imagenet.yaml grown to MODELS models, its
first METHODS attribution methods and SHARDS shards (default 12 x 15 x 50; target: under 30 s).

The extra models are copies of the config's models under new names, so they resolve like real ones.
Run: python benchmarks/dag_build.py [--models 12] [--methods 15] [--shards 50]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def paper_scale_config(models: int, methods: int, shards: int) -> dict:
    """configs/imagenet.yaml with ``models`` models, ``methods`` methods and ``shards`` shards."""
    config = yaml.safe_load((ROOT / "configs" / "imagenet.yaml").read_text())
    originals = list(config["models"].items())
    config["models"] = {f"{name}-{i}": dict(entry) for i, (name, entry) in enumerate(islice(cycle(originals), models))}
    kept = dict(list(config["attribution"]["methods"].items())[:methods])
    config["attribution"].update(methods=kept, shards=shards)
    config["attribution"].pop("models", None)
    for settings in config["metrics"].values():
        for key in ("models", "methods"):
            settings.pop(key, None)
    for name, settings in kept.items():  # counterparts name a model of the original config
        if "counterpart" in settings:
            settings["counterpart"] = next(n for n in config["models"] if n.startswith(settings["counterpart"]))
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--methods", type=int, default=15)
    parser.add_argument("--shards", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "paper_scale.yaml"
        path.write_text(yaml.safe_dump(paper_scale_config(args.models, args.methods, args.shards)))
        command = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--snakefile", str(ROOT / "Snakefile"),
                   "--directory", workdir, "--configfile", str(path), "--cores", "8"]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-3000:])
    total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.M)
    print(f"{args.models} models x {args.methods} methods x {args.shards} shards: "
          f"{total.group(1) if total else '?'} jobs, snakemake -n took {seconds:.1f} s")


if __name__ == "__main__":
    main()
