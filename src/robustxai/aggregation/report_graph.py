"""One node per rule in the rule graph of a Snakemake report.

Snakemake's report (``snakemake.report.rulegraph_spec``) draws one node per rule per level of the job
graph, so a rule whose jobs sit at several levels appears several times: in this workflow the robust
twins are trained, attributed and evaluated a level before the explainers that learn from them, and
ROAR's anchors run a level before the cells that wait for their mask-only controls. ``--rulegraph``
draws each rule once. ``tidy_report`` rewrites the graph that a finished report.html embeds (a Vega
spec in ``var rulegraph_spec = {...};``) to that: each rule at its first level, the links between
rules once each (a rule's links to itself dropped), the rest of the file untouched.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from robustxai.files import atomic_output

#: the line of a Snakemake report that holds the rule graph's Vega spec
SPEC_LINE = re.compile(r"^([ \t]*var rulegraph_spec = )(\{.*\});[ \t]*$", re.M)
#: vertical distance between nodes, as Snakemake lays them out
NODE_STEP = 50


def unique_rule_graph(nodes: list[dict], links: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(nodes, links, direct links) of a rule graph with one node per rule: ``nodes`` (dicts with ``rule``, in
    Snakemake's order) and ``links`` (dicts with ``source`` and ``target`` node indices, direct and indirect
    together) become each rule's first node, laid out as Snakemake does (x 10, y 50 per node), and the
    distinct links between different rules; a link joining consecutive nodes is "direct" (drawn straight),
    the rest are drawn as arcs, as in ``snakemake.report.rulegraph_spec.get_links``."""
    position, merged = {}, []
    for node in nodes:
        if node["rule"] not in position:
            position[node["rule"]] = len(merged)
            merged.append({"rule": node["rule"], "fx": 10, "fy": len(merged) * NODE_STEP})
    pairs = dict.fromkeys((position[nodes[link["source"]]["rule"]], position[nodes[link["target"]]["rule"]])
                          for link in links)
    both = [{"target": target, "source": source, "sourcerule": merged[source]["rule"],
             "targetrule": merged[target]["rule"], "value": 1} for source, target in pairs if source != target]
    direct = [link for link in both if link["target"] - link["source"] == 1]
    return merged, [link for link in both if link["target"] - link["source"] != 1], direct


def tidy_report(path: str | Path) -> tuple[int, int]:
    """Rewrite the rule graph embedded in the Snakemake report ``path`` to one node per rule
    (``unique_rule_graph``), in place; returns (nodes before, nodes after). Raises ValueError naming the
    file when it holds no rule graph spec (not a Snakemake report, or a report format this does not know)."""
    path = Path(path)
    html = path.read_text(encoding="utf-8")
    match = SPEC_LINE.search(html)
    if match is None:
        raise ValueError(f"{path}: no 'var rulegraph_spec = {{...}};' line; is it a report made by snakemake --report?")
    spec = json.loads(match.group(2))
    data = {entry["name"]: entry for entry in spec["data"]}
    nodes = data["node-data"]["values"]
    merged, links, direct = unique_rule_graph(nodes, data["link-data"]["values"] + data["link-data-direct"]["values"])
    data["node-data"]["values"], data["link-data"]["values"], data["link-data-direct"]["values"] = merged, links, direct
    line = match.group(1) + json.dumps(spec) + ";"
    with atomic_output(path) as tmp:
        tmp.write_text(html[:match.start()] + line + html[match.end():], encoding="utf-8")
    return len(nodes), len(merged)
