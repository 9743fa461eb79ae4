"""robustxai against its peers: speed and agreement of every method and metric a peer implements, on
the same model, images, targets and settings.

Peers (the ``bench`` extra; ``benchmarks/_peers_common.py`` sets them up to compute our values):
captum 0.9.0 with its default batching and with its batching option set so that a pass holds as
many model inputs as ours (``internal_batch_size``, ``nt_samples_batch_size``,
``perturbations_per_eval``); pytorch-grad-cam 1.5.7 (Grad-CAM, Grad-CAM++); Quantus 0.6.0
(PixelFlipping as insertion / deletion curves, RelevanceMassAccuracy as energy in box, PointingGame).
RISE, meaningful perturbation and box IoU have no peer here. Two models with random weights in eval
mode: the tiny CIFAR ResNet at 32 px and timm's ResNet-18 at 224 px (smaller settings, and on a CPU
fewer images per call, so that a full run stays under 10 minutes on 2 cores).

Timing: every implementation runs once as a warm-up, then ``--rounds`` rounds in turn (ours, peer,
peer's best batching, ours, ...); the ratio peer / ours is taken within each round and reported as
median [min-max], so load from other processes hits both sides of a ratio alike. Ours runs with a
fixed batch size (``--batch-size``; default: the library's fixed default for the pass kind and
device, what a job uses when tuning is off or does not pay) and as a job builds it, with
``batch_size="auto"``: its first call (which tunes, if the job is big enough to) is reported, and its
later calls are timed in the rounds unless it settled on the fixed batch size. The model stays in
NCHW for every implementation (jobs may switch it to channels-last).

Agreement (from the warm-up outputs): maps, the smallest per-image Pearson r (pytorch-grad-cam
rescales each map, which r ignores); metrics, the largest absolute difference of per-image values.
SmoothGrad, GradientSHAP and LIME draw different random samples than the peer: "stochastic", with r
for information only. A speed ratio means something only where the values agree.

On a CPU shared with other work, give ``--threads 1``: with two threads on a busy 2-core machine
every parallel region waits for a descheduled thread, and a 1.4 ms Grad-CAM call took 200 ms
(measured 2026-12-04 at load 3.5), so both sides of a ratio turn into noise.

Run: python benchmarks/peers.py [--quick] [--models tiny32 resnet18_224] [--rows gradient lime]
     [--device cuda] [--threads 2] [--json PATH] [--markdown PATH]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers_common import captum_batching, captum_call, grad_cam_call, quantus_call  # noqa: E402

from robustxai.attribution import make_method, method_class  # noqa: E402
from robustxai.attribution.cam import find_feature_layer  # noqa: E402
from robustxai.metrics import METRICS, MetricBatch, make_metric, metric_class  # noqa: E402
from robustxai.models import build_classifier  # noqa: E402
from robustxai.tuning import default_batch_size  # noqa: E402

#: name -> (timm architecture, image size)
MODELS = {"tiny32": ("cifar_resnet_tiny", 32), "resnet18_224": ("resnet18", 224)}
#: (method or metric, peer), in table order
ROWS = [("gradient", "captum"), ("input_x_gradient", "captum"), ("deeplift", "captum"),
        ("guided_backprop", "captum"), ("integrated_gradients", "captum"), ("smoothgrad", "captum"),
        ("gradient_shap", "captum"), ("gradcam", "captum"), ("gradcam", "grad-cam"),
        ("gradcam_plus_plus", "grad-cam"), ("occlusion", "captum"), ("lime", "captum"),
        ("insertion", "quantus"), ("deletion", "quantus"), ("energy_in_box", "quantus"),
        ("pointing_game", "quantus")]
STOCHASTIC = {"smoothgrad", "gradient_shap", "lime"}
#: our settings per model (the peers get the same); unnamed settings are the library's defaults
SETTINGS = {
    "tiny32": {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 8},
               "gradient_shap": {"samples": 8}, "occlusion": {"window": 8, "stride": 4},
               "lime": {"samples": 200}, "insertion": {"steps": 64}, "deletion": {"steps": 64},
               "pointing_game": {"tolerance": 0.0}},
    # 2 CPU cores: 25-250 ms per forward and 50-500 ms per gradient pass of one 224 px image, idle to
    # loaded by other work, so few passes per image
    "resnet18_224": {"integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4},
                     "gradient_shap": {"samples": 4}, "occlusion": {"window": 112, "stride": 56},
                     "lime": {"samples": 32}, "insertion": {"steps": 8}, "deletion": {"steps": 8},
                     "pointing_game": {"tolerance": 0.0}},
    "resnet18_224@cuda": {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 8},
                          "gradient_shap": {"samples": 8}, "occlusion": {"window": 32, "stride": 16},
                          "lime": {"samples": 200}, "insertion": {"steps": 224}, "deletion": {"steps": 224},
                          "pointing_game": {"tolerance": 0.0}},
}
#: images per call, per model, on a CPU (on CUDA: 1 and 32 for both)
BATCHES = {"tiny32": (1, 32), "resnet18_224": (1, 4)}


@dataclass
class Row:
    name: str
    peer: str
    model: str
    images: int
    settings: dict
    batch_size: int
    ours_ms: float = float("nan")
    auto_first_ms: float = float("nan")
    auto_ms: float | None = None  # None: "auto" settled on the fixed batch size
    auto_batch_size: int | None = None
    peer_ms: dict = field(default_factory=dict)  # variant -> ms per image (median)
    ratios: dict = field(default_factory=dict)  # variant -> (median, min, max) of peer / ours per round
    agreement: str = ""


def synchronised(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call, device: torch.device):
    """(seconds, result) of one call."""
    synchronised(device)
    started = time.perf_counter()
    result = call()
    synchronised(device)
    return time.perf_counter() - started, result


def pearson_min(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The smallest per-image Pearson r of two (N, H, W) map batches."""
    a, b = ours.detach().flatten(1).double().cpu(), theirs.detach().flatten(1).double().cpu()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)).min())


