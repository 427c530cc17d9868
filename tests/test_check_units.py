"""The parts of ``n2n check`` one at a time: the comparison, the diagnoses, the message frames,
and the target forms a user can name."""

import io
import os
import pickle

import pytest
import torch

from harness.check import child as child_module
from harness.check import protocol
from harness.check.child import Child
from harness.check.command import UsageError, _why, check, resolve, write_junit, write_markdown
from harness.check.conclude import Cell
from harness.check.diagnose import diagnose
from harness.check.run import Report
from harness.parity import error_and_tolerance, max_errors, mismatch

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
OK = ROOT / "tests" / "data" / "submissions" / "ok_handout"


def test_mismatch_names_what_differs():
    x = torch.ones(2, 3, dtype=torch.float64)
    assert mismatch(x, x.clone(), 6) is None
    assert "shape" in mismatch(x[0], x, 6)
    assert "dtype" in mismatch(x.float(), x, 6)
    assert "inf/nan" in mismatch(x, torch.full_like(x, float("nan")), 6)
    assert "max abs error" in mismatch(x + 1, x, 6)
    assert mismatch(x.log() / 0 * 0, x, 6) == "NaN at 6 of 6 values where torch's are finite"
    assert mismatch(x / 0, x, 6) == "inf at 6 of 6 values where torch's are finite"
    assert "device meta != torch's cpu" in mismatch(x.to("meta"), x, 6)
    assert error_and_tolerance(x[:0], x[:0], 1) == (0.0, 0.0)
    assert max_errors(x[:0], x[:0]) == (0.0, 0.0) and max_errors(2 * x, x) == (1.0, 1.0)


@pytest.mark.parametrize(
    "wrong,label",
    [
        (lambda e: -e, "sign"),
        (lambda e: 2 * e, "factor 2"),
        (lambda e: e / 3, "divided by the batch size"),
        (lambda e: 3.7 * e, "wrong by a factor 3.7"),
        (lambda e: e.transpose(-1, -2), "transposed"),
        (lambda e: e.transpose(0, 1), "transposed"),  # a weight gradient, in_channels == out_channels
        (lambda e: e.roll(1, dims=-1), "shifted by one"),
        (lambda e: e[..., :-1], "wrong shape"),
        (lambda e: None, "no input gradient returned"),
        (lambda e: torch.randn(e.shape, generator=torch.Generator().manual_seed(5), dtype=e.dtype), None),
    ],
)
def test_diagnoses(wrong, label):
    expected = torch.randn(3, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    actual = wrong(expected)
    assert diagnose(actual, expected, {"batch": 3}, "input gradient", {}) == label


def test_no_diagnosis_of_nothing_and_a_buffer_that_explains_nothing():
    assert diagnose(torch.ones(2, 0), torch.ones(2, 0), {}, "output", {}) is None
    expected = torch.arange(1.0, 7.0)
    assert diagnose(2 * expected, expected, {}, "gradient of weight", {}, torch.ones(6)) == "factor 2"


def test_a_single_number_is_not_a_factor_of_another():
    assert diagnose(torch.tensor([3.0]), torch.tensor([1.25]), {"batch": 1}, "gradient of bias", {}) is None


def test_garbage_before_the_first_backward_is_named():
    expected, garbage = torch.ones(4), torch.full((4,), 7.0)
    assert diagnose(expected + garbage, expected, {}, "gradient of weight", {}, garbage) == "not initialised"


def test_replies_are_read_without_running_code():
    buffer = io.BytesIO()
    protocol.write_frame(buffer, protocol.encode_reply({"output": torch.ones(2)}))
    buffer.seek(0)
    assert torch.equal(protocol.decode_reply(protocol.read_frame(buffer))["output"], torch.ones(2))
    with pytest.raises(EOFError):
        protocol.read_frame(io.BytesIO(b"\x05\x00\x00\x00\x00\x00\x00\x00ab"))
    with pytest.raises(ValueError, match="more than the checker reads"):
        protocol.read_frame(io.BytesIO((protocol.MAX_REPLY + 1).to_bytes(8, "little")))
    buffer = io.BytesIO()
    torch.save([1, 2], buffer)
    with pytest.raises(ValueError, match="not a dict"):
        protocol.decode_reply(buffer.getvalue())
    with pytest.raises(Exception, match="Weights only load failed"):
        protocol.decode_reply(pickle.dumps({"x": object()}, protocol=2))
    assert protocol.decode_request(protocol.encode_request({"op": "load"})) == {"op": "load"}


def test_every_target_form(tmp_path):
    assert resolve(str(OK))["module"] == "Miniproject_2.model"
    assert resolve(str(OK / "Miniproject_2")) == {"kind": "module", "root": str(OK), "module": "Miniproject_2.model"}
    assert resolve(str(OK / "Miniproject_2" / "model.py"))["kind"] == "file"
    assert resolve("Miniproject_2.model")["module"] == "Miniproject_2.model"
    with pytest.raises(UsageError, match="not a folder"):
        resolve("no such thing!")
    report = check(str(OK / "Miniproject_2" / "model.py"), blocks="ReLU", quick=True, time_limit=10)
    assert report.ok and report.table["ReLU"]["forward"] == "pass"
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UsageError, match="no blocks found"):
        check(str(empty), time_limit=10)
    with pytest.raises(UsageError, match="adapter"):
        check(str(OK), adapter=str(tmp_path / "missing.py"))


