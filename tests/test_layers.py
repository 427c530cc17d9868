"""Imports run one way (README "Layout"): blocks <- application <- comparison tools <- CLI, with
``reference/`` a leaf, no function-level import to dodge a cycle, nothing shipped importing
``tests/``, the course's import path light, and the application's functions short."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# package -> the project packages it may import (besides itself and third-party libraries)
ALLOWED = {
    "impl": {"impl"},
    "impl.app": {"impl", "impl.app"},
    "reference": {"reference"},
    "harness": {"impl", "impl.app", "reference", "harness"},
    "n2n": {"impl", "impl.app", "reference", "harness", "n2n"},
    "Miniproject_2": {"impl", "impl.app"},
}
PROJECT = ("impl", "reference", "harness", "n2n", "Miniproject_2", "tests")


def layer(module: str) -> str:
    return "impl.app" if module.startswith("impl.app") else module.split(".")[0]


def sources():
    for package in ("impl", "reference", "harness", "n2n", "Miniproject_2"):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module.removesuffix(".__init__"), path


def imports(module: str, tree: ast.Module):
    """(imported module, node) of every import, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # ``module`` ends in ``.__init__`` for a package: one level up is itself
                base = module.split(".")[: -node.level]
                yield ".".join(base + ([node.module] if node.module else [])), node
            elif node.module:
                yield node.module, node


SOURCES = list(sources())


def _is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


@pytest.mark.parametrize("module,path", SOURCES, ids=[m for m, _ in SOURCES])
def test_imports_run_one_way(module, path):
    tree = ast.parse(path.read_text())
    own = layer(module)
    full = module + (".__init__" if _is_package(path) else "")
    for target, node in imports(full, tree):
        if target.split(".")[0] not in PROJECT:
            continue
        assert layer(target) in ALLOWED[own], f"{path.name}:{node.lineno}: {own} imports {target}"


@pytest.mark.parametrize("module,path", SOURCES, ids=[m for m, _ in SOURCES])
def test_no_function_level_imports(module, path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            assert not inner, f"{path.name}:{inner[0].lineno if inner else 0}: an import inside {node.name}()"


def test_the_course_import_path_is_light():
    """``import Miniproject_2.model`` adds torch's own imports and the blocks only: no training
    loop, data pipeline or plots (torch 2.13 itself loads tqdm and torch.distributed)."""
    code = (
        "import sys, torch; before = set(sys.modules); import Miniproject_2.model; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    heavy = [m for m in added if m.split(".")[0] in ("tqdm", "skimage", "matplotlib", "PIL", "numpy")]
    heavy += [m for m in added if m.startswith("torch.distributed") or m in ("impl.app.train", "impl.app.loop")]
    assert not heavy, heavy
    assert "impl.app.course" in added


APPLICATION = sorted((ROOT / "impl" / "app").rglob("*.py"))
MAX_LINES = 50  # a function a reader holds in their head, docstring included


@pytest.mark.parametrize("path", APPLICATION, ids=[p.name for p in APPLICATION])
def test_application_functions_are_under_fifty_lines(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            assert lines < MAX_LINES, f"{path.name}:{node.lineno}: {node.name}() is {lines} lines"
