"""Check the second study's bars (issue 12) on a finished run and print the numbers behind them.

Bars: every explainer model's clean accuracy within 2 points of the vanilla model of its architecture;
its `explainer` maps put more mass in the box than `random` maps (energy in box); at batch 1 the
explainer is the cheapest method that runs the model on its explainer model, and at least 50x cheaper
than occlusion evaluated one window per pass (the paper's protocol: captum's default; our batched
occlusion is also printed); under last-block randomisation the explainer's maps keep less similarity (SSIM and
Spearman of |maps|) than the gradient's. Prints robust vs standard alignment vs the vanilla twin's
gradient side by side (energy in box, insertion, deletion), whatever they show.
Usage: python benchmarks/check_explainer_study.py [results folder, default results] [sanity metric name]
"""
import sys
from pathlib import Path

import pandas as pd

SCORES = ("energy_in_box", "insertion", "deletion")


def main(results: str = "results", sanity_metric: str = "sanity_last_block") -> int:
    root = Path(results)
    models = pd.read_csv(root / "tables" / "models.csv").set_index("model")
    table = pd.concat([pd.read_csv(root / "tables" / name)  # the first study's rows and the second's
                       for name in ("explainability.csv", "explainer_explainability.csv")]).set_index(["model", "method"])
    latency = pd.read_csv(root / "tables" / "latency.csv")
    long = pd.read_parquet(root / "tables" / "per_image.parquet")
    failures = []
    explainers = models[models["algorithm"] == "explainer"]
    vanilla = models[models["algorithm"] == "vanilla"].reset_index().groupby("arch")["model"].first()
    rows = []
    for name, row in explainers.iterrows():
        twin = vanilla[row["arch"]]
        gap = row["clean_accuracy"] - models.loc[twin, "clean_accuracy"]
        print(f"{name}: clean accuracy {row['clean_accuracy']:.3f} vs {twin} {models.loc[twin, 'clean_accuracy']:.3f} "
              f"({100 * gap:+.1f} points)")
        if abs(gap) > 0.02:
            failures.append(f"{name}: clean accuracy {100 * gap:+.1f} points from {twin}")
        for model, method in ((name, "explainer"), (name, "random"), (twin, "gradient")):
            if (model, method) in table.index:
                rows.append({"model": model, "method": method,
                             **{s: table.loc[(model, method), s] for s in SCORES if s in table.columns}})
        if (name, "random") in table.index and (name, "explainer") in table.index:
            if not table.loc[(name, "explainer"), "energy_in_box"] > table.loc[(name, "random"), "energy_in_box"]:
                failures.append(f"{name}: explainer energy in box not above random")
    print("\n" + pd.DataFrame(rows).drop_duplicates().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    for model, part in latency.groupby("model", sort=False):
        part = part.set_index("method")
        if "explainer" not in part.index:
            continue
        costly = part[part["family"] != "baseline"]
        cheapest = costly["ms_batch1"].idxmin()
        print(f"{model}: cheapest at batch 1: {cheapest} ({costly['ms_batch1'].min():.2f} ms, "
              f"{costly.loc[cheapest, 'ratio_batch1']:.2f} forward passes)")
        if cheapest != "explainer":
            failures.append(f"{model}: {cheapest} is cheaper than the explainer at batch 1")
        for method in (m for m in part.index if m.startswith("occlusion")):
            ratio = part.loc[method, "ms_batch1"] / part.loc["explainer", "ms_batch1"]
            protocol = "one window per pass, the paper's protocol" if part.loc[method, "batch_size"] == 1 else \
                f"windows batched {part.loc[method, 'batch_size']} per pass"
            print(f"{model}: {method} ({protocol}) / explainer at batch 1 = {ratio:.0f}x")
            if ratio < 50 and part.loc[method, "batch_size"] == 1:
                failures.append(f"{model}: {method} only {ratio:.0f}x the explainer's latency")
    sanity = long[long["metric"] == sanity_metric]
    if len(sanity):
        sanity = sanity.assign(similarity=sanity["column"].str.split("@").str[0])
        means = sanity.groupby(["model", "method", "similarity"])["value"].mean().unstack("similarity")
        print("\n" + means.to_string(float_format=lambda v: f"{v:.3f}"))
        for name in explainers.index:
            for similarity in ("ssim", "spearman_abs"):
                ours, gradient = means.loc[(name, "explainer"), similarity], None
                if (name, "gradient") in means.index:
                    gradient = means.loc[(name, "gradient"), similarity]
                elif (vanilla[explainers.loc[name, "arch"]], "gradient") in means.index:
                    gradient = means.loc[(vanilla[explainers.loc[name, "arch"]], "gradient"), similarity]
                if gradient is not None and not ours < gradient:
                    failures.append(f"{name}: explainer {similarity} {ours:.3f} not below gradient's {gradient:.3f}")
    print("\n" + ("\n".join(failures) if failures else "all second-study bars met"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
