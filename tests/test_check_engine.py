"""The checker's engine on a target that misbehaves to order: this repository's own blocks, run in
this process through the worker's request handler, with the replies changed by the test. Each
test names the misbehaviour and asserts the table cell and the finding a user would read."""

import pytest
import torch

from harness.check import worker
from harness.check.command import resolve
from harness.check.engine import Checker, Finding, Report, _features, run_checks
from harness.check.specs import SPECS

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CRASH = {"crash": "the target's process killed by signal 9"}


class Tampered:
    """A child whose replies pass through ``tamper(request, reply) -> reply``."""

    def __init__(self, tamper=lambda request, reply: reply):
        self.session, loaded = worker.handle({"op": "load", "target": resolve(str(ROOT))}, None)
        self.blocks, self.tamper = loaded["blocks"], tamper

    def ask(self, request):
        _, reply = worker.handle(request, self.session)
        return self.tamper(request, reply)


def checks(tamper, only, quick=False, drop=()):
    child = Tampered(tamper)
    return run_checks(child, [b for b in child.blocks if b not in drop], 0, quick, set(only))


def on(op, replacement, block=None):
    """Replace the replies to ``op`` (of ``block``, when given)."""
    return lambda r, reply: replacement if r["op"] == op and block in (None, r.get("block")) else reply


@pytest.mark.parametrize(
    "op, only, block, column",
    [
        ("loss", "MSE", "MSE", "forward"),
        ("optimizer", "SGD", "SGD", "step"),
        ("sequential", "Sequential", "Sequential", "composition"),
        ("train", "course network", "course network", "training"),
    ],
)
@pytest.mark.parametrize("reply", [CRASH, {"timeout": 5.0}])
def test_a_composite_check_reports_a_dead_or_hung_target(op, only, block, column, reply):
    report = checks(on(op, reply), [only])
    kind = next(iter(reply))
    assert report.table[block] == {column: kind}
    assert [(f.block, f.diagnosis) for f in report.findings] == [(block, kind)]


def test_composites_are_not_run_on_a_block_already_wrong():
    report = checks(on("layer", CRASH, "Conv2d"), ["Conv2d", "SGD", "Sequential", "course network"])
    assert report.table["Conv2d"]["forward"] == "crash"
    for block, column in (("SGD", "step"), ("Sequential", "composition"), ("course network", "training")):
        assert report.table[block] == {column: "blocked"}
        assert f"{block}: {column} not checked, since Conv2d already failed" in report.notes


def test_composites_need_their_blocks():
    report = checks(on("layer", {}), ["Sequential", "course network"], drop=("Sigmoid",))
    assert report.table["Sequential"] == {"composition": "unsupported"}
    assert report.table["course network"] == {"training": "unsupported"}
    assert report.ok


def test_a_training_loss_off_torch_is_a_finding():
    def off(r, reply):
        return {**reply, "losses": [1.1 * v for v in reply["losses"]]} if r["op"] == "train" else reply

    report = checks(off, ["course network"])
    assert report.table["course network"]["training"] == "FAIL"
    assert report.findings[0].message.startswith("loss at step 1 is ")


def test_a_configuration_that_raises_is_a_wrong_output_shrunk_to_the_smallest_that_raises():
    def raises_at_stride_2(r, reply):
        if r["op"] == "layer" and r["kwargs"].get("stride") == 2:
            return {"error": {"type": "IndexError", "message": "out of range", "where": "model.py:7"}}
        return reply

    report = checks(raises_at_stride_2, ["Conv2d"], quick=True)
    (finding,) = report.findings
    assert (finding.quantity, finding.diagnosis, finding.feature) == ("output", "error", "stride > 1")
    assert "stride=2" in finding.config and "batch 1" in finding.config  # shrunk
    assert finding.line().endswith("passes at stride=1; diagnosis: error; (model.py:7)")
    assert report.table["Conv2d"]["forward"] == "error"


def test_a_hang_in_one_configuration_stops_that_block():
    report = checks(lambda r, reply: {"timeout": 5.0} if r.get("kwargs", {}).get("padding") == 2 else reply, ["Conv2d"])
    assert report.table["Conv2d"]["forward"] == "timeout"
    assert [f.diagnosis for f in report.findings] == ["timeout"]


