"""Regenerate docs/results.md's results section from a finished run's results folder.

Replaces the text between the lines ``<!-- results:begin -->`` and ``<!-- results:end -->`` of the
README with: the run (date and wall time from the Snakemake benchmark files under
<results>/benchmarks/: the wall time spans the first job's start, its file's time less its seconds, to
the last job's end; the machine from ``--machine``, else the host that ROAR's provenance records), the
verdict tables of findings.md's studies with the models and methods each used, the ROAR table
(tables/roar.csv: mean accuracy over repeats with its interval and, with several repeats, its standard
deviation), the mask-only controls (tables/roar_leakage.csv) and the localisation table under each map
protocol (tables/localisation_protocols.csv). A table the run lacks is written "not run". Prints which
lines changed; ``--check`` writes nothing and exits 1 when the README differs from what the run gives.

Usage: python benchmarks/readme_results.py [results] [--readme docs/results.md] [--machine TEXT] [--check]
"""
from __future__ import annotations

import argparse
import datetime
import difflib
import json
import re
import sys
from pathlib import Path

import pandas as pd

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NOT_RUN = "not run"
#: tables/roar.csv columns shown, when present, after the accuracy and its spread
ROAR_EXTRA = ("object_removed_share", "leakage_accuracy", "confounded", "model_test_accuracy", "anchor_gap",
              "late_train_gain", "converged")
#: tables/roar_leakage.csv columns shown, when present
LEAKAGE_COLUMNS = ("model", "method", "control", "fraction", "accuracy", "accuracy_low", "chance", "leaked",
                   "stopped_at_leak", "as_expected", "converged")


def cell(value) -> str:
    """A table cell: floats with three decimals, missing values as "–"."""
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table of ``frame``'s columns and rows."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def run_facts(results: Path, machine: str | None = None) -> str:
    """One line: the run's date (UTC, of its last job), machine, wall time and jobs, from the benchmark
    TSV files (Snakemake's ``s`` column: each job's seconds)."""
    ends, starts, seconds = [], [], 0.0
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        if path.name.endswith(".gpu.tsv"):
            continue
        job = pd.read_csv(path, sep="\t")["s"].sum()
        end = path.stat().st_mtime
        ends.append(end)
        starts.append(end - job)
        seconds += job
    if machine is None:
        machine = next((json.loads(p.read_text()).get("host") for p in sorted((results / "roar").rglob("*.json"))),
                       None) or "not recorded"
    if not ends:
        return f"Run: date and wall time not recorded (no benchmark files); machine: {machine}."
    date = datetime.datetime.fromtimestamp(max(ends), datetime.timezone.utc).date().isoformat()
    wall = (max(ends) - min(starts)) / 60
    return (f"Run of {date} on {machine}: {wall:.1f} min wall time from the first job's start to the last "
            f"job's end; {len(ends)} benchmarked jobs, {seconds / 60:.1f} job-minutes.")


def findings_summary(results: Path) -> str:
    """Per study (each ``# `` section of findings.md): its heading, the line naming its models and
    methods, and its verdict table."""
    path = results / "findings.md"
    if not path.exists():
        return f"Findings: {NOT_RUN}."
    parts = []
    for section in re.split(r"^# ", path.read_text(), flags=re.M)[1:]:
        title, *body = section.splitlines()
        body = body[:next((i for i, line in enumerate(body) if line.startswith("## ")), len(body))]
        used = [line for line in body if line.startswith("Models:")]
        parts.append("\n".join([f"**{title}**", "", *used, *[""] * bool(used),
                                *[line for line in body if line.startswith("|")]]))
    return "\n\n".join(parts)


def roar_summary(results: Path) -> str:
    """tables/roar.csv: accuracy (lower = more faithful) with its interval, the standard deviation over
    repeats where there are several, and the mask-only control's columns."""
    path = results / "tables" / "roar.csv"
    if not path.exists():
        return f"ROAR: {NOT_RUN}."
    table = pd.read_csv(path)
    shown = table[["model", "method", "fraction", "repeats"]].assign(fraction=table["fraction"].map("{:g}".format))
    shown["accuracy [95 % interval]"] = [f"{cell(r.accuracy)} [{cell(r.ci_low)}, {cell(r.ci_high)}]"
                                         if pd.notna(r.accuracy) else "not retrained: mask leaks"
                                         for r in table.itertuples()]
    if "accuracy_sd" in table:
        shown["sd over repeats"] = table["accuracy_sd"]
    for column in ROAR_EXTRA:
        if column in table:
            shown[column] = table[column]
    kinds = ", ".join(sorted(table["ci_kind"].dropna().unique())) if "ci_kind" in table else ""
    return f"ROAR (`tables/roar.csv`; intervals: {kinds or 'as the table says'}):\n\n{markdown_table(shown)}"


def optional_table(results: Path, name: str, title: str, columns: tuple[str, ...] | None = None) -> str:
    """A results table as markdown under ``title`` (only ``columns`` present, when given), or "not run"."""
    path = results / "tables" / name
    if not path.exists():
        return f"{title}: {NOT_RUN}."
    table = pd.read_csv(path)
    if columns is not None:
        table = table[[c for c in columns if c in table.columns]]
    return f"{title} (`tables/{name}`):\n\n{markdown_table(table)}"


def results_section(results: Path, machine: str | None = None) -> str:
    """The README's results section for one results folder (without the markers)."""
    parts = ["### What the default study gives", run_facts(results, machine), findings_summary(results),
             roar_summary(results),
             optional_table(results, "roar_leakage.csv", "Mask-only controls of ROAR", LEAKAGE_COLUMNS),
             optional_table(results, "localisation_protocols.csv", "Localisation under each map protocol"),
             "Generated by `python benchmarks/readme_results.py results`; every number is in `results/`."]
    return "\n\n".join(parts)


def replace_section(readme: str, section: str) -> str:
    """``readme`` with the text between its BEGIN and END lines replaced by ``section``."""
    start, stop = readme.find(BEGIN + "\n"), readme.find("\n" + END)
    if start < 0 or stop < start:
        raise ValueError(f"the README has no '{BEGIN}' line followed by an '{END}' line")
    return f"{readme[:start + len(BEGIN) + 1]}{section}{readme[stop:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("results"))
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")
    parser.add_argument("--machine", help="what ran the study, e.g. '2 CPU cores' (default: ROAR's recorded host)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs; write nothing")
    args = parser.parse_args(argv)
    old = args.readme.read_text()
    new = replace_section(old, results_section(args.results, args.machine))
    diff = [l for l in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    added, removed = sum(l.startswith("+") for l in diff), sum(l.startswith("-") for l in diff)
    print(f"{args.readme}: {added} lines added, {removed} removed in the results section" if diff
          else f"{args.readme}: results section up to date")
    if args.check:
        return 1 if diff else 0
    if diff:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
