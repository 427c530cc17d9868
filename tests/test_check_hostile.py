"""``n2n check`` against submissions that attack the checker through what they answer
(tests/data/submissions/_make_hostile.py): a reply pipe that stops half-way, is swapped or
closed; replies of the wrong kind; text meant to fool a person; a training that turns NaN or
steps 20 times too far; a block that says it is torch's; the course rule broken. Each gives its
expected outcome within its time limit, never a traceback, and leaves no process (the
``nothing_left`` guard). The isolation itself is tested in test_check_isolation.py."""

import time
from pathlib import Path

import pytest
import torch

from harness.check import protocol, replies, rule, worker
from harness.check.capture import Capture, escape
from harness.check.child import LOAD_LIMIT
from harness.check.command import check, text
from tests.hostile import ISOLATIONS, no_process_left, write_hostile

LIMIT = 3.0  # seconds per check where a hang is meant to be cut
ROOM = 20.0  # seconds per check elsewhere: nothing waits for it, a busy machine may need it
ENOUGH = LOAD_LIMIT + 8 * LIMIT  # a whole run of one block, with a restart or two, on a busy machine


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    return write_hostile(tmp_path_factory)


@pytest.fixture(autouse=True)
def nothing_left(hostile):
    with no_process_left(hostile):
        yield


def run(folder: Path, name: str, blocks: str = "ReLU", isolation: str = "process", limit: float = ROOM, **options):
    start = time.monotonic()
    report = check(str(folder / name), blocks=blocks, quick=True, time_limit=limit, isolation=isolation, **options)
    assert time.monotonic() - start < ENOUGH
    return report


def messages(report, block: str) -> list[str]:
    return [f.message for f in report.findings if f.block == block]


# the reply pipe ------------------------------------------------------------------------------
@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize(
    "name,cells,message",
    [
        ("half_frame_then_sleep", {"timeout"}, "no answer within 3 s"),
        ("half_frame_then_exit", {"crash"}, "closed its reply pipe half-way through a reply"),
        # the worker held the pipe's only write end: closing it is a crash; under bubblewrap its
        # monitor holds one too, so the reply never comes: a timeout
        ("swapped_reply_pipe", {"crash", "timeout"}, ""),
        ("closed_reply_pipe", {"crash", "timeout"}, ""),
        ("crash_leaving_children", {"crash"}, "killed by SIGSEGV"),
    ],
)
def test_a_broken_reply_is_a_finding_within_the_time_limit(hostile, isolation, name, cells, message):
    report = run(hostile, name, isolation=isolation, limit=LIMIT)
    assert report.table["ReLU"]["forward"] in cells
    assert any(message in m for m in messages(report, "ReLU")), messages(report, "ReLU")
    assert report.isolation == isolation


@pytest.mark.parametrize(
    "name,message",
    [
        ("forged_reply", "forward returned a str, not a tensor"),
        ("meta_output", "forward returned a meta tensor"),
        ("sparse_output", "forward returned a tensor of layout torch.sparse_coo (sparse)"),
        ("quantized_output", "forward returned a quantized tensor"),
    ],
)
def test_a_reply_the_checker_cannot_use_is_a_finding(hostile, name, message):
    report = run(hostile, name)
    assert report.table["ReLU"]["forward"] == "FAIL"
    assert any(m.startswith(message) for m in messages(report, "ReLU")), messages(report, "ReLU")


# text for a person ---------------------------------------------------------------------------
def test_escape_codes_in_an_error_reach_the_report_escaped(hostile):
    out = text(run(hostile, "escape_codes"))
    assert "\x1b" not in out
    assert "raised RuntimeError: \\x1b[2J\\x1b[H\\x1b[32mevery check passes" in out


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_100_mb_of_prints_are_kept_to_their_first_and_last_kilobytes(hostile, isolation):
    report = run(hostile, "prints_100mb", isolation=isolation)
    assert report.ok
    assert len(report.prints) < 20_000
    assert "left out" in report.prints and report.prints.rstrip().endswith("the end")


def test_escape_and_capture_bound_what_they_keep():
    assert escape("a\x1b[2Jb\u202ec\td\n") == "a\\x1b[2Jb\\u202ec\\td\\n"
    assert escape("a\tb\nc\x07", keep_lines=True) == "a\tb\nc\\x07"
    assert escape("x" * 500) == "x" * 297 + "..."
    capture = Capture(head=4, tail=4)
    for chunk in (b"abcdef", b"ghij", b"\x1bklm"):
        capture.add(chunk)
    assert capture.text() == "abcd\n[... 6 bytes of output left out ...]\n\\x1bklm"