def agreement(name: str, ours: torch.Tensor, theirs: list[torch.Tensor]) -> str:
    if name in METRICS:
        diff = max(float((ours.float().cpu() - t.float().cpu()).abs().nan_to_num(0.0).max()) for t in theirs)
        return f"max abs diff {diff:.1e}"
    r = min(pearson_min(ours, t) for t in theirs)
    return f"stochastic (r {r:.2f})" if name in STOCHASTIC else f"r {r:.5f}"


def ours_call(name: str, model, images, targets, settings: dict, batch_size, batch: MetricBatch | None):
    """(call, object) of our method or metric with ``batch_size`` (an integer or "auto"), or None where
    it has no batch size and ``batch_size`` is "auto"."""
    if name in METRICS:
        if "batch_size" not in inspect.signature(metric_class(name).__init__).parameters:
            if batch_size == "auto":
                return None
            metric = make_metric(name, **settings)
        else:
            metric = make_metric(name, batch_size=batch_size, **settings)
        return (lambda: metric(model, batch)[name]), metric
    method = make_method(name, batch_size=batch_size, **settings)
    return (lambda: method.explain(model, images, targets).detach()), method


def peer_calls(name: str, peer: str, model, images, targets, settings: dict, batch_size: int,
               batch: MetricBatch | None, layer: str) -> dict:
    """Variant label -> call of the peer: "default", and captum's best batching where it has one."""
    if peer == "quantus":
        return {"default": quantus_call(name, model, batch, settings)}
    if peer == "grad-cam":
        return {"default": grad_cam_call(name, model, images, targets, layer)}
    settings = {**settings, "layer": layer} if name == "gradcam" else settings
    calls = {"default": captum_call(name, model, images, targets, settings)}
    best = captum_batching(name, batch_size, len(images))
    if best:
        label = ", ".join(f"{k}={v}" for k, v in best.items())
        calls[label] = captum_call(name, model, images, targets, settings, best)
    return calls


def run_row(name: str, peer: str, model_name: str, model, images, targets, batch, layer: str,
            settings: dict, fixed: int | None, rounds: int, device: torch.device) -> Row:
    n = len(images)
    kind = "forward" if name in METRICS else method_class(name).pass_kind
    batch_size = fixed or default_batch_size(kind, device)
    row = Row(name, peer, model_name, n, settings, batch_size)
    ours, _ = ours_call(name, model, images, targets, settings, batch_size, batch)
    auto = ours_call(name, model, images, targets, settings, "auto", batch)
    peers = peer_calls(name, peer, model, images, targets, settings, batch_size, batch, layer)
    calls = {"ours": ours, **peers}
    first, outputs = {}, {}
    for label, call in calls.items():  # warm-up: ours first, so "auto" finds warm caches like a job
        first[label], outputs[label] = timed(call, device)
        if label == "ours" and auto is not None:
            row.auto_first_ms, _ = timed(auto[0], device)
            row.auto_first_ms *= 1000 / n
            row.auto_batch_size = getattr(auto[1], "batch_size", None)
            if row.auto_batch_size != batch_size:
                calls = {"ours": ours, "auto": auto[0], **peers}
    row.agreement = agreement(name, outputs["ours"], [outputs[label] for label in peers])
    times = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            times[label].append(timed(call, device)[0])
    per_image = {label: 1000 * statistics.median(t) / n for label, t in times.items()}
    row.ours_ms = per_image["ours"]
    row.auto_ms = per_image.get("auto")
    for label in peers:
        row.peer_ms[label] = per_image[label]
        ratios = [p / o for p, o in zip(times[label], times["ours"])]
        row.ratios[label] = (statistics.median(ratios), min(ratios), max(ratios))
    return row


