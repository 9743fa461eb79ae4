"""ROAD imputation speed: images/second of the batched torch solver (``robustxai.metrics.road``, every
(image, channel) system of a batch at once by conjugate gradients) against the per-image scipy
reference (pytorch-grad-cam's copy of tleemann/road_evaluation's ``NoisyLinearImputer``: one sparse
system built and solved per image), on the same images and removal masks, and the largest difference
between the two (noise off). Target: >= 10x on CPU.

The batched solver runs ``--batch`` images per call (a metric job's batch), median of ``--repeats``
runs; the reference runs once over ``--reference-images`` (scipy's solver uses one thread).

Run: python benchmarks/road.py [--images 256] [--size 32] [--fraction 0.5] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from robustxai.metrics.ranking import rank_pixels, top_mask
from robustxai.metrics.road import linear_imputation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64, help="images per solver call (a metric job's batch)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the batched solver (median)")
    parser.add_argument("--reference-images", type=int, default=64,
                        help="images the slow reference runs on (default: all); its rate is per image")
    args = parser.parse_args()
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.images, 3, args.size, args.size, generator=generator)
    maps = torch.rand(args.images, args.size, args.size, generator=generator)
    removed = top_mask(rank_pixels(maps), args.fraction, (args.size, args.size))
    device = torch.device(args.device)

    linear_imputation(images[:2].to(device), removed[:2].to(device))  # warm-up
    times = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        ours = torch.cat([linear_imputation(images[i:i + args.batch].to(device), removed[i:i + args.batch].to(device))
                          for i in range(0, args.images, args.batch)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    batched = statistics.median(times)

    count = args.reference_images or args.images
    imputer = NoisyLinearImputer(noise=0.0)
    started = time.perf_counter()
    reference = torch.stack([imputer(images[i], (~removed[i]).float()) for i in range(count)])
    per_image = time.perf_counter() - started
    difference = (ours[:count].cpu() - reference).abs().max().item()
    ours_rate, reference_rate = args.images / batched, count / per_image
    print(f"{args.images} images {args.size}x{args.size}, {args.fraction:.0%} removed, {args.threads} threads, "
          f"device {device}")
    print(f"batched torch CG : {ours_rate:10.1f} images/s")
    print(f"per-image scipy  : {reference_rate:10.1f} images/s")
    print(f"ratio            : {ours_rate / reference_rate:10.1f}x   (target >= 10x on CPU)")
    print(f"max |difference| : {difference:.2e}")


if __name__ == "__main__":
    main()
