"""Data-parallel training on ``torch.distributed``, as launched by ``torchrun``.

``n2n train`` runs unchanged under ``torchrun --nproc-per-node N`` (or a multi-node rendezvous):
:func:`setup` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the group (gloo on CPU, nccl on CUDA) with a timeout.

- Each rank draws its own shard of samples: its batch at step ``s`` comes from a generator seeded
  with ``(seed, rank, s)`` (:class:`ShardedStream`), so a resumed run, at any world size, needs
  nothing but the step.
- After every backward the parameter gradients of the impl blocks are averaged with
  ``all_reduce``, concatenated into buckets of at most ``bucket_mb`` (one call for the course
  network), so every rank applies the same update to the same weights.
- Rank 0 alone writes checkpoints, logs and reports and validates; a rank that dies makes the
  others stop with a clear error (gloo notices the closed connection; otherwise the timeout).

This is the application layer: the blocks in ``impl`` know nothing of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .config import TrainConfig
from .errors import UserError
from .stream import BatchStream


@dataclass(frozen=True)
class Group:
    """This process's place in the job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(timeout_s: float = 60.0) -> Group | None:
    """Join the process group torchrun describes; None when not launched with several processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except Exception as e:
        raise UserError(f"could not join the distributed job ({backend}, WORLD_SIZE={world_size}): {e}") from None
    return Group(dist.get_rank(), dist.get_world_size(), device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(grads: list[Tensor], group: Group, bucket_mb: float = 25.0) -> None:
    """Replace every gradient by its mean over the ranks: one ``all_reduce`` per bucket of
    consecutive gradients of at most ``bucket_mb`` (a single tensor larger than that is its own
    bucket)."""
    limit = bucket_mb * 2**20
    bucket: list[Tensor] = []
    size = 0
    for g in grads:
        if bucket and size + g.numel() * g.element_size() > limit:
            _reduce(bucket, group)
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel() * g.element_size()
    if bucket:
        _reduce(bucket, group)


def _reduce(bucket: list[Tensor], group: Group) -> None:
    flat = torch.cat([g.reshape(-1) for g in bucket])
    try:
        dist.all_reduce(flat)
    except Exception as e:  # gloo: connection closed or timed out; nccl: a watchdog error
        raise UserError(
            f"rank {group.rank}: another process of the job stopped or timed out during the gradient "
            f"all_reduce ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); stopping"
        ) from None
    flat /= group.world_size
    offset = 0
    for g in bucket:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class ShardedStream(BatchStream):
    """This rank's batches: at step ``s`` the generator is re-seeded from ``(seed, rank, s)``."""

    def __init__(self, config: TrainConfig, rank: int) -> None:
        super().__init__(config)
        self.rank = rank
        self.step = 0

    def next_batch(self) -> tuple[Tensor, Tensor]:
        self.generator.manual_seed(((self.config.seed * 1_000_003 + self.rank) * 1_000_033 + self.step) % 2**63)
        self.step += 1
        return super().next_batch()

    def state(self) -> dict[str, Any]:
        return {"sharded_step": self.step}

    def restore(self, state: dict[str, Any], step: int) -> None:
        """Nothing to restore but the step (so any checkpoint resumes at any world size)."""
        self.step = step