def metric_batch(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> dict:
    """Per metric row, the MetricBatch it scores: uniform maps (no ties) for the curves, signed
    Gaussian maps for the localisation metrics, one random box per image."""
    n, _, h, w = images.shape
    x0 = torch.randint(0, w // 2, (n,), generator=generator)
    y0 = torch.randint(0, h // 2, (n,), generator=generator)
    x1 = x0 + torch.randint(w // 4, w // 2 + 1, (n,), generator=generator)
    y1 = y0 + torch.randint(h // 4, h // 2 + 1, (n,), generator=generator)
    boxes = torch.stack([x0, y0, x1, y1], 1).to(images.device)
    uniform = torch.rand(n, h, w, generator=generator).to(images.device)
    signed = torch.randn(n, h, w, generator=generator).to(images.device)
    curve = MetricBatch(images, uniform, targets, boxes)
    box = MetricBatch(images, signed, targets, boxes)
    return {"insertion": curve, "deletion": curve, "energy_in_box": box, "pointing_game": box}


def ratio_text(ratio) -> str:
    median, low, high = ratio
    return f"{median:.2f} [{low:.2f}–{high:.2f}]"


def markdown(rows: list[Row]) -> str:
    lines = ["| method / metric | peer | model | imgs/call | ours ms/img (batch) | ours auto ms/img: 1st call, "
             "later | peer default ms/img | peer/ours | peer best batching ms/img | peer/ours | agreement |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        default = "default"
        best = next((label for label in row.peer_ms if label != default), None)
        if row.auto_batch_size is None:
            auto = "–"
        elif row.auto_ms is None:
            auto = f"{row.auto_first_ms:.2f}, = fixed"
        else:
            auto = f"{row.auto_first_ms:.2f}, {row.auto_ms:.2f} ({row.auto_batch_size})"
        best_cells = (f"{row.peer_ms[best]:.2f} ({best})", ratio_text(row.ratios[best])) if best else ("–", "–")
        lines.append(f"| {row.name} | {row.peer} | {row.model} | {row.images} | {row.ours_ms:.2f} ({row.batch_size}) | "
                     f"{auto} | {row.peer_ms[default]:.2f} | {ratio_text(row.ratios[default])} | {best_cells[0]} | "
                     f"{best_cells[1]} | {row.agreement} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rows", nargs="+", default=None, help="methods / metrics to run (default: all)")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="images per call (default: 1 and 32; 1 and 4 for the 224 px model on a CPU)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="our fixed batch size (default: the library's fixed default per pass kind and device)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 1 and 4 images per call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    names = {name for name, _ in ROWS}
    if args.rows and set(args.rows) - names:
        parser.error(f"unknown rows {sorted(set(args.rows) - names)}; choose from {sorted(names)}")
    rows_wanted = [(name, peer) for name, peer in ROWS if not args.rows or name in args.rows]
    rounds = 1 if args.quick else args.rounds
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    header = (f"{time.strftime('%Y-%m-%d %H:%M')}; device {device}, {args.threads} thread(s) of "
              f"{os.cpu_count()} cores; torch {torch.__version__}, captum {version('captum')}, "
              f"grad-cam {version('grad-cam')}, quantus {version('quantus')}; {rounds} round(s); "
              f"load average at start {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(header, flush=True)
    rows: list[Row] = []
    for model_name in args.models:
        arch, size = MODELS[model_name]
        torch.manual_seed(args.seed)
        model = build_classifier(arch, 10).eval().to(device)
        settings = SETTINGS.get(f"{model_name}@{device.type}", SETTINGS[model_name])
        layer = find_feature_layer(model, (3, size, size))
        batches = args.batches or ((1, 4) if args.quick else (1, 32) if device.type == "cuda" else BATCHES[model_name])
        for images_per_call in batches:
            generator = torch.Generator().manual_seed(args.seed)
            images = torch.rand(images_per_call, 3, size, size, generator=generator).to(device)
            with torch.no_grad():
                targets = model(images).argmax(1)
            batches_of = metric_batch(images, targets, generator)
            for name, peer in rows_wanted:
                row_started = time.perf_counter()
                row = run_row(name, peer, model_name, model, images, targets, batches_of.get(name), layer,
                              settings.get(name, {}), args.batch_size, rounds, device)
                rows.append(row)
                print(f"  {model_name} x{images_per_call} {name} vs {peer}: ours {row.ours_ms:.2f} ms/img, "
                      + ", ".join(f"{k} {v:.2f} ms/img ({row.ratios[k][0]:.2f}x)" for k, v in row.peer_ms.items())
                      + f", {row.agreement} [{time.perf_counter() - row_started:.1f} s]", file=sys.stderr, flush=True)
    footer = (f"wall time {time.perf_counter() - started:.0f} s; load average at end "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    table = markdown(rows)
    print(table)
    print(footer, flush=True)
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{table}\n\n{footer}\n")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "footer": footer, "rows": [asdict(r) for r in rows]},
                                        indent=1))


if __name__ == "__main__":
    main()
