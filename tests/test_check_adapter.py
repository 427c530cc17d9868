"""How ``n2n check`` adapts to the contracts found in submissions, block by block, in this process:
parameters as bare tensors, 1-lists, flat lists, wrappers or attributes; gradients kept in
attributes; weights in another layout; constructors with other names, pairs or positional
arguments; bias as a flag, a tensor or absent; backward's return forms; the loss's order; the
optimizer's forms and steps; and the clear refusals where nothing fits."""

import sys
import types
from pathlib import Path

import pytest
import torch

from harness.check.adapter import Adapter, _positional
from harness.check.command import resolve
from harness.check.params import Unsupported, auto_layout
from harness.check.scenarios import Session
from harness.check.worker import _session

W, B = torch.ones(2, 1, 1, 1), torch.zeros(2)
CONV = {"in_channels": 1, "out_channels": 2, "kernel_size": 1}
DEFAULTS = {"in_channels": None, "out_channels": None, "kernel_size": None, "stride": 1, "padding": 0, "bias": True}


class Conv:
    def __init__(self, in_channels, out_channels, kernel_size, bias=False):
        self.weight, self.bias = W.clone(), B.clone()
        self.weight.grad, self.bias.grad = torch.zeros_like(W), None

    def param(self):
        return [(self.weight,), (self.bias,)]  # 1-lists: the gradient is the tensor's .grad

    def forward(self, x):
        return x

    def backward(self, g):
        return g


class Bare:
    """Parameters only as attributes, gradients in attributes named like gradients."""

    def __init__(self):
        self.W, self.b = W.clone(), B.clone()
        self.dW, self.db = torch.zeros_like(W), torch.zeros_like(B)
        self.cache = torch.zeros_like(W)  # same shape, not a gradient's name: never taken


