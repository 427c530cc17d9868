"""The layer contract: param(), accumulation, zero_grad, state_dict both ways, repr, init."""

import io

import pytest
import torch

import impl
import reference
from impl.models import course_network
from reference.models import course_network as ref_course_network

BLOCKS = [
    ("Conv2d", (3, 4, 3), {"stride": 2, "padding": 1}),
    ("Conv2d", (4, 4, (3, 1)), {"groups": 2, "bias": False, "padding": "same", "padding_mode": "reflect"}),
    ("ConvTranspose2d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("ConvTranspose2d", (4, 2, 2), {"groups": 2, "bias": False, "dilation": 2}),
    ("Upsampling", (), {"scale_factor": 2}),
    ("Upsampling", (), {"size": (5, 7), "mode": "nearest-exact"}),
    ("ReLU", (), {}),
    ("LeakyReLU", (0.2,), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
    ("MSELoss", (), {"reduction": "sum"}),
]


def build(module, spec):
    name, args, kw = spec
    return getattr(module, name)(*args, **kw)


@pytest.mark.parametrize("spec", BLOCKS, ids=str)
def test_backward_before_forward_raises(spec):
    with pytest.raises(RuntimeError, match="before forward"):
        build(impl, spec).backward(torch.ones(1))


@pytest.mark.parametrize("spec", BLOCKS, ids=str)
def test_same_seed_same_initial_weights_as_torch(spec):
    torch.manual_seed(7)
    mod = build(impl, spec)
    torch.manual_seed(7)
    ref = build(reference, spec)
    ours, theirs = mod.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


@pytest.mark.parametrize("spec", BLOCKS[:4], ids=str)
def test_hyper_parameters_read_like_torch(spec):
    mod, ref = build(impl, spec), build(reference, spec)
    for attr in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "padding_mode",
    ):
        assert getattr(mod, attr) == getattr(ref, attr), attr
    assert (mod.bias is None) == (ref.bias is None)
    assert mod.weight.shape == ref.weight.shape


def test_repr_reads_like_the_code():
    assert (
        repr(impl.Conv2d(3, 48, 3, stride=2, padding=1))
        == "Conv2d(3, 48, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"
    )
    assert repr(impl.Conv2d(4, 4, 3, groups=2, bias=False, padding="same", padding_mode="reflect")) == (
        "Conv2d(4, 4, kernel_size=(3, 3), padding='same', groups=2, padding_mode='reflect', bias=False)"
    )
    assert repr(impl.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1)) == (
        "ConvTranspose2d(2, 3, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))"
    )
    assert repr(impl.Upsampling(scale_factor=2)) == "Upsampling(scale_factor=2)"
    assert repr(impl.Upsampling(size=4, mode="nearest-exact")) == "Upsampling(size=4, mode='nearest-exact')"
    assert repr(impl.LeakyReLU()) == "LeakyReLU()" and repr(impl.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(impl.MSELoss()) == "MSELoss()" and repr(impl.MSELoss("sum")) == "MSELoss(reduction='sum')"
    assert repr(impl.SGD(impl.Conv2d(1, 1, 1).param(), lr=0.1)).startswith("SGD(lr=0.1, momentum=0")
    assert repr(impl.Sequential()) == "Sequential()"
    assert "(1): ReLU()" in repr(course_network())


def test_backward_accumulates_and_zero_grad_resets():
    conv = impl.Conv2d(2, 3, 3, padding=1)
    x, g = torch.randn(2, 2, 5, 5), torch.randn(2, 3, 5, 5)
    conv(x)
    conv.backward(g)
    once = [grad.clone() for _, grad in conv.param()]
    conv.backward(g)
    for (_, grad), first in zip(conv.param(), once):
        assert torch.allclose(grad, 2 * first)
    conv.zero_grad()
    assert all(bool((grad == 0).all()) for _, grad in conv.param())
    assert impl.ReLU().param() == []


@pytest.mark.parametrize("upsampling", ["nearest", "transpose"])
def test_state_dict_round_trip_through_torch_and_disk(upsampling):
    torch.manual_seed(0)
    net, ref = course_network(upsampling), ref_course_network(upsampling)
    ref.load_state_dict(net.state_dict())  # impl -> torch.nn
    other = course_network(upsampling)
    other.load_state_dict(ref.state_dict())  # torch.nn -> impl
    buffer = io.BytesIO()
    torch.save(other.state_dict(), buffer)
    buffer.seek(0)
    third = course_network(upsampling)
    third.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = ref(x)
    for m in (net, other, third):
        assert torch.allclose(m(x), expected, atol=1e-6)


def test_load_state_dict_refuses_bad_keys_and_shapes_and_changes_nothing():
    net = course_network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = {k: v.clone() + 1 for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"missing keys \['8.bias'\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "8.bias"})
    with pytest.raises(RuntimeError, match="unexpected keys"):
        net.load_state_dict({**state, "extra": torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r"'0.weight' expects shape \(48, 3, 3, 3\), got \(48, 3, 1, 1\)"):
        net.load_state_dict({**state, "0.weight": torch.zeros(48, 3, 1, 1)})
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    net.load_state_dict({"0.bias": state["0.bias"]}, strict=False)
    assert torch.equal(net.state_dict()["0.bias"], state["0.bias"])


def test_load_state_dict_keeps_optimizer_references():
    conv = impl.Conv2d(1, 1, 1)
    opt = impl.SGD(conv.param(), lr=1.0)
    conv.load_state_dict({"weight": torch.ones(1, 1, 1, 1), "bias": torch.zeros(1)})
    conv.param()[0][1].fill_(1)
    opt.step()
    assert conv.weight.item() == 0


def test_sequential_container():
    net = course_network()
    assert len(net) == 10 and isinstance(net[0], impl.Conv2d) and isinstance(net[-1], impl.Sigmoid)
    head = net[:2]
    assert isinstance(head, impl.Sequential) and head[0] is net[0]
    assert [type(m).__name__ for m in net][:2] == ["Conv2d", "ReLU"]
    net.append(impl.ReLU())
    assert len(net) == 11
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(net(x), net.forward(x))


def test_train_eval_and_to():
    net = course_network()
    assert net.eval() is net and not net[0].training
    net.train()
    assert net[3].training
    net.double()
    assert net[0].weight.dtype == torch.float64 and net.param()[0][1].dtype == torch.float64
    net.float()
    assert net[0].weight.dtype == torch.float32


def test_everything_runs_with_autograd_disabled():
    with torch.set_grad_enabled(False):
        net, loss = course_network("transpose"), impl.MSELoss()
        opt = impl.Adam(net.param())
        x = torch.rand(2, 3, 8, 8)
        loss(net(x), x)
        net.backward(loss.backward())
        opt.step()
