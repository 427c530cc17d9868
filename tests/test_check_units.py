"""The parts of ``n2n check`` one at a time: the comparison, the diagnoses, the message frames,
and the target forms a user can name."""

import io

import pytest
import torch

from harness.check import protocol
from harness.check.command import UsageError, check, resolve
from harness.check.diagnose import diagnose
from harness.parity import error_and_tolerance, mismatch

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
OK = ROOT / "tests" / "data" / "submissions" / "ok_handout"


def test_mismatch_names_what_differs():
    x = torch.ones(2, 3, dtype=torch.float64)
    assert mismatch(x, x.clone(), 6) is None
    assert "shape" in mismatch(x[0], x, 6)
    assert "dtype" in mismatch(x.float(), x, 6)
    assert "inf/nan" in mismatch(x, torch.full_like(x, float("nan")), 6)
    assert "max abs error" in mismatch(x + 1, x, 6)
    assert error_and_tolerance(x[:0], x[:0], 1) == (0.0, 0.0)


@pytest.mark.parametrize(
    "wrong,label",
    [
        (lambda e: -e, "sign"),
        (lambda e: 2 * e, "factor 2"),
        (lambda e: e / 3, "divided by the batch size"),
        (lambda e: 3.7 * e, "wrong by a factor 3.7"),
        (lambda e: e.transpose(-1, -2), "transposed"),
        (lambda e: e.roll(1, dims=-1), "shifted by one"),
        (lambda e: e[..., :-1], "wrong shape"),
        (lambda e: None, "no input gradient returned"),
        (lambda e: torch.randn(e.shape, generator=torch.Generator().manual_seed(5), dtype=e.dtype), None),
    ],
)
def test_diagnoses(wrong, label):
    expected = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    actual = wrong(expected)
    assert diagnose(actual, expected, {"batch": 3}, "input gradient", {}) == label


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
        protocol.decode_reply(__import__("pickle").dumps({"x": object()}, protocol=2))


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
