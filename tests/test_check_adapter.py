"""How ``n2n check`` adapts to the contracts found in submissions, block by block, in this process:
parameters as bare tensors or 1-lists, a bias off by default, a loss that takes the target
first, optimizers that step with ``update()`` or take the model; and the clear refusals where
nothing fits (no parameter of that name, another layout, no step method)."""

import types
from pathlib import Path

import pytest
import torch

from harness.check.adapter import Adapter, Unsupported, _positional
from harness.check.worker import Session, _session

W, B = torch.ones(2, 1, 1, 1), torch.zeros(2)


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
    """Parameters only as attributes: nothing the checker can find."""

    weight = W


class Loss:
    def forward(self, target, prediction):
        return ((prediction - target) ** 2).mean()


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
    a.build("Conv2d", {"in_channels": 1, "out_channels": 2, "kernel_size": 1}, {"bias": True})
    assert "Conv2d: bias is off by default; passed bias=True" in a.notes


def test_a_bias_on_by_default_is_passed_without_a_note():
    class BiasOn(Conv):
        def __init__(self, in_channels, out_channels, kernel_size, bias=True):
            super().__init__(in_channels, out_channels, kernel_size)

    a = Adapter({"Conv2d": BiasOn}, None)
    a.build("Conv2d", {"in_channels": 1, "out_channels": 2, "kernel_size": 1}, {"bias": True})
    assert not a.notes


def test_parameters_as_one_lists_and_a_gradient_left_none():
    a = Adapter({}, None)
    block = Conv(1, 2, 1)
    assert a.get_grads(block) == {"weight": block.weight.grad, "bias": None}
    a.zero_grad(Bare())  # nothing to zero: no error
    block.zero_grad = None  # not callable: the gradients are zeroed one by one
    block.weight.grad += 1
    a.zero_grad(block)
    assert not block.weight.grad.any()
    assert a.get_params(Bare()) == {} and a._pair_list(Bare()) == []
    block.param = lambda: [(block.weight,), "not a parameter", None]  # what is not a parameter is skipped
    assert list(a.get_params(block)) == ["weight"]


def test_parameters_that_cannot_take_torchs_values_are_refused():
    a = Adapter({}, None)
    block = Conv(1, 2, 1)
    block.to = lambda dtype: 1 / 0  # a failing .to(): the values are set as they are
    a.set_params(block, {"weight": W.double(), "bias": B.double()})
    assert block.weight.dtype == torch.float64 and block.weight.grad is None
    with pytest.raises(Unsupported, match="no parameter 'scale' found"):
        a.set_params(block, {"scale": B})
    with pytest.raises(Unsupported, match=r"weight: stored as \(2, 1, 1, 1\), torch's layout is \(1, 2, 1, 1\)"):
        a.set_params(block, {"weight": torch.ones(1, 2, 1, 1)})


def test_the_order_of_a_loss_is_read_from_its_parameter_names():
    a = Adapter({}, None)
    assert a.loss_swapped(Loss()) and "the loss is called as (target, prediction)" in a.notes
    assert not a.loss_swapped(Opaque())
    assert _positional(Opaque.forward) == []


def test_optimizer_forms_and_steps():
    a = Adapter({"SGD": Updates, "Adam": NoStep, "Flat": Opaque}, None)
    block = Conv(1, 2, 1)
    block.bias.grad = torch.zeros(2)
    pairs = [(block.weight, torch.ones_like(W))]
    opt = Updates(pairs, 0.5)
    a.step(opt)
    assert "the optimizer steps with update()" in a.notes and torch.equal(block.weight, W - 0.5)
    with pytest.raises(Unsupported, match="neither step"):
        a.step(NoStep([], 0.1))
    with pytest.raises(Unsupported, match="none of the parameter forms"):
        a.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 2)  # the model form needs a Sequential
    with pytest.raises(Unsupported, match="takes no parameters"):
        a.make_optimizer("Flat", [block], {}, {}, 0)
    user = types.SimpleNamespace(make_optimizer=lambda name, blocks, kwargs, ns: Updates([], kwargs["lr"]))
    hooked = Adapter({}, user)
    assert hooked.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 0).lr == 0.1
    with pytest.raises(Unsupported, match="the adapter's make_optimizer for SGD failed"):
        hooked.make_optimizer("SGD", [block], {"lr": 0.1}, {}, 1)


def _session_of(namespace):
    return Session(namespace, Adapter(namespace, None), Path("."))


def test_worker_scenarios_on_odd_targets():
    spec = {"block": "Conv2d", "kwargs": {"in_channels": 1, "out_channels": 2, "kernel_size": 1}, "defaults": {}}
    session = _session_of({"Conv2d": Conv, "SGD": Updates})
    assert session.backward_first({**spec, "grad": torch.ones(1)}) == {"raised": False}
    probe = {**spec, "probe": torch.ones(1, 1, 1, 1), "probe_grad": torch.ones(1, 2, 1, 1)}
    request = {"name": "SGD", "kwargs": {"lr": 0.1}, "defaults": {}, "blocks": [probe]}
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

    session = _session_of({"Conv2d": Conv, "SGD": Refuses, "Sequential": lambda *blocks: blocks})
    with pytest.raises(TypeError, match="cannot take tuple"):  # every form fails: the last one's error
        session.optimizer({**request, "grads": [[{"weight": W}]]})


def test_an_adapter_file_can_name_the_blocks(tmp_path):
    (tmp_path / "blocks.py").write_text("class Convolution:\n    pass\n")
    (tmp_path / "adapter.py").write_text("def blocks(module):\n    return {'Conv2d': module.Convolution}\n")
    target = {"kind": "file", "root": str(tmp_path), "path": str(tmp_path / "blocks.py")}
    session = _session({"target": target, "adapter": str(tmp_path / "adapter.py")})
    assert list(session.ns) == ["Conv2d"] and session.ns["Conv2d"].__name__ == "Convolution"
