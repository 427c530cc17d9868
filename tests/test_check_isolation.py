"""What ``n2n check`` keeps the target's code from, under each isolation (a plain process, and
bubblewrap where it can run): processes left behind (``setsid`` or not), signals to n2n, writes
into n2n's output, the user's environment, files outside the scratch folder, a run that never
ends; and the flags that choose and bound all that. After every test no process of it is left
(the ``nothing_left`` guard)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.check import isolation as iso
from harness.check.child import Child, _signal_name
from harness.check.command import UsageError, check, resolve
from n2n.cli import main
from tests.data.submissions import _make_hostile
from tests.hostile import BWRAP, ISOLATIONS, marked, no_process_left, write_hostile

LIMIT = 20.0  # seconds per check: no test here waits for it (a busy machine may need it)


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    return write_hostile(tmp_path_factory)


@pytest.fixture(autouse=True)
def nothing_left(hostile):
    with no_process_left(hostile):
        yield


def run(folder: Path, name: str, isolation: str, **options):
    return check(str(folder / name), blocks="ReLU", quick=True, time_limit=LIMIT, isolation=isolation, **options)


def cli(folder: Path, name: str, isolation: str, tmp_path: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "n2n", "check", str(folder / name), "--blocks", "ReLU", "--quick"]
    args += ["--time-limit", str(LIMIT), "--isolation", isolation]
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=120)


# processes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_setsid_grandchild_is_killed_with_the_child(hostile, isolation):
    child = Child(resolve(str(hostile / "setsid_grandchild")), None, LIMIT, isolation=isolation)
    try:
        assert "blocks" in child.load()
        assert marked(hostile)  # running, in its own session, while the child lives
    finally:
        child.close()
    assert marked(hostile) == []


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_run_with_a_setsid_grandchild_passes_and_leaves_nothing(hostile, isolation, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["check", str(hostile / "setsid_grandchild"), "--blocks", "ReLU", "--quick", "--isolation", isolation]
    assert main([*args, "--json", str(out)]) == 0
    assert f"isolation: {isolation})" in capsys.readouterr().out.splitlines()[0]
    assert json.loads(out.read_text())["isolation"] == isolation


def test_the_reaper_kills_an_orphan_in_its_own_session():
    reaper = iso.Reaper()
    try:
        code = "import subprocess, sys; subprocess.Popen(['sleep', '60'], start_new_session=True)"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
        orphans = iso.descendants(os.getpid()) - reaper.before
        assert orphans  # came back to us, a subreaper, when its parent exited
        assert reaper.sweep() >= 1
    finally:
        reaper.close()
    assert not iso.descendants(os.getpid()) & orphans


# signals and writes to n2n ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["stop_parent", "interrupt_parent"])
@pytest.mark.parametrize("isolation", [BWRAP])
def test_under_bubblewrap_the_target_cannot_signal_n2n(hostile, isolation, name):
    report = run(hostile, name, isolation)
    assert report.table["ReLU"]["forward"] == "pass"


def test_as_a_plain_process_a_sigint_from_the_target_ends_the_run_without_a_traceback(hostile, tmp_path):
    # (a SIGSTOP would freeze n2n there: not tried; README says so)
    done = cli(hostile, "interrupt_parent", "process", tmp_path)
    assert done.returncode == 130, done.stderr
    assert "n2n: interrupted; no report written" in done.stderr and "Traceback" not in done.stderr


def test_nothing_the_target_writes_to_n2n_s_stdout_comes_after_the_report(hostile, tmp_path):
    # as a plain process n2n's stdout is in reach (as root; or a file it was sent to), not its order
    done = cli(hostile, "write_parent_stdout", "process", tmp_path)
    header = done.stdout.index("n2n check ")
    assert "FORGED" not in done.stdout[header:] and "Traceback" not in done.stderr
    assert done.returncode == 0 and done.stdout.rstrip().endswith("every check passes")


@pytest.mark.parametrize("isolation", [BWRAP])
def test_under_bubblewrap_n2n_s_stdout_is_out_of_reach(hostile, isolation, capfd):
    report = run(hostile, "write_parent_stdout", isolation)
    assert "FORGED" not in capfd.readouterr().out
    # /proc/<its parent>/fd/1 is the sandbox's own init, which holds the reply pipe: a broken reply
    assert report.table["ReLU"]["forward"] == "crash"


# what the target sees ------------------------------------------------------------------------
@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_the_target_gets_none_of_the_user_s_environment(hostile, isolation, monkeypatch):
    monkeypatch.setenv("N2N_TEST_SECRET", "hunter2")
    report = run(hostile, "prints_environment", isolation)
    assert report.ok
    assert "hunter2" not in report.prints and "N2N_TEST_SECRET" not in report.prints
    assert "('HOME', '/" in report.prints and "n2n-check-" in report.prints  # a scratch home


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_files_the_target_writes_stay_in_its_scratch_folder_and_your_home_is_hidden(hostile, isolation):
    own = hostile / "writes_outside" / "Miniproject_2" / "pwned-own-folder"
    outside = [Path(p) for p in _make_hostile.outside_paths(str(hostile))]
    secret = Path(_make_hostile.secret_path(str(hostile)))
    secret.write_text("hunter2")
    try:
        report = run(hostile, "writes_outside", isolation)  # its home, TMPDIR and cwd: the scratch folder, gone
        assert report.ok
        written = [p for p in (own, *outside) if p.exists()]
        # a plain process reads and writes wherever you may: only bubblewrap keeps it from doing so
        assert written == ([] if isolation == "bwrap" else [own, *outside])
        assert ("read: hunter2" in report.prints) == (isolation == "process")
    finally:
        for path in (own, *outside, secret):
            path.unlink(missing_ok=True)


def test_the_worker_holds_the_resource_limits_it_was_given():
    values = {"address_space": 8 << 30, "open_files": 64, "cpu": 100, "file_size": 1 << 20, "core": 0}
    code = "from harness.check import isolation; isolation.apply_limits(%r); print(open('/proc/self/limits').read())"
    code %= values
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    lines = {line[:26].strip(): line[26:].split()[:2] for line in out.splitlines()[1:]}
    assert lines["Max address space"] == [str(8 << 30)] * 2
    assert lines["Max open files"] == ["64", "64"] and lines["Max cpu time"] == ["100", "100"]
    assert lines["Max file size"] == [str(1 << 20)] * 2


def test_the_environment_and_the_bubblewrap_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("N2N_TEST_SECRET", "hunter2")
    env = iso.environment(tmp_path, ["/checker", "/site"], 3)
    assert "N2N_TEST_SECRET" not in env and env["HOME"] == str(tmp_path / "home")
    assert env["TMPDIR"] == str(tmp_path / "tmp") and env["PYTHONPATH"] == "/checker:/site"
    assert env["OMP_NUM_THREADS"] == "3"
    argv = iso.command("bwrap", ["python"], tmp_path, [Path("/sub"), Path("/")])  # ("/" is bound once only)
    assert argv.count("/") == 2
    home = ["--tmpfs", os.path.expanduser("~")]
    for flags in (["--unshare-all"], ["--cap-drop", "ALL"], ["--ro-bind", "/sub", "/sub"], home):
        assert any(argv[i : i + len(flags)] == flags for i in range(len(argv)))
    assert argv[argv.index("--bind") + 1] == str(tmp_path) and argv[-2:] == ["--", "python"]
    assert iso.command("process", ["python"], tmp_path, []) == ["python"]


# bounds and flags ----------------------------------------------------------------------------
def test_total_time_ends_a_run_that_crawls(hostile):
    start = time.monotonic()
    report = check(str(hostile / "half_frame_then_sleep"), blocks="ReLU", quick=True, time_limit=600, total_time=20)
    assert time.monotonic() - start < 40
    assert report.table["ReLU"]["forward"] == "timeout"
    assert any("--total-time (20 s)" in n for n in report.notes)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--time-limit", "inf"], "--time-limit must be a finite number of seconds, got inf"),
        (["--time-limit", "nan"], "--time-limit must be a finite number of seconds, got nan"),
        (["--time-limit", "-1"], "--time-limit must be positive, got -1.0"),
        (["--total-time", "0"], "--total-time must be positive, got 0.0"),
    ],
)
def test_time_flags_refuse_what_is_not_a_finite_positive_number(hostile, flags, message, capsys):
    assert main(["check", str(hostile / "setsid_grandchild"), *flags]) == 2
    assert capsys.readouterr().err == f"n2n: error: {message}\n"
    with pytest.raises(ValueError, match="rule must be one of auto, ee559, none"):
        check(str(hostile / "setsid_grandchild"), rule="strict")


def test_bubblewrap_counts_as_working_only_when_it_makes_namespaces(monkeypatch):
    try:
        for found in (None, "/bin/false", "/nonexistent/bwrap"):  # absent, refused, not runnable
            iso.bwrap_works.cache_clear()
            monkeypatch.setattr(iso.shutil, "which", lambda name, found=found: found)
            assert not iso.bwrap_works()
            assert iso.choose("auto") == "process"
        with pytest.raises(iso.IsolationError, match="unknown isolation 'docker'"):
            iso.choose("docker")
    finally:
        iso.bwrap_works.cache_clear()


def test_a_user_is_held_to_a_process_count_root_is_not(monkeypatch):
    assert "processes" not in iso.limits(10) or os.getuid() != 0
    monkeypatch.setattr(os, "getuid", lambda: 54321)  # nobody's: none of its tasks run
    assert iso.limits(10)["processes"] == iso.EXTRA_PROCESSES and iso.limits(10)["cpu"] == 10


def test_a_spent_total_time_answers_at_once(hostile):
    child = Child(resolve(str(hostile / "setsid_grandchild")), None, LIMIT, total_time=1e-9, isolation="process")
    try:
        assert child.load() == {"timeout": 1e-9} and child.out_of_time
        assert child.ask({"op": "layer"}) == {"timeout": 1e-9}
    finally:
        child.close()


def test_asking_for_bubblewrap_where_it_cannot_run_says_how_to_get_it(hostile, monkeypatch, capsys):
    monkeypatch.setattr(iso, "bwrap_works", lambda: False)
    with pytest.raises(UsageError, match="apt-get install bubblewrap"):
        check(str(hostile / "setsid_grandchild"), isolation="bwrap")
    assert main(["check", str(hostile / "setsid_grandchild"), "--isolation", "bwrap"]) == 2
    assert capsys.readouterr().err.startswith("n2n: error: --isolation: bubblewrap (bwrap) is not installed")


def test_signal_names_in_crash_messages():
    assert _signal_name(signal.SIGXCPU) == "SIGXCPU (its CPU time limit)" and _signal_name(200) == "signal 200"
