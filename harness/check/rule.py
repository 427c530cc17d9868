"""The EE-559 course rule: blocks made of tensor operations only, no autograd, and from torch.nn
only ``fold`` and ``unfold``. Checked twice: in the source (:func:`scan`: the names the target's
files import and use, read with ``ast``, never run) and while the checks run
(:class:`.recorder.Recorder`, in the child). Each violation is a record
``{block, caller, does, where}``; :func:`findings` turns them into the report's findings, one
per violation, and :func:`column` into the table's "rule" column."""

from __future__ import annotations

import ast
from pathlib import Path

from .conclude import Finding
from .recorder import ALLOWED_FUNCTIONAL

FORBIDDEN = ("torch.nn", "torch.autograd", "torch.optim")
MAX_SOURCE = 2 << 20  # bytes: a larger "source file" is not read (nor is it anybody's blocks)
MAX_PER_BLOCK = 10  # findings shown per block; the rest are counted


def forbidden(path: str) -> bool:
    """Whether the dotted name ``path`` is outside the rule (``torch.nn.functional`` itself is
    fine: it is how fold and unfold are reached)."""
    if path in ("torch.nn", "torch.nn.functional"):
        return False
    if path.startswith("torch.nn.functional."):
        return path.split(".")[3] not in ALLOWED_FUNCTIONAL
    return path.startswith(tuple(p + "." for p in FORBIDDEN)) or path in FORBIDDEN[1:]


# the source ----------------------------------------------------------------------------------
class _Scanner(ast.NodeVisitor):
    """Walks one file: import aliases, then every name or attribute chain that resolves to a
    forbidden path, and every ``requires_grad`` set, with the enclosing class and function."""

    def __init__(self, where: str, classes: dict[str, str]) -> None:
        self.where, self.classes = where, classes
        self.aliases: dict[str, str] = {}
        self.reported: set[str] = set()  # aliases already reported at their import
        self.scope: list[str] = []
        self.records: list[dict[str, str]] = []

    def _add(self, node: ast.AST, does: str) -> None:
        caller = ".".join(self.scope) or "<module>"
        block = self.classes.get(self.scope[0], "") if self.scope else ""
        where = f"{self.where}:{getattr(node, 'lineno', 0)}"
        self.records.append({"block": block, "caller": caller, "does": does, "where": where})

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)  # its bases are the class's own doing (``class Conv2d(nn.Module)``)
        for child in (*node.bases, *node.keywords, *node.decorator_list, *node.body):
            self.visit(child)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.decorator_list, node.args):
            self.visit(child)
        self.scope.append(node.name)
        for child in node.body:
            self.visit(child)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        """A main guard's body runs only when the file is run as a script: a student's own test
        of a block against torch.nn there is no part of the blocks."""
        if _main_guard(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                self.aliases.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names if node.module and not node.level else []:
            path = f"{node.module}.{alias.name}"
            self.aliases[alias.asname or alias.name] = path
            if forbidden(path) and path not in FORBIDDEN:  # a package (``from torch import optim``): its uses
                self.reported.add(alias.asname or alias.name)
                self._add(node, f"imports {path}")

    def _resolve(self, node: ast.AST) -> tuple[str, str] | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None
        return node.id, ".".join([self.aliases[node.id], *reversed(parts)])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "requires_grad" and isinstance(node.ctx, ast.Store):
            self._add(node, "sets requires_grad")
        self._use(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._use(node)

    def _use(self, node: ast.Attribute | ast.Name) -> None:
        resolved = self._resolve(node)
        if resolved is not None and forbidden(resolved[1]):
            if resolved[0] not in self.reported:
                self._add(node, f"uses {resolved[1]}")
            return  # the longest chain is the one reported
        if isinstance(node, ast.Attribute):
            self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "requires_grad_" and not _false(node.args[:1]):
            self._add(node, "calls Tensor.requires_grad_ (autograd)")
        for kw in node.keywords:
            if kw.arg == "requires_grad" and not _false([kw.value]):
                self._add(node, "passes requires_grad")
        self.generic_visit(node)


def _main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    named = any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
    return named and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides)


def _false(values: list[ast.expr]) -> bool:
    return bool(values) and isinstance(values[0], ast.Constant) and values[0].value is False


def scan(path: Path, where: str, classes: dict[str, str]) -> list[dict[str, str]]:
    """The violations in one file (``where``: its name in the report; ``classes``: the target's
    class names that are blocks, by their course name). A file that cannot be read or parsed
    is skipped: the import would have failed first."""
    try:
        if path.stat().st_size > MAX_SOURCE:
            return []
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    scanner = _Scanner(where, classes)
    scanner.visit(tree)
    return scanner.records


# the report --------------------------------------------------------------------------------------
def findings(records: list[dict[str, str]]) -> list[Finding]:
    """One finding per violation, under its block (or its file, for module-level code), in the
    order found; what the source scan names at a line where a call was recorded is that call."""
    out: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    counts: dict[str, int] = {}
    for r in records:
        key = (r["caller"], r["where"], _named(r["does"]))
        if key in seen:
            continue
        seen.add(key)
        block = r["block"] or r["where"].rsplit(":", 1)[0] or "target"
        counts[block] = counts.get(block, 0) + 1
        if counts[block] <= MAX_PER_BLOCK:
            where = f" ({r['where']})" if r["where"] else ""
            out.append(Finding(block, "course rule", "the EE-559 rule", f"{r['caller']} {r['does']}{where}"))
    for block, n in counts.items():
        if n > MAX_PER_BLOCK:
            message = f"and {n - MAX_PER_BLOCK} more violations"
            out.append(Finding(block, "course rule", "the EE-559 rule", message))
    return out


def _named(does: str) -> str:
    """What a record is about: ``torch.nn.functional.conv2d`` in "calls ..." and "uses ..." alike."""
    return next((w for w in does.split() if "." in w or w.startswith("requires_grad")), does)


def column(records_findings: list[Finding], blocks: list[str]) -> dict[str, str]:
    """The table's "rule" cell of every block: FAIL with a violation, else pass."""
    failing = {f.block for f in records_findings}
    return {b: ("FAIL" if b in failing else "pass") for b in [*blocks, *sorted(failing - set(blocks))]}
