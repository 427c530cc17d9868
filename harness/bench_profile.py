"""Where a training step's time goes, per operation, for ``n2n bench``: impl's layers timed one
by one in each direction, torch's twin through ``torch.profiler``, at each thread count.

impl: a copy of the network whose every leaf layer sits inside :class:`Timed`, a module that
times its layer's ``forward`` and ``backward`` and adds the seconds to a shared clock under the
layer's kind (its repr and input size, so the U-Net's 3x3 convolutions at 32x32 and at 8x8 are
apart). torch: the profiler's self CPU time per ATen operation (a convolution's backward is one
operation there, both gradients included). Both over the same steps: forward, MSE loss, backward,
Adam step (the loss and the optimizer are timed as "rest" on impl's side).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import impl
import reference
from impl.module import Module

CONTAINERS = (impl.Sequential, impl.Concat, impl.Add)
"""The containers a profiled copy is rebuilt through (their own work is timed as 'rest')."""

Clock = dict[tuple[str, str], float]
"""(operation, direction) -> seconds, summed over the profiled steps."""


class Timed(Module):
    """``layer`` with the wall time of each call added to ``clock`` under (its kind, direction)."""

    def __init__(self, layer: Module, clock: Clock) -> None:
        super().__init__()
        self.layer, self.clock = layer, clock
        self.kind = repr(layer)

    def children(self) -> Any:
        return iter([("layer", self.layer)])

    def _timed(self, direction: str, call: Callable[[], torch.Tensor], size: str) -> torch.Tensor:
        start = time.perf_counter()
        out = call()
        self.clock[(f"{self.kind} at {size}", direction)] += time.perf_counter() - start
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._size = "x".join(str(s) for s in x.shape[-2:])
        return self._timed("forward", lambda: self.layer(x), self._size)

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        return self._timed("backward", lambda: self.layer.backward(grad_output), self._size)


def timed_copy(net: Module, clock: Clock) -> Module:
    """A copy of ``net`` (same weights) whose every leaf layer is :class:`Timed`; containers
    (Sequential and the branch containers) are rebuilt around the wrapped layers."""
    net = copy.deepcopy(net)
    _wrap(net, clock)
    return net


def _wrap(container: Module, clock: Clock) -> None:
    members = container.modules if isinstance(container, impl.Sequential) else container.branches  # type: ignore[attr-defined]
    for i, m in enumerate(members):
        if isinstance(m, CONTAINERS):
            _wrap(m, clock)
        else:
            members[i] = Timed(m, clock)


def impl_profile(net: Module, batch: int, steps: int, size: int = 32) -> Clock:
    """Milliseconds per step of each (layer kind, direction) of impl's training step, the median
    over ``steps`` steps after one warm-up step ('rest': the loss, the optimizer and the
    containers' own work; 'step': the whole step)."""
    clock: Clock = defaultdict(float)
    timed = timed_copy(net, clock)
    opt, loss = impl.Adam(timed.param(), lr=1e-4), impl.MSELoss()
    x, t = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)

    def step() -> None:
        opt.zero_grad()
        loss(timed(x), t)
        timed.backward(loss.backward())
        opt.step()

    step()
    per_step: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(steps):
        clock.clear()
        start = time.perf_counter()
        step()
        total = time.perf_counter() - start
        for key, seconds in [*clock.items(), (("rest", ""), total - sum(clock.values())), (("step", ""), total)]:
            per_step[key].append(seconds * 1e3)
    return {key: statistics.median(ms) for key, ms in per_step.items()}


def torch_profile(ref: Any, batch: int, steps: int, size: int = 32) -> Clock:
    """Milliseconds per step of each ATen operation's self CPU time in the twin's training step
    (direction 'backward' for the autograd operations), after one warm-up step."""
    opt, loss = reference.Adam(ref.parameters(), lr=1e-4), reference.MSELoss()
    x, t = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)

    def step() -> None:
        opt.zero_grad()
        loss(ref(x), t).backward()
        opt.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    clock: Clock = defaultdict(float)
    for event in prof.key_averages():
        direction = "backward" if "backward" in event.key.lower() else "forward"
        clock[(event.key, direction)] += event.self_cpu_time_total / 1e3 / steps
    return dict(clock)


def profile_rows(name: str, impl_net: Module, ref: Any, batch: int, steps: int, threads: int) -> list[dict[str, Any]]:
    """One row per (side, operation, direction) of network ``name``'s training step at
    ``threads`` (the caller sets torch's thread count)."""
    rows = []
    for side, clock in (("impl", impl_profile(impl_net, batch, steps)), ("torch", torch_profile(ref, batch, steps))):
        for (op, direction), ms in clock.items():
            rows.append(dict(network=name, batch=batch, threads=threads, side=side, op=op, direction=direction, ms=ms))
    return rows
