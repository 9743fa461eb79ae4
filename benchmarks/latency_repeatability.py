"""Do two latency measurements agree in forward-pass units? (target: within 20 %)

Each run is a fresh process that times, as the latency job does (``measure_latency``: forward passes
and explanations alternating, the fastest of ``--repeats`` calls each), gradient, SmoothGrad (10
samples), occlusion (window 4, stride 2) and integrated gradients (20 steps) on the tiny CIFAR ResNet
with random weights, ``--images`` random images of 32 px, on ``--threads`` torch threads. The table gives
per method each run's ratio_batch1 (ms per explanation / ms per forward pass, batch 1), their spread
(larger / smaller - 1) and the machine's 1-minute load average around each run's measurement; then
the same for ratio_batched. With ``--load N``, N busy processes run beside every run but the first,
as other jobs ran beside one of the study's two latency jobs.

Run: python benchmarks/latency_repeatability.py [--runs 2] [--repeats 5] [--images 8] [--threads 1] [--load 0]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

#: (method, settings), as the default study's latency section configures them
METHODS = [("gradient", {}), ("smoothgrad", {"samples": 10}), ("occlusion", {"window": 4, "stride": 2}),
           ("integrated_gradients", {"steps": 20})]

WORK = """
import json, torch
torch.set_num_threads({threads})
from robustxai.attribution import make_method
from robustxai.evaluation.latency import measure_latency
from robustxai.models.wrapper import build_classifier
torch.manual_seed(0)
model = build_classifier("cifar_resnet_tiny", 10, (0.5,) * 3, (0.25,) * 3).eval()
images = torch.rand({images}, 3, 32, 32)
targets = model(images).argmax(1)
print(json.dumps({{name: measure_latency(model, make_method(name, batch_size=64, **settings), images, targets,
                                       {repeats}) for name, settings in {methods!r}}}))
"""


def run(repeats: int, images: int, threads: int) -> dict[str, dict]:
    """{method: measure_latency's result} from one fresh process."""
    code = WORK.format(threads=threads, images=images, repeats=repeats, methods=METHODS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def spread(values: list[float]) -> float:
    """Largest / smallest - 1 (0.2: the runs differ by 20 %)."""
    return max(values) / min(values) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside every run but the first")
    args = parser.parse_args()
    runs = [run(args.repeats, args.images, args.threads)]
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        runs += [run(args.repeats, args.images, args.threads) for _ in range(args.runs - 1)]
    finally:
        for burner in burners:
            burner.kill()
    for key in ("ratio_batch1", "ratio_batched"):
        print(f"\n{key} (forward passes per explanation), {args.runs} runs, {args.threads} thread(s), "
              f"{args.load} busy process(es) beside runs 2-{args.runs}")
        print(f"{'method':22s}" + "".join(f"{'run ' + str(k + 1):>10s}" for k in range(args.runs))
              + f"{'spread':>9s}{'ok':>4s}   load average per run (before -> after)")
        for name, _ in METHODS:
            values = [result[name][key] for result in runs]
            loads = "  ".join(f"{result[name]['load_before']:.2f}->{result[name]['load_after']:.2f}"
                              for result in runs)
            print(f"{name:22s}" + "".join(f"{v:10.3g}" for v in values)
                  + f"{spread(values):9.1%}{'yes' if spread(values) <= 0.2 else 'NO':>4s}   {loads}")
    cpu = [sum(r["cpu_seconds"] for r in result.values()) for result in runs]
    wall = [sum(r["wall_seconds"] for r in result.values()) for result in runs]
    print("\nCPU / wall seconds per run: " + "  ".join(f"{c:.1f} / {w:.1f}" for c, w in zip(cpu, wall)))


if __name__ == "__main__":
    main()
