"""``class.html``: the class table as one self-contained page (its CSS and script inlined from
``class_page.css`` and ``class_page.js``, its pictures as ``data:`` URIs; no server, no
network). A click on a header sorts by that column; a click on a submission's name opens its
findings, their patterns and pictures, its notes and links to its own reports; the most common
findings link to the submissions that have them."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from .class_report import columns, common_findings, rows, summary, where_the_error_is

HERE = Path(__file__).resolve().parent
KINDS = {"submission": "text", "status": "cell", "findings": "number", "reason": "text"}


def page(out: Path, records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    """The whole page; ``out`` is the class folder the figures are read from."""
    blocks = columns(records)
    table = rows(records)
    head = "".join(
        f'<th data-column="{escape(k)}" data-type="{KINDS.get(k, "cell")}">{escape(k)}</th>'
        for k in (table[0] if table else KINDS)
    )
    groups = "\n".join(_group(out, r, row, len(row)) for r, row in zip(records, table))
    common = "\n".join(
        f'<li><span class="count">{len(names)}</span> {escape(c)}: ' + ", ".join(_goto(n) for n in names) + "</li>"
        for c, names in common_findings(records)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>n2n check: {len(records)} submissions</title>
<style>
{(HERE / "class_page.css").read_text()}</style>
</head>
<body>
<h1>n2n check: the class</h1>
<p class="summary">{escape(summary(records, manifest))}</p>
<p>Click a column's header to sort by it, a submission's name to see its findings.
Blocks: {escape(", ".join(blocks)) or "none"}.</p>
<table id="class">
<thead><tr>{head}</tr></thead>
{groups}
</table>
<h2>Most common findings</h2>
{f"<ol>{common}</ol>" if common else "<p>No findings.</p>"}
<script>
{(HERE / "class_page.js").read_text()}</script>
</body>
</html>
"""


def _goto(name: str) -> str:
    return f'<a class="goto" href="#open={escape(name)}" data-name="{escape(name)}">{escape(name)}</a>'


def _group(out: Path, record: dict[str, Any], row: dict[str, str], width: int) -> str:
    """One submission: its row and, hidden until its name is clicked, its details."""
    name = escape(record["name"])
    button = f'<button class="open" data-name="{name}" aria-expanded="false">{name}</button>'
    cells = [f'<td data-value="{name}">{button}</td>']
    for k, value in list(row.items())[1:]:
        css = f' class="{value.replace(" ", "-")}"' if KINDS.get(k, "cell") == "cell" else ""
        cells.append(f'<td{css} data-value="{escape(value)}"{_tip(record, k)}>{escape(value)}</td>')
    details = _details(out, record)
    row_html = f'<tr class="row">{"".join(cells)}</tr>'
    details_html = f'<tr class="details" hidden><td colspan="{width}">{details}</td></tr>'
    return f'<tbody id="s-{name}" data-name="{name}">\n{row_html}\n{details_html}\n</tbody>'


def _tip(record: dict[str, Any], block: str) -> str:
    """A block cell's tooltip: the engine's own cells (forward: pass, backward: FAIL, ...)."""
    cells = record["table"].get(block)
    return f' title="{escape(", ".join(f"{k}: {v}" for k, v in cells.items()))}"' if cells else ""


def _details(out: Path, record: dict[str, Any]) -> str:
    name = record["name"]
    parts = [f"<p><b>{escape(name)}</b> ({escape(record['target'])}): {escape(record['status'])}</p>"]
    if record["reason"]:
        parts.append(f'<p>Could not be checked:</p><div class="reason">{escape(record["reason"])}</div>')
    if record["findings"]:
        items = "".join(_finding(out / name, f) for f in record["findings"])
        parts.append(f'<p>{len(record["findings"])} finding(s):</p><ul class="findings">{items}</ul>')
    if record["notes"]:
        notes = "".join(f"<li>{escape(n)}</li>" for n in record["notes"])
        parts.append(f"<p>Adapted / noted:</p><ul>{notes}</ul>")
    if record["status"] != "error":
        links = [f'<a href="{escape(name)}/{file}">{file}</a>' for file in ("report.md", "report.json", "report.xml")]
        parts.append(f"<p>Reports: {', '.join(links)}</p>")
    return "".join(parts)


def _finding(folder: Path, finding: dict[str, Any]) -> str:
    text = escape(finding["line"])
    if finding.get("pattern"):
        text += f'<div class="pattern">{escape(where_the_error_is(finding))}</div>'
    images = [_image(folder / p, f"{finding['block']} {finding['quantity']}") for p in finding.get("figures") or []]
    if images:
        text += f'<div class="figures">{"".join(images)}</div>'
    return f'<li class="finding">{text}</li>'


def _image(path: Path, alt: str) -> str:
    try:
        data = base64.b64encode(path.read_bytes()).decode()
    except OSError:
        return f"<p>(picture missing: {escape(str(path.name))})</p>"
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