def test_the_contract_checks_name_each_broken_promise():
    def broken(r, reply):
        if r["op"] == "layer" and r.get("twice"):
            grads = reply["grads"]
            return {
                **reply,
                "grads_twice": grads,  # weight and bias: one finding for both
                "grads_zeroed": {k: v + 1 for k, v in grads.items()},
                "input_after": reply["input_after"] + 1,
                "input_grad": None,
            }
        return {"raised": False} if r["op"] == "backward_first" else reply

    report = checks(broken, ["Conv2d"], quick=True)
    labels = [f.diagnosis for f in report.findings]
    assert labels == ["not accumulated", "zero_grad", "input modified", "no input gradient returned"] + [
        "backward before forward"
    ]
    assert report.table["Conv2d"]["contract"] == "FAIL"


def test_no_diagnosis_without_an_output():
    checker = Checker(Tampered(on("layer", CRASH)), [], 0, True)
    spec = SPECS["Conv2d"]
    assert checker._diagnosis(spec, "output", spec.base) is None


def test_a_finding_without_a_number_reads_as_its_message():
    finding = Finding("ReLU", "contract", "batch 1, image 2x2", "backward returns nothing", where="model.py:3")
    assert finding.line() == "ReLU: contract; at batch 1, image 2x2; backward returns nothing; (model.py:3)"
    report = Report("t", findings=[finding])
    assert report.blocked("Sequential", "composition", ["ReLU"]) and not report.blocked("SGD", "step", ["Conv2d"])


def test_the_features_a_failing_convolution_can_need():
    c = {"batch": 1, "in_channels": 2, "out_channels": 3, "size": (8, 7), "kernel_size": 3}
    features = dict(_features({**c, "stride": 2, "padding": 1, "dilation": 2}))
    assert features["batch 1"] == {"batch": 2}
    assert features["in_channels != out_channels"] == {"out_channels": 2}
    assert features["stride does not divide"] == {"size": (7, 7)}  # (8 + 2 - 4 - 1) % 2 = 1 row too many
    assert features["stride > 1"] == {"stride": 1} and features["dilation > 1"] == {"dilation": 1}
    assert features["non-square image"] == {"size": (8, 8)}
    assert "stride does not divide" not in dict(_features({**c, "stride": 2, "size": (9, 9)}))


def test_every_shrink_argument_is_in_the_base_configuration():
    for spec in SPECS.values():
        assert set(spec.shrink) <= set(spec.base), spec.name


def test_a_request_before_load_is_an_error_not_a_dead_worker():
    _, reply = worker.handle({"op": "layer"}, None)
    assert reply["error"]["type"] == "AssertionError"
    session, reply = worker.handle({"op": "load", "target": {"kind": "module", "root": "/", "module": "no_such"}}, None)
    assert session is None and reply["error"]["type"] == "ModuleNotFoundError"


def test_float32_blocks_are_compared_in_float32():
    def single(r, reply):
        if r["op"] != "layer" or "output" not in reply:
            return reply
        cast = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in reply.items()}
        cast["grads"] = {k: v.float() for k, v in reply["grads"].items()}
        return cast

    report = checks(single, ["ReLU"], quick=True)
    assert report.dtype == "float32" and "ReLU: does not compute in float64: compared in float32" in report.notes


def test_a_target_that_refuses_a_configuration_it_got_wrong_before_is_still_reported():
    seen = set()

    def flaky(r, reply):
        key = repr(sorted(r.get("kwargs", {}).items()))
        if r["op"] == "layer" and r["kwargs"].get("padding") == 1 and key in seen:
            return {"unsupported": "the constructor refused it this time"}
        seen.add(key)
        return {**reply, "output": reply["output"] * 2} if "output" in reply and r["kwargs"].get("padding") else reply

    report = checks(flaky, ["Conv2d"], quick=True)
    assert any(f.diagnosis == "unsupported" and "refused it this time" in f.message for f in report.findings)
    assert not report.ok


def test_a_bug_torch_cannot_even_run_is_not_offered_as_the_diagnosis():
    # ignoring padding=1 leaves a 2x2 image under a 3x3 kernel: torch refuses that alternative
    doubled = Tampered(lambda r, reply: {**reply, "output": 2 * reply["output"]} if "output" in reply else reply)
    c = {**SPECS["Conv2d"].base, "batch": 1, "size": (2, 2), "padding": 1}
    assert Checker(doubled, [], 0, True)._diagnosis(SPECS["Conv2d"], "output", c) == "factor 2"
