"""Mean of each metric per (model, method) from the per-image Parquet tables of a study, as a wide
table (rows: model, method; columns: metric means and the share of degenerate maps).
Usage: python benchmarks/metric_summary.py results/metrics/builtin
"""
import sys
from pathlib import Path

import pandas as pd


def main(root: str) -> None:
    rows = {}
    for path in sorted(Path(root).glob("*/*/*.parquet")):
        model, method, metric = path.parent.parent.name, path.parent.name, path.stem
        table = pd.read_parquet(path)
        row = rows.setdefault((model, method), {})
        row[metric] = table[metric].mean()
        row["degenerate"] = table["degenerate"].mean()
    summary = pd.DataFrame.from_dict(rows, orient="index").rename_axis(["model", "method"])
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main(sys.argv[1])
