"""Upsampling against torch.nn.Upsample (nearest, nearest-exact): scale factors, size=, hypothesis."""

import re

import pytest
import torch
from hypothesis import given

import impl
import reference
from tests import strategies as S
from tests.helpers import assert_parity, gradcheck

DTYPES = [torch.float32, torch.float64]
SCALES = [1, 2, 3, (2, 3), 1.5, 0.5, 2.25, (0.5, 3), 1.1, 0.3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("scale_factor", SCALES)
def test_scale_factors(scale_factor, mode, dtype):
    x = S.tensors((2, 3, 7, 6), dtype, seed=1)
    kw = dict(scale_factor=scale_factor, mode=mode)
    assert_parity(impl.Upsampling(**kw), reference.Upsampling(**kw), x)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("size", [14, (14, 12), (5, 17), (3, 2), (7, 6), (1, 1)])
def test_size(size, mode):
    x = S.tensors((2, 3, 7, 6), torch.float64, seed=2)
    assert_parity(impl.Upsampling(size=size, mode=mode), reference.Upsampling(size=size, mode=mode), x)


LAYOUTS = {
    "non-contiguous": lambda x: x.transpose(2, 3).contiguous().transpose(2, 3)[:, :, ::2],
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
}


@pytest.mark.parametrize("scale_factor", [2, 1.5])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(layout, scale_factor):
    x = LAYOUTS[layout](S.tensors((2, 3, 10, 5), torch.float32, seed=3))
    kw = dict(scale_factor=scale_factor)
    assert_parity(impl.Upsampling(**kw), reference.Upsampling(**kw), x, noncontiguous_grad=layout == "non-contiguous")


def test_3d_input_is_refused_not_read_as_an_image():
    """torch.nn.Upsample reads (C, H, W) as (N, C, L) and resamples L alone: impl says so."""
    x = S.tensors((3, 10, 5), torch.float32, seed=3)
    assert reference.Upsampling(scale_factor=2)(x).shape == (3, 10, 10)  # torch: only the last dim
    message = (
        "Upsampling: got a 3D input of shape (3, 10, 5); torch.nn.Upsample reads 3D as (N, C, L) and resamples "
        "only L, so impl refuses it rather than differ: pass a 4D (N, C, H, W) image (x.unsqueeze(0) for one)"
    )
    with pytest.raises(impl.ShapeError, match=f"^{re.escape(message)}$"):
        impl.Upsampling(scale_factor=2)(x)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("in_size", range(1, 40))
def test_source_index_matches_aten_for_many_sizes(in_size, mode):
    """ATen computes source indices in float32; sizes up to 40 and awkward factors."""
    x = torch.arange(in_size, dtype=torch.float64).view(1, 1, 1, in_size)
    for factor in (0.7, 1.3, 2.5, 3.3, 1 / 3, 25.0):
        up = impl.Upsampling(scale_factor=(1, factor), mode=mode)
        if int(in_size * factor) >= 1:
            assert torch.equal(up(x), reference.Upsampling(scale_factor=(1, factor), mode=mode)(x)), factor
    for out in range(1, 50):
        kw = dict(size=(1, out), mode=mode)
        assert torch.equal(impl.Upsampling(**kw)(x), reference.Upsampling(**kw)(x)), out


@given(S.upsampling_configs(), S.dtypes, S.seeds)
def test_hypothesis(config, dtype, seed):
    kw, shape = config
    assert_parity(impl.Upsampling(**kw), reference.Upsampling(**kw), S.tensors(shape, dtype, seed), seed=seed)


@pytest.mark.parametrize(
    "kw", [dict(scale_factor=2), dict(scale_factor=(1.5, 0.5)), dict(size=(4, 9), mode="nearest-exact")]
)
def test_gradcheck(kw):
    assert gradcheck(impl.Upsampling(**kw), S.tensors((2, 2, 5, 6), torch.float64, seed=4))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_the_input_gradient_is_a_new_tensor_at_scale_one(mode):
    """At scale 1 the input gradient equals the output gradient; it is a copy, as torch's is, so
    writing into it leaves the caller's gradient alone."""
    up, g = impl.Upsampling(scale_factor=1, mode=mode), torch.rand(1, 2, 3, 4)
    up(torch.rand(1, 2, 3, 4))
    grad = up.backward(g)
    assert torch.equal(grad, g) and grad.data_ptr() != g.data_ptr()
