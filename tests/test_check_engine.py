"""The checker's engine on a target that misbehaves to order: this repository's own blocks, run in
this process through the worker's request handler, with the replies changed by the test. Each
test names the misbehaviour and asserts the table cell, the finding and the exit status a user
would read."""

import math

import pytest
import torch

from harness.check import worker
from harness.check.command import resolve
from harness.check.composites import SIGN_OR_ORDER
from harness.check.conclude import Finding
from harness.check.engine import Checker
from harness.check.features import course_versions, features, has, on_course
from harness.check.network import _training_problem
from harness.check.run import run_checks
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


def checks(tamper, only, quick=True, drop=()):
    child = Tampered(tamper)
    return run_checks(child, [b for b in child.blocks if b not in drop], 0, quick, set(only))


def on(op, replacement, block=None):
    """Replace the replies to ``op`` (of ``block``, when given)."""
    return lambda r, reply: replacement if r["op"] == op and block in (None, r.get("block")) else reply


def layer(when, change):
    """Change the layer replies whose kwargs satisfy ``when``."""
    return lambda r, reply: change(reply) if r["op"] == "layer" and when(r["kwargs"]) else reply


@pytest.mark.parametrize(
    "op, only, block, column",
    [
        ("loss", "MSE", "MSE", "forward"),
        ("sequential", "Sequential", "Sequential", "composition"),
        ("train", "course network", "course network", "training"),
    ],
)
@pytest.mark.parametrize("reply", [CRASH, {"timeout": 5.0}])
def test_a_composite_check_reports_a_dead_or_hung_target(op, only, block, column, reply):
    report = checks(on(op, reply), [only], quick=only != "course network")
    kind = next(iter(reply))
    assert report.table[block][column] == kind
    assert [(f.block, f.diagnosis) for f in report.findings] == [(block, kind)]
    assert report.exit_status == 1


def test_composites_are_blocked_only_by_a_failure_at_their_own_configurations():
    report = checks(on("layer", CRASH, "Conv2d"), ["Conv2d", "SGD", "Sequential", "course network"], quick=False)
    assert report.table["Conv2d"]["forward"] == "crash"
    for block, column in (("SGD", "step"), ("Sequential", "composition")):
        assert report.table[block] == {column: "blocked"}
    # the course network trains whatever its blocks did alone: right, it passes (it was compared);
    # wrong, it is blamed on the block found wrong where it uses it, not reported a second time
    assert report.table["course network"] == {"training": "pass"}

    def wrong_training(r, reply):
        reply = on("layer", CRASH, "Conv2d")(r, reply)
        return {**reply, "losses": [v + 1 for v in reply["losses"]]} if r["op"] == "train" else reply

    report = checks(wrong_training, ["Conv2d", "course network"], quick=False)
    assert report.table["course network"] == {"training": "blocked"}
    assert [f.block for f in report.findings] == ["Conv2d"]
    # wrong only at dilation 2, which no composite uses: they all run, and pass
    off = layer(lambda k: k.get("dilation") == 2, lambda r: {**r, "output": r["output"] + 1} if "output" in r else r)
    report = checks(off, ["Conv2d", "SGD", "Sequential", "course network"], quick=False)
    assert report.table["Conv2d"]["forward"] == "FAIL"
    assert report.table["SGD"]["step"] == report.table["Sequential"]["composition"] == "pass"
    assert report.table["course network"]["training"] == "pass"
    (finding,) = report.findings
    assert finding.feature == "dilation > 1" and finding.course is False
    assert "affects the course network: no" in finding.line()


def test_a_cell_says_pass_only_when_something_was_compared():
    report = checks(on("layer", {"unsupported": "the constructor refused it"}, "ReLU"), ["ReLU"])
    assert report.table["ReLU"] == {"forward": "unsupported", "backward": "unsupported"}
    assert report.not_checked["ReLU"] == "the constructor refused it" and report.exit_status == 3
    half = layer(lambda k: k.get("padding") == 1, lambda r: {"unsupported": "no padding 1"})
    report = checks(half, ["Conv2d"])
    cell = report.cells["Conv2d"]["forward"]
    assert cell.text() == f"pass {cell.passed}/{cell.passed + cell.unsupported}" and cell.unsupported > 0
    assert report.exit_status == 0


def test_an_error_in_the_checkers_own_probing_is_never_the_targets():
    error = {"error": {"type": "TypeError", "message": "forward() takes 1 argument", "where": "", "whose": "checker"}}
    report = checks(on("layer", error, "Tanh"), ["Tanh"])
    assert not report.findings and report.exit_status == 3
    assert report.table["Tanh"]["forward"] == "not checked"
    assert "the checker could not drive it" in report.not_checked["Tanh"] and "adapter" in report.not_checked["Tanh"]


