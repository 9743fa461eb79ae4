"""Check the default study's bars on a models table and print the numbers behind them.

Bars: every vanilla model >= 90 % clean accuracy; every adversarial model's robust accuracy (under the
attack named, Linf 8/255 by default; the default study's L2-trained ResNet is held to it too) >= its
vanilla twin's + 20 points; OOD accuracy below clean accuracy for every model.
Usage: python benchmarks/check_default_study.py results/tables/models.csv [attack name, default linf_8]
"""
import sys

import pandas as pd


def main(path: str, attack: str = "linf_8") -> int:
    table = pd.read_csv(path)
    robust = f"robust_accuracy_{attack}"
    columns = ["model", "clean_accuracy", "ood_accuracy", robust, "confidence_mean", "ece", "params", "macs"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    failures = []
    vanilla = table[table.algorithm == "vanilla"].set_index("arch")
    for _, row in table.iterrows():
        if row.algorithm == "vanilla" and row.clean_accuracy < 0.90:
            failures.append(f"{row.model}: clean accuracy {row.clean_accuracy:.3f} < 0.90")
        if row.algorithm == "adversarial":
            gap = row[robust] - vanilla.loc[row.arch, robust]
            print(f"{row.model}: robust gain over vanilla twin = {100 * gap:.1f} points")
            if gap < 0.20:
                failures.append(f"{row.model}: robust gain {100 * gap:.1f} < 20 points")
        if not row.ood_accuracy < row.clean_accuracy:
            failures.append(f"{row.model}: OOD accuracy {row.ood_accuracy:.3f} >= clean {row.clean_accuracy:.3f}")
    print("\n".join(failures) if failures else "all default-study bars met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