class Loss:
    def forward(self, y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean()


class Opaque:
    forward = staticmethod(max)  # a builtin: its signature cannot be read


class Updates:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def update(self):
        for p, g in self.params:
            p.sub_(self.lr * g)


class NoStep:
    def __init__(self, params, lr):
        pass


def test_a_bias_off_by_default_is_turned_on_and_said():
    a = Adapter({"Conv2d": Conv}, None)
    a.build("Conv2d", CONV, DEFAULTS)
    assert "Conv2d: bias is off by default; passed bias=True" in a.notes


def test_constructor_names_pairs_and_positions():
    made = []

    class Named:
        def __init__(self, input_channel, output_channel, kernel_size=(3, 3), stride=(1, 1), bias=True):
            made.append((input_channel, output_channel, kernel_size, stride))

    class Unnamed:
        def __init__(self, first, second, third, stride=1):
            made.append((first, second, third, stride))

    class Mixed:  # known names first, then one nobody uses: by name, or it lands in c_in's slot
        def __init__(self, c_in, c_out, k_sz, padding=0, stride=1):
            made.append((c_in, c_out, k_sz, padding, stride))

    class IntsOnly:
        def __init__(self, in_channels, out_channels, kernel_size, stride=1):
            if isinstance(stride, tuple):
                raise TypeError("stride must be an int")
            made.append(stride)

    a = Adapter({"Conv2d": Named, "C2": Unnamed, "C3": IntsOnly, "C4": Mixed}, None)
    a.build("Conv2d", {**CONV, "kernel_size": 3, "stride": 2}, DEFAULTS)
    a.build("C2", {**CONV, "stride": 2}, DEFAULTS)
    a.build("C3", {**CONV, "stride": (2, 2)}, DEFAULTS)
    a.build("C4", {**CONV, "kernel_size": 3, "stride": 2, "padding": 1}, DEFAULTS)
    assert made == [(1, 2, (3, 3), (2, 2)), (1, 2, 1, 2), 2, (1, 2, 3, 1, 2)]
    assert "C2: first as in_channels, second as out_channels, third as kernel_size (torch's order" in " ".join(a.notes)
    assert "C4: k_sz as kernel_size (torch's order, for names it does not use)" in a.notes
    with pytest.raises(Unsupported, match="has no argument for dilation=2"):
        a.build("C3", {**CONV, "dilation": 2}, {**DEFAULTS, "dilation": 1})


def test_bias_as_an_initial_tensor_or_absent():
    class TensorBias:
        def __init__(self, in_channels, out_channels, kernel_size, bias=None):
            self.bias = bias

    class IntFlag:  # bias=1: a flag written as a number, not a tensor
        def __init__(self, in_channels, out_channels, kernel_size, bias=1):
            self.bias = bias

    a = Adapter({"Conv2d": TensorBias, "Plain": Bare, "C1": IntFlag}, None)
    assert [a.build("C1", {**CONV, "bias": on}, DEFAULTS).bias for on in (True, False)] == [1, 0]
    assert a.bias_arg == "flag"
    assert a.build("Conv2d", {**CONV, "bias": True}, DEFAULTS).bias.shape == (2,)
    assert a.build("Conv2d", {**CONV, "bias": False}, DEFAULTS).bias is None
    assert "Conv2d: bias given as an initial tensor" in a.notes
    a.build("Plain", {"bias": False}, {"bias": True})  # no bias argument: the block decides, the checker reads
    assert a.bias_arg == "absent"


@pytest.mark.parametrize(
    "items, grads",
    [
        (lambda b: [b.w, b.b_, b.gw, b.gb], "flat"),  # [W, b, dW, db]
        (lambda b: [(b.w, b.gw), (b.b_, b.gb), (None, None), ([], [])], "pairs"),  # with placeholders
        (lambda b: [types.SimpleNamespace(value=b.w, grad=b.gw), types.SimpleNamespace(data=b.b_, grad=b.gb)], "wrap"),
        (  # pairs of wrappers: [[Parameter(W), Parameter(dW)], ...]
            lambda b: [[types.SimpleNamespace(value=t), types.SimpleNamespace(value=g)] for t, g in b.both()],
            "wrapped pairs",
        ),
    ],
)
def test_parameter_forms(items, grads):
    block = types.SimpleNamespace(w=W.clone(), b_=B.clone(), gw=torch.full_like(W, 3.0), gb=torch.full_like(B, 4.0))
    block.both = lambda: [(block.w, block.gw), (block.b_, block.gb)]
    block.param = lambda: items(block)
    a = Adapter({}, None)
    assert set(a.get_params(block)) == {"weight", "bias"}
    g = a.get_grads(block)
    assert torch.equal(g["weight"], block.gw) and torch.equal(g["bias"], block.gb)
    a.clear_grads(block)
    assert not block.gw.any() and not block.gb.any()


def test_gradients_in_attributes_are_matched_by_name_and_shape():
    a = Adapter({}, None)
    block = Bare()
    assert a.get_params(block).keys() == {"weight", "bias"}
    grads = a.get_grads(block)
    assert grads["weight"] is block.dW and grads["bias"] is block.db
    assert any("gradient kept in attribute dW" in n for n in a.notes)


def test_weights_in_another_layout_are_converted_both_ways():
    a = Adapter({}, None)
    block = types.SimpleNamespace(weight=torch.zeros(2, 3, 1, 1), weight_grad=torch.zeros(2, 3, 1, 1))
    value = torch.arange(6.0).reshape(3, 2, 1, 1)  # torch's (out, in, k, k): stored as (in, out, k, k)
    a.set_params(block, {"weight": value})
    assert torch.equal(block.weight, value.transpose(0, 1)) and torch.equal(a.get_params(block)["weight"], value)
    assert auto_layout((3, 2), (3, 2, 1, 1)) == "flat" and auto_layout((5,), (3, 2)) is None
    with pytest.raises(Unsupported, match=r"weight: stored as \(2, 3, 1, 1\), torch's layout is \(5,\)"):
        a.set_params(block, {"weight": torch.zeros(5)})
    with pytest.raises(Unsupported, match="no parameter 'scale' found"):
        a.set_params(block, {"scale": B})
    a.layout = "transposed"  # forced by the checker's probe: a shape that does not fit is refused
    with pytest.raises(Unsupported, match="not in the transposed layout"):
        a.set_params(types.SimpleNamespace(weight=torch.zeros(3, 2, 1, 1)), {"weight": torch.zeros(3, 3, 1, 1)})


def test_a_new_dtype_converts_the_gradient_never_drops_it():
    a = Adapter({}, None)
    block = Conv(1, 2, 1)
    a.set_params(block, {"weight": W.double(), "bias": B.double()})
    assert block.weight.dtype == torch.float64 and block.weight.grad.dtype == torch.float64


def test_backward_return_forms():
    class Tuple3(Conv):
        def backward(self, g):
            return g.sum(), g * 2, None  # (dW, dX, db): the one shaped like the input

    class Stateless(Conv):
        def backward(self, x, g):
            return x + g

    a = Adapter({}, None)
    x = torch.ones(1, 1, 2, 2)
    for block, expected in ((Tuple3(1, 2, 1), 2 * x), (Stateless(1, 2, 1), 2 * x)):
        a.forward(block, x)
        assert torch.equal(a.backward(block, x), expected)


def test_the_order_of_a_loss_is_read_from_its_parameter_names():
    a = Adapter({}, None)
    assert a.loss_swapped(Loss()) and "the loss is called as (target, prediction)" in a.notes
    assert not a.loss_swapped(Opaque())
    assert _positional(Opaque.forward) == []

    class Output:
        def forward(self, output, target):
            return output

    assert not a.loss_swapped(Output())


def test_optimizer_forms_and_steps():
    a = Adapter({"SGD": Updates, "Adam": NoStep, "Flat": Opaque}, None)
    block = Conv(1, 2, 1)
    block.bias.grad = torch.zeros(2)
    pairs = [(block.weight, torch.ones_like(W))]
    a.step(Updates(pairs, 0.5))
    assert "the optimizer steps with update()" in a.notes and torch.equal(block.weight, W - 0.5)
    with pytest.raises(Unsupported, match="neither step"):
        a.step(NoStep([], 0.1))
    assert [type(a._form("SGD", [block], f)).__name__ for f in range(4)] == ["list"] * 4
    assert a._form("SGD", [block], 2)[0] is block.weight and a._form("SGD", [block], 3) == [block]
    with pytest.raises(Unsupported, match="none of the parameter forms"):
        a.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 4)  # the model form needs a Sequential
    with pytest.raises(Unsupported, match="takes no parameters"):
        a.make_optimizer("Flat", [block], {}, {}, 0)
    user = types.SimpleNamespace(make_optimizer=lambda name, blocks, kwargs, ns: Updates([], kwargs["lr"]))
    hooked = Adapter({}, user)
    assert hooked.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 0).lr == 0.1
    with pytest.raises(Unsupported, match="the adapter's make_optimizer for SGD failed"):
        hooked.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 1)


