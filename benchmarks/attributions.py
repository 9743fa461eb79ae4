"""Attribution speed per method: images/second, the share of the compute bound reached, and the
speed ratio against captum used with its default batching on the same model, images and settings.

Compute bound = (passes the method needs per image) x (best per-image time of that pass kind over
batch sizes), with forward-only passes for perturbation methods and forward+input-gradient passes
for gradient methods. Run: python benchmarks/attributions.py [--images 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers_common import captum_call as peer_captum_call  # noqa: E402

from robustxai.attribution import make_method  # noqa: E402
from robustxai.attribution.propagation import out_of_place  # noqa: E402
from robustxai.models import build_classifier  # noqa: E402

SETTINGS = {  # method -> (our settings, passes per image, pass kind)
    "gradient": ({}, 1, "grad"),
    "input_x_gradient": ({}, 1, "grad"),
    "integrated_gradients": ({"steps": 49}, 50, "grad"),
    "smoothgrad": ({"samples": 20}, 20, "grad"),
    "gradient_shap": ({"samples": 20}, 20, "grad"),
    "deeplift": ({}, 2, "grad"),
    "guided_backprop": ({}, 1, "grad"),
    "gradcam": ({}, 1, "grad"),
    "gradcam_plus_plus": ({}, 1, "grad"),
    "occlusion": ({"window": 8, "stride": 4}, 50, "forward"),
    "rise": ({"masks": 1000, "cells": 7}, 1000, "forward"),
    "lime": ({"samples": 1000, "segments": 50}, 1000, "forward"),
    "meaningful_perturbation": ({"iterations": 300, "blur_sigma": 3, "jitter": 1, "init": "ones"}, 300, "grad"),
}
PER_IMAGE = ("occlusion", "lime")  # perturbation methods: also timed one image per call, as users loop


def captum_call(name, model, images, targets):
    """The same attribution through captum with its default batching (``_peers_common.captum_call``,
    which benchmarks/peers.py shares); None where captum has none."""
    return peer_captum_call(name, model, images, targets, SETTINGS[name][0])


def per_image(fn_of_batch, images, targets):
    """A call that explains the images one per call."""
    calls = [fn_of_batch(images[i:i + 1], targets[i:i + 1]) for i in range(len(images))]
    return lambda: [call() for call in calls]


def synchronised(fn):
    """``fn`` followed by waiting for the GPU's queued work (CUDA runs asynchronously)."""
    def call():
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return out
    return call


def seconds(fn, repeats=3):
    """Best wall time of up to ``repeats`` calls after one warm-up call (one call if it takes > 5 s)."""
    fn = synchronised(fn)
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
        if best > 5:
            break
    return best


def pass_times(model, shape, device, batch_sizes=(1, 32, 64, 128, 256, 512)):
    """Best per-image seconds of a forward pass and of a forward + input-gradient pass, and the
    forward pass's per-image seconds at batch size 1 (the ceiling of any speed-up from batching)."""
    best = {"forward": float("inf"), "grad": float("inf")}
    for b in batch_sizes:
        x, t = torch.rand(b, *shape, device=device), torch.zeros(b, dtype=torch.long, device=device)

        def forward():
            with torch.no_grad():
                model(x)

        def grad():
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xg).gather(1, t[:, None]).sum(), xg)

        best["forward"] = min(best["forward"], seconds(forward) / b)
        best["grad"] = min(best["grad"], seconds(grad) / b)
        if b == 1:
            best["forward_single"] = best["forward"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", default="cifar_resnet_tiny")
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_classifier(args.arch, 10).eval().to(device)
    images = torch.rand(args.images, 3, 32, 32).to(device)
    targets = torch.randint(0, 10, (args.images,)).to(device)
    bound = pass_times(model, (3, 32, 32), device)
    print(f"{args.arch}, {args.images} images 32x32 on {device}, {args.threads} thread(s); best pass: "
          f"forward {bound['forward'] * 1e3:.3f} ms/img, forward+grad {bound['grad'] * 1e3:.3f} ms/img; "
          f"forward at batch 1: {bound['forward_single'] * 1e3:.3f} ms/img "
          f"({bound['forward_single'] / bound['forward']:.1f}x the best: the most batching can gain)")
    print(f"{'method':24s} {'img/s':>9s} {'of bound':>9s} {'captum img/s':>13s} {'speed-up':>9s} "
          f"{'1 img/call speed-up':>20s}")
    for name in args.methods:
        settings, passes, kind = SETTINGS[name]
        method = make_method(name, batch_size="auto", **settings)  # tuned in the warm-up call
        ours = seconds(lambda: method.explain(model, images, targets))
        rate = args.images / ours
        bound_rate = 1.0 / (passes * bound[kind])
        reference = captum_call(name, model, images, targets)
        captum_rate, ratio, single = "-", "-", "-"
        if reference is not None:
            with out_of_place(model):
                theirs = seconds(reference)
            captum_rate, ratio = f"{args.images / theirs:13.1f}", f"{theirs / ours:8.2f}x"
        if name in PER_IMAGE:
            few = 8  # one image per call is slow; 8 images are enough for a stable ratio
            ours_single = seconds(per_image(lambda x, t: lambda: method.explain(model, x, t), images[:few],
                                            targets[:few]), repeats=1)
            with out_of_place(model):
                theirs_single = seconds(per_image(lambda x, t: captum_call(name, model, x, t), images[:few],
                                                  targets[:few]), repeats=1)
            single = f"{theirs_single / ours_single:19.2f}x"
        print(f"{name:24s} {rate:9.1f} {rate / bound_rate:9.2f} {captum_rate:>13s} {ratio:>9s} {single:>20s}",
              flush=True)


if __name__ == "__main__":
    main()