def test_several_kinds_of_failure_are_each_a_finding():
    raises = {"error": {"type": "IndexError", "message": "out of range", "where": "model.py:7", "whose": "target"}}

    def tamper(r, reply):
        if r["op"] != "layer" or "output" not in reply:
            return reply
        if r["kwargs"].get("bias") is False:
            return raises
        return {**reply, "input_grad": 3.7 * reply["input_grad"]} if r["kwargs"].get("stride") == 2 else reply

    report = checks(tamper, ["Conv2d"])
    got = {(f.quantity, f.diagnosis, f.feature) for f in report.findings}
    assert ("output", "error", "bias=False") in got
    assert ("input gradient", "wrong by a factor 3.7", "stride > 1") in got
    raised = next(f for f in report.findings if f.diagnosis == "error")
    assert "bias=False" in raised.config and raised.line().endswith("(model.py:7)")


def test_failures_needing_two_features_are_two_findings():
    def tamper(r, reply):
        k = r["kwargs"]
        if r["op"] == "layer" and "output" in reply and (k.get("stride") == 2 or k.get("dilation") == 2):
            return {**reply, "output": reply["output"] * 3}
        return reply

    report = checks(tamper, ["Conv2d"], quick=False)
    features_found = {f.feature for f in report.findings if f.quantity == "output"}
    assert {"stride > 1", "dilation > 1"} <= features_found


def test_garbage_gradient_buffers_are_a_finding_and_the_checks_go_on():
    def dirty(r, reply):
        if r["op"] == "layer" and "grads_initial" in reply and reply["grads_initial"]:
            return {**reply, "grads_initial": {k: v + 7 for k, v in reply["grads_initial"].items()}}
        return reply

    report = checks(dirty, ["Conv2d"])
    assert {(f.quantity, f.diagnosis) for f in report.findings} == {
        ("gradient of weight", "not initialised"),
        ("gradient of bias", "not initialised"),
    }
    assert report.cells["Conv2d"]["parameters"].compared > 0  # the comparisons ran after all


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
        if r["op"] == "layer" and r.get("warmup") is not None:
            return {**reply, "output": reply["output"] + 1}
        return {"raised": False} if r["op"] == "backward_first" else reply

    report = checks(broken, ["Conv2d"])
    labels = [f.diagnosis for f in report.findings if f.quantity == "contract"]
    assert sorted(labels) == sorted(
        ["not accumulated", "zero_grad", "input modified", "no input gradient returned", "second forward"]
        + ["backward before forward"]
    )
    assert report.table["Conv2d"]["contract"] == "FAIL"


def test_a_bias_that_is_accepted_but_ignored_is_a_finding():
    def keeps_bias(r, reply):
        if r["op"] == "layer" and r["kwargs"].get("bias") is False and "params" in reply:
            return {**reply, "params": ["bias", "weight"]}
        return reply

    report = checks(keeps_bias, ["Conv2d"])
    (finding,) = report.findings
    assert (finding.quantity, finding.diagnosis) == ("contract", "argument ignored: bias")


def test_float32_blocks_are_compared_in_float32():
    def single(r, reply):
        if r["op"] != "layer" or "output" not in reply:
            return reply
        cast = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in reply.items()}
        cast["grads"] = {k: v.float() for k, v in reply["grads"].items()}
        return cast

    report = checks(single, ["ReLU"])
    assert report.dtype == "float32" and "ReLU: does not compute in float64: compared in float32" in report.notes
    assert report.ok
    only_relu = lambda r, reply: single(r, reply) if r.get("block") == "ReLU" else reply  # noqa: E731
    both = checks(only_relu, ["ReLU", "Sigmoid"])  # the header names the blocks compared in float32
    assert both.dtype == "float64; float32 for ReLU"


def test_an_optimizer_form_that_gives_wrong_numbers_is_followed_by_the_others():
    def first_form_wrong(r, reply):
        if r["op"] == "optimizer" and r["form"] == 0 and "params" in reply:
            return {**reply, "params": [[{k: v + 1 for k, v in step[0].items()}] for step in reply["params"]]}
        if r["op"] == "optimizer" and r["form"] == 3:  # as if the target took its blocks
            return worker.handle({**r, "form": 0}, child.session)[1]
        return reply

    child = Tampered(first_form_wrong)
    report = run_checks(child, child.blocks, 0, True, {"SGD"})
    assert report.table["SGD"]["step"] == "pass" and not report.findings


def test_an_optimizer_wrong_in_every_form_shows_the_first_forms_error():
    def wrong(r, reply):
        if r["op"] == "optimizer" and "params" in reply:
            return {**reply, "params": [[{k: v * (2 + r["form"]) for k, v in s[0].items()}] for s in reply["params"]]}
        return reply

    report = checks(wrong, ["SGD"])
    finding = report.findings[0]
    assert finding.quantity == "optimizer step" and finding.config.startswith("step 1 with lr=0.1")
    assert report.table["SGD"]["step"] == "FAIL"


