"""Atomic file writes and checkpoint loading.

A file is written to a temporary file in the destination's directory, flushed and ``fsync``-ed,
then moved over the destination with ``os.replace`` (atomic on POSIX and Windows): a crash or an
exception during the write leaves the previous file intact and no temporary file behind.

Checkpoints are plain dicts of tensors, numbers, strings, lists, tuples and dicts, so they load
with ``torch.load(weights_only=True)`` (no arbitrary code runs when a file is opened).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from .errors import UserError, field_error


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path``.

    Args:
        path: the destination; missing parent directories are created.
        write: writes the content into the binary file object it receives.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved model or image should be readable like any file
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError):  # disk full, read-only or missing folder: the previous file is intact
            raise UserError(
                f"could not write {path}: {e.strerror or e}; the previous file, if any, is unchanged"
            ) from None
        raise
    return path


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and write (then remove) a small file in it, so a run that
    could not save its results fails before it starts, not after.

    Raises:
        UserError: the folder cannot be created or written (permissions, read-only, disk full, a
            file in the way).
    """
    directory = Path(directory)
    atomic_write(directory / ".n2n-write-test", lambda f: f.write(b"\0" * 4096))
    (directory / ".n2n-write-test").unlink()
    return directory


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`).

    torch's writer reports a failed write (a full disk) as ``RuntimeError: [enforce fail at
    inline_container.cc] ... unexpected pos``, not as an OSError; both become a UserError."""

    def write(f: IO[bytes]) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # only the write can fail: obj holds tensors and plain values
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OSError(errno.EIO, f"the write failed, is the disk full? (torch: {first})") from None

    return atomic_write(path, write)


def remove_stray_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) an :func:`atomic_write` killed mid-write left in
    ``directory``; call it only while no other process writes there (under the run lock)."""
    strays = sorted(Path(directory).glob(".*.*.tmp")) if Path(directory).is_dir() else []
    for stray in strays:
        with contextlib.suppress(FileNotFoundError):
            stray.unlink()
    return strays


def check_can_create(path: str | Path, field: str, directory: bool = False) -> Path:
    """Refuse, without creating anything, a ``path`` that cannot be written: a folder where a file
    is expected (or the other way round), a file in the way of a parent folder, a folder that is
    not writable (permissions, a read-only file system).

    Raises:
        UserError: about ``field``, the caller's name for the path.
    """
    path = Path(path)
    if path.is_dir() != directory and path.exists():
        raise field_error(field, f": could not write {path}: it is {'a file' if directory else 'a directory'}")
    parent = path if directory else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise field_error(field, f": could not write {path}: {parent} is a file")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK | (os.X_OK if target.is_dir() else 0)):
        raise field_error(field, f": could not write {path}: {target} is not writable")
    return path


def safe_load(path: str | Path, what: str, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU: tensors and plain containers only, so
    a crafted pickle runs nothing. A missing file raises FileNotFoundError naming ``what``; a file
    torch cannot read raises UserError saying it is not ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files: the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (UnpicklingError, struct.error ...) on a foreign file
        raise UserError(f"{path} is not {expected}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    """torch.load's error in one line: what the weights-only unpickler refused, else the first line."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(" Please use ")[0] if lines else type(e).__name__


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` onto the CPU, with ``weights_only=True``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UserError: the file is not a checkpoint (not a torch file, or not a dict).
    """
    obj = safe_load(path, "checkpoint", "a checkpoint this program can read")
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}")
    return obj
