"""What the tests of ``n2n check`` against hostile submissions share: the isolations to run
under (bubblewrap skipped where it cannot run), the submissions written once per session, and
the guard that no process of a test is left when it ends (each test module wraps the last two
in its fixtures)."""

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.check.isolation import bwrap_works, descendants
from tests.data.submissions import _make_hostile

NO_BWRAP = "bubblewrap is not installed or cannot make namespaces here"
BWRAP = pytest.param("bwrap", id="bwrap", marks=pytest.mark.skipif(not bwrap_works(), reason=NO_BWRAP))
ISOLATIONS = [pytest.param("process", id="process"), BWRAP]


def write_hostile(tmp_path_factory) -> Path:
    """The folder holding every hostile submission (``_make_hostile.py``), for a session fixture."""
    made = tmp_path_factory.mktemp("hostile")
    _make_hostile.write(str(made))
    return made


def marked(folder) -> list[int]:
    """Processes started by the hostile submissions under ``folder`` (their command line carries
    the marker and the submission's path), zombies aside (they have none)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if _make_hostile.MARKER.encode() in argv and str(folder).encode() in argv:
            found.append(int(pid))
    return found


@contextlib.contextmanager
def no_process_left(folder: Path) -> Iterator[None]:
    """Around a test: afterwards no process below this one that was not there before, and none
    of the submissions' marked processes anywhere (a ``setsid`` one escapes the first look)."""
    before = descendants(os.getpid())
    yield
    time.sleep(0.05)  # a SIGKILLed process is gone a moment after the signal
    left = descendants(os.getpid()) - before
    if left or marked(folder):
        pytest.fail(f"processes left: below the test {sorted(left)}, marked {marked(folder)}")
