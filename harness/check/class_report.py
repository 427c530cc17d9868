"""The class report: one row per submission, one column per block, each cell ``pass``, ``FAIL``,
``not checked`` or ``error``, and the most common findings (a cause is block + quantity +
diagnosis, with how many submissions have it and which). Computed from the submissions'
records (:mod:`.classroom`); the page is :mod:`.class_page`'s, the files :mod:`.class_folder`'s.
Nothing here depends on how or when the records were made (no times, no cache counts), so
shards merged give the very files one run gives."""

from __future__ import annotations

import csv
import io
from typing import Any

from .worker import ALIASES

# a block's class cell is the first of these its cells hold
CELL_ORDER = ("FAIL", "error", "pass", "not checked", "absent")
CELL_OF = {"FAIL": "FAIL", "error": "error", "crash": "error", "timeout": "error"}
CELL_OF |= {"unsupported": "not checked", "blocked": "not checked", "not checked": "not checked", "-": "not checked"}
CELL_OF |= {"absent": "absent"}  # the target has no such block
BLOCK_ORDER = [*ALIASES, "course network"]


def cell(value: str) -> str:
    """One engine cell ("pass", "pass 29/31", "FAIL", "timeout", ...) as a class cell."""
    return "pass" if value.split(" ")[0] == "pass" else CELL_OF.get(value, "error")


def block_cell(cells: dict[str, str]) -> str:
    """A block's class cell: FAIL or error if any of its columns says so, else pass if any check
    passed (a column the target does not support, say dilation, leaves the rest a pass; the
    page's tooltip and the submission's report name it), else not checked."""
    numbers = [cell(v) for k, v in cells.items() if k != "rule"]  # the course rule compares no numbers
    value = min(numbers, key=CELL_ORDER.index, default="not checked")
    return "FAIL" if cells.get("rule") == "FAIL" else value


def _block(record: dict[str, Any], block: str) -> str:
    """A submission's cell for ``block``: its cells', FAIL too where a finding names the block
    though no cell of it says so (a finding is never shown as a pass)."""
    value = block_cell(record["table"].get(block, {}))
    wrong = any(f["block"] == block for f in record["findings"])
    return "FAIL" if wrong and value in ("pass", "not checked") else value


OTHER = "other code"
"""The one column of everything in a submission's table that is no block: the course rule's
findings in module-level code are named by their file, and each file its own column would make
the class table as wide as the class's file names."""


def columns(records: list[dict[str, Any]]) -> list[str]:
    """The blocks any submission was checked on, in the course's order, then ``OTHER``."""
    seen = {block for r in records for block in r["table"]}
    return [b for b in BLOCK_ORDER if b in seen] + [OTHER] * bool(seen - set(BLOCK_ORDER))


def _other(record: dict[str, Any]) -> str:
    """A submission's ``OTHER`` cell: the worst of its non-block rows' cells, or "-" if it has none."""
    values = [_block(record, k) for k in record["table"] if k not in BLOCK_ORDER]
    return min(values, key=CELL_ORDER.index, default="-")


def rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per submission: name, status, number of findings, one cell per block, the reason."""
    blocks = columns(records)
    out = []
    for r in records:
        if r["status"] == "error":
            cells = dict.fromkeys(blocks, "error")
        else:
            cells = {b: _other(r) if b == OTHER else _block(r, b) for b in blocks}
        reason = r["reason"].splitlines()[0] if r["reason"] else ""
        out.append(
            {
                "submission": r["name"],
                "status": r["status"],
                "findings": str(len(r["findings"])),
                **cells,
                "reason": reason,
            }
        )
    return out


def cause(finding: dict[str, Any]) -> str:
    return f"{finding['block']}: {finding['quantity']} ({finding.get('diagnosis') or 'no diagnosis'})"


def common_findings(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Each cause with the submissions that have it, the most common first."""
    having: dict[str, list[str]] = {}
    for r in records:
        for c in sorted({cause(f) for f in r["findings"]}):
            having.setdefault(c, []).append(r["name"])
    return sorted(having.items(), key=lambda item: (-len(item[1]), item[0]))


def summary(records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    counts = {s: sum(r["status"] == s for r in records) for s in ("pass", "FAIL", "not checked", "error")}
    flags = manifest["flags"]
    how = [f"seed {flags['seed']}", f"time limit {flags['time_limit']:g} s per check"]
    how += ["--quick"] * flags["quick"] + ([f"blocks {','.join(flags['blocks'])}"] if flags["blocks"] else [])
    counted = (
        f"{counts['pass']} pass, {counts['FAIL']} with findings, {counts['not checked']} with blocks not checked, "
        f"{counts['error']} could not be checked"
    )
    return f"{len(records)} submissions: {counted}. Checked with {', '.join(how)}; {manifest['version']}."


def csv_text(records: list[dict[str, Any]]) -> str:
    table = rows(records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["submission"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def text(records: list[dict[str, Any]]) -> str:
    """The class table for a terminal."""
    table = rows(records)
    if not table:
        return "no submissions\n"
    keys = [k for k in table[0] if k != "reason"]
    width = {k: max(len(k), *(len(row[k]) for row in table)) + 2 for k in keys}
    lines = ["".join(f"{k:<{width[k]}}" for k in keys)]
    lines += ["".join(f"{row[k]:<{width[k]}}" for k in keys) + row["reason"] for row in table]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def where_the_error_is(finding: dict[str, Any]) -> str:
    """The pattern's words, with the configuration it and the pictures were taken at."""
    at = f" (at {finding['pictured_at']})" if finding.get("pictured_at") else ""
    return f"where the error is{at}: {', '.join(finding['pattern'])}"


def figure_lines(finding: dict[str, Any], folder: str = "") -> list[str]:
    """A finding's picture of the error in Markdown, when it carries one: the pattern its error's
    support shows in words, then one image per channel (paths relative to ``folder``)."""
    lines = [f"  - {where_the_error_is(finding)}"] if finding.get("pattern") else []
    prefix = f"{folder}/" if folder else ""
    lines += [f"  - ![{finding['block']} {finding['quantity']}]({prefix}{p})" for p in finding.get("figures") or []]
    return lines


def markdown(records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    table = rows(records)
    keys = list(table[0]) if table else ["submission"]
    lines = ["# n2n check: the class", "", summary(records, manifest), ""]
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_md(row[k]) for k in keys) + " |" for row in table]
    lines += ["", "## Most common findings", ""]
    common = common_findings(records)
    lines += [f"- {len(names)} x {_md(c)}: {', '.join(names)}" for c, names in common] or ["No findings."]
    lines += ["", "## Findings by submission"]
    for r in records:
        if r["findings"] or r["reason"]:
            lines += ["", f"### {r['name']}", "", f"Reports: [{r['name']}/report.md]({r['name']}/report.md)", ""]
            lines += [f"- could not be checked: {_md(' '.join(r['reason'].split()))}"] if r["reason"] else []
            for f in r["findings"]:
                lines += [f"- {_md(f['line'])}", *figure_lines(f, r["name"])]
    return "\n".join(lines) + "\n"


def _md(value: str) -> str:
    return value.replace("|", "\\|")