def test_steps_with_the_model_or_per_layer():
    class WithModel:
        def __init__(self, params, lr):
            self.lr = lr

        def step(self, model):
            model.stepped = True

    a = Adapter({}, None)
    model = types.SimpleNamespace()
    assert a.step_wants_model(WithModel([], 1))
    a.step(WithModel([], 1), [], model)
    assert model.stepped
    layer = types.SimpleNamespace(step=lambda lr: setattr(layer, "lr", lr))
    a.step(object(), [layer], None, 0.3)
    assert layer.lr == 0.3 and "each block steps itself with step(lr)" in a.notes


def _session_of(namespace):
    return Session(namespace, Adapter(namespace, None), Path("."))


def test_worker_scenarios_on_odd_targets():
    spec = {"block": "Conv2d", "kwargs": CONV, "defaults": DEFAULTS}
    session = _session_of({"Conv2d": Conv, "SGD": Updates})
    assert session.backward_first({**spec, "grad": torch.ones(1)}) == {"raised": False}
    probe = {**spec, "probe": torch.ones(1, 1, 1, 1), "probe_grad": torch.ones(1, 2, 1, 1)}
    request = {"name": "SGD", "kwargs": {"lr": 0.1}, "defaults": {}, "blocks": [probe], "form": 0}
    with pytest.raises(Unsupported, match="no gradient tensor for bias to write into"):
        session.optimizer({**request, "grads": [[{"weight": W, "bias": B}]]})

    class Returns(Conv):
        def forward(self, x):
            return [x]  # not a tensor

    session = _session_of({"Conv2d": Returns, "SGD": NoStep})
    with pytest.raises(TypeError, match="forward returned list, not a tensor"):
        session.layer({**spec, "input": torch.ones(1, 1, 1, 1), "grad": torch.ones(1, 2, 1, 1)})
    with pytest.raises(Unsupported, match="neither step"):
        session.optimizer({**request, "grads": [[{"weight": W}]]})

    class Refuses:
        def __init__(self, params, lr):
            raise TypeError(f"cannot take {type(params).__name__}")

    session = _session_of({"Conv2d": Conv, "SGD": Refuses})
    reply = session.optimizer({**request, "grads": [[{"weight": W}]]})
    assert reply["phase"] == "construct" and reply["error"]["message"] == "cannot take list"
    assert reply["error"]["whose"] == "checker"  # raised in this test file, not under the target's root


def test_an_adapter_file_can_name_the_blocks(tmp_path):
    (tmp_path / "blocks.py").write_text("class Convolution:\n    pass\n")
    (tmp_path / "adapter.py").write_text("def blocks(module):\n    return {'Conv2d': module.Convolution}\n")
    target = {"kind": "file", "root": str(tmp_path), "path": str(tmp_path / "blocks.py")}
    session = _session({"target": target, "adapter": str(tmp_path / "adapter.py")})
    assert list(session.ns) == ["Conv2d"] and session.ns["Conv2d"].__name__ == "Convolution"


def test_blocks_are_found_by_any_alias_whatever_the_case(tmp_path):
    (tmp_path / "blocks.py").write_text(
        "class CONV2D:\n    pass\nclass NNUpsample:\n    pass\nclass Optimizer:\n    pass\n"
    )
    target = {"kind": "file", "root": str(tmp_path), "path": str(tmp_path / "blocks.py")}
    session = _session({"target": target})
    assert sorted(session.ns) == ["Conv2d", "SGD", "Upsampling"]


