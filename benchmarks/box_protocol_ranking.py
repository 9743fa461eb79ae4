"""Box IoU and energy in box under both map protocols, recomputed from a finished study's shards: the
method ranking with raw maps (``rescale: none``, the protocol before issue 17) beside the ranking with
each map min-max rescaled first (``rescale: minmax``, the reference codes' and the default).

Every (model, method) with shards under <results>/attributions/<dataset>/<split>/ is scored against
the boxes of <results>/data/<dataset>/<split>.h5. A method's value is its mean over the images with a
box, averaged over the models it was attributed for (``models`` counts them); rank 1 is the best
(higher is better for both metrics).

Usage: python benchmarks/box_protocol_ranking.py results [--dataset builtin] [--split test] [--images N]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from robustxai.metrics import MetricBatch, make_metric
from robustxai.pipeline.metrics import read_shards

METRICS = ("box_iou", "energy_in_box")
RESCALES = ("none", "minmax")


def pair_shards(root: Path) -> dict[tuple[str, str], list[Path]]:
    """(model, method) -> its shard files in shard order, from <root>/<model>/<method>/shard-<k>.h5."""
    pairs = defaultdict(list)
    for path in root.glob("*/*/shard-*.h5"):
        pairs[(path.parent.parent.name, path.parent.name)].append(path)
    return {pair: sorted(paths, key=lambda p: int(p.stem.removeprefix("shard-")))
            for pair, paths in sorted(pairs.items())}


def pair_means(paths: list[Path], boxes: np.ndarray, images: int | None, batch: int = 256) -> dict[str, float]:
    """Mean of each metric column "<metric> <rescale>" over the images with a box of one pair's shards."""
    data = read_shards([str(p) for p in paths], images)
    maps, targets = torch.from_numpy(data["maps"].astype(np.float32)), torch.from_numpy(data["target"])
    pair_boxes = torch.from_numpy(boxes[data["index"]].astype(np.int64))
    metrics = {f"{name} {rescale}": make_metric(name, rescale=rescale) for name in METRICS for rescale in RESCALES}
    values = defaultdict(list)
    for start in range(0, len(maps), batch):
        part = slice(start, start + batch)
        scored = MetricBatch(torch.empty(0), maps[part], targets[part], pair_boxes[part])
        for column, metric in metrics.items():
            values[column].append(metric(None, scored)[column.split()[0]])
    return {column: float(np.nanmean(torch.cat(parts).numpy())) for column, parts in values.items()}


def ranking(results: Path, dataset: str | None, split: str, images: int | None) -> pd.DataFrame:
    """Per method: each "<metric> <rescale>" mean over models, its rank, and the number of models."""
    attributions = results / "attributions"
    if dataset is None:
        datasets = sorted(p.name for p in attributions.iterdir() if p.is_dir())
        if len(datasets) != 1:
            raise SystemExit(f"{attributions} holds datasets {datasets}: name one with --dataset")
        dataset = datasets[0]
    with h5py.File(results / "data" / dataset / f"{split}.h5", "r") as f:
        boxes = f["boxes"][()]
    rows = [{"model": model, "method": method, **pair_means(paths, boxes, images)}
            for (model, method), paths in pair_shards(attributions / dataset / split).items()]
    if not rows:
        raise SystemExit(f"no shards under {attributions / dataset / split}")
    per_pair = pd.DataFrame(rows)
    scores = per_pair.columns[2:]
    table = per_pair.groupby("method").agg(**{c: (c, "mean") for c in scores}, models=("model", "nunique"))
    for column in scores:
        ranks = table[column].rank(ascending=False, method="min").astype(int)
        table.insert(table.columns.get_loc(column) + 1, f"rank {column}", ranks)
    return table.sort_values("rank energy_in_box minmax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the study's results directory")
    parser.add_argument("--dataset", help="default: the only dataset attributed")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, help="the first N images of each pair (default: all)")
    args = parser.parse_args()
    table = ranking(args.results, args.dataset, args.split, args.images)
    columns = [f"{name} {rescale}" for name in METRICS for rescale in RESCALES]
    shown = pd.DataFrame({c: [f"{v:.3f} ({r})" for v, r in zip(table[c], table[f"rank {c}"])] for c in columns},
                         index=table.index).assign(models=table["models"])
    print("mean (rank) per method, averaged over models; none = raw maps, minmax = each map min-max rescaled")
    print(shown.to_string())
    for name in METRICS:
        moved = table.index[table[f"rank {name} none"] != table[f"rank {name} minmax"]].tolist()
        print(f"{name}: rank changes for {moved if moved else 'no method'}")


if __name__ == "__main__":
    main()
