"""Unusual but legal calls: every block of the registry against its torch.nn mirror on 3D and 5D
inputs, zero-size dimensions, integer, bool and half dtypes, inputs that require grad, layouts,
0-d tensors and Python scalars. Each call gives torch's result (values, shape, dtype; for float
inputs the input gradient too) or a documented error that names the layer; where torch raises,
impl raises. Never a silently different answer."""

import re

import pytest
import torch

import impl
from tests.helpers import assert_close
from tests.registry import SAMPLES, pair

DOCUMENTED = (impl.ShapeError, impl.DTypeError, TypeError, ValueError)
LAYER_NAMES = ("Conv2d", "ConvTranspose2d", "Upsampling", "MaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh")
LAYER_NAMES += ("Concat", "Add", "Shift", "Sequential")
NAMES_A_LAYER = re.compile(rf"\b({'|'.join(LAYER_NAMES)})\b")


def _calls(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls = {
        "3D": x[0],
        "5D": x.unsqueeze(0),
        "2D": x[0, 0],
        "empty batch": x[:0],
        "zero channels": x[:, :0],
        "zero height": x[:, :, :0],
        "requires grad": x.clone().requires_grad_(True),
        "non-contiguous": x.transpose(-1, -2).contiguous().transpose(-1, -2)[..., ::2, :],
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "expanded channels": x[:, :1].expand(x.shape),  # channel stride 0
        "0-d tensor": torch.tensor(1.5, dtype=torch.float64),
        "python float": 1.5,
        "python int": 2,
    }
    for dtype in (torch.int64, torch.int32, torch.uint8, torch.bool, torch.float16, torch.bfloat16, torch.float32):
        calls[str(dtype)] = (x * 3).to(dtype)
    return calls


CALLS = list(_calls((2, 4, 8, 6)))


def _run(mod, x):
    try:
        return mod(x), None
    except Exception as e:  # noqa: BLE001 (what torch raises is compared, not handled)
        return None, e


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_unusual_call_gives_torchs_result_or_a_clear_error(sample, call):
    x = _calls(sample.shape)[call]
    torch.manual_seed(0)
    mod, ref = pair(sample)
    dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float64
    mod.to(dtype=dtype)
    ref.to(dtype)
    ref.load_state_dict(mod.state_dict())
    expected, torch_error = _run(ref, x)
    actual, error = _run(mod, x.detach() if isinstance(x, torch.Tensor) else x)
    if error is not None:
        assert isinstance(error, DOCUMENTED), f"undocumented {type(error).__name__}: {error}"
        assert NAMES_A_LAYER.search(str(error)), str(error)
        return
    assert torch_error is None, f"torch raises {type(torch_error).__name__} ({torch_error}); impl returned a result"
    if not isinstance(expected, torch.Tensor):
        assert actual == expected
        return
    if not expected.is_floating_point():
        assert actual.dtype == expected.dtype and torch.equal(actual, expected)
        return
    reduction = max(expected.numel(), 1)
    assert_close("output", actual, expected.detach(), reduction)
    if expected.requires_grad and expected.is_floating_point():
        g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=expected.dtype)
        xr = x.detach().clone().requires_grad_(True)
        ref(xr).backward(g)
        assert_close("input gradient", mod.backward(g), xr.grad, reduction)
