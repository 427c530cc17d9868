"""``n2n check`` on course-format submissions (tests/data/submissions): correct ones in several
contract styles pass with exit status 0; each broken one is diagnosed (block, quantity, the
configuration feature its bug needs, the diagnosis) with exit status 1; a hang, a crash and
import-time side effects are handled. The expectations are in ``expected.json`` beside them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.check.command import UsageError, check, resolve
from n2n.cli import main
from tests.data.submissions import _make_bugs

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "data" / "submissions"
EXPECTED = json.loads((SUBMISSIONS / "expected.json").read_text())
# the blocks a bug lives in, so that each case checks only what it needs (a correct submission
# is checked whole)
ONLY = {"bug_sgd_no_lr": "Conv2d,SGD", "bug_sequential_backward_none": "Sequential", "hang_forward": "ReLU"}


@pytest.fixture(scope="session")
def submission(tmp_path_factory):
    """A submission's folder: the hand-written ones in tests/data/submissions, the ones made from
    ok_handout by one textual edit each (``_make_bugs.py``) written once per session."""
    made = tmp_path_factory.mktemp("submissions")
    _make_bugs.write(str(made))
    return lambda name: (made if name in _make_bugs.NAMES else SUBMISSIONS) / name


def _blocks(name):
    findings = EXPECTED[name]["findings"]
    if name in ONLY or not findings:
        return ONLY.get(name)
    return ",".join(sorted({f["block"] for f in findings}))


def _matches(want, f):
    """A finding as expected.json describes it (a diagnosis of None: none, or only a factor)."""
    diagnosis = want.get("diagnosis")
    return (
        f.block == want["block"]
        and f.quantity == want["quantity"]
        and want.get("feature") in (None, f.feature)
        and (f.diagnosis or "").startswith(diagnosis or "")
        and (diagnosis is not None or f.diagnosis is None or f.diagnosis.startswith("wrong by"))
        and want.get("course") in (None, f.course)
    )


@pytest.mark.parametrize("name", [n for n in EXPECTED if EXPECTED[n]["exit"] != 2])
def test_submission_is_diagnosed(name, submission):
    """Every true bug found with its block, quantity, feature and cause; no finding on a block
    that is right; the exit status (3: something could not be checked)."""
    adapter = submission(name) / "adapter.py"
    blocks = _blocks(name)
    quick = "course network" not in (blocks or "")  # (the course network is trained outside --quick)
    report = check(str(submission(name)), str(adapter) if adapter.exists() else None, blocks, quick=quick, time_limit=5)
    expected = EXPECTED[name]
    lines = [f.line() for f in report.findings]
    assert report.exit_status == expected["exit"], (lines, report.not_checked)
    for want in expected["findings"]:
        assert any(_matches(want, f) for f in report.findings), f"expected {want}, got {lines}"
    wrongly = [f.line() for f in report.findings if f.block in expected.get("correct", [])]
    assert not wrongly, wrongly


def test_an_import_error_is_a_usage_error_naming_the_cause(submission):
    with pytest.raises(UsageError, match="cannot import the target: RuntimeError: broken on purpose"):
        check(str(submission("crash_import")), time_limit=5)
    assert main(["check", str(submission("crash_import"))]) == 2


def test_side_effects_and_prints_stay_in_the_child(submission):
    report = check(str(submission("side_effects")), blocks="Conv2d,ReLU", quick=True, time_limit=10)
    assert report.ok and "hello hello" in report.prints
    assert not list(submission("side_effects").rglob("__pycache__"))


@pytest.mark.parametrize(
    "target,message",
    [("no/such/folder", "not a folder"), ("tests", "no Miniproject_2/model.py"), ("x.py", "no such file")],
)
def test_unusable_targets_exit_2(target, message, capsys):
    assert main(["check", target]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(UsageError):
        resolve(target) if target != "tests" else check(target)


def test_the_projects_own_blocks_pass_every_check(tmp_path):
    """The CI gate: ``n2n check`` on this repository's Miniproject_2, with every report written."""
    out = [str(tmp_path / name) for name in ("r.json", "r.xml", "r.md")]
    cmd = [sys.executable, "-m", "n2n", "check", str(ROOT), "--json", out[0], "--junit-xml", out[1]]
    done = subprocess.run([*cmd, "--markdown", out[2]], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every check passes" in done.stdout
    report = json.loads(Path(out[0]).read_text())
    assert report["ok"] and report["table"]["Conv2d"]["parameters"] == "pass"
    assert report["table"]["course network"]["training"] == "pass"
    assert 'failures="0"' in Path(out[1]).read_text() and "Every check passes." in Path(out[2]).read_text()


def test_a_wrong_submission_writes_its_findings(tmp_path, submission):
    out = tmp_path / "r.json"
    args = ["check", str(submission("bug_conv_grads_div_batch")), "--blocks", "Conv2d", "--quick"]
    assert main([*args, "--json", str(out), "--junit-xml", str(tmp_path / "r.xml")]) == 1
    findings = json.loads(out.read_text())["findings"]
    assert findings[0]["diagnosis"] == "divided by the batch size" and findings[0]["feature"] == "batch > 1"
    assert "<failure" in (tmp_path / "r.xml").read_text()
    assert main(["check", str(SUBMISSIONS / "ok_handout"), "--blocks", "conv"]) == 2  # an unknown name


def test_a_time_limit_must_be_positive(capsys):
    assert main(["check", str(SUBMISSIONS / "ok_handout"), "--time-limit", "0"]) == 2
    assert capsys.readouterr().err == "n2n: error: --time-limit must be positive, got 0.0\n"


REPRODUCED = [
    "bug_conv_grads_div_batch",
    "bug_conv_stride_backward",
    "bug_relu_mask_upstream",
    "bug_sigmoid_at_upstream",
]
REPRODUCED += ["bug_transpose_wgrad_batch", "bug_conv_dilation_ignored"]


@pytest.mark.parametrize("name", REPRODUCED)
def test_reproducers_fail_on_the_bug_and_pass_on_the_fix(name, submission, tmp_path):
    report = check(str(submission(name)), None, _blocks(name), quick=True, time_limit=10, repro=str(tmp_path))
    numeric = [f for f in report.findings if f.error is not None]
    assert report.reproducers and len(report.reproducers) >= len(numeric)
    for path in report.reproducers:
        done = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        n = int(Path(path).stem.rsplit("_", 1)[1])
        finding = report.findings[n - 1]
        if finding.error is not None:
            assert f"largest error {finding.error:.3g} " in done.stdout, (done.stdout, finding.line())
        fixed = subprocess.run([sys.executable, path, str(SUBMISSIONS / "ok_handout")], capture_output=True, text=True)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "import harness" not in Path(path).read_text() and "import n2n" not in Path(path).read_text()
