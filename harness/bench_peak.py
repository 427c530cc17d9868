"""One side of the benchmark's peak-memory case, in a fresh process (``python -m
harness.bench_peak NETWORK BATCH impl|reference``): prints the resident KiB that three training
steps add above the memory before them. Networks, optimizer and batch exist first; what the steps
add (activations, gradients, optimizer state, cached buffers) is sampled from /proc/self/statm
every 0.2 ms (large tensors are mmapped and unmapped when freed)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import torch

import impl
import reference

from .bench import _networks

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident bytes now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def training_step(name: str, batch: int, side: str) -> Callable[[], None]:
    net, ref = _networks(name)
    x, t = torch.rand(batch, 3, 32, 32), torch.rand(batch, 3, 32, 32)
    if side == "impl":
        opt, loss = impl.Adam(net.param()), impl.MSELoss()

        def step() -> None:
            opt.zero_grad()
            loss(net(x), t)
            net.backward(loss.backward())
            opt.step()

        return step
    ref_opt, ref_loss = reference.Adam(ref.parameters()), reference.MSELoss()

    def ref_step() -> None:
        ref_opt.zero_grad()
        ref_loss(ref(x), t).backward()
        ref_opt.step()

    return ref_step


def peak_kib(step: Callable[[], None], steps: int = 3) -> int:
    base = rss()
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(steps):
        step()
    done.set()
    sampler.join()
    return (max(peak[0], rss()) - base) // 1024


def main(argv: list[str]) -> None:
    name, batch, side = argv[0], int(argv[1]), argv[2]
    torch.set_num_threads(1)
    print(peak_kib(training_step(name, batch, side)))


if __name__ == "__main__":
    main(sys.argv[1:])
