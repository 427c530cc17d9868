"""The shapes the product runs (tests/registry.py, family "product shapes"): the family holds every
layer configuration of the shipped networks; every strategy the engine's planner can choose for
each of their convolutions, forced, in all three directions, matches torch; the parity suite has
a case on each side of every threshold the engine consults (impl._gemm.BOUNDARIES)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import impl
from impl import _gemm, _scratch
from tests.helpers import assert_close, assert_parity
from tests.registry import (
    PRODUCT,
    PRODUCT_SAMPLES,
    ROW_BLOCK_SAMPLES,
    SAMPLES,
    SHIPPED_SAMPLES,
    Sample,
    pair,
    thresholds_seen,
)

LAYERS = (impl.Conv2d, impl.ConvTranspose2d, impl.MaxPool2d, impl.Upsampling)


def leaves(module: impl.Module) -> list[impl.Module]:
    children = [m for _, m in module.children()]
    return [module] if not children else [leaf for m in children for leaf in leaves(m)]


def test_the_family_has_every_layer_configuration_of_the_shipped_networks():
    shipped = {repr(m) for s in SHIPPED_SAMPLES for m in leaves(s.build(impl)) if isinstance(m, LAYERS)}
    family = {repr(s.build(impl)) for s in PRODUCT_SAMPLES if s not in SHIPPED_SAMPLES}
    assert shipped == family, f"only in the networks: {shipped - family}; only in the family: {family - shipped}"


@pytest.mark.parametrize("sample", ROW_BLOCK_SAMPLES, ids=[s.id for s in ROW_BLOCK_SAMPLES])
def test_row_blocks_parity(sample):
    torch.manual_seed(0)
    x = torch.randn(sample.shape, generator=torch.Generator().manual_seed(0))
    assert_parity(*pair(sample), x)


def engine_case(sample: Sample) -> dict[str, Any]:
    """The engine's conv2d behind a convolution sample: its own for a Conv2d; for a
    ConvTranspose2d, the conv2d from the transposed convolution's output back to its input."""
    layer = sample.build(impl)
    n, _, h, w = sample.shape
    kw = dict(kernel=layer.kernel_size, stride=layer.stride, padding=layer.padding)
    if isinstance(layer, impl.Conv2d):
        return dict(n=n, c=layer.in_channels, out_c=layer.out_channels, size=(h, w), **kw)
    size = layer(torch.zeros(sample.shape)).shape[2:]
    return dict(n=n, c=layer.out_channels, out_c=layer.in_channels, size=tuple(size), **kw)


def shape_of(case: dict[str, Any]) -> _gemm.Shape:
    out = _gemm._out_size(case["size"], case["kernel"], case["stride"], case["padding"], (1, 1))
    return _gemm.Shape(
        case["n"],
        case["c"],
        case["out_c"],
        case["kernel"],
        case["stride"],
        case["padding"],
        (1, 1),
        1,
        case["size"],
        out,
    )


