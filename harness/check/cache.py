"""The cache key of one submission's check: a hash of everything its result depends on, so a
rerun of a class re-checks only the submissions whose key changed.

The key covers the submission's files (sorted relative paths and contents), the adapter's
contents, the flags that change a result (seed, --quick, --blocks, --time-limit) and the
checker's version (n2n's package version, torch's, and a hash of the checker's own sources, so
a changed check never serves an old answer)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import torch

CHECKER = Path(__file__).resolve().parent
# folders and files a submission carries that never change its result: bytecode and VCS metadata
IGNORED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".ipynb_checkpoints"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}
# the class files are rendered afresh from the records on every run: how they look changes no result
RENDERING = {"class_report.py", "class_page.py", "class_folder.py"}


def files_digest(folder: Path) -> str:
    """SHA-256 over the sorted relative paths and contents of ``folder``'s files (a file: itself)."""
    digest = hashlib.sha256()
    for path in _files(folder):
        name = path.relative_to(folder).as_posix() if path != folder else path.name
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    found = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(p in IGNORED_DIRS for p in parts) or path.suffix in IGNORED_SUFFIXES or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def checker_version() -> str:
    """n2n's package version (``source`` when not installed), torch's, and a hash of the checker's sources."""
    try:
        package = importlib.metadata.version("n2n-blocks")
    except importlib.metadata.PackageNotFoundError:
        package = "source"
    sources = hashlib.sha256()
    checker = [p for p in sorted(CHECKER.glob("*.py")) if p.name not in RENDERING]
    for path in checker + [CHECKER.parent / "parity.py"]:  # parity: the tolerances
        sources.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"n2n {package}, torch {torch.__version__}, checker {sources.hexdigest()[:16]}"


def settings_digest(settings: dict[str, Any]) -> str:
    """A stable hash of the flags that change a result (any JSON-serialisable mapping)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def key(files: Path, adapter: Path | None, settings: dict[str, Any], version: str) -> str:
    """The cache key of one submission: its files, its adapter, the flags and the checker's version."""
    parts = {
        "files": files_digest(files),
        "adapter": hashlib.sha256(adapter.read_bytes()).hexdigest() if adapter is not None else None,
        "settings": settings_digest(settings),
        "version": version,
    }
    return settings_digest(parts)