def test_why_an_import_failed():
    assert _why({"error": {"type": "E", "message": "m", "where": "a.py:1"}}) == "E: m (a.py:1)"
    assert _why({"timeout": 2.0}) == "the import took more than 2 s"
    assert _why({"crash": "the target's process exited with status 3"}).endswith("status 3")


def test_reports_name_skipped_blocks_and_notes(tmp_path):
    report = Report("t", cells={"MaxPool2d": {"forward": Cell(status="not checked")}}, notes={"Conv2d: adapted"})
    report.not_checked, report.exit_status = {"MaxPool2d": "the constructor refused every configuration"}, 3
    write_junit(report, tmp_path / "r.xml")
    write_markdown(report, tmp_path / "r.md")
    assert '<skipped message="the constructor refused every configuration"' in (tmp_path / "r.xml").read_text()
    md = (tmp_path / "r.md").read_text()
    assert "## Adapted\n\n- Conv2d: adapted" in md and "## Findings\n\nNone." in md
    assert "## Not checked\n\n- MaxPool2d: the constructor refused every configuration" in md


def _target(tmp_path, body):
    path = tmp_path / "model.py"
    path.write_text("import os\n" + body)
    return resolve(str(path))


def test_a_child_that_dies_is_restarted_and_a_failed_restart_is_the_reply(tmp_path):
    marker = tmp_path / "loaded"
    body = f"if os.path.exists({str(marker)!r}):\n    raise RuntimeError('second import')\n"
    body += f"open({str(marker)!r}, 'w').close()\nclass ReLU:\n    def forward(self, x):\n        os._exit(3)\n"
    child = Child(_target(tmp_path, body), None, 10, isolation="process")  # (its marker is written beside it)
    try:
        assert child.load() is child.load() and child.load()["blocks"] == ["ReLU"]
        request = {"op": "layer", "block": "ReLU", "kwargs": {}, "defaults": {}, "input": torch.ones(1), "grad": None}
        assert child.ask(request) == {"crash": "the target's process exited with status 3"}
        assert child.ask(request)["error"]["message"] == "second import"
    finally:
        child.close()


def test_a_child_gone_before_the_request_or_an_unreadable_reply_is_a_crash(tmp_path, monkeypatch):
    child = Child(_target(tmp_path, "class ReLU:\n    pass\n"), None, 10, isolation="process")
    try:
        assert child.load()["blocks"] == ["ReLU"]
        proc = child.proc
        proc.kill()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        monkeypatch.setattr(proc, "poll", lambda: None)  # the checker has not noticed
        assert child.ask({"op": "layer"}) == {"crash": "the target's process killed by SIGKILL"}
        assert child.ask({"op": "no_such_op"})["error"]["type"] == "AttributeError"  # restarted

        def garbled(payload):
            raise ValueError("not a reply")

        monkeypatch.setattr(protocol, "decode_reply", garbled)
        assert child_module.protocol is protocol
        assert child.ask({"op": "layer"}) == {"crash": "unreadable reply (ValueError: not a reply)"}
        assert child.proc is None  # stopped: the next request starts a fresh one
    finally:
        child.close()


def test_a_target_whose_import_kills_its_process_is_a_usage_error(tmp_path):
    _target(tmp_path, "os._exit(4)\n")
    with pytest.raises(UsageError, match="cannot import the target: the target's process exited with status 4"):
        check(str(tmp_path / "model.py"), time_limit=10)
