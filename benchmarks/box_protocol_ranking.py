"""Box IoU and energy in box under every map protocol (``rescale``, see robustxai.metrics.localisation),
recomputed from a finished study's shards, so one run gives the localisation table under each: auto
(the default: abs for methods declaring signed maps, minmax for the others), minmax (the reference
codes' min-max rescaling, the default of issue 17), abs (|map|), positive (the positive part) and none
(the raw protocol before issue 17, the same as positive).

Every (model, method) with shards under <results>/attributions/<dataset>/<split>/ is scored against
the boxes of <results>/data/<dataset>/<split>.h5. ``auto`` is resolved from the method each shard
records (``registered_method``, ``settings``), as the workflow does, and per map for shards that
record none (the ``auto`` column of the table says which). A method's value is its mean over the
images with a box, averaged over the models it was attributed for (``models`` counts them); rank 1 is
the best (higher is better for both metrics).

Only the pairs of one study are pooled (``--study``, default A: the (model, method) pairs that
tables/models.csv and tables/methods.csv put in study A; ``all`` pools every pair); ``--csv`` also
writes the table (e.g. <results>/tables/localisation_protocols.csv, which benchmarks/readme_results.py
puts in the README).

Usage: python benchmarks/box_protocol_ranking.py results [--dataset builtin] [--split test] [--images N]
       [--study A|B|all] [--csv PATH]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from robustxai.metrics import MetricBatch, make_metric, settings_for_method
from robustxai.metrics.localisation import RESCALES
from robustxai.pipeline.metrics import read_shards

METRICS = ("box_iou", "energy_in_box")


def pair_shards(root: Path) -> dict[tuple[str, str], list[Path]]:
    """(model, method) -> its shard files in shard order, from <root>/<model>/<method>/shard-<k>.h5."""
    pairs = defaultdict(list)
    for path in root.glob("*/*/shard-*.h5"):
        pairs[(path.parent.parent.name, path.parent.name)].append(path)
    return {pair: sorted(paths, key=lambda p: int(p.stem.removeprefix("shard-")))
            for pair, paths in sorted(pairs.items())}


def recorded_method(path: Path) -> tuple[str, dict] | None:
    """(registered method, its settings) that a shard records, or None for a shard without them."""
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    if "registered_method" not in attrs:
        return None
    return str(attrs["registered_method"]), json.loads(attrs.get("settings", "{}"))


def protocol_settings(name: str, rescale: str, method: tuple[str, dict] | None) -> dict:
    """Settings of metric ``name`` under ``rescale``, "auto" resolved for ``method`` when it is known."""
    return settings_for_method(name, {"rescale": rescale}, *method) if method else {"rescale": rescale}


def pair_means(paths: list[Path], boxes: np.ndarray, images: int | None, batch: int = 256) -> dict[str, float | str]:
    """Mean of each metric column "<metric> <rescale>" over the images with a box of one pair's shards,
    and ``auto``: what auto became (abs or minmax from the method the shards record, else "per map")."""
    data = read_shards([str(p) for p in paths], images)
    maps, targets = torch.from_numpy(data["maps"].astype(np.float32)), torch.from_numpy(data["target"])
    pair_boxes = torch.from_numpy(boxes[data["index"]].astype(np.int64))
    method = recorded_method(paths[0])
    metrics = {f"{name} {rescale}": make_metric(name, **protocol_settings(name, rescale, method))
               for name in METRICS for rescale in RESCALES}
    values = defaultdict(list)
    for start in range(0, len(maps), batch):
        part = slice(start, start + batch)
        scored = MetricBatch(torch.empty(0), maps[part], targets[part], pair_boxes[part])
        for column, metric in metrics.items():
            values[column].append(metric(None, scored)[column.split()[0]])
    auto = metrics[f"{METRICS[0]} auto"].rescale
    return {"auto": "per map" if auto == "auto" else auto,
            **{column: float(np.nanmean(torch.cat(parts).numpy())) for column, parts in values.items()}}


def study_pairs(results: Path, study: str) -> set[tuple[str, str]] | None:
    """The (model, method) pairs of ``study`` ("A" / "B") from the run's models.csv and methods.csv
    ``study`` columns (robustxai.studies; a pair is in A when both are), or None for "all"."""
    if study == "all":
        return None
    models = pd.read_csv(results / "tables" / "models.csv")
    methods = pd.read_csv(results / "tables" / "methods.csv")
    if "study" not in models or "study" not in methods:
        raise SystemExit(f"{results / 'tables'}: models.csv / methods.csv have no study column (a run before the "
                         "study split): pass --study all")
    in_a = lambda frame, key: set(frame.loc[frame["study"] == "A", key])  # noqa: E731
    a_models, a_methods = in_a(models, "model"), in_a(methods, "method")
    pairs = {(m, k) for m in models["model"] for k in methods["method"]}
    return {(m, k) for m, k in pairs if ((m in a_models and k in a_methods) == (study == "A"))}


def ranking(results: Path, dataset: str | None, split: str, images: int | None, study: str = "A") -> pd.DataFrame:
    """Per method: what auto became (``auto``; joined with "/" where the models differ), each
    "<metric> <rescale>" mean over the models of ``study`` (``study_pairs``), its rank, and the number of models."""
    attributions = results / "attributions"
    if dataset is None:
        datasets = sorted(p.name for p in attributions.iterdir() if p.is_dir())
        if len(datasets) != 1:
            raise SystemExit(f"{attributions} holds datasets {datasets}: name one with --dataset")
        dataset = datasets[0]
    with h5py.File(results / "data" / dataset / f"{split}.h5", "r") as f:
        boxes = f["boxes"][()]
    wanted = study_pairs(results, study)
    rows = [{"model": model, "method": method, **pair_means(paths, boxes, images)}
            for (model, method), paths in pair_shards(attributions / dataset / split).items()
            if wanted is None or (model, method) in wanted]
    if not rows:
        raise SystemExit(f"no shards under {attributions / dataset / split}")
    per_pair = pd.DataFrame(rows)
    scores = [f"{name} {rescale}" for name in METRICS for rescale in RESCALES]
    table = per_pair.groupby("method").agg(auto=("auto", lambda kinds: "/".join(sorted(set(kinds)))),
                                           **{c: (c, "mean") for c in scores}, models=("model", "nunique"))
    for column in scores:
        ranks = table[column].rank(ascending=False, method="min").astype(int)
        table.insert(table.columns.get_loc(column) + 1, f"rank {column}", ranks)
    return table.sort_values("rank energy_in_box auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the study's results directory")
    parser.add_argument("--dataset", help="default: the only dataset attributed")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, help="the first N images of each pair (default: all)")
    parser.add_argument("--study", default="A", choices=["A", "B", "all"], help="whose pairs to pool (default A)")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    table = ranking(args.results, args.dataset, args.split, args.images, args.study)
    if args.csv:  # one "mean (rank)" cell per metric and protocol, as printed
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        cells = pd.DataFrame({f"{c} (rank)": [f"{v:.3f} ({r})" for v, r in zip(table[c], table[f"rank {c}"])]
                              for c in (f"{name} {rescale}" for name in METRICS for rescale in RESCALES)},
                             index=table.index)
        cells.assign(auto_is=table["auto"], models=table["models"]).to_csv(args.csv)
    print("mean (rank) per method, averaged over models; auto = the default (abs for signed maps, minmax for "
          "non-negative ones; the auto column says which), minmax = each map min-max rescaled, abs = |map|, "
          "positive = the positive part, none = raw maps (the same as positive)")
    for name in METRICS:
        columns = [f"{name} {rescale}" for rescale in RESCALES]
        shown = pd.DataFrame({c.split()[1]: [f"{v:.3f} ({r})" for v, r in zip(table[c], table[f"rank {c}"])]
                              for c in columns}, index=table.index)
        shown = shown.assign(auto_is=table["auto"], models=table["models"])
        print(f"\n{name}\n{shown.to_string()}")
        for rescale in RESCALES[1:]:
            moved = table.index[table[f"rank {name} {rescale}"] != table[f"rank {name} auto"]].tolist()
            print(f"{name}: ranks under {rescale} differ from auto's for {moved if moved else 'no method'}")


if __name__ == "__main__":
    main()
