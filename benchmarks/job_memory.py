"""Peak resident memory of attribute and metric jobs against the workflow's default request (``mem_mb``).

Each row runs one whole job in a fresh process on the CPU, a timm model with random weights and
``--images`` random images: an attribute shard job (``attribute_shard_job``, ``images_per_batch`` 16 as
configs/imagenet.yaml) per method, then an insertion metric job (``metric_job``, 4 steps) on the
gradient maps. It prints the job's peak resident memory (VmHWM: the process's own high-water mark), the
part taken by imports and the model before any work, the inputs per model pass the job used, and the
request ``robustxai.pipeline.resources`` gives it. A peak above the request would get the job killed on
SLURM.

Run: python benchmarks/job_memory.py [--images 32] [--folder /tmp/job_memory] [--archs resnet18 resnet50]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

IMAGES_PER_BATCH = 16
#: (method, settings): a plain gradient pass per image, and two methods that expand each image into
#: many inputs (noisy copies, path points), kept short: the peak depends on the inputs per pass, not on
#: how many passes there are
METHODS = [("gradient", {}), ("smoothgrad", {"samples": 4}), ("integrated_gradients", {"steps": 3})]

JOB = """
import json, sys
import torch
torch.set_num_threads(2)
from robustxai.workflow_io import peak_rss_mib as peak_mib  # this process's own high-water mark
from robustxai.attribution.shards import read_shard
from robustxai.models.checkpoint import load_checkpoint
from robustxai.pipeline.attribute import attribute_shard_job
checkpoint, split, method, settings, images, out = sys.argv[1:7]
load_checkpoint(checkpoint)
before = peak_mib()
attribute_shard_job(checkpoint, split, method, json.loads(settings), 0, int(images), %d, out)
print(json.dumps({"peak_mib": peak_mib(), "before_mib": before, "batch_size": read_shard(out).attrs["batch_size"]}))
""" % IMAGES_PER_BATCH

METRIC = """
import json, sys
import torch
torch.set_num_threads(2)
from robustxai.workflow_io import peak_rss_mib as peak_mib
from robustxai.models.checkpoint import load_checkpoint
from robustxai.pipeline.metrics import metric_job
checkpoint, split, shard, out = sys.argv[1:5]
load_checkpoint(checkpoint)
before = peak_mib()
metric_job("insertion", {"steps": 4, "batch_size": 64}, [shard], split, out, checkpoint_path=checkpoint)
print(json.dumps({"peak_mib": peak_mib(), "before_mib": before, "batch_size": 64}))
"""


def write_split(path: Path, images: int, size: int) -> None:
    from robustxai.data.splits import ImageSplit, SplitWriter

    rng = np.random.default_rng(0)
    with SplitWriter(path) as out:
        out.append(ImageSplit(images=rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8),
                              labels=rng.integers(0, 1000, images),
                              boxes=np.tile(np.array([2, 2, size - 2, size - 2], np.int32), (images, 1)),
                              class_names=[f"n{k:08d}" for k in range(1000)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--archs", nargs="+", default=["resnet18"])
    parser.add_argument("--methods", nargs="+", default=[name for name, _ in METHODS])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/job_memory"))
    args = parser.parse_args()
    from robustxai.models import build_classifier
    from robustxai.models.checkpoint import save_checkpoint
    from robustxai.pipeline.resources import attribute_mem_mb, metric_mem_mb

    args.folder.mkdir(parents=True, exist_ok=True)
    print(f"{'model':<10}{'px':>5}  {'job':<33}{'batch':>6}{'imports+model MiB':>19}{'peak MiB':>10}"
          f"{'request MiB':>13}")
    for arch in args.archs:
        checkpoint = args.folder / f"{arch}.pt"
        save_checkpoint(build_classifier(arch, 1000), checkpoint, arch, 1000)
        for size in args.sizes:
            split = args.folder / f"split-{size}.h5"
            if not split.exists():
                write_split(split, args.images, size)
            for method, settings in METHODS:
                if method not in args.methods:
                    continue
                shard = args.folder / f"shard-{method}.h5"
                row = run(JOB, checkpoint, split, method, json.dumps(settings), args.images, shard)
                report(arch, size, f"attribute {method}", row, attribute_mem_mb(size, IMAGES_PER_BATCH, args.images))
            if "gradient" in args.methods:
                row = run(METRIC, checkpoint, split, args.folder / "shard-gradient.h5", args.folder / "table.parquet")
                report(arch, size, "metric insertion (gradient maps)", row,
                       metric_mem_mb(size, args.images, "forward", batch_size=64))


def run(code: str, *args) -> dict:
    """Run ``code`` in a fresh Python with ``args``; its last stdout line as JSON."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(arch: str, size: int, job: str, row: dict, request: int) -> None:
    print(f"{arch:<10}{size:>5}  {job:<33}{row['batch_size']:>6}{row['before_mib']:>19.0f}{row['peak_mib']:>10.0f}"
          f"{request:>13}", flush=True)


if __name__ == "__main__":
    main()
