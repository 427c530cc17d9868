"""Every check of a target, in order, then the conclusion: :func:`run_checks` returns the
:class:`Report` the command writes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .conclude import EXIT_NOT_CHECKED, Cell, Finding, conclude
from .matrix import Row
from .network import NetworkChecks

LAYERS = ("Conv2d", "ConvTranspose2d", "Upsampling", "MaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh")
ORDER = (*LAYERS, "MSE", "Sequential", "SGD", "Adam", "course network")  # an optimizer may need Sequential


@dataclass
class Report:
    target: str
    dtype: str = "float64"
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)
    not_checked: dict[str, str] = field(default_factory=dict)
    exit_status: int = 0
    prints: str = ""
    isolation: str = ""  # how the target's code was kept apart (harness.check.isolation)
    rows: list[Row] = field(default_factory=list)
    reproducers: list[str] = field(default_factory=list)
    pictures: list[tuple[Finding, Any, Any, float]] = field(default_factory=list)  # (finding, target's, torch's, tol)

    @property
    def table(self) -> dict[str, dict[str, str]]:
        return {b: {c: cell.text() for c, cell in row.items()} for b, row in self.cells.items()}

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def run_checks(
    child: Any,
    blocks: list[str],
    seed: int,
    quick: bool,
    only: set[str] | None,
    adapted: bool = False,
    skipped: dict[str, str] | None = None,
) -> Report:
    """Every check of the blocks the target has (``only``: a subset, by canonical name;
    ``adapted``: an adapter file drives the blocks; ``skipped``: blocks found but not checkable,
    with why: not checked, never absent)."""
    checker = NetworkChecks(child, blocks, seed, quick)
    checker.adapted = adapted
    wanted = [b for b in ORDER if only is None or b in only]
    absent: list[str] = []
    for name in wanted:
        if name in LAYERS and name in blocks:
            checker.check_layer(name)
            if checker.state[name].dtype == torch.float32:  # the composites then compare in float32 too
                checker.dtype = torch.float32
        elif name == "MSE" and name in blocks:
            checker.check_loss()
        elif name in ("SGD", "Adam") and name in blocks and "Conv2d" in blocks:
            checker.check_optimizer(name)
        elif name == "Sequential" and name in blocks:
            checker.check_sequential()
        elif name == "course network" and not quick and _trainable(blocks):
            checker.check_training()
        elif name != "course network":
            absent.append(name)
    conclusion = conclude(checker.matrix, checker.findings, blocks, wanted)
    report = Report(target="", dtype=_dtypes({name: st.dtype for name, st in checker.state.items()}))
    report.cells, report.findings, report.not_checked = conclusion.cells, conclusion.findings, conclusion.not_checked
    report.exit_status, report.notes, report.rows = conclusion.exit_status, checker.notes, checker.matrix.rows
    report.pictures = checker.pictures
    report.notes.update(_partly(conclusion.cells, checker.matrix.rows, set(conclusion.not_checked)))
    for name in absent:
        why = (skipped or {}).get(name)
        report.cells.setdefault(name, {"forward": Cell(status="not checked" if why else "absent", why=why or "")})
        if why:
            report.not_checked[name] = why
            report.exit_status = report.exit_status or EXIT_NOT_CHECKED
    return report


def _dtypes(of: dict[str, torch.dtype]) -> str:
    """The comparison's precision in words: one dtype, or the widest with the blocks that fell
    back to a narrower one named ("float64; float32 for ReLU")."""
    names = {block: str(d).removeprefix("torch.") for block, d in of.items()}
    widest = max(of.values(), key=lambda d: torch.finfo(d).bits, default=torch.float64)
    main = str(widest).removeprefix("torch.")
    others: dict[str, list[str]] = {}
    for block, name in names.items():
        if name != main:
            others.setdefault(name, []).append(block)
    return "; ".join([main] + [f"{name} for {', '.join(blocks)}" for name, blocks in others.items()])


def _partly(cells: dict[str, dict[str, Cell]], rows: list[Row], said: set[str]) -> list[str]:
    """What a "pass 16/21" cell left out, in words: how many configurations were not compared
    and the first one's reason (a refusal, an unsupported argument, the checker unable to drive it);
    and why a column of a partly checked block was not checked at all (``said``: blocks whose
    every column was not, named among the blocks not checked)."""
    out = []
    for block, columns in cells.items():
        for column, c in columns.items():
            if c.status in ("not checked", "unsupported") and block not in said and c.why:
                out.append(f"{block}: {column} not checked ({c.why})")
            if c.status == "pass" and c.unsupported:
                why = next((r.message for r in rows if (r.block, r.column) == (block, column) and r.message), "")
                total = c.passed + c.unsupported
                out.append(f"{block}: {column} not compared at {c.unsupported} of {total} configurations ({why})")
    return out


def _trainable(blocks: list[str]) -> bool:
    needed = {"Conv2d", "ReLU", "Sigmoid", "Sequential", "MSE", "SGD"}
    return needed <= set(blocks) and any(b in blocks for b in ("Upsampling", "ConvTranspose2d"))