CONVOLUTIONS = [s for s in PRODUCT_SAMPLES if s.block in ("Conv2d", "ConvTranspose2d")]
FORCED = [
    pytest.param(engine_case(s), direction, strategy, id=f"{s.id}-{direction}-{strategy}")
    for s in CONVOLUTIONS
    for direction in _gemm.DIRECTIONS
    for strategy in _gemm.strategies(direction, shape_of(engine_case(s)))
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case,direction,strategy", FORCED)
def test_forced_strategy_matches_torch(case, direction, strategy, dtype):
    g = torch.Generator().manual_seed(0)
    size, stride, padding = case["size"], case["stride"], case["padding"]
    x = torch.randn(case["n"], case["c"], *size, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(case["out_c"], case["c"], *case["kernel"], generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(case["out_c"], generator=g, dtype=dtype)
    y = torch.nn.functional.conv2d(x, w, b, stride, padding)
    grad = torch.randn(y.shape, generator=g, dtype=dtype)
    gx, gw = torch.autograd.grad(y, (x, w), grad)
    x, w = x.detach(), w.detach()
    computes = {
        "forward": lambda: _gemm.conv2d(x, w, b, stride, padding, (1, 1), 1, strategy),
        "input grad": lambda: _gemm.conv2d_input_grad(grad, w, stride, padding, (1, 1), 1, size, strategy),
        "weight grad": lambda: _gemm.conv2d_weight_grad(x, grad, w.shape, stride, padding, (1, 1), 1, strategy),
    }
    expected = {"forward": y, "input grad": gx, "weight grad": gw}[direction]
    with torch.no_grad():
        actual = computes[direction]()
        assert_close(f"{direction} by {strategy!r}", actual, expected.detach(), max(x.numel(), y.numel()))
        # the scratch arena holds only temporaries: NaN there changes neither this result nor the next
        first = actual.clone()
        for arena in _scratch._ARENAS.values():
            arena.fill_(float("nan"))
        assert torch.equal(actual, first), "the result lies in the scratch arena"
        assert torch.equal(computes[direction](), first)


def test_a_strategy_that_cannot_compute_the_shape_is_refused():
    """In every direction: the scatter strategy needs stride 1 (a forced strategy is not replaced
    by the planner's choice)."""
    x, w, g = torch.zeros(1, 4, 6, 6), torch.zeros(4, 4, 3, 3), torch.zeros(1, 4, 3, 3)
    args = ((2, 2), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="'scatter' cannot compute"):
        _gemm.conv2d(x, w, None, *args, "scatter")
    with pytest.raises(ValueError, match="'scatter' cannot compute"):
        _gemm.conv2d_weight_grad(x, g, w.shape, *args, "scatter")
    with pytest.raises(ValueError, match="'flipped' cannot compute"):
        _gemm.conv2d_input_grad(g, w, *args, (6, 6), "flipped")


def test_strategies_lists_only_what_computes_the_shape():
    """A grouped convolution has one strategy; Winograd's input gradient needs the flipped
    correlation to fit (padding at most 2), unlike its forward and weight gradient."""
    grouped = _gemm.Shape(1, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 2, (6, 6), (6, 6))
    assert all(_gemm.strategies(d, grouped) == ["grouped gather"] for d in _gemm.DIRECTIONS)
    far = _gemm.Shape(1, 4, 4, (3, 3), (1, 1), (3, 3), (1, 1), 1, (6, 6), (10, 10))
    assert "winograd 4x4" not in _gemm.strategies("input grad", far)
    assert "flipped" not in _gemm.strategies("input grad", far)
    assert "winograd 4x4" in _gemm.strategies("forward", far) and "winograd 4x4" in _gemm.strategies("weight grad", far)


def test_the_row_block_threshold_is_traced_as_it_is_taken(monkeypatch):
    """The boundary test above reads the trace: a shape of exactly BLOCK_ROWS rows is one block."""
    monkeypatch.setattr(_gemm, "TRACE", set())
    for rows in (_gemm.BLOCK_ROWS, _gemm.BLOCK_ROWS + 1):
        blocks = _gemm._blocks(rows, "forward")
        assert ("forward", "one row block", len(blocks) == 1) in _gemm.TRACE
    assert _gemm.TRACE == {("forward", "one row block", True), ("forward", "one row block", False)}


def test_every_rule_names_a_strategy_and_tests_the_engine_has():
    for direction, rules in _gemm.RULES.items():
        assert rules[-1][1] == (), f"{direction}: the last rule must always hold"
        for strategy, tests in rules:
            assert strategy in _gemm.IMPLEMENTATIONS[direction], (direction, strategy)
            assert set(tests) <= set(_gemm.TESTS), (direction, tests)


def test_the_parity_suite_has_a_case_on_each_side_of_every_boundary():
    """Every (direction, threshold) the engine consults is seen both holding and failing by the
    registry's samples (all run through every generic check) and the row-block samples (run
    through parity above), at the thresholds' real values."""
    seen = thresholds_seen(SAMPLES + ROW_BLOCK_SAMPLES)
    one_sided = {boundary: dict(sides) for boundary, sides in seen.items() if len(sides) < 2}
    assert not one_sided, f"thresholds seen on one side only (or never): {one_sided}"


def test_the_product_family_is_registered():
    assert all(s.family == PRODUCT for s in PRODUCT_SAMPLES)
    assert all(s in SAMPLES for s in PRODUCT_SAMPLES)


def conv_shape(c, out_c, size, n=1, kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1)):
    out = _gemm._out_size(size, kernel, stride, padding, dilation)
    return _gemm.Shape(n, c, out_c, kernel, stride, padding, dilation, 1, size, out)


@pytest.mark.parametrize("direction", _gemm.DIRECTIONS)
def test_plan_takes_winograd_from_its_thresholds(direction):
    """Winograd exactly from WINOGRAD_CHANNELS channels, a WINOGRAD_SIZE output side and
    WINOGRAD_PIXELS output pixels on (and, for the weight gradient, once the patches no longer
    fit), for 3x3 stride-1 undilated kernels only (the input gradient: where the flipped
    correlation fits)."""
    c, size = _gemm.WINOGRAD_CHANNELS, (_gemm.WINOGRAD_SIZE, _gemm.WINOGRAD_SIZE)
    pixels = size[0] * size[1]
    n = max(_gemm.PATCH_FLOATS // (pixels * c * 9) + 1, -(-_gemm.WINOGRAD_PIXELS // pixels))
    assert _gemm.plan(direction, conv_shape(c, c, size, n)) == "winograd 4x4"
    wide = (size[0], _gemm.WINOGRAD_PIXELS // size[0])  # one image of WINOGRAD_PIXELS pixels
    assert _gemm.plan(direction, conv_shape(c, c, wide)) == "winograd 4x4"
    not_winograd = [
        conv_shape(c, c, (wide[0], wide[1] - 1)),  # a column fewer
        conv_shape(c - 1, c, size, n),
        conv_shape(c, c - 1, size, n),
        conv_shape(c, c, (size[0], size[1] - 1), n),  # padding 1: output and input one column narrower
        conv_shape(c, c, size, n, stride=(2, 1)),
        conv_shape(c, c, size, n, dilation=(1, 2)),
        conv_shape(c, c, size, n, kernel=(3, 5), padding=(1, 2)),
    ]
    if direction == "input grad":
        not_winograd.append(conv_shape(c, c, size, n, padding=(3, 1)))  # the flipped correlation needs padding <= 2
    for s in not_winograd:
        assert not _gemm.plan(direction, s).startswith("winograd"), s
    # the input gradient's flipped correlation computes the input: its side counts, not the output's
    wider_output = conv_shape(c, c, (size[0] - 2, size[1] - 2), n, padding=(2, 2))
    narrower_output = conv_shape(c, c, size, n, padding=(0, 0))
    assert _gemm.plan(direction, wider_output).startswith("winograd") == (direction != "input grad")
    assert _gemm.plan(direction, narrower_output).startswith("winograd") == (direction == "input grad")
