"""One scratch arena for the convolution engine's temporaries, reused from one call to the next.

A training step makes the same temporaries in every step: padded frames, stride phases, the
Winograd transforms' workspaces, a few MiB each. Allocated afresh, each is new memory that the C
allocator takes from the system and, trimming its heap when it is freed, gives back: every step
then pays a page fault per 4 KiB page touched (hundreds to thousands per training step of the
shipped networks on 32x32 crops, each slower than the copy that touches the page). Here every
engine call takes its temporaries one after the other from a single buffer, which the next call
takes again from its start: the same memory in every call, hot in the caches, no faults; it
grows to what the largest call needs, which a fresh allocation would have needed too.

Discipline: an entry point of the engine calls :func:`start` before its first :func:`take`;
a temporary is valid until the next :func:`start`, so a function never returns one (nor a view
of one) and never calls an entry point while it holds one. Not thread-safe (neither is a
training step). Requests above :data:`LIMIT` elements get memory of their own (an inference on
a large image would otherwise keep its frames for good).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

LIMIT = 1 << 20
"""Largest temporary taken from the arena, in elements (4 MiB of float32): the many small and
middling temporaries of a training step come from it; larger ones (the U-Net's top level at
batch 64, an inference on a large image) stay fresh allocations, so that the arena, memory held
between calls, stays small beside a step's activations (n2n bench measures the peak)."""

_ARENAS: dict[tuple[str, str], Tensor] = {}
_USED: dict[tuple[str, str], int] = {}


def start() -> None:
    """Every earlier temporary is done with: the next :func:`take` starts at the arena's start."""
    _USED.clear()


def take(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, from the arena."""
    numel = 1
    for s in shape:
        numel *= s
    if numel > LIMIT:
        return like.new_empty(shape)
    key = (str(like.dtype), str(like.device))
    arena, used = _ARENAS.get(key), _USED.get(key, 0)
    if arena is None or used + numel > arena.numel():
        # what this call has taken stays where it is (its views keep the old arena alive), this
        # temporary goes where it would have gone had the new arena been there from the start,
        # and the next call finds room for all of it; doubling: only a few sizes (each left
        # to the allocator, which may keep their memory) on the way to the largest call's
        size = max(used + numel, 2 * arena.numel() if arena is not None else 0)
        arena = _ARENAS[key] = like.new_empty(size)
    _USED[key] = used + numel
    return arena[used : used + numel].view(shape)
