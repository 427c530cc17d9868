"""Bad input everywhere a user can reach (issue 7), drawn by hypothesis: every block's forward,
the Model API. Each input either works (and then the output has the right shape) or raises one
of the documented errors with a message that names the layer or argument; the module's
parameters and its saved state are never changed by a refused input."""

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import impl
from impl.app.course import Model
from tests.registry import SAMPLES

DTYPES = [
    torch.uint8,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
    torch.float16,
    torch.float32,
    torch.float64,
]
DOCUMENTED = (impl.ShapeError, impl.DTypeError, TypeError, ValueError)


@st.composite
def tensors(draw):
    rank = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=rank, max_size=rank)))
    dtype = draw(st.sampled_from(DTYPES))
    x = torch.zeros(shape, dtype=dtype) if dtype == torch.bool else (torch.rand(shape) * 4).to(dtype)
    if x.is_floating_point() and x.numel() and draw(st.booleans()):
        x.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return x


image_samples = [s for s in SAMPLES if s.image]


@pytest.mark.parametrize("sample", image_samples, ids=[s.id for s in image_samples])
@given(x=tensors())
def test_blocks_refuse_bad_inputs_cleanly(sample, x):
    torch.manual_seed(0)
    mod = sample.build(impl)
    good = torch.rand(sample.shape)
    mod(good)
    saved, state = mod._saved, {k: v.clone() for k, v in mod.state_dict().items()}
    try:
        out = mod(x)
    except DOCUMENTED as e:
        assert mod._saved is saved, "a refused input replaced the saved state"
        assert all(torch.equal(v, state[k]) for k, v in mod.state_dict().items())
        text = str(e)
        names = {
            sample.block,
            "Conv2d",
            "ConvTranspose2d",
            "Upsampling",
            "MaxPool2d",
            "ReLU",
            "LeakyReLU",
            "Sigmoid",
            "Concat",
            "Add",
            "Shift",
        }
        assert re.search(rf"\b({'|'.join(names)})\b", text), f"the message names no layer: {text}"
        return
    assert out.dtype == x.dtype and out.dim() == x.dim()  # accepted: a float image of the right rank


@given(x=tensors())
def test_model_predict_refuses_bad_inputs_cleanly(x):
    model = Model()
    try:
        out = model.predict(x)
    except (TypeError, ValueError) as e:
        assert "test_input" in str(e)
        return
    assert out.shape == x.shape and out.dtype == torch.float32
    assert bool(((out >= 0) & (out <= 255)).all())


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.full((2, 3, 8, 8), float("nan")), "NaN or infinite"),
        (torch.full((2, 3, 8, 8), 300.0), "0-255 scale, got values from 300 to 300"),
        (torch.full((2, 3, 8, 8), -1.0), "0-255 scale"),
        (torch.zeros(0, 3, 8, 8), "empty"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.complex64), "uint8 or floating point"),
    ],
)
def test_model_train_refuses_bad_inputs_and_keeps_weights(bad, match):
    model = Model()
    before = model.backend.state_dict()
    with pytest.raises((TypeError, ValueError), match=match):
        model.train(bad, torch.zeros(2, 3, 8, 8), 1)
    assert all(torch.equal(v, before[k]) for k, v in model.backend.state_dict().items())
    with pytest.raises(ValueError, match="equal shapes"):
        model.train(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 4), 1)
