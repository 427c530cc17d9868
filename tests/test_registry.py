"""Generic checks over every sample of the registry (tests/registry.py)."""

import io

import pytest
import torch

import impl
from tests.helpers import assert_parity, gradcheck
from tests.registry import CHECKED_ELSEWHERE, SAMPLES, all_blocks, pair

ids = [s.id for s in SAMPLES]
image_samples = [s for s in SAMPLES if s.image]


def data(shape, dtype=torch.float64, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_every_block_is_registered():
    registered = {s.block for s in SAMPLES}
    missing = all_blocks() - registered - set(CHECKED_ELSEWHERE)
    assert not missing, f"blocks without a registry entry: {sorted(missing)}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_parity(sample, dtype):
    torch.manual_seed(0)
    assert_parity(*pair(sample), data(sample.shape, dtype))


@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_gradcheck(sample):
    torch.manual_seed(0)
    x = data(sample.shape)
    if sample.block == "MaxPool2d":
        x = x + torch.arange(x.numel(), dtype=x.dtype).view(x.shape) * 0.01  # no ties under perturbation
    assert gradcheck(sample.build(impl), x)


LAYOUTS = {
    "non-contiguous": lambda x: x.transpose(-1, -2).contiguous().transpose(-1, -2)[..., ::2, :],
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "unbatched": lambda x: x[0],
    "empty batch": lambda x: x[:0],
}


def contains(mod, cls):
    return isinstance(mod, cls) or any(contains(child, cls) for _, child in mod.children())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("sample", image_samples, ids=[s.id for s in image_samples])
def test_layouts(sample, layout):
    torch.manual_seed(0)
    shape = (sample.shape[0], sample.shape[1], 2 * sample.shape[2], sample.shape[3])
    x = LAYOUTS[layout](data(shape))
    mod, ref = pair(sample)
    if layout == "unbatched" and contains(mod, impl.Upsampling):  # torch.nn.Upsample: 3D is (N, C, L)
        mod.to(dtype=x.dtype)
        with pytest.raises(impl.ShapeError, match=r"reads 3D as \(N, C, L\).*x.unsqueeze\(0\)"):
            mod(x)
        return
    assert_parity(mod, ref, x, noncontiguous_grad=layout == "non-contiguous")


@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_backward_twice_accumulates_twice_and_zero_grad_resets(sample):
    torch.manual_seed(0)
    mod = sample.build(impl).double()
    x = data(sample.shape)
    out = mod(x)
    g = data(out.shape, seed=1)
    first = mod.backward(g).clone()
    once = [grad.clone() for _, grad in mod.param()]
    again = mod.backward(g)
    assert torch.equal(first, again), "the input gradient changed on a second backward"
    for (_, grad), single in zip(mod.param(), once):
        torch.testing.assert_close(grad, 2 * single, rtol=1e-12, atol=1e-12)
    mod.zero_grad()
    assert all(bool((grad == 0).all()) for _, grad in mod.param())


@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_state_dict_round_trips_through_torch_and_disk(sample):
    torch.manual_seed(0)
    mod, ref = pair(sample)
    ref.load_state_dict(mod.state_dict())
    back = sample.build(impl)
    back.load_state_dict(ref.state_dict())
    buffer = io.BytesIO()
    torch.save(back.state_dict(), buffer)
    buffer.seek(0)
    disk = sample.build(impl)
    disk.load_state_dict(torch.load(buffer, weights_only=True))
    x = data(sample.shape, torch.float32)
    with torch.no_grad():
        expected = ref(x)
    for m in (mod, back, disk):
        assert torch.equal(m(x), mod(x))
    torch.testing.assert_close(mod(x), expected)


@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_same_seed_bit_identical(sample):
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        mod = sample.build(impl)
        x = data(sample.shape, torch.float32)
        out = mod(x)
        results.append((out, mod.backward(torch.ones_like(out)), [g.clone() for _, g in mod.param()]))
    (a, ga, pa), (b, gb, pb) = results
    assert torch.equal(a, b) and torch.equal(ga, gb) and all(torch.equal(p, q) for p, q in zip(pa, pb))


@pytest.mark.parametrize("sample", SAMPLES, ids=ids)
def test_repr_shows_the_arguments(sample):
    text = repr(sample.build(impl))
    for value in [*sample.args, *sample.kwargs.values()]:
        if sample.block not in ("course_network", "unet"):
            shown = (
                value if isinstance(value, (str, tuple)) else (value, value) if sample.block != "LeakyReLU" else value
            )
            assert repr(shown) in text or repr(value) in text, (value, text)


@pytest.mark.parametrize("sample", image_samples, ids=[s.id for s in image_samples])
def test_failed_forward_leaves_the_module_unchanged(sample):
    torch.manual_seed(0)
    mod = sample.build(impl)
    x = data(sample.shape, torch.float32)
    out = mod(x)
    saved, state = mod._saved, {k: v.clone() for k, v in mod.state_dict().items()}
    for bad in (torch.zeros(sample.shape, dtype=torch.int64), torch.zeros(5), torch.zeros(1, 1, 1, 1, 1)):
        with pytest.raises((RuntimeError, TypeError, ValueError)):
            mod(bad)
    assert mod._saved is saved
    assert all(torch.equal(v, state[k]) for k, v in mod.state_dict().items())
    assert mod.backward(torch.ones_like(out)).shape == x.shape


def test_impl_registry_samples_use_only_impl_modules():
    for s in SAMPLES:
        assert isinstance(s.build(impl), impl.Module)
