"""One process of the benchmark's data-parallel case (``python -m harness.bench_scaling BATCH
STEPS``, under torchrun's environment or alone): prints the seconds of STEPS course-network
training steps at the global batch BATCH, gradients averaged over the processes."""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist

from impl.app import distributed
from impl.app.backend import ImplBackend
from impl.app.config import TrainConfig


def main(argv: list[str]) -> None:
    batch, steps = int(argv[0]), int(argv[1])
    group = distributed.setup()
    world = group.world_size if group else 1
    reduce = (lambda grads: distributed.average_gradients(grads, group)) if group else None
    backend = ImplBackend(TrainConfig(batch_size=batch // world), device="cpu", reduce_gradients=reduce)
    x, t = torch.rand(batch // world, 3, 32, 32), torch.rand(batch // world, 3, 32, 32)
    for _ in range(2):
        backend.train_step(x, t, 1e-4)
    if group:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        backend.train_step(x, t, 1e-4)
    if group:
        dist.barrier()
    print(time.perf_counter() - start)
    distributed.teardown()


if __name__ == "__main__":
    main(sys.argv[1:])
