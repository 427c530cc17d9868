"""The class's output folder: ``OUT/<name>/`` per submission (its reports and its record), and
``class.json`` (which submissions, checked how: what ``--merge`` reads), ``class.csv``,
``class.md`` and ``class.html``, each written atomically. :func:`merge` joins the folders of
several shards into one, whose class files are those one run over every submission writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from impl.app.checkpoint import atomic_write

from .class_page import page
from .class_report import csv_text, markdown
from .command import UsageError

MANIFEST = "class.json"
REPORTS = {"json": "report.json", "junit": "report.xml", "markdown": "report.md"}
RESULT = "result.json"  # one submission's record: what the class report and the cache read


def write_record(folder: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    atomic_write(folder / RESULT, lambda f: f.write(text.encode()))


def read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RESULT).read_text())
    except (OSError, ValueError):
        return None


def manifest(records: list[dict[str, Any]], flags: dict[str, Any], version: str, part: tuple[int, int] | None) -> dict:
    """Which submissions (by name), checked with which flags and checker, and which shard (K, N) or None."""
    names = [r["name"] for r in records]
    return {"submissions": names, "flags": flags, "version": version, "shard": list(part) if part else None}


def write_class(out: Path, records: list[dict[str, Any]], about: dict[str, Any]) -> list[Path]:
    """``class.json``, ``class.csv``, ``class.md``, ``class.html``."""
    texts = {
        MANIFEST: json.dumps(about, indent=1, sort_keys=True) + "\n",
        "class.csv": csv_text(records),
        "class.md": markdown(records, about),
        "class.html": page(out, records, about),
    }
    for name, content in texts.items():
        _write(out / name, content)
    return [out / name for name in texts]


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        text = f"merge: {folder}: no readable {MANIFEST} ({e}); is it the --out folder of a class check?"
        raise UsageError(text, "merge") from None


def merge(folders: list[Path], out: Path) -> list[dict[str, Any]]:
    """Join the class folders into ``out`` (each submission's folder copied, unless already there)
    and write the class files; the records, by name. The folders must hold disjoint submissions
    checked with the same flags and checker, and all N shards when they are shards."""
    manifests = [read_manifest(f) for f in folders]
    _same_settings(folders, manifests)
    _complete(manifests)
    records: dict[str, dict[str, Any]] = {}
    for folder, about in zip(folders, manifests):
        for name in about["submissions"]:
            if name in records:
                raise UsageError(f"merge: {name} is in two of the folders (the second: {folder})", "merge")
            record = read_record(folder / name)
            if record is None:
                raise UsageError(f"merge: {folder / name / RESULT}: missing or unreadable", "merge")
            records[name] = record
            _copy(folder / name, out / name)
    ordered = [records[name] for name in sorted(records)]
    first = manifests[0]
    write_class(out, ordered, manifest(ordered, first["flags"], first["version"], None))
    return ordered


def _same_settings(folders: list[Path], manifests: list[dict[str, Any]]) -> None:
    for folder, about in zip(folders[1:], manifests[1:]):
        for what in ("flags", "version"):
            if about[what] != manifests[0][what]:
                raise UsageError(
                    f"merge: {folder} was checked with {what} {about[what]}, {folders[0]} with {manifests[0][what]}",
                    "merge",
                )


def _complete(manifests: list[dict[str, Any]]) -> None:
    """Shards of one split must all be there (a missing one would silently drop submissions)."""
    parts = [tuple(m["shard"]) for m in manifests if m["shard"]]
    if not parts:
        return
    total = parts[0][1]
    missing = sorted(set(range(1, total + 1)) - {k for k, n in parts if n == total})
    if missing or any(n != total for _, n in parts) or len(parts) != len(manifests):
        given = ", ".join("/".join(map(str, m["shard"])) if m["shard"] else "unsharded" for m in manifests)
        raise UsageError(f"merge: the folders hold shards {given}; missing: {missing or 'none'} of {total}", "merge")


def _copy(source: Path, dest: Path) -> None:
    if source.resolve() == dest.resolve():
        return
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest)


def _write(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda f: f.write(data))
