"""From the results matrix to what a user reads, in one place: each table cell with its counts
(a cell says pass only when a comparison ran and every one that ran passed), the findings in
order (those that affect the course network first), what was not checked and why, and the exit
status: 0 every block checked and passing, 1 findings about the target, 3 no findings but some
blocks not checked (a CI gate must not pass them). Usage and import errors (2) never get here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .matrix import CRASH, FAIL, GRID, PASS, RAISED, TIMEOUT, UNSUPPORTED, Matrix, Row

EXIT_OK, EXIT_FINDINGS, EXIT_NOT_CHECKED = 0, 1, 3
# the blocks the course network needs: one missing is a block not checked
REQUIRED = ("Conv2d", "ReLU", "Sigmoid", "MSE", "SGD", "Sequential")
UPSAMPLINGS = ("Upsampling", "ConvTranspose2d")


@dataclass
class Finding:
    block: str
    quantity: str
    config: str
    message: str
    diagnosis: str | None = None
    feature: str | None = None
    passes_at: str | None = None
    error: float | None = None
    tolerance: float | None = None
    where: str = ""
    course: bool | None = None  # whether it reproduces on the course network's configurations
    count: int = 1  # how many checked configurations fail this way
    setup: dict | None = None  # the failing configuration and dtype, for a reproducer (layer findings)
    pattern: list[str] = field(default_factory=list)  # where the error is, in words (figures.pattern)
    pictured_at: str = ""  # the configuration of the pattern and pictures (a landmark: patterns show there)
    figures: list[str] = field(default_factory=list)  # its pictures, beside the Markdown report

    def line(self) -> str:
        parts = [f"{self.block}: {self.quantity} wrong" if self.error is not None else f"{self.block}: {self.quantity}"]
        parts.append(f"at {self.config}")
        if self.error is not None:
            parts.append(f"max error {self.error:.3g} > tolerance {self.tolerance:.3g}")
        else:
            parts.append(self.message)
        if self.passes_at:
            parts.append(f"passes at {self.passes_at}")
        if self.diagnosis:
            parts.append(f"diagnosis: {self.diagnosis}")
        if self.course is not None:
            parts.append(f"affects the course network: {'yes' if self.course else 'no'}")
        if self.where:
            parts.append(f"({self.where})")
        return "; ".join(parts)


@dataclass
class Cell:
    compared: int = 0
    passed: int = 0
    failed: int = 0
    raised: int = 0
    unsupported: int = 0
    status: str = "not checked"
    why: str = ""  # for a cell not checked: the reason, and what would settle it

    def text(self) -> str:
        if self.status == PASS and self.unsupported:
            return f"pass {self.passed}/{self.passed + self.unsupported}"
        return self.status


def cell(rows: list[Row]) -> Cell:
    """One table cell from its grid rows."""
    c = Cell()
    for r in rows:
        if r.outcome in (PASS, FAIL):
            c.compared += 1
            c.passed += r.outcome == PASS
            c.failed += r.outcome == FAIL
        elif r.outcome in (RAISED, TIMEOUT, CRASH) and r.whose != "checker":
            c.raised += 1
        else:
            c.unsupported += 1
    worst = [r.outcome for r in rows if r.outcome in (TIMEOUT, CRASH, RAISED) and r.whose != "checker"]
    if c.failed:
        c.status = "FAIL"
    elif worst:
        c.status = {TIMEOUT: "timeout", CRASH: "crash", RAISED: "error"}[worst[0]]
    elif c.compared:
        c.status = PASS
    else:
        reasons = [r.message for r in rows if r.message]
        c.why = reasons[0] if reasons else "nothing ran"
        if rows and all(r.outcome == UNSUPPORTED for r in rows):
            c.status = "unsupported"
        elif c.why.startswith("blocked"):
            c.status = "blocked"
        else:
            c.status = "not checked"
    return c


@dataclass
class Conclusion:
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)  # block: why
    exit_status: int = EXIT_OK


def conclude(matrix: Matrix, findings: list[Finding], blocks: list[str], wanted: list[str]) -> Conclusion:
    """Cells, ordered findings, what was not checked and the exit status, from the matrix."""
    out = Conclusion()
    for row in matrix.rows:  # (the rows of a composite's uses and of shrinking are not cells)
        if row.purpose == GRID:
            out.cells.setdefault(row.block, {}).setdefault(row.column, Cell())
    for block, columns in out.cells.items():
        for column in columns:
            columns[column] = cell(matrix.of(block, column))
    for block, columns in out.cells.items():
        empty = [c for c in columns.values() if c.status in ("not checked", "unsupported")]
        if empty and len(empty) == len(columns):
            out.not_checked[block] = empty[0].why
    for block in _missing(blocks, wanted):
        out.not_checked[block] = "not found under the course's or torch's names"
    out.findings = sorted(findings, key=lambda f: (f.course is False, f.block, f.quantity))
    if out.findings:
        out.exit_status = EXIT_FINDINGS
    elif out.not_checked:
        out.exit_status = EXIT_NOT_CHECKED
    return out


def _missing(blocks: list[str], wanted: list[str]) -> list[str]:
    """The course's required blocks that the target lacks (among those asked for)."""
    missing = [b for b in REQUIRED if b in wanted and b not in blocks]
    if not any(b in blocks for b in UPSAMPLINGS) and any(b in wanted for b in UPSAMPLINGS):
        missing.append("Upsampling")
    return missing