def test_an_optimizer_no_form_builds_is_not_checked():
    fails = {"phase": "construct", "error": {"type": "TypeError", "message": "x", "where": "", "whose": "target"}}
    report = checks(on("optimizer", fails), ["SGD"])
    assert report.table["SGD"]["step"] == "not checked" and report.exit_status == 3
    assert "make_optimizer" in report.not_checked["SGD"]


def test_an_optimizer_that_changes_the_gradients_is_a_contract_finding():
    report = checks(lambda r, reply: {**reply, "grads_changed": True} if r["op"] == "optimizer" else reply, ["SGD"])
    assert [f.diagnosis for f in report.findings] == ["gradients changed"]


def test_a_loss_gradient_with_the_wrong_sign_may_be_the_argument_order():
    report = checks(lambda r, reply: {**reply, "grad": -reply["grad"]} if r["op"] == "loss" else reply, ["MSE"])
    (finding,) = report.findings
    assert finding.diagnosis == SIGN_OR_ORDER


def test_a_sequential_that_reinitialises_its_children():
    def reinit(r, reply):
        if r["op"] == "sequential":
            params = [{k: v + 1 for k, v in p.items()} for p in reply["params"]]
            return {**reply, "params": params, "output": reply["output"] + 1}
        return reply

    report = checks(reinit, ["Sequential"])
    assert report.findings[0].diagnosis == "re-initialises its children's weights"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: {**r, "losses": [math.nan] * 3}, "loss at step 1 is nan"),
        (lambda r: {**r, "losses": r["losses"][:2]}, "2 losses recorded for 3 steps"),
        (lambda r: {**r, "losses": [1.1 * v for v in r["losses"]]}, "loss at step 1 is "),
    ],
)
def test_a_training_run_off_torch_is_a_finding(change, message):
    report = checks(lambda r, reply: change(reply) if r["op"] == "train" else reply, ["course network"], quick=False)
    assert report.table["course network"]["training"] == "FAIL"
    assert report.findings[0].message.startswith(message)


def test_a_step_twenty_times_too_large_shows_in_the_parameters():
    p0 = {"weight": torch.zeros(2)}
    after = [[{"weight": torch.full((2,), 0.01 * (i + 1))}] for i in range(2)]
    reply = {"losses": [1.0, 0.9], "params": after}
    assert _training_problem(reply, [1.0, 0.9], after, [p0]) is None
    big = [[{"weight": 20 * s[0]["weight"]}] for s in after]
    problem = _training_problem({**reply, "params": big}, [1.0, 0.9], after, [p0])
    assert problem == "layer 0 weight after step 1 is off torch's by more than 0.05 of the step"


def test_the_features_a_failing_convolution_can_need():
    c = {"batch": 1, "in_channels": 2, "out_channels": 3, "size": (8, 7), "kernel_size": 3, "bias": True}
    found = dict(features({**c, "stride": 2, "padding": 1, "dilation": 2}))
    assert found["batch 1"] == {"batch": 2}
    assert found["in_channels != out_channels"] == {"out_channels": 2}
    assert found["stride does not divide"] == {"size": (7, 7)}  # (8 + 2 - 4 - 1) % 2 = 1 row too many
    assert found["stride > 1"] == {"stride": 1} and found["dilation > 1"] == {"dilation": 1}
    assert found["non-square image"] == {"size": (8, 8)} and found["bias"] == {"bias": False}
    assert "stride does not divide" not in dict(features({**c, "stride": 2, "size": (9, 9)}))
    assert dict(features({**c, "kernel_size": 3, "padding": 2}))["padding = kernel - 1"] == {"padding": 1}
    assert dict(features({**c, "output_padding": 1}))["output_padding > 0"] == {"output_padding": 0}
    assert has("any", c) and has("batch 1", c) and not has("batch > 1", c)


def test_the_course_networks_configurations():
    c = {"batch": 3, "in_channels": 2, "out_channels": 3, "size": (8, 8), "kernel_size": 3, "stride": 2}
    assert on_course({**c, "padding": 1, "dilation": 1, "bias": True})
    assert not on_course({**c, "dilation": 2}) and not on_course({**c, "size": (8, 9)})
    versions = course_versions({**c, "dilation": 2, "padding": 2})
    assert all(on_course(v) for v in versions) and len(versions) == 3 + 8


def test_every_shrink_argument_is_in_the_base_configuration():
    for spec in SPECS.values():
        assert set(spec.shrink) <= set(spec.base), spec.name


def test_a_request_before_load_is_an_error_not_a_dead_worker():
    _, reply = worker.handle({"op": "layer"}, None)
    assert reply["error"]["type"] == "AssertionError"
    session, reply = worker.handle({"op": "load", "target": {"kind": "module", "root": "/", "module": "no_such"}}, None)
    assert session is None and reply["error"]["type"] == "ModuleNotFoundError"