def test_an_upsampling_that_needs_channels_is_not_checked_with_why_never_absent(tmp_path):
    (tmp_path / "blocks.py").write_text(
        "class UpSampleNN:\n    def __init__(self, scale_factor):\n        pass\n"
        "class Upsampling:\n    def __init__(self, in_channels, out_channels, kernel_size):\n        pass\n"
    )
    target = {"kind": "file", "root": str(tmp_path), "path": str(tmp_path / "blocks.py")}
    session = _session({"target": target})
    assert session.ns["Upsampling"].__name__ == "UpSampleNN" and session.skipped == {}
    (tmp_path / "blocks.py").write_text(
        "class Upsampling:\n    def __init__(self, in_channels, out_channels, kernel_size):\n        pass\n"
    )
    session = _session({"target": target})
    assert "Upsampling" not in session.ns
    assert session.skipped["Upsampling"].startswith(
        "Upsampling needs in_channels, out_channels, kernel_size: not checked as nearest upsampling"
    )


def test_a_course_folder_without_init_is_imported_from_its_own_folder(tmp_path):
    """Miniproject_2 without __init__.py is a namespace package, which any regular package of that
    name (n2n ships one, on the worker's path) would win over: the target's own must be checked."""
    (tmp_path / "Miniproject_2").mkdir()
    (tmp_path / "Miniproject_2" / "model.py").write_text("class ReLU:\n    def forward(self, x):\n        return x\n")
    before = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "Miniproject_2"}
    try:
        session = _session({"target": resolve(str(tmp_path))})
    finally:  # this process's own Miniproject_2, as it was, for the tests that follow
        for k in [k for k in sys.modules if k.split(".")[0] == "Miniproject_2"]:
            del sys.modules[k]
        sys.modules.update(before)
    assert session.file == str(tmp_path / "Miniproject_2" / "model.py") and list(session.ns) == ["ReLU"]


def test_a_tape_style_backward_is_not_checkable_a_plain_one_is(tmp_path):
    """A forward that tags its output with its creator and a backward that hands the gradient on
    (returning nothing, or needing the tag on the gradient) is a tape: not the target's error."""

    class Tape:
        def forward(self, x):
            out = x * 2
            out.creator, out.input_index = self, 0
            return out

        def backward(self, grad):
            grad.input_index  # noqa: B018 (a tape reads the tag it put on the output)

    class TaggedButPlain(Tape):
        def backward(self, grad):
            return grad * 2

    a = Adapter({}, None)
    with pytest.raises(Unsupported, match="tags its output with creator, input_index: a tape"):
        tape = Tape()
        a.forward(tape, torch.ones(2))
        a.backward(tape, torch.ones(2))
    plain = TaggedButPlain()
    a.forward(plain, torch.ones(2))
    assert torch.equal(a.backward(plain, torch.ones(2)), torch.full((2,), 2.0))


def test_an_optimizer_step_is_checked_without_the_blocks_own_zero_grad():
    """The checker zeroes the gradients it then overwrites itself: a block whose zero_grad is the
    handout's ``raise NotImplementedError`` does not make the optimizer's step an error."""

    class Unzeroable(Conv):
        def __init__(self, in_channels, out_channels, kernel_size, bias=False):
            super().__init__(in_channels, out_channels, kernel_size, bias)
            self.bias.grad = torch.zeros_like(B)

        def zero_grad(self):
            raise NotImplementedError

    class TensorSGD:  # torch's own form: tensors carrying .grad
        def __init__(self, params, lr):
            self.params, self.lr = list(params), lr

        def step(self):
            for p in self.params:
                p.sub_(self.lr * p.grad)

    spec = {"block": "Conv2d", "kwargs": CONV, "defaults": DEFAULTS}
    probe = {**spec, "probe": torch.ones(1, 1, 1, 1), "probe_grad": torch.ones(1, 2, 1, 1)}
    request = {"name": "SGD", "kwargs": {"lr": 0.5}, "defaults": {}, "blocks": [probe], "form": 2}
    session = _session_of({"Conv2d": Unzeroable, "SGD": TensorSGD})
    reply = session.optimizer({**request, "grads": [[{"weight": W, "bias": B}]]})
    assert torch.equal(reply["params"][0][0]["weight"], W - 0.5 * W)


def test_a_parameter_method_returning_one_bare_tensor_is_read():
    """``param()`` returning the weight itself, not a list (``tensor or []`` has no truth value)."""
    w = W.clone()
    w.grad = torch.full_like(W, 2.0)
    block = types.SimpleNamespace(param=lambda: w)
    a = Adapter({}, None)
    assert torch.equal(a.get_params(block)["weight"], W) and torch.equal(a.get_grads(block)["weight"], w.grad)
