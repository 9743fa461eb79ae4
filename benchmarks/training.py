"""Training throughput of the default architectures against the machine's compute bound (issue 23).

For each architecture and each training mode (clean; adversarial: PGD with ``--pgd-steps`` steps, as
the default study's Linf models), three numbers in images per second (forward + backward + step):
- bound: the model's convolution and linear layers timed alone on random tensors of the shapes they
  see in training (forward, gradient of the input, gradient of the weight; an attack step needs the
  first two only), each in its faster memory layout (NCHW or channels-last), summed; the rest of a network (batch norm, ReLU, pooling, the loss, the optimiser,
  the data) is what a loop adds on top;
- reference: a plain PyTorch loop (float batches made beforehand, no augmentation, SGD), the floor a
  hand-written loop reaches;
- robustxai: ``robustxai.training.loop.train`` for ``EPOCHS`` epochs on uint8 images held in memory, as
  the workflow trains (translation augmentation, per-step schedule, loss checks, the training layout
  measured and adopted, ``--precision``), the epochs' seconds only (the one-off layout timing, bounded by
  ``robustxai.tuning``, excluded). With ``--precision bf16`` the share can pass 100 %: the bound is float32.
The share of the bound is bound time / measured time (1.0 = nothing but convolutions).

Run: python benchmarks/training.py [--images 4096] [--batch-size 64] [--threads N] [--precision fp32] [--csv PATH]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from robustxai.models import build_classifier  # noqa: E402
from robustxai.training.algorithms import make_algorithm  # noqa: E402
from robustxai.training.loop import TrainingSettings, train  # noqa: E402

ARCHS = ("cifar_resnet_tiny", "cifar_vgg_tiny")
EPS = 8 / 255
EPOCHS = 3  # enough passes for the loop to time and adopt its layout, as a workflow job does


def layer_inputs(model: nn.Module, images: torch.Tensor) -> list[tuple[nn.Module, torch.Size]]:
    """Each Conv2d / Linear layer of ``model`` with the input shape it sees for ``images`` (N, C, H, W)."""
    seen, hooks = [], []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape))))
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return seen


def best_seconds(work, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``work`` (after one warm-up call), in seconds."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def layer_seconds(layer: nn.Module, shape: torch.Size, repeats: int,
                  layout: torch.memory_format = torch.contiguous_format) -> tuple[float, float, float]:
    """(forward, input gradient, weight gradient) seconds of one layer on a random input of ``shape``,
    the input and a 4-d weight stored in ``layout``."""
    x = torch.randn(shape).contiguous(memory_format=layout if len(shape) == 4 else torch.contiguous_format)
    x.requires_grad_(True)
    weight = layer.weight.detach().clone()
    weight = weight.contiguous(memory_format=layout if weight.dim() == 4 else torch.contiguous_format)
    weight.requires_grad_(True)
    bias = None if layer.bias is None else layer.bias.detach().clone().requires_grad_(True)
    if isinstance(layer, nn.Conv2d):
        def forward():
            return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    else:
        def forward():
            return F.linear(x, weight, bias)
    out = forward()
    grad_out = torch.randn_like(out)
    fwd = best_seconds(lambda: forward(), repeats)
    # torch.autograd.grad with one input runs only that input's backward: the two costs separately
    both = best_seconds(lambda: torch.autograd.grad(forward(), (x, weight), grad_out), repeats)
    grad_in = best_seconds(lambda: torch.autograd.grad(forward(), (x,), grad_out), repeats) - fwd
    return fwd, grad_in, max(both - fwd - grad_in, 0.0)


def bound_images_per_second(arch: str, batch_size: int, pgd_steps: int, repeats: int) -> tuple[float, float]:
    """(clean, adversarial) images/s if a training step cost only its convolutions and linear layers."""
    model = build_classifier(arch, 10, (0.5,) * 3, (0.25,) * 3).train()
    totals = [0.0, 0.0, 0.0]
    for layer, shape in layer_inputs(model, torch.rand(batch_size, 3, 32, 32)):
        timings = [layer_seconds(layer, shape, repeats, layout) for layout in (torch.contiguous_format,
                                                                                 torch.channels_last)]
        for k, seconds in enumerate(min(timings, key=sum)):
            totals[k] += seconds
    fwd, grad_in, grad_weight = totals
    clean = fwd + grad_in + grad_weight
    adversarial = pgd_steps * (fwd + grad_in) + clean
    return batch_size / clean, batch_size / adversarial


def reference_images_per_second(arch: str, batch_size: int, steps: int, pgd_steps: int) -> float:
    """A plain loop: float batches made beforehand, cross-entropy, SGD; PGD in eval mode when
    ``pgd_steps`` > 0 (as robustxai crafts it), signed-gradient Linf steps."""
    torch.manual_seed(0)
    model = build_classifier(arch, 10, (0.5,) * 3, (0.25,) * 3).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batches = [(torch.rand(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))) for _ in range(steps)]

    def run(n: int) -> None:
        for images, labels in batches[:n]:
            if pgd_steps:
                model.eval()
                delta = torch.empty_like(images).uniform_(-EPS, EPS)
                for _ in range(pgd_steps):
                    delta.requires_grad_(True)
                    (grad,) = torch.autograd.grad(F.cross_entropy(model(images + delta), labels), delta)
                    delta = (delta + 2.5 * EPS / pgd_steps * grad.sign()).clamp(-EPS, EPS).detach()
                model.train()
                images = (images + delta).clamp(0, 1)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    run(3)  # warm-up
    start = time.perf_counter()
    run(steps)
    return steps * batch_size / (time.perf_counter() - start)


def robustxai_images_per_second(arch: str, batch_size: int, images: int, pgd_steps: int,
                                precision: str = "fp32") -> float:
    """``robustxai.training.loop.train`` for ``EPOCHS`` epochs on ``images`` uint8 images: images per second
    of its epochs (validation on one batch included, the layout timing before them excluded)."""
    torch.manual_seed(0)
    train_images = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8)
    train_labels = torch.randint(0, 10, (images,))
    val_images, val_labels = torch.rand(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    algorithm = (make_algorithm("adversarial", {"norm": "linf", "eps": EPS, "steps": pgd_steps}) if pgd_steps
                 else make_algorithm("vanilla"))
    settings = TrainingSettings(epochs=EPOCHS, batch_size=batch_size, lr=0.05, weight_decay=5e-4, translate=2,
                                precision=precision)
    model = build_classifier(arch, 10, (0.5,) * 3, (0.25,) * 3)
    train(model, algorithm, settings, train_images[:4 * batch_size], train_labels[:4 * batch_size], val_images,
          val_labels, torch.device("cpu"))  # warm-up
    model = build_classifier(arch, 10, (0.5,) * 3, (0.25,) * 3)
    result = train(model, algorithm, settings, train_images, train_labels, val_images, val_labels, torch.device("cpu"))
    return EPOCHS * images / sum(row["seconds"] for row in result.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--images", type=int, default=4096, help="images per measured epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pgd-steps", type=int, default=2, help="PGD steps of the adversarial mode (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each layer timing (the fastest counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="robustxai's training precision")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for arch in args.archs:
        bounds = bound_images_per_second(arch, args.batch_size, args.pgd_steps, args.repeats)
        for mode, pgd, bound in (("clean", 0, bounds[0]), (f"pgd-{args.pgd_steps}", args.pgd_steps, bounds[1])):
            reference = reference_images_per_second(arch, args.batch_size, args.images // args.batch_size, pgd)
            ours = robustxai_images_per_second(arch, args.batch_size, args.images, pgd, args.precision)
            rows.append({"arch": arch, "mode": mode, "bound_img_s": bound, "reference_img_s": reference,
                         "robustxai_img_s": ours, "reference_share": reference / bound, "robustxai_share": ours / bound})
            print(f"{arch:18s} {mode:6s} bound {bound:8.0f} img/s | reference {reference:7.0f} ({reference / bound:.0%}) "
                  f"| robustxai {ours:7.0f} ({ours / bound:.0%})", flush=True)
    print(f"\n{torch.get_num_threads()} torch threads, batch {args.batch_size}, {args.images} images per epoch, "
          f"robustxai precision {args.precision}")
    print("| arch | mode | bound img/s | reference img/s (share) | robustxai img/s (share) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['mode']} | {r['bound_img_s']:.0f} | {r['reference_img_s']:.0f} "
              f"({r['reference_share']:.0%}) | {r['robustxai_img_s']:.0f} ({r['robustxai_share']:.0%}) |")
    if args.csv:
        import csv
        with open(args.csv, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
