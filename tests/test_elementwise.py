"""Activations and MSELoss against torch.nn."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import impl
import reference
from tests import strategies as S
from tests.helpers import assert_close, assert_parity, gradcheck

ACTIVATIONS = [("ReLU", {}), ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("Sigmoid", {}), ("Tanh", {})]
SHAPES = [(2, 3, 4, 5), (3, 4, 5), (7,), (0, 3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activation_parity(name, kw, shape, dtype):
    assert_parity(getattr(impl, name)(**kw), getattr(reference, name)(**kw), S.tensors(shape, dtype, seed=1))


SLOPES = [("LeakyReLU", {"negative_slope": s}) for s in (0.0, -0.5, 1.0, 1.5)]  # 1.0: max(x, s x) still applies


@pytest.mark.parametrize("name,kw", ACTIVATIONS + SLOPES)
def test_activation_special_values(name, kw):
    """Gradient at exactly 0 (ReLU: 0, LeakyReLU: slope), infinities, large magnitudes and NaN
    (torch's ReLU passes the gradient at NaN, LeakyReLU scales it by the slope)."""
    x = torch.tensor(
        [0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0, 1000.0, -1000.0, float("inf"), float("-inf"), float("nan")],
        dtype=torch.float64,
    )
    assert_parity(getattr(impl, name)(**kw), getattr(reference, name)(**kw), x)
    nan = torch.tensor([float("nan")])
    assert getattr(impl, name)(**kw)(nan).isnan().all()


@pytest.mark.parametrize("name,kw", ACTIVATIONS + SLOPES)
def test_backward_promotes_a_gradient_of_another_dtype(name, kw):
    """The product is written into the derivative only where it has the gradient's dtype: a
    float64 gradient of a float32 activation gives a float64 input gradient, as the product would."""
    mod = getattr(impl, name)(**kw)
    x = S.tensors((2, 3), torch.float32, seed=3)
    mod(x)
    g = S.tensors((2, 3), torch.float64, seed=4)
    got = mod.backward(g)
    assert got.dtype == torch.float64
    assert torch.equal(got, g * mod.backward(torch.ones(2, 3)).double())


@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activation_gradcheck(name, kw):
    x = S.tensors((3, 4), torch.float64, seed=2)
    x = x + x.sign() * 0.01  # keep finite differences away from the kink at 0
    assert gradcheck(getattr(impl, name)(**kw), x)


@given(st.sampled_from(ACTIVATIONS), S.dtypes, S.seeds, st.floats(0.1, 30))
def test_activation_hypothesis(activation, dtype, seed, scale):
    name, kw = activation
    assert_parity(
        getattr(impl, name)(**kw), getattr(reference, name)(**kw), S.tensors((2, 3, 5), dtype, seed) * scale, seed=seed
    )


def loss_parity(reduction, shape, dtype, seed=0):
    x, t = S.tensors(shape, dtype, seed), S.tensors(shape, dtype, seed + 1)
    mod, ref = impl.MSELoss(reduction), reference.MSELoss(reduction=reduction)
    out = mod(x, t)
    xr = x.clone().requires_grad_(True)
    out_ref = ref(xr, t)
    g = S.tensors(out_ref.shape, dtype, seed + 2) if reduction == "none" else None
    out_ref.backward(g)
    grad = mod.backward(g)
    assert_close("loss", out, out_ref.detach(), x.numel())
    assert_close("input gradient", grad, xr.grad, x.numel())


MSE_CASES = [
    (r, s) for r in ("mean", "sum", "none") for s in [(4, 3, 8, 8), (5,), (2, 0)] if (r, s) != ("mean", (2, 0))
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction,shape", MSE_CASES)
def test_mse_parity(reduction, shape, dtype):
    loss_parity(reduction, shape, dtype)


def test_mse_empty_mean_is_nan_like_torch():
    x = torch.empty(2, 0)
    assert impl.MSELoss()(x, x).isnan() and reference.MSELoss()(x, x).isnan()


def test_mse_upstream_scalar_gradient():
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    mod = impl.MSELoss("sum")
    mod(x, t)
    assert torch.allclose(mod.backward(torch.tensor(3.0, dtype=torch.float64)), 6 * (x - t))


@given(st.sampled_from(["mean", "sum", "none"]), S.dtypes, S.seeds, st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_mse_hypothesis(reduction, dtype, seed, shape):
    loss_parity(reduction, tuple(shape), dtype, seed)
