"""benchmarks/readme_results.py on a tiny fake results folder: the text between the README's markers is
regenerated from the run, the rest is left as it was, and --check says whether they differ."""
import datetime
import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = """# The paper's findings, checked against this run

Dataset `builtin`; at most 8 images of split `test` per (model, method); metrics: insertion.

Models: `m-vanilla`, `m-pgd`; methods: `gradcam`, `rise`.

Verdicts: ...

| # | finding | verdict |
|---|---|---|
| 1 | Robust CNNs are more explainable. | **reproduced** |

## 1. Robust CNNs are more explainable.

**reproduced**

- evidence that stays in findings.md

# The second study's findings (learned explainer, Zeng et al. 2021)

Models: `m-explainer`; methods: `explainer`.

| # | finding | verdict |
|---|---|---|
| a | The learned explainer has the lowest ROAR accuracy. | **inconclusive** |

## (a) The learned explainer has the lowest ROAR accuracy.
"""
README = "# Project\n\nIntro text.\n\n<!-- results:begin -->\nold results\n<!-- results:end -->\n\n## After\n\nMore.\n"


def load_script():
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "benchmarks" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_results(root: Path) -> Path:
    """findings.md, tables/roar.csv (two repeats; one cell not retrained), a ROAR cell's provenance and two benchmark files:
    jobs of 100 s ending at 12:01:40 and of 60 s ending at 12:06:40 UTC on 2026-12-01."""
    (root / "tables").mkdir(parents=True)
    (root / "findings.md").write_text(FINDINGS)
    nan = float("nan")  # the cell at 0.8 was not retrained: its mask-only control leaks
    pd.DataFrame({"model": ["m-explainer"] * 3, "method": ["gradcam"] * 3, "fraction": [0.0, 0.5, 0.8],
                  "repeats": [2, 2, 2], "accuracy": [0.9, 0.4, nan], "accuracy_sd": [0.01, 0.02, nan],
                  "ci_low": [0.88, 0.35, nan], "ci_high": [0.92, 0.45, nan], "ci_kind": ["t over repeats"] * 2 + [""],
                  "confounded": [False, True, True]}).to_csv(root / "tables" / "roar.csv", index=False)
    cell = root / "roar" / "builtin" / "m-explainer" / "gradcam" / "0.5-0.json"
    cell.parent.mkdir(parents=True)
    cell.write_text(json.dumps({"accuracy": 0.4, "host": "box-1"}))
    start = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
    for name, seconds, end in (("train/m-vanilla", 100, start + 100), ("metrics/m-vanilla", 60, start + 400)):
        path = root / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:01:00\t100\n")
        os.utime(path, (end, end))
    return root


def test_readme_results_replace_only_the_marked_section(tmp_path):
    script = load_script()
    results, readme = fake_results(tmp_path / "results"), tmp_path / "README.md"
    readme.write_text(README)
    arguments = [str(results), "--readme", str(readme)]
    assert script.main([*arguments, "--check"]) == 1 and readme.read_text() == README  # differs, nothing written
    assert script.main(arguments) == 0
    text = readme.read_text()
    before, rest = text.split("<!-- results:begin -->\n")
    section, after = rest.split("<!-- results:end -->")
    assert before == "# Project\n\nIntro text.\n\n" and after == "\n\n## After\n\nMore.\n"
    assert "old results" not in text
    assert ("Run of 2026-12-01 on box-1: 6.7 min wall time from the first job's start to the last job's end; "
            "2 benchmarked jobs, 2.7 job-minutes.") in section
    assert "**The paper's findings, checked against this run**\n\nModels: `m-vanilla`, `m-pgd`; methods: " \
           "`gradcam`, `rise`.\n\n| # | finding | verdict |" in section
    assert "| 1 | Robust CNNs are more explainable. | **reproduced** |" in section
    assert "| a | The learned explainer has the lowest ROAR accuracy. | **inconclusive** |" in section
    assert "evidence that stays in findings.md" not in section
    assert "intervals: t over repeats" in section
    assert "| m-explainer | gradcam | 0.5 | 2 | 0.400 [0.350, 0.450] | 0.020 | True |" in section
    assert "| m-explainer | gradcam | 0.8 | 2 | not retrained: mask leaks | – | True |" in section
    assert "Mask-only controls of ROAR: not run." in section
    assert "Localisation under each map protocol: not run." in section
    assert script.main([*arguments, "--check"]) == 0  # now up to date
    assert script.main([*arguments, "--machine", "2 CPU cores"]) == 0
    assert "Run of 2026-12-01 on 2 CPU cores:" in readme.read_text()


def test_readme_results_of_an_empty_run_and_a_readme_without_markers(tmp_path):
    script = load_script()
    section = script.results_section(tmp_path)
    assert "no benchmark files" in section and "Findings: not run." in section and "ROAR: not run." in section
    with pytest.raises(ValueError, match="results:begin"):
        script.replace_section("# README without markers\n", section)
