"""The results matrix of ``n2n check``: every check the engine runs appends one :class:`Row`
(block, column, quantity, configuration, dtype, outcome, and whose code raised). Nothing else
records an answer: the table, the findings' counts and the exit status are read from the rows
(:mod:`.conclude`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Config = dict[str, Any]

PASS, FAIL, RAISED, TIMEOUT, CRASH = "pass", "fail", "raised", "timeout", "crash"
UNSUPPORTED, NOT_RUN = "unsupported", "not run"
WRONG = (FAIL, RAISED, TIMEOUT, CRASH)  # outcomes that say something about the target
GRID, PROBE, COMPOSITE = "grid", "probe", "composite"  # why a row was measured
INVALID = "invalid reply"  # a reply that is no answer: each one costs the child a restart


@dataclass
class Row:
    block: str
    column: str  # the table's column: forward, backward, parameters, contract, step, ...
    quantity: str  # output, input gradient, gradient of weight, loss value, optimizer step, ...
    config: Config
    outcome: str
    dtype: str = "float64"
    whose: str = ""  # for a raise: 'target' or 'checker' (the checker's probing, never the target's fault)
    message: str = ""
    where: str = ""
    error: float | None = None
    tolerance: float | None = None
    diagnosis: str | None = None  # a contract row's label (what promise is broken)
    purpose: str = GRID
    invalid: bool = False  # the reply was no answer at all (the target's doing)

    @property
    def kind(self) -> str:
        """The kind of failure: a wrong number, or an exception of one type, a hang, a death."""
        if self.outcome == RAISED:
            return f"raised {self.message.split(':', 1)[0].split()[-1]}"  # "backward raised T: ..." -> T
        if self.outcome == FAIL and self.invalid:
            return INVALID
        if self.outcome == FAIL and self.message.startswith("shape "):
            return "wrong shape"  # apart from wrong values: a shape bug and a value bug are two causes
        return self.outcome


@dataclass
class Matrix:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def of(self, block: str, column: str | None = None, purpose: str | None = GRID) -> list[Row]:
        return [
            r
            for r in self.rows
            if r.block == block and (column is None or r.column == column) and (purpose is None or r.purpose == purpose)
        ]

    def failing(self, block: str, quantity: str) -> list[Row]:
        """Wrong numbers and exceptions of ``quantity`` (a row with its own label is a finding already)."""
        return [r for r in self.of(block) if r.quantity == quantity and r.outcome in WRONG and r.diagnosis is None]
