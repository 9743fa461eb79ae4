"""Test accuracy and training time of a configured model under its own recipe and under overrides
(issue 23: the default recipe may change only where accuracy stays within 1 point).

Each variant trains the model as the workflow would (``robustxai.pipeline.models.train_model_job``:
same algorithm, attack and seed) on a finished run's prepared splits, then reports clean test
accuracy and wall seconds. Variants are given as JSON overrides of the model's ``training`` block.

Run: python benchmarks/recipe_accuracy.py results --model resnet_tiny-vanilla \
         --variant '{}' --variant '{"epochs": 6}' --variant '{"epochs": 6, "batch_size": 128, "lr": 0.1}'
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from robustxai.config import load_config, resolve_model  # noqa: E402
from robustxai.data.splits import load_split  # noqa: E402
from robustxai.models import load_checkpoint  # noqa: E402
from robustxai.models.inference import predict_logits  # noqa: E402
from robustxai.pipeline.models import train_model_job  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a finished run's results folder (its data/<dataset>/ splits)")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--model", required=True, help="a configured model (its recipe is the baseline)")
    parser.add_argument("--variant", action="append", default=None, help="JSON override of its training block")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    data = args.results / "data" / config["dataset"]["name"]
    test = load_split(data / "test.h5")
    test_images, test_labels = test.tensors()
    print("| variant | epochs | batch | lr | test accuracy | train seconds |\n|---|---|---|---|---|---|")
    for variant in args.variant or ["{}"]:
        entry = resolve_model(config, args.model)
        entry["training"] = {**entry["training"], **json.loads(variant)}
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            train_model_job(args.model, entry, str(data / "train.h5"), str(data / "val.h5"), f"{folder}/m.pt",
                            f"{folder}/h.csv", device=torch.device("cpu"))
            seconds = time.perf_counter() - start
            model, _ = load_checkpoint(f"{folder}/m.pt")
        accuracy = (predict_logits(model, test_images).argmax(1) == test_labels).float().mean().item()
        t = entry["training"]
        print(f"| {variant} | {t['epochs']} | {t['batch_size']} | {t['lr']} | {accuracy:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