# fooling the checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,message",
    [
        ("ok_handout", None),
        # float32 blocks (Conv2d's check says so first) whose SGD takes the model, not pairs
        ("ok_positional_order", None),
        ("nan_losses", "layer 0 weight after step 1 holds NaN or inf"),
        ("sgd_step_20x", "layer 0 weight after step 1 is off torch's by more than"),
    ],
)
def test_training_fails_on_nan_losses_and_a_step_20_times_too_large(hostile, name, message):
    folder = Path(__file__).parent / "data" / "submissions" if name.startswith("ok_") else hostile
    blocks = "Conv2d,course network" if name == "ok_positional_order" else "course network"
    report = check(str(folder / name), blocks=blocks, time_limit=ROOM, isolation="process")
    cell = report.table["course network"]["training"]
    assert cell == ("pass" if message is None else "FAIL"), [f.line() for f in report.findings]
    assert message is None or any(m.startswith(message) for m in messages(report, "course network"))


def test_a_block_whose_module_says_torch_nn_is_checked(hostile):
    report = run(hostile, "module_says_torch_nn")
    assert report.table["ReLU"]["backward"] == "FAIL"


def test_every_kind_of_wrong_reply_is_named():
    t = torch.zeros(2)
    ok = {"output": t, "input_grad": None, "grads": {}, "input_after": t, "notes": ["a\x1bb"]}
    assert replies.check({"op": "layer"}, ok) is None and ok["notes"] == ["a\\x1bb"]
    cases = {
        "the reply has fields no request asks for (secret)": {"error": ok["notes"], "secret": 1},
        "the reply lacks input_grad, grads, input_after": {"output": t},
        "forward returned a Parameter (a tensor subclass)": {**ok, "output": torch.nn.Parameter(t)},
        "forward returned a tensor that requires grad (autograd)": {**ok, "output": t.clone().requires_grad_()},
        "a parameter's gradient is weight: a list, not a tensor": {**ok, "grads": {"weight": [1]}},
        "the reply field notes is a str, not a list of strings": {**ok, "notes": "x"},
    }
    for message, reply in cases.items():
        assert replies.check({"op": "layer"}, reply) == message
    train = {"op": "train", "batches": [0, 0], "blocks": [0]}
    one, two = [[{"weight": t}]], [[{"weight": t}, {}]] * 2
    for message, reply in {
        "the training's losses are a list holding a str": {"losses": [1.0, "x"], "params": one * 2},
        "the training's losses are 1 in number, not 2": {"losses": [1.0], "params": one * 2},
        "a parameter after a step is 1 in number, not 2": {"losses": [1.0, 2.0], "params": one},
        "a parameter after a step is not one entry per block of 1": {"losses": [1.0, 2.0], "params": two},
    }.items():
        assert replies.check(train, reply) == message
    kinds = [
        (("layer", "grads", 3), "a parameter's gradient is a int, not a dict of tensors"),
        (("layer", "grads", {1: t}), "a parameter's gradient is a dict whose keys are not names"),
        (("sequential", "grads", 3), "a parameter's gradient is a int, not a list"),
        (("optimizer", "params", 3), "a parameter after a step is a int, not a list of steps"),
        (("train", "losses", 3), "the training's losses are a int, not a list of numbers"),
        (("layer", "rule", [{"block": 1}]), "the reply field rule is not a record of block, caller, does, where"),
        (("layer", "rule", 3), "the reply field rule is a int, not a list of records"),
        (("load", "classes", {"A": 1}), "the reply field classes is a dict, not a dict of names"),
        (("backward_first", "raised", 1), "the reply field raised is a int, not True or False"),
        (("layer", "unsupported", 1), "the reply field unsupported is a int, not a string"),
    ]
    for (op, key, value), message in kinds:
        assert replies.check({"op": op}, {key: value}) == message
    escaped = {"error": {"type": "E", "message": "\x1b[2J", "where": ""}}
    assert replies.check({"op": "layer"}, escaped) is None and escaped["error"]["message"] == "\\x1b[2J"


