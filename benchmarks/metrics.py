"""Insertion + deletion speed: images/second of the batched metrics against a per-step loop (one
forward pass per curve point, as Quantus and the RISE reference code do) on the same model, maps and
steps, and the largest AUC difference between the two.

The batched metrics run as metric jobs run them: tuned memory layout and batch size ("auto"). The
loop runs on the model as loaded (NCHW, what Quantus-style code gets) and, for a like-for-like
count, on the model in the tuned layout too.

Run: python benchmarks/metrics.py [--images 32] [--steps 64] [--threads 2] [--arch cifar_resnet_tiny]
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch

from robustxai.metrics import MetricBatch, make_metric
from robustxai.metrics.ranking import rank_pixels
from robustxai.metrics.causal import blurred_start, normalisation_mean
from robustxai.models import build_classifier
from robustxai.tuning import adopt_fastest_layout


@torch.no_grad()
def per_step_auc(model, image, order, start, finish, target, per_step):
    """One image's AUC, one forward pass per step (the per-sample loop of Quantus-style code)."""
    current = start.clone()
    h, w = image.shape[-2:]
    steps = math.ceil(h * w / per_step)
    scores = []
    for k in range(steps + 1):
        scores.append(model(current[None]).softmax(1)[0, target].item())
        if k < steps:
            pixels = order[k * per_step:(k + 1) * per_step]
            current.view(current.shape[0], -1)[:, pixels] = finish.reshape(finish.shape[0], -1)[:, pixels]
    return (sum(scores) - scores[0] / 2 - scores[-1] / 2) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="cifar_resnet_tiny")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_classifier(args.arch, 10).eval().to(device)
    images, maps = torch.rand(args.images, 3, 32, 32).to(device), torch.rand(args.images, 32, 32).to(device)
    with torch.no_grad():
        targets = model(images).argmax(1)
    batch = MetricBatch(images, maps, targets, torch.zeros(args.images, 4, dtype=torch.long, device=device))
    tuned = copy.deepcopy(model)
    layout = adopt_fastest_layout(tuned, (3, 32, 32), "forward", device, inputs_in_model_layout=True)
    metrics = {name: make_metric(name, steps=args.steps) for name in ("insertion", "deletion")}
    metrics["insertion"](tuned, batch)  # warm-up, and the batch-size measurement
    started = time.perf_counter()
    ours = {name: metric(tuned, batch)[name] for name, metric in metrics.items()}
    if device.type == "cuda":
        torch.cuda.synchronize()
    batched = time.perf_counter() - started

    mean = normalisation_mean(model, 3)
    blurred = blurred_start(images, mean)
    grey = mean.view(3, 1, 1).expand(3, 32, 32).to(device)
    order = rank_pixels(maps)
    per_step = math.ceil(32 * 32 / args.steps)
    def run_loop(net):
        started = time.perf_counter()
        loop = {"insertion": [], "deletion": []}
        for i in range(args.images):
            loop["deletion"].append(per_step_auc(net, images[i], order[i], images[i], grey, targets[i], per_step))
            loop["insertion"].append(per_step_auc(net, images[i], order[i], blurred[i], images[i], targets[i],
                                                  per_step))
        return loop, time.perf_counter() - started

    loop, looped = run_loop(model)
    _, looped_tuned = run_loop(tuned)
    difference = max((ours[k].cpu() - torch.tensor(loop[k])).abs().max().item() for k in ours)
    print(f"{args.arch}, {args.images} images 32x32 on {device}, {args.steps} steps, {args.threads} thread(s)")
    print(f"insertion + deletion, batched ({layout}, batch {metrics['insertion'].batch_size}): "
          f"{args.images / batched:8.1f} images/s")
    print(f"insertion + deletion, per step (contiguous):     {args.images / looped:8.1f} images/s")
    print(f"insertion + deletion, per step ({layout}):  {args.images / looped_tuned:8.1f} images/s")
    print(f"speed-up: {looped / batched:.2f}x vs the loop as loaded, {looped_tuned / batched:.2f}x vs the loop in "
          f"the tuned layout; largest AUC difference: {difference:.2e}")


if __name__ == "__main__":
    main()
