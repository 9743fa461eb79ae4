"""HTML pages for the Snakemake report, whose viewer shows images, PDF and HTML inline but offers markdown
and CSV only as downloads: findings.md rendered, and the main tables as HTML tables, readable at a glance.

The markdown is the subset findings.md is written in (``robustxai.aggregation.findings``): ``#`` headings,
paragraphs, ``- `` lists, pipe tables, ``**bold**`` and ```code```; everything else is escaped text.
"""
from __future__ import annotations

import html
import re

import pandas as pd

#: verdict words coloured in the pages
VERDICT_CLASSES = {"reproduced": "yes", "not reproduced": "no", "inconclusive": "open"}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 1rem auto; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: 0 0.2rem; }
.yes { color: #11632a; } .no { color: #a11a1a; } .open { color: #8a5a00; }
.caption { color: #444; }
"""


def _inline(text: str) -> str:
    """Escaped ``text`` with ``**bold**`` and ```code``` as HTML; verdict words in bold coloured."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part)

        def bold(match: re.Match) -> str:
            word = match.group(1)
            kind = VERDICT_CLASSES.get(word)
            return f'<strong class="{kind}">{word}</strong>' if kind else f"<strong>{word}</strong>"

        out.append(re.sub(r"\*\*(.+?)\*\*", bold, escaped))
    return "".join(out)


def _table(rows: list[str]) -> str:
    cells = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    head, body = cells[0], [row for row in cells[2:]]
    header = "".join(f"<th>{_inline(cell)}</th>" for cell in head)
    lines = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{lines}</tbody></table>"


def markdown_html(text: str) -> str:
    """HTML body of markdown ``text`` in findings.md's subset (module docstring)."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif heading := re.match(r"^(#{1,6}) (.*)$", line):
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            blocks.append(_table(lines[i:end]))
            i = end
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6} |\||- )", lines[i]):
                paragraph.append(lines[i])
                i += 1
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(blocks)


def frame_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """An HTML table of ``frame``: numbers rounded to ``digits`` decimals and right-aligned, missing values "–"."""
    header = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for value in values:
            if isinstance(value, float):
                text = "–" if pd.isna(value) else f"{value:.{digits}f}"
                cells.append(f'<td class="number">{text}</td>')
            elif isinstance(value, (int,)) and not isinstance(value, bool):
                cells.append(f'<td class="number">{value}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html_page(title: str, body: str) -> str:
    """A standalone HTML document (its own style, no external files) around ``body``."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def tables_page(tables: dict[str, tuple[pd.DataFrame, str]]) -> str:
    """One HTML page of titled tables: ``tables`` maps a title to (table, caption) in page order, with a
    list of links to each at the top."""
    anchors = {title: re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") for title in tables}
    contents = "<ul>" + "".join(f'<li><a href="#{anchors[t]}">{html.escape(t)}</a></li>' for t in tables) + "</ul>"
    sections = [f'<h2 id="{anchors[title]}">{html.escape(title)}</h2><p class="caption">{_inline(caption)}</p>'
                f"{frame_html(frame)}" for title, (frame, caption) in tables.items()]
    return html_page("Main tables", "<h1>Main tables</h1>" + contents + "\n".join(sections))