# the course rule -----------------------------------------------------------------------------
def _line(folder: Path, name: str, needle: str) -> int:
    lines = (folder / name / "Miniproject_2" / "model.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_block_calling_torch_nn_functional_breaks_the_course_rule(hostile):
    report = run(hostile, "calls_conv2d", blocks="Conv2d")
    line = _line(hostile, "calls_conv2d", "torch.nn.functional.conv2d")
    assert f"Conv2d.forward calls torch.nn.functional.conv2d (Miniproject_2/model.py:{line})" in messages(
        report, "Conv2d"
    )
    assert report.table["Conv2d"]["rule"] == "FAIL" and report.table["Conv2d"]["forward"] == "pass"
    assert not report.ok
    relaxed = run(hostile, "calls_conv2d", rule="none")  # (ReLU alone: the source scan sees Conv2d)
    assert relaxed.ok and "rule" not in relaxed.table["ReLU"]


def test_the_rule_is_checked_outside_the_course_layout_on_request(hostile):
    file = hostile / "calls_conv2d" / "Miniproject_2" / "model.py"
    assert check(str(file), blocks="ReLU", quick=True, time_limit=ROOM, isolation="process").ok
    report = check(str(file), blocks="ReLU", quick=True, time_limit=ROOM, isolation="process", rule="ee559")
    assert any(m.startswith("Conv2d.forward uses torch.nn.functional.conv2d") for m in messages(report, "Conv2d"))


def test_a_torch_nn_module_in_a_block_breaks_the_course_rule(hostile):
    found = messages(run(hostile, "uses_torch_nn_module"), "ReLU")
    line = _line(hostile, "uses_torch_nn_module", "torch.nn.ReLU()")
    for does in ("builds on torch.nn.ReLU", "calls Tensor.requires_grad_ (autograd)"):
        assert f"ReLU.forward {does} (Miniproject_2/model.py:{line})" in found
    assert "ReLU.forward returns a tensor that requires grad (autograd)" in found


def test_autograd_in_a_block_breaks_the_course_rule(hostile):
    report = run(hostile, "uses_autograd")
    found = messages(report, "ReLU")
    forward, backward = (_line(hostile, "uses_autograd", s) for s in ("requires_grad_()", "torch.autograd.grad"))
    assert f"ReLU.forward calls Tensor.requires_grad_ (autograd) (Miniproject_2/model.py:{forward})" in found
    assert f"ReLU.backward calls torch.autograd.grad (Miniproject_2/model.py:{backward})" in found
    assert report.table["ReLU"]["rule"] == "FAIL"


SOURCE = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.functional import fold, pad as padding
from torch import autograd


class Conv2d(nn.Module):
    def forward(self, x):
        y = F.unfold(x, 3) + fold(x, 2, 2)
        x.requires_grad = True
        torch.ones(1, requires_grad=False).requires_grad_(False)
        torch.ones(1, requires_grad=True)
        return F.conv2d(x, self.w) + torch.nn.functional.relu(y)

    def backward(self, g):
        return autograd.grad(g, self.x)


if __name__ == "__main__":  # the student's own test against torch.nn: not the blocks
    print(nn.Conv2d(1, 1, 3)(torch.ones(1, 1, 3, 3)))
else:
    helper = torch.optim.SGD
"""


def test_the_source_scan_names_each_forbidden_use_with_its_line(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE)
    found = [
        (r["block"], r["caller"], r["does"], r["where"])
        for r in rule.scan(tmp_path / "m.py", "m.py", {"Conv2d": "Conv2d"})
    ]
    assert found == [
        ("", "<module>", "imports torch.nn.functional.pad", "m.py:5"),
        # ``from torch import autograd`` imports a package: what counts is its use, where it is
        ("Conv2d", "Conv2d", "uses torch.nn.Module", "m.py:9"),
        ("Conv2d", "Conv2d.forward", "sets requires_grad", "m.py:12"),
        ("Conv2d", "Conv2d.forward", "passes requires_grad", "m.py:14"),
        ("Conv2d", "Conv2d.forward", "uses torch.nn.functional.conv2d", "m.py:15"),
        ("Conv2d", "Conv2d.forward", "uses torch.nn.functional.relu", "m.py:15"),
        ("Conv2d", "Conv2d.backward", "uses torch.autograd.grad", "m.py:18"),
        ("", "<module>", "uses torch.optim.SGD", "m.py:24"),
    ]
    findings = rule.findings([{"block": "", "caller": "<module>", "does": "imports torch.autograd", "where": "m.py:6"}])
    assert [(f.block, f.quantity, f.message) for f in findings] == [
        ("m.py", "course rule", "<module> imports torch.autograd (m.py:6)")
    ]
    assert rule.column(findings, ["Conv2d"]) == {"Conv2d": "pass", "m.py": "FAIL"}
    many = [{"block": "ReLU", "caller": "f", "does": "x", "where": f"m.py:{i}"} for i in range(12)]
    assert [f.message for f in rule.findings(many)][-2:] == ["f x (m.py:9)", "and 2 more violations"]


def test_the_source_scan_skips_what_it_cannot_parse(tmp_path, monkeypatch):
    (tmp_path / "bad.py").write_text("def (:\n")
    assert rule.scan(tmp_path / "bad.py", "bad.py", {}) == rule.scan(tmp_path / "none.py", "none.py", {}) == []
    monkeypatch.setattr(rule, "MAX_SOURCE", 3)
    (tmp_path / "big.py").write_text("import torch.autograd as a\na.grad\n")
    assert rule.scan(tmp_path / "big.py", "big.py", {}) == []


def test_a_reply_the_worker_cannot_send_becomes_its_error():
    reply = protocol.decode_reply(worker._encoded({"output": lambda: 0}))
    assert reply["error"]["type"] == "UnsendableReply" and "cannot be sent" in reply["error"]["message"]