def test_a_target_that_refuses_a_configuration_it_got_wrong_before_is_still_reported():
    seen = set()

    def flaky(r, reply):
        key = repr(sorted(r.get("kwargs", {}).items()))
        if r["op"] == "layer" and r["kwargs"].get("padding") == 1 and key in seen:
            return {"unsupported": "the constructor refused it this time"}
        seen.add(key)
        return {**reply, "output": reply["output"] * 2} if "output" in reply and r["kwargs"].get("padding") else reply

    report = checks(flaky, ["Conv2d"])
    assert not report.ok and report.findings


def test_a_bug_torch_cannot_even_run_is_not_offered_as_the_diagnosis():
    # ignoring padding=1 leaves a 2x2 image under a 3x3 kernel: torch refuses that alternative
    doubled = Tampered(lambda r, reply: {**reply, "output": 2 * reply["output"]} if "output" in reply else reply)
    c = {**SPECS["Conv2d"].base, "batch": 1, "size": (2, 2), "padding": 1}
    assert Checker(doubled, [], 0, True)._diagnosis(SPECS["Conv2d"], "output", c) == "factor 2"


def test_a_finding_reads_as_one_line():
    finding = Finding(
        "ReLU", "contract", "batch 1, image 2x2", "backward returns nothing", where="model.py:3", course=True
    )
    assert finding.line() == (
        "ReLU: contract; at batch 1, image 2x2; backward returns nothing; affects the course network: yes; (model.py:3)"
    )


def test_one_cause_reached_from_several_configurations_is_one_finding():
    def wrong_with_channels(r, reply):
        k = r["kwargs"]
        if r["op"] == "layer" and "input_grad" in reply and max(k.get("in_channels", 1), k.get("out_channels", 1)) > 1:
            return {**reply, "input_grad": 3.7 * reply["input_grad"]}
        return reply

    report = checks(wrong_with_channels, ["Conv2d"], quick=False)
    found = [f for f in report.findings if f.quantity == "input gradient"]
    assert len(found) == 1 and found[0].count > 1, [f.line() for f in found]


def test_a_sequential_that_returns_no_input_gradient_still_trains_the_course_network():
    """Its model's input gradient is nothing the course network's training reads: the finding
    stands, it does not affect the course network, and the training is compared (and passes)."""
    nothing = lambda r, reply: {**reply, "input_grad": None} if r["op"] == "sequential" else reply  # noqa: E731
    report = checks(nothing, ["Sequential", "course network"], quick=False)
    (finding,) = report.findings
    assert (finding.block, finding.diagnosis, finding.course) == ("Sequential", "no input gradient returned", False)
    assert report.table["course network"] == {"training": "pass"}


def test_a_transposed_convolution_without_output_padding_trains_the_course_network_at_kernel_4():
    """Many students' transposed convolutions take no output_padding: the course network then
    doubles its sizes with kernel 4, padding 1 (no output_padding needed), and is compared."""
    trained = []

    def refuses(r, reply):
        if r["op"] == "layer" and r["block"] == "ConvTranspose2d" and r["kwargs"].get("output_padding"):
            return {"unsupported": "ConvTranspose2d has no argument for output_padding=1"}
        if r["op"] == "train":
            trained.append([b["kwargs"] for b in r["blocks"] if b["block"] == "ConvTranspose2d"])
        return reply

    report = checks(refuses, ["ConvTranspose2d", "course network"], quick=False, drop=("Upsampling",))
    assert report.table["course network"] == {"training": "pass"}
    assert {(k["kernel_size"], k.get("output_padding", 0)) for k in trained[-1]} == {(4, 0)}


@pytest.mark.parametrize(
    "reply, message, label",
    [
        ({"param_counts": [4.0, 8.0]}, "param() lists 4 entries, then 8 asked again", "param() grows"),
        (
            {"param_error": {"type": "TypeError", "message": "'method' object is not iterable", "where": "m.py:3"}},
            "param() raised TypeError: 'method' object is not iterable",
            "error",
        ),
    ],
)
def test_sequential_s_parameter_list_is_the_same_each_time_and_answers(reply, message, label):
    """What an optimizer is built from: checked even where the composition is blocked."""
    report = checks(on("sequential_params", reply), ["Sequential"])
    (finding,) = report.findings
    assert (finding.block, finding.quantity, finding.message, finding.diagnosis) == (
        "Sequential",
        "contract",
        message,
        label,
    )
    assert report.table["Sequential"]["contract"] == "FAIL" and report.table["Sequential"]["composition"] == "pass"
    assert checks(lambda r, reply: reply, ["Sequential"]).ok  # this repository's Sequential: the same list
