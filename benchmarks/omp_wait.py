"""How OpenMP's wait policy changes torch's speed on a busy machine.

Each run is a fresh process (the policy is read when torch loads its OpenMP runtime) that times
forward + input-gradient passes of the tiny CIFAR ResNet over 640 inputs of 32 px in batches of 32,
on ``--threads`` threads, with the policy passive, active, or unset (libgomp's default: spin, then
sleep). Runs alternate between policies, ``--load`` busy processes load the cores meanwhile, and the
table gives each policy's median and range of seconds.

Run: python benchmarks/omp_wait.py [--rounds 5] [--threads 2] [--load 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

WORK = """
import time, torch
torch.set_num_threads({threads})
from robustxai.attribution.base import input_gradients
from robustxai.models import build_classifier
torch.manual_seed(0)
model = build_classifier("cifar_resnet_tiny", num_classes=10).eval()
inputs, targets = torch.rand(640, 3, 32, 32), torch.randint(0, 10, (640,))
input_gradients(model, inputs[:32], targets[:32], 32)
started = time.perf_counter()
input_gradients(model, inputs, targets, 32)
print(time.perf_counter() - started)
"""


def run(policy: str | None, threads: int) -> float:
    """Seconds of the timed passes in a fresh process with OMP_WAIT_POLICY=``policy`` (None: unset)."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy is not None:  # unset stays unset: the work imports torch (and so OpenMP) before robustxai
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", WORK.format(threads=threads)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--load", type=int, default=2, help="busy processes running meanwhile")
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        times: dict[str, list[float]] = {"PASSIVE": [], "ACTIVE": [], "unset": []}
        for _ in range(args.rounds):
            for policy in times:
                times[policy].append(run(None if policy == "unset" else policy, args.threads))
    finally:
        for burner in burners:
            burner.kill()
    print(f"{args.threads} thread(s), {args.load} busy process(es), {args.rounds} rounds; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| OMP_WAIT_POLICY | median s | min–max s |\n|---|---:|---:|")
    for policy, values in times.items():
        print(f"| {policy} | {statistics.median(values):.2f} | {min(values):.2f}–{max(values):.2f} |")


if __name__ == "__main__":
    main()
