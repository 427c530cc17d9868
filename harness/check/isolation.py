"""Where a stranger's code runs: the system's own tools, no sandbox of our making.

``process``: the worker in its own session, with a scrubbed environment (no variable of the
user's but the coverage tool's), a scratch working directory, HOME and TMPDIR, and resource
limits it cannot raise again. ``bwrap`` adds bubblewrap around that: no network, a read-only view
of the system and of the submission, the scratch folder the only writable place, its own PID
namespace (it sees neither n2n nor any other process of the user) and ``--die-with-parent``.
Either way n2n is a child subreaper (:class:`Reaper`), so every descendant, ``setsid`` or not,
comes back to it and is killed before n2n goes on."""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ISOLATIONS = ("auto", "bwrap", "process")
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
SWEEP_LIMIT = 5.0  # seconds to kill a fork loop's last members (each round kills all it sees)
# Bounds that no honest check comes near, so that a runaway target ends as a crash, not a frozen
# machine. Address space counts torch's mappings too (its import alone maps about 1 GiB).
LIMITS = {
    "address_space": (resource.RLIMIT_AS, 16 << 30),
    "open_files": (resource.RLIMIT_NOFILE, 256),
    "file_size": (resource.RLIMIT_FSIZE, 1 << 30),
    "core": (resource.RLIMIT_CORE, 0),
}
EXTRA_PROCESSES = 256  # RLIMIT_NPROC counts every task of the user: this many above what runs now


class IsolationError(Exception):
    """The isolation asked for is not available here (the message says how to get it)."""


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and may make namespaces here (some containers forbid it)."""
    path = shutil.which("bwrap")
    if path is None:
        return False
    probe = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose(isolation: str) -> str:
    """``auto`` is bubblewrap where it works, else the plain process."""
    if isolation not in ISOLATIONS:
        raise IsolationError(f"unknown isolation {isolation!r} (one of {', '.join(ISOLATIONS)})")
    if isolation == "process" or (isolation == "auto" and not bwrap_works()):
        return "process"
    if not bwrap_works():
        raise IsolationError(
            "bubblewrap (bwrap) is not installed or cannot make namespaces here; "
            "install it (Debian/Ubuntu: apt-get install bubblewrap) or use --isolation process"
        )
    return "bwrap"


def environment(scratch: Path, paths: list[str], threads: int) -> dict[str, str]:
    """All the worker gets: nothing of the user's environment (a secret there stays there) but
    what Python and torch need (``paths``: where to import from, the checker's first and then
    n2n's own, so that a scratch HOME hides no user-site torch; ``threads``: torch's thread
    count, n2n's own), and the coverage tool's own variables so that a measured test run still
    measures the worker."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env |= {k: v for k, v in os.environ.items() if k.startswith(("COVERAGE_", "COV_CORE_"))}
    return env


def make_scratch(scratch: Path) -> Path:
    """The worker's working directory, home and temporary folder, all inside ``scratch``."""
    for name in ("work", "home", "tmp"):
        (scratch / name).mkdir(exist_ok=True)
    return scratch / "work"


def command(isolation: str, argv: list[str], scratch: Path, readable: list[Path]) -> list[str]:
    """``argv`` wrapped for ``isolation``: under bubblewrap the whole system read-only but the
    user's home hidden (``readable``: what it needs, the submission among it, shown again),
    ``scratch`` the one writable folder, fresh /proc, /dev and /tmp, every namespace unshared (no
    network), no capability (run by root it would keep them all), a new session (no terminal to
    inject into), killed with n2n."""
    if isolation == "process":
        return argv
    wrap = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    wrap += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    home = hidden_home()
    wrap += ["--tmpfs", str(home)] if home is not None else []
    for path in readable:
        if path.resolve() != Path("/"):  # (bound again it would cover the fresh /dev, /proc and /tmp)
            wrap += ["--ro-bind", str(path), str(path)]
    wrap += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch / "work")]
    return wrap + ["--", *argv]


def hidden_home() -> Path | None:
    """The user's home, which bubblewrap hides (keys, tokens, other people's submissions)."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    return home if home.is_dir() and home != Path("/") else None


def limits(cpu_seconds: float) -> dict[str, int]:
    """The worker's resource limits, by name (it applies them itself: :func:`apply_limits`)."""
    values = {name: value for name, (_, value) in LIMITS.items()}
    values["cpu"] = max(1, int(cpu_seconds))
    if os.getuid() != 0:  # root is never held to RLIMIT_NPROC: no use setting it
        values["processes"] = _tasks_of(os.getuid()) + EXTRA_PROCESSES
    return values


def apply_limits(values: dict[str, int]) -> None:
    """Soft and hard limits alike, so the target cannot raise them again; never above a hard limit
    already there."""
    codes = {name: code for name, (code, _) in LIMITS.items()}
    codes |= {"cpu": resource.RLIMIT_CPU, "processes": resource.RLIMIT_NPROC}
    for name, value in values.items():
        code = codes[name]
        _, hard = resource.getrlimit(code)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(code, (value, value))


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += sum(1 for _ in (entry / "task").iterdir())
        except OSError:  # gone since the listing
            continue
    return count


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int = 0) -> int:
    if option == PR_GET_CHILD_SUBREAPER:  # the one answer written through a pointer
        out = ctypes.c_int(0)
        _libc().prctl(option, ctypes.byref(out), 0, 0, 0)
        return out.value
    return int(_libc().prctl(option, value, 0, 0, 0))


def _processes() -> dict[int, tuple[int, bool]]:
    """{pid: (parent pid, whether a zombie)} of every process this one can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # the name before it may hold anything
        except (OSError, IndexError):
            continue
        found[int(entry)] = (int(fields[1]), fields[0] == b"Z")
    return found


def descendants(root: int, processes: dict[int, tuple[int, bool]] | None = None) -> set[int]:
    """Every process below ``root``, zombies included."""
    processes = _processes() if processes is None else processes
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in out:
                out.add(pid)
                todo.append(pid)
    return out


class Reaper:
    """Makes this process a child subreaper for its life (``close`` restores the flag) and not
    dumpable (a process of the same user cannot open ``/proc/<n2n>/fd``; root still can), and
    kills whatever descends from it that was not there before."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.was_subreaper = _prctl(PR_GET_CHILD_SUBREAPER)
        self.was_dumpable = _prctl(PR_GET_DUMPABLE)
        self.before = descendants(self.me)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_DUMPABLE, 0)

    def sweep(self) -> int:
        """SIGKILL every new descendant, again until none is left (a fork loop makes more while
        it dies) or :data:`SWEEP_LIMIT` passes, and reap those that came back to us. Returns how
        many processes were sent SIGKILL."""
        killed, end = 0, time.monotonic() + SWEEP_LIMIT
        while time.monotonic() < end:
            processes = _processes()
            new = descendants(self.me, processes) - self.before
            living = [pid for pid in new if not processes[pid][1]]
            for pid in living:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            for pid in new:  # ours to reap: a zombie child that is not some earlier caller's
                if processes[pid][0] == self.me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            if not new:
                break
            time.sleep(0.005)
        return killed

    def close(self) -> None:
        self.sweep()
        _prctl(PR_SET_CHILD_SUBREAPER, self.was_subreaper)
        _prctl(PR_SET_DUMPABLE, self.was_dumpable)
