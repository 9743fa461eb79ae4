"""Split files at ImageNet scale: one shard job reads only its own images.

Writes a stand-in split of ``--images`` (20,000) images of 224 px through ``SplitWriter`` (streamed in
parts of 500, as preparation writes it), then, each in a fresh process:
- reads a shard of 100 and of 1,000 images at the start, middle and end of the split
  (``load_split(path, index)``): seconds and peak resident memory;
- runs a whole attribute shard job (``attribute_shard_job``, gradient method, batch 16 as configs/imagenet.yaml, a timm
  ResNet-18 with random weights at 224 px on the CPU) on a shard of 100 and of 1,000 images: seconds and peak resident memory.
A job that loaded the whole split, as the former ``.npz`` format made every job do, would hold
N x 224 x 224 x 3 bytes (3.0 GB for 20,000 images) before any work.

Run: python benchmarks/split_io.py [--images 20000] [--folder /tmp/split_io]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 224
PART = 500

PEAK = """
def peak_mib():  # this process's own high-water mark (ru_maxrss would include the parent's, kept over exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
"""

READ = PEAK + """
import json, sys, time
import numpy as np
from robustxai.data.splits import load_split
path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
began = time.perf_counter()
split = load_split(path, np.arange(start, start + count))
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib()}))
"""

JOB = PEAK + """
import json, sys, time
import torch
from robustxai.pipeline.attribute import attribute_shard_job
torch.set_num_threads(2)
checkpoint, path, shard, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
began = time.perf_counter()
attribute_shard_job(checkpoint, path, "gradient", {"batch_size": 16}, shard, count, 16, out)
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib()}))
"""


def stand_in_part(rng: np.random.Generator, count: int) -> np.ndarray:
    """uint8 (count, 224, 224, 3) images: smooth random colour fields plus pixel noise (photo-like
    enough to stand in for photos)."""
    coarse = rng.integers(0, 256, (count, SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
    smooth = coarse.repeat(16, axis=1).repeat(16, axis=2)
    return np.clip(smooth.astype(np.int16) + rng.integers(-20, 21, smooth.shape, dtype=np.int16), 0, 255).astype(np.uint8)


def write_split(path: Path, images: int) -> float:
    """Stream the stand-in split to ``path``; returns the seconds taken."""
    from robustxai.data.splits import ImageSplit, SplitWriter

    rng = np.random.default_rng(0)
    began = time.perf_counter()
    with SplitWriter(path) as out:
        for start in range(0, images, PART):
            count = min(PART, images - start)
            out.append(ImageSplit(images=stand_in_part(rng, count), labels=rng.integers(0, 1000, count),
                                  boxes=np.tile(np.array([20, 20, 200, 200], np.int32), (count, 1)),
                                  class_names=[f"n{k:08d}" for k in range(1000)]))
    return time.perf_counter() - began


def run(code: str, *args) -> dict:
    """Run ``code`` in a fresh Python with ``args``; its last stdout line as JSON."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/split_io"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    path = args.folder / "test.h5"
    if not path.exists():
        print(f"writing {args.images} images: {write_split(path, args.images):.1f} s, "
              f"{path.stat().st_size / 2**30:.2f} GiB on disk "
              f"({args.images * SIZE * SIZE * 3 / 2**30:.2f} GiB raw)")
    print(f"{'read':<26}{'images':>8}{'seconds':>10}{'ms/img':>9}{'peak MiB':>10}")
    for count in (100, 1000):
        for where, start in (("start", 0), ("middle", args.images // 2), ("end", args.images - count)):
            row = run(READ, path, start, count)
            print(f"{'load_split, ' + where:<26}{count:>8}{row['seconds']:>10.3f}{1000 * row['seconds'] / count:>9.2f}"
                  f"{row['peak_mib']:>10.0f}")
    from robustxai.models import build_classifier
    from robustxai.models.checkpoint import save_checkpoint

    checkpoint = args.folder / "tiny.pt"
    save_checkpoint(build_classifier("resnet18", 1000), checkpoint, "resnet18", 1000)
    for count in (100, 1000):
        shard = args.images // count // 2
        row = run(JOB, checkpoint, path, shard, count, args.folder / f"shard-{count}.h5")
        print(f"{'attribute job (gradient)':<26}{count:>8}{row['seconds']:>10.3f}{1000 * row['seconds'] / count:>9.2f}"
              f"{row['peak_mib']:>10.0f}")


if __name__ == "__main__":
    main()
