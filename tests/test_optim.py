"""SGD and Adam against torch.optim, step for step on a small real network."""

import itertools

import pytest
import torch

import impl
import reference
from impl.models import course_network
from reference.models import course_network as ref_course_network
from tests.helpers import assert_close

SGD_GRID = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for m, d, n, wd, mx in itertools.product([0, 0.9], [0, 0.3], [False, True], [0, 0.01], [False, True])
    if not (n and (m == 0 or d != 0))
]
ADAM_GRID = [
    dict(betas=b, weight_decay=wd, amsgrad=a, maximize=mx)
    for b, wd, a, mx in itertools.product([(0.9, 0.999), (0.5, 0.9)], [0, 0.01], [False, True], [False, True])
]


def small_net(module):
    return module.Sequential(
        module.Conv2d(3, 4, 3, stride=2, padding=1),
        module.ReLU(),
        module.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        module.Sigmoid(),
    )


def run_both(make_impl_opt, make_ref_opt, steps=6, dtype=torch.float64):
    torch.manual_seed(0)
    net, ref = small_net(impl).to(dtype=dtype), small_net(reference).to(dtype)
    ref.load_state_dict(net.state_dict())
    opt, ref_opt = make_impl_opt(net.param()), make_ref_opt(ref.parameters())
    loss, ref_loss = impl.MSELoss(), reference.MSELoss()
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = torch.rand(4, 3, 8, 8, generator=g, dtype=dtype)
        t = torch.rand(4, 3, 8, 8, generator=g, dtype=dtype)
        opt.zero_grad()
        loss(net(x), t)
        net.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        ref_loss(ref(x), t).backward()
        ref_opt.step()
        for name, p in ref.state_dict().items():
            assert_close(f"step {step} {name}", net.state_dict()[name], p, 1000)
    return opt, ref_opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", SGD_GRID, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch(kw, dtype):
    run_both(lambda p: impl.SGD(p, lr=0.1, **kw), lambda p: reference.SGD(p, lr=0.1, **kw), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", ADAM_GRID, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_adam_matches_torch(kw, dtype):
    run_both(lambda p: impl.Adam(p, lr=0.01, **kw), lambda p: reference.Adam(p, lr=0.01, **kw), dtype=dtype)


def test_state_dict_has_torch_layout_and_resumes():
    opt, ref_opt = run_both(
        lambda p: impl.Adam(p, lr=0.01, amsgrad=True), lambda p: reference.Adam(p, lr=0.01, amsgrad=True), steps=2
    )
    ours, theirs = opt.state_dict(), ref_opt.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    for i in ours["state"]:
        assert ours["state"][i].keys() == theirs["state"][i].keys()
        for k in ours["state"][i]:
            assert torch.allclose(ours["state"][i][k].double(), theirs["state"][i][k].double())
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    # a fresh optimizer loaded from the state continues identically
    net = small_net(impl).double()
    resumed = impl.Adam(net.param(), lr=0.5, amsgrad=True)
    resumed.load_state_dict(theirs)
    assert resumed.lr == 0.01 and resumed.state[0]["step"].item() == 2
    with pytest.raises(ValueError, match="state has 4 parameters, optimizer has 2"):
        impl.Adam(impl.Conv2d(1, 1, 1).param()).load_state_dict(theirs)


def test_sgd_momentum_buffer_starts_as_first_gradient():
    p, g = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    opt = impl.SGD([(p, g)], lr=1.0, momentum=0.9, dampening=0.5)
    opt.step()
    assert torch.equal(p, -g)  # no dampening on the first step, as torch
    opt.step()
    assert torch.equal(p, -g - (0.9 * g + 0.5 * g))


def test_course_network_param_order_matches_torch():
    names = [n for n, _, _ in course_network().named_parameters()]
    assert names == [n for n, _ in ref_course_network().named_parameters()]
