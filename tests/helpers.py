"""The one parity helper: an impl block against its torch.nn mirror (the comparison itself is
:mod:`harness.parity`, which ``n2n check`` runs too).

Weights travel through ``state_dict`` (so the exchange itself is tested every time), both
forwards run, the same random upstream gradient goes back through both, and the output, the
input gradient and every named parameter gradient are compared, naming what differed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from harness.parity import max_errors, mismatch, tolerance

__all__ = ["assert_close", "assert_parity", "gradcheck", "max_errors", "tolerance"]


def assert_close(what: str, actual: Tensor, expected: Tensor, reduction: int) -> None:
    """Compare two tensors, failing with the name of the quantity and the size of the error."""
    problem = mismatch(actual, expected, reduction)
    assert problem is None, f"{what}: {problem}"


def assert_parity(
    mod: Any,
    ref: torch.nn.Module,
    *inputs: Tensor,
    seed: int = 0,
    reduction: int | None = None,
    noncontiguous_grad: bool = False,
    **forward_kwargs: Any,
) -> dict[str, Tensor]:
    """Run ``mod`` (impl, autograd off) and ``ref`` (torch.nn) on the same inputs and compare
    output, gradient of the first input and every parameter gradient. Returns the impl's
    results by name, for callers that check more."""
    x = inputs[0]
    mod.to(dtype=x.dtype, device=x.device)
    ref.to(dtype=x.dtype, device=x.device)
    ref.load_state_dict(mod.state_dict())
    mod.zero_grad()
    x_before = x.clone()

    with torch.no_grad():
        out = mod(*inputs, **forward_kwargs)

    xr = x.detach().clone().requires_grad_(True)
    out_ref = ref(xr, *inputs[1:], **forward_kwargs)
    g = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype).to(x.device)
    if noncontiguous_grad:  # same values, transposed strides
        g = g.transpose(-1, -2).contiguous().transpose(-1, -2)
    out_ref.backward(g)

    with torch.no_grad():
        grad_in = mod.backward(g)

    k = reduction or max(x.numel(), out.numel())
    assert xr.grad is not None
    assert_close("output", out, out_ref.detach(), k)
    assert_close("input gradient", grad_in, xr.grad, k)
    ref_params = dict(ref.named_parameters())
    names = [name for name, _, _ in mod.named_parameters()]
    assert sorted(names) == sorted(ref_params), f"parameters {names} != torch's {sorted(ref_params)}"
    results = {"output": out, "input gradient": grad_in}
    for name, _, grad in mod.named_parameters():
        ref_grad = ref_params[name].grad
        assert ref_grad is not None, f"torch computed no gradient for {name}"
        assert_close(f"gradient of {name}", grad, ref_grad, k)
        results[f"gradient of {name}"] = grad
    same = torch.equal(x.isnan(), x_before.isnan()) and torch.equal(x.nan_to_num(), x_before.nan_to_num())
    assert same, "forward/backward modified the input tensor"
    return results


class ImplFunction(torch.autograd.Function):
    """Test-only bridge: an impl block as an autograd Function, so ``gradcheck`` can compare
    its backward (input and parameter gradients) with finite differences."""

    @staticmethod
    def forward(ctx: Any, mod: Any, x: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        for (_, p, _), value in zip(mod.named_parameters(), params):
            p.copy_(value)
        out = mod(x.detach())
        ctx.mod, ctx.saved, ctx.params = mod, mod._saved, [p.detach().clone() for p in params]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        mod = ctx.mod
        # gradcheck evaluates the function again (perturbed) before asking for this backward:
        # restore the state of the forward this backward belongs to.
        mod._saved = ctx.saved
        for (_, p, _), value in zip(mod.named_parameters(), ctx.params):
            p.copy_(value)
        mod.zero_grad()
        with torch.no_grad():
            grad_in = mod.backward(grad)
        return (None, grad_in, *[g.clone() for _, _, g in mod.named_parameters()])


def gradcheck(mod: Any, x: Tensor, **kwargs: Any) -> bool:
    """float64 finite-difference check of an impl block's input and parameter gradients.

    Above a thousand inputs (whole networks) it uses gradcheck's fast mode: the same
    comparison along random directions instead of the full Jacobian."""
    mod.to(dtype=torch.float64, device=x.device)
    x = x.detach().to(torch.float64).requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for _, p, _ in mod.named_parameters()]
    if x.numel() + sum(p.numel() for p in params) > 1000:
        kwargs.setdefault("fast_mode", True)
    return torch.autograd.gradcheck(
        lambda x, *p: ImplFunction.apply(mod, x, *p), (x, *params), eps=1e-6, atol=1e-7, rtol=1e-5, **kwargs
    )
