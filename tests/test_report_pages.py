"""The report's HTML pages: findings.md rendered (headings, verdict table, evidence lists) and tables as HTML,
checked on the parsed DOM."""
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from robustxai.aggregation.findings import Finding, findings_markdown
from robustxai.aggregation.report_pages import frame_html, html_page, markdown_html, tables_page


class Dom(HTMLParser):
    """Tags in document order with their attributes, and the text inside each kind of tag."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.text, self.open = [], {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.open.append(tag)

    def handle_endtag(self, tag):
        while self.open and self.open.pop() != tag:
            pass

    def handle_data(self, data):
        if self.open:
            self.text.setdefault(self.open[-1], []).append(data)


def test_findings_render_as_headings_a_verdict_table_and_evidence_lists():
    findings = [Finding("1", "Robust models explain <better>.", "reproduced", ["`resnet` 0.91 vs 0.85", "n = 6"]),
                Finding("2", "Accuracy predicts it.", "not reproduced", ["r = 0.1 [-0.5, 0.6]"])]
    dom = Dom(html_page("Findings", markdown_html(findings_markdown(findings, "Run of today on 2 cores."))))
    tags = [tag for tag, _ in dom.tags]
    assert tags.count("h1") == 1 and tags.count("h2") == 2 and tags.count("table") == 1
    assert tags.count("tr") == 3 and tags.count("li") == 3  # header + 2 verdict rows; 3 evidence items
    assert "Robust models explain <better>." in dom.text["td"]  # escaped on the way in, text on the way out
    verdicts = [attrs.get("class") for tag, attrs in dom.tags if tag == "strong"]
    assert verdicts.count("yes") == 2 and verdicts.count("no") == 2  # in the table and under each heading
    assert "resnet" in dom.text["code"] and "Run of today on 2 cores." in " ".join(dom.text["p"])


def test_tables_show_rounded_numbers_missing_values_and_escaped_text():
    frame = pd.DataFrame({"model": ["a<b", "c"], "accuracy": [0.91234, np.nan], "images": [1000, 500],
                          "leaked": [True, False]})
    dom = Dom(frame_html(frame))
    cells = dom.text["td"]
    assert cells == ["a<b", "0.912", "1000", "True", "c", "–", "500", "False"]
    numbers = [attrs.get("class") for tag, attrs in dom.tags if tag == "td"]
    assert numbers == [None, "number", "number", None, None, "number", "number", None]


def test_the_tables_page_links_every_table_and_keeps_its_caption():
    page = tables_page({"Models": (pd.DataFrame({"model": ["a"]}), "Clean and **OOD** accuracy."),
                        "ROAR (remove and retrain)": (pd.DataFrame({"x": [1.0]}), "Lower = more faithful.")})
    dom = Dom(page)
    links = [attrs["href"] for tag, attrs in dom.tags if tag == "a"]
    ids = [attrs["id"] for tag, attrs in dom.tags if tag == "h2"]
    assert links == ["#models", "#roar-remove-and-retrain"] and ids == ["models", "roar-remove-and-retrain"]
    assert dom.text["strong"] == ["OOD"] and [tag for tag, _ in dom.tags].count("table") == 2


def test_the_rule_graph_of_a_report_gets_one_node_per_rule_and_each_link_once(tmp_path):
    import json

    import pytest

    from robustxai.aggregation.report_graph import tidy_report, unique_rule_graph

    # Snakemake's layout of a twin (level 1) and an explainer trained on its maps (level 3)
    rules = ["prepare", "train", "attribute", "train", "attribute", "findings"]
    nodes = [{"rule": rule, "fx": 10, "fy": 50 * i} for i, rule in enumerate(rules)]
    links = [{"source": s, "target": t} for s, t in [(0, 1), (1, 2), (2, 3), (0, 3), (3, 4), (4, 5), (2, 5)]]
    merged, arcs, direct = unique_rule_graph(nodes, links)
    assert [n["rule"] for n in merged] == ["prepare", "train", "attribute", "findings"]
    assert [n["fy"] for n in merged] == [0, 50, 100, 150]
    pairs = lambda found: {(link["sourcerule"], link["targetrule"]) for link in found}  # noqa: E731
    assert pairs(direct) == {("prepare", "train"), ("train", "attribute"), ("attribute", "findings")}
    assert pairs(arcs) == {("attribute", "train")}  # the explainer's training reads the twin's maps: a cycle of rules
    assert len(arcs) + len(direct) == 4  # (0, 3) repeats prepare -> train; no rule links to itself

    spec = {"data": [{"name": "node-data", "values": nodes}, {"name": "link-data", "values": links[3:]},
                     {"name": "link-data-direct", "values": links[:3]}]}
    report = tmp_path / "report.html"
    report.write_text(f"<html><script>\n    var rulegraph_spec = {json.dumps(spec)};\n</script>\n<p>rest</p></html>")
    assert tidy_report(report) == (6, 4)
    text = report.read_text()
    assert text.endswith(";\n</script>\n<p>rest</p></html>") and text.startswith("<html><script>\n    var rulegraph_spec = ")
    tidied = json.loads(text.split("var rulegraph_spec = ")[1].split(";\n")[0])
    assert [n["rule"] for n in tidied["data"][0]["values"]] == ["prepare", "train", "attribute", "findings"]
    assert tidy_report(report) == (4, 4)  # idempotent
    (tmp_path / "other.html").write_text("<html></html>")
    with pytest.raises(ValueError, match="other.html: no 'var rulegraph_spec"):
        tidy_report(tmp_path / "other.html")
