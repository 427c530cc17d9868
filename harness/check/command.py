"""``n2n check TARGET``: find the target, run every check in an isolated child process, write the
reports (only once every process of the target is gone). Exit status 0 when every block was
checked and passes, 1 when something is wrong, 2 when the target cannot be found or imported (the
message says why), 3 when nothing was found wrong but some blocks could not be checked (the
report says why, and which adapter function settles it)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from impl.app.checkpoint import atomic_write
from impl.app.errors import UserError, field_error

from . import isolation as iso
from . import rule as course_rule
from .child import DEFAULT_TOTAL_TIME, Child
from .class_report import figure_lines
from .conclude import EXIT_FINDINGS, Cell
from .figures import picture
from .recorder import target_file
from .repro import write as write_reproducers
from .run import Report, run_checks

DEFAULT_TIME_LIMIT = 30.0
RULES = ("auto", "ee559", "none")
BLOCK_NAMES = {
    "conv2d": "Conv2d",
    "transposeconv2d": "ConvTranspose2d",
    "convtranspose2d": "ConvTranspose2d",
    "nearestupsampling": "Upsampling",
    "upsampling": "Upsampling",
    "upsample": "Upsampling",
    "relu": "ReLU",
    "leakyrelu": "LeakyReLU",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "maxpool2d": "MaxPool2d",
    "maxpooling2d": "MaxPool2d",
    "mse": "MSE",
    "mseloss": "MSE",
    "coursenetwork": "course network",
    "network": "course network",
    "sequential": "Sequential",
    "sgd": "SGD",
    "adam": "Adam",
    "training": "course network",
}


class UsageError(UserError):
    """The target or an argument cannot be used (exit status 2, like every expected error of n2n)."""


def resolve(target: str) -> dict[str, str]:
    """Where the target's code is: a project folder holding ``Miniproject_2/model.py``, that
    folder itself, a ``.py`` file, or an importable module name."""
    path = Path(target)
    if path.is_dir():
        path = path.resolve()
        if (path / "Miniproject_2" / "model.py").is_file():
            return {"kind": "module", "root": str(path), "module": "Miniproject_2.model"}
        if (path / "model.py").is_file():
            return {"kind": "module", "root": str(path.parent), "module": f"{path.name}.model"}
        raise UsageError(f"{target}: no Miniproject_2/model.py or model.py in this folder")
    if path.suffix == ".py":
        if not path.is_file():
            raise UsageError(f"{target}: no such file")
        return {"kind": "file", "root": str(path.resolve().parent), "path": str(path.resolve())}
    if target.replace(".", "").replace("_", "").isalnum():
        return {"kind": "module", "root": str(Path.cwd()), "module": target}
    raise UsageError(f"{target}: not a folder, a .py file or a module name")


def blocks_option(value: str | None) -> set[str] | None:
    if not value:
        return None
    names = set()
    for name in value.split(","):
        key = "".join(c for c in name.lower() if c.isalnum())
        if key not in BLOCK_NAMES:
            raise UsageError(
                f"--blocks: unknown block {name.strip()!r} (known: {', '.join(sorted(set(BLOCK_NAMES.values())))})"
            )
        names.add(BLOCK_NAMES[key])
    return names


def check(
    target: str,
    adapter: str | None = None,
    blocks: str | None = None,
    seed: int = 0,
    time_limit: float = DEFAULT_TIME_LIMIT,
    quick: bool = False,
    repro: str | None = None,
    total_time: float = DEFAULT_TOTAL_TIME,
    isolation: str = "auto",
    rule: str = "auto",
) -> Report:
    """Run the checks (and write a reproducer per layer finding into ``repro``); raises
    :class:`UsageError` when the target cannot be used. ``rule``:
    the EE-559 course rule is checked with ``ee559``, and with ``auto`` for the course's layout
    (a folder holding ``Miniproject_2/model.py``)."""
    for field, value in (("time_limit", time_limit), ("total_time", total_time)):
        if not math.isfinite(value):
            raise field_error(field, f"must be a finite number of seconds, got {value}")
        if value <= 0:
            raise field_error(field, f"must be positive, got {value}")
    if rule not in RULES:
        raise field_error("rule", f"must be one of {', '.join(RULES)}, got {rule!r}")
    if adapter is not None and not Path(adapter).is_file():
        raise UsageError(f"adapter: {adapter}: no such file", "adapter")
    only = blocks_option(blocks)
    where = resolve(target)
    ruled = rule == "ee559" or (rule == "auto" and where.get("module") == "Miniproject_2.model")
    try:
        adapter = str(Path(adapter).resolve()) if adapter else None
        child = Child(where, adapter, time_limit, total_time, isolation, ruled)
    except iso.IsolationError as e:
        raise UsageError(f"isolation: {e}", "isolation") from e
    try:
        report = _run(child, target, seed, quick, only, adapter is not None)
        if ruled:
            _rule(report, child, Path(where["root"]))
        if repro is not None:
            written = write_reproducers(report.findings, child.ask, where["root"], Path(repro))
            report.reproducers = [str(p) for p in written]
        return report
    finally:
        child.close()


def _run(child: Child, target: str, seed: int, quick: bool, only: set[str] | None, adapted: bool) -> Report:
    loaded = child.load()
    if "blocks" not in loaded:
        raise UsageError(f"{target}: cannot import the target: {_why(loaded)}\n{child.prints()[-2000:]}".rstrip())
    if not loaded["blocks"]:
        raise UsageError(f"{target}: no blocks found under the course's or torch's names")
    report = run_checks(child, loaded["blocks"], seed, quick, only, adapted, loaded.get("skipped", {}))
    report.notes.update(loaded.get("notes", []))
    report.target, report.isolation = target, child.isolation
    report.prints = child.prints()
    if child.out_of_time:
        report.notes.add(f"the run reached its --total-time ({child.total_time:g} s): the checks left were not run")
    return report


def _rule(report: Report, child: Child, root: Path) -> None:
    """The course rule's findings and column: the source scan of the target's files the child
    loaded, then what it recorded while running."""
    loaded = child.load()
    classes = loaded.get("classes", {})
    files = [Path(f) for f in loaded.get("files", []) if target_file(f, root)]
    records = [r for f in files for r in course_rule.scan(f, str(f.relative_to(root)), classes)]
    found = course_rule.findings(child.violations + records)  # a call seen running says more than its name
    report.findings += found
    for block, status in course_rule.column(found, list(report.table)).items():
        report.cells.setdefault(block, {})["rule"] = Cell(compared=1, passed=status == "pass", status=status)
    if found:
        report.exit_status = EXIT_FINDINGS


def _why(reply: dict[str, Any]) -> str:
    if "error" in reply:
        e = reply["error"]
        return f"{e['type']}: {e['message']}" + (f" ({e['where']})" if e["where"] else "")
    if "timeout" in reply:
        return f"the import took more than {reply['timeout']:g} s"
    return str(reply.get("crash", reply))


COLUMNS = ("forward", "backward", "parameters", "contract", "step", "composition", "training", "rule")


def table(report: Report) -> str:
    used = [c for c in COLUMNS if any(c in row for row in report.table.values())]
    width = max([18, *(len(b) + 2 for b in report.table)])
    lines = [f"{'block':<{width}}" + "".join(f"{c:<13}" for c in used)]
    for block, row in report.table.items():
        lines.append(f"{block:<{width}}" + "".join(f"{row.get(c, '-'):<13}" for c in used))
    return "\n".join(lines)


def verdict(report: Report) -> str:
    if report.findings:
        return f"{len(report.findings)} finding(s):"
    if report.not_checked:
        return "nothing found wrong, but some blocks were not checked:"
    return "every check passes"


def text(report: Report) -> str:
    header = f"n2n check {report.target} (compared with torch in {report.dtype}; isolation: {report.isolation})"
    out = [header, "", table(report), "", verdict(report)]
    out += [f"- {f.line()}" for f in report.findings]
    if report.not_checked:
        if report.findings:
            out += ["", "not checked:"]
        out += [f"- {b}: {why}" for b, why in report.not_checked.items()]
    if report.notes:
        out += ["", "adapted / noted:"] + [f"- {n}" for n in sorted(report.notes)]
    return "\n".join(out) + "\n"


def as_dict(report: Report) -> dict[str, Any]:
    cells = {b: {c: asdict(cell) for c, cell in row.items()} for b, row in report.cells.items()}
    data: dict[str, Any] = {"target": report.target, "dtype": report.dtype, "isolation": report.isolation}
    data |= {"table": report.table, "cells": cells}
    data |= {"ok": report.ok, "exit": report.exit_status, "not_checked": report.not_checked}
    return data | {"findings": [asdict(f) for f in report.findings], "notes": sorted(report.notes)}


def write_json(report: Report, path: Path) -> None:
    _write(path, json.dumps(as_dict(report), indent=2) + "\n")


def write_junit(report: Report, path: Path) -> None:
    suite = ET.Element("testsuite", name="n2n check", tests="0", failures="0", errors="0")
    count = failures = 0
    for block, row in report.table.items():
        for column, status in row.items():
            count += 1
            case = ET.SubElement(suite, "testcase", classname=block, name=column)
            related = [f.line() for f in report.findings if f.block == block]
            if status in ("FAIL", "error", "crash", "timeout"):
                failures += 1
                ET.SubElement(case, "failure", message=status).text = "\n".join(related)
            elif status in ("unsupported", "not checked", "blocked", "absent"):
                ET.SubElement(case, "skipped", message=report.not_checked.get(block, status))
    suite.set("tests", str(count))
    suite.set("failures", str(failures))
    _write(path, "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(suite, encoding="unicode") + "\n")


def write_markdown(report: Report, path: Path) -> None:
    used = [c for c in COLUMNS if any(c in row for row in report.table.values())]
    lines = [f"# n2n check: {report.target}", ""]
    lines += [f"Compared with torch in {report.dtype}; isolation: {report.isolation}.", ""]
    lines += ["| block | " + " | ".join(used) + " |", "|---|" + "---|" * len(used)]
    lines += [f"| {b} | " + " | ".join(row.get(c, "-") for c in used) + " |" for b, row in report.table.items()]
    draw_pictures(report, path.parent)
    found = [line for f in report.findings for line in (f"- {f.line()}", *figure_lines(asdict(f)))]
    lines += ["", "## Findings", ""] + (found or ["Every check passes." if report.ok else "None."])
    if report.not_checked:
        lines += ["", "## Not checked", ""] + [f"- {b}: {why}" for b, why in report.not_checked.items()]
    if report.notes:
        lines += ["", "## Adapted", ""] + [f"- {n}" for n in sorted(report.notes)]
    _write(path, "\n".join(lines) + "\n")


def draw_pictures(report: Report, folder: Path) -> None:
    """Each numeric finding's pictures beside the report (once), named in the finding."""
    for n, (finding, actual, expected, tol) in enumerate(report.pictures, 1):
        if not finding.figures:
            stem = f"{n}_{finding.block}_{finding.quantity}".replace(" ", "_")
            finding.figures = picture(actual, expected, tol, folder, stem)["figures"]


def _write(path: Path, text: str) -> None:
    """Atomically: a report that is being rewritten is never left half-written."""
    atomic_write(path, lambda f: f.write(text.encode()))
