"""The training loop, shared by the impl blocks and the torch.nn twin, and training runs on disk.

:func:`train_loop` drives any :class:`~impl.app.backend.Backend` (a "step function" and a forward)
over a :class:`~impl.app.stream.BatchStream`: learning-rate schedule, progress bar (loss, images/s,
ETA), validation PSNR at intervals, checkpoints at intervals, a time limit, and Ctrl-C handled
between steps (the checkpoint is written, then ``KeyboardInterrupt`` propagates).

:func:`train_run` keeps a run in a directory: ``checkpoint.pth`` (weights, optimizer state, step,
generator state, configuration, loss history; written atomically) and ``log.jsonl`` (one JSON
object per line: step, loss, lr, images_per_s, elapsed, and val_psnr when measured). A resumed run
continues exactly where the checkpoint left it: same weights, optimizer state and batch stream.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from .backend import Backend, ImplBackend
from .checkpoint import check_writable, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import Group, ShardedStream, average_gradients
from .errors import UserError
from .evaluate import EvalSet, denoise_images
from .metrics import psnr
from .stream import BatchStream

CHECKPOINT = "checkpoint.pth"
LOG = "log.jsonl"
FORMAT = "n2n-checkpoint-v1"

BackendFactory = Callable[[TrainConfig], Backend]


@dataclass
class RunState:
    """Progress of a run: steps done, per-step losses, ``[step, PSNR]`` validations, training seconds."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    val_psnr: list[list[float]] = field(default_factory=list)
    elapsed: float = 0.0
    stopped: str = ""
    devices: list[str] = field(default_factory=list)  # where its steps ran ('cpu', 'cuda')


@contextlib.contextmanager
def _interrupt_between_steps() -> Iterator[dict[str, bool]]:
    """Turn the first Ctrl-C into a flag the loop checks between steps (a second one interrupts at
    once). Only the main thread can handle signals; elsewhere Ctrl-C is left alone."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def validation_psnr(backend: Backend, evalset: EvalSet) -> float:
    """Mean PSNR of the backend's outputs on an evaluation set."""
    return psnr(denoise_images(backend, evalset.noisy), evalset.clean)


def train_loop(
    backend: Backend,
    stream: BatchStream,
    config: TrainConfig,
    state: RunState,
    *,
    validation: EvalSet | None = None,
    val_every: int = 0,
    checkpoint: Callable[[RunState], object] | None = None,
    checkpoint_every: int = 0,
    log: Callable[[dict[str, Any]], object] | None = None,
    log_every: int = 10,
    max_seconds: float | None = None,
    quiet: bool = False,
) -> RunState:
    """Train from ``state.step`` to ``config.steps``; returns ``state`` with ``stopped`` set to
    ``'done'`` or ``'time limit'``. ``checkpoint(state)`` is called every ``checkpoint_every`` steps,
    at the end and on Ctrl-C; ``log(record)`` every ``log_every`` steps, at validations and at the end.
    """
    started = time.perf_counter()
    since_elapsed, since_step, since_losses = state.elapsed, state.step, []
    last_checkpoint = [f"step {state.step}" if state.step else "none yet"]

    def save(s: RunState) -> None:
        assert checkpoint is not None
        checkpoint(s)
        last_checkpoint[0] = f"step {s.step}"

    total = config.total_steps
    if state.step < total and backend.device.type not in state.devices:
        state.devices.append(backend.device.type)
    bar = tqdm(total=total, initial=state.step, unit="step", file=sys.stderr, disable=quiet, dynamic_ncols=True)
    with bar, _interrupt_between_steps() as interrupted:
        while state.step < total:
            lr = config.learning_rate(state.step)
            t0 = time.perf_counter()
            loss = backend.train_step(*stream.next_batch(), lr)
            if not math.isfinite(loss):  # stop before this state can reach a checkpoint
                raise UserError(
                    f"training diverged at step {state.step + 1}: the loss is {loss} (learning rate {lr:g}); "
                    f"the last checkpoint ({last_checkpoint[0]}) is kept: lower --lr and try again"
                )
            state.elapsed += time.perf_counter() - t0
            state.step += 1
            state.losses.append(loss)
            since_losses.append(loss)
            bar.update(1)
            done = state.step == total
            timed_out = max_seconds is not None and time.perf_counter() - started > max_seconds
            record: dict[str, Any] = {}
            if validation is not None and val_every > 0 and (state.step % val_every == 0 or done or timed_out):
                record["val_psnr"] = validation_psnr(backend, validation)
                state.val_psnr.append([state.step, record["val_psnr"]])
            if record or state.step % max(log_every, 1) == 0 or done or timed_out:
                seconds = max(state.elapsed - since_elapsed, 1e-9)  # steps and batches only, not validation
                images_per_s = config.batch_size * (state.step - since_step) / seconds
                record = {
                    "step": state.step,
                    "loss": sum(since_losses) / len(since_losses),
                    "lr": lr,
                    "images_per_s": images_per_s,
                    "elapsed": state.elapsed,
                    **record,
                }
                bar.set_postfix(loss=f"{record['loss']:.5f}", img_s=f"{images_per_s:.0f}", refresh=False)
                if log is not None:
                    log(record)
                since_elapsed, since_step, since_losses = state.elapsed, state.step, []
            if checkpoint is not None and (done or timed_out or interrupted["set"]):
                save(state)
            elif checkpoint is not None and checkpoint_every > 0 and state.step % checkpoint_every == 0:
                save(state)
            if interrupted["set"]:
                raise KeyboardInterrupt
            if timed_out and not done:
                state.stopped = "time limit"
                return state
    state.stopped = "done"
    return state


def checkpoint_dict(config: TrainConfig, backend: Backend, stream: BatchStream, state: RunState) -> dict[str, Any]:
    """Everything a resume needs, as plain tensors/numbers/strings/lists (``weights_only``-loadable)."""
    return {
        "format": FORMAT,
        "backend": getattr(backend, "name", type(backend).__name__),
        "config": config.to_dict(),
        "model": backend.state_dict(),
        "optimizer": backend.optimizer_state_dict(),
        "rng": stream.state(),
        "step": state.step,
        "losses": list(state.losses),
        "val_psnr": [list(v) for v in state.val_psnr],
        "elapsed": state.elapsed,
        "devices": list(state.devices),
    }


def export_model(path: str | Path, config: TrainConfig, backend: Backend, state: RunState | None = None) -> Path:
    """Save the weights for inference (``bestmodel.pth`` format): ``{"format", "config",
    "state_dict"}``, and ``"trained"`` (steps done, training seconds, devices) when ``state`` is given."""
    saved: dict[str, Any] = {"format": "n2n-model-v1", "config": config.to_dict(), "state_dict": backend.state_dict()}
    if state is not None:
        saved["trained"] = {"steps": state.step, "seconds": state.elapsed, "devices": list(state.devices)}
    return save_checkpoint(saved, path)


def load_model(path: str | Path, factory: BackendFactory = ImplBackend) -> Backend:
    """A backend rebuilt from a checkpoint's config, with its weights: accepts a training checkpoint
    (``checkpoint.pth``) or an exported model (``bestmodel.pth``).

    Raises:
        FileNotFoundError: no such file. UserError: not a model file of this program.
    """
    return model_from(load_checkpoint(path), path, factory)


def model_from(saved: dict[str, Any], path: str | Path, factory: BackendFactory = ImplBackend) -> Backend:
    """:func:`load_model` of an already loaded checkpoint ``saved`` (read from ``path``)."""
    weights = saved.get("state_dict", saved.get("model"))
    if not isinstance(saved.get("config"), dict) or not isinstance(weights, dict):
        raise UserError(f"{path}: not a model saved by n2n (expected the keys 'config' and 'state_dict' or 'model')")
    backend = factory(TrainConfig.from_dict(saved["config"]))
    backend.load_state_dict(weights)
    return backend


class RunLog:
    """``log.jsonl``: appends one JSON object per call, flushed at once."""

    def __init__(self, path: Path, keep_until: int | None) -> None:
        """Start empty (``keep_until=None``) or keep the records with ``step <= keep_until`` (a resume)."""
        kept = []
        if keep_until is not None and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= keep_until:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):  # a line cut short by a crash: drop it
                    continue
        path.write_text("".join(line + "\n" for line in kept))
        self.path = path

    def __call__(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def train_run(
    config: TrainConfig,
    directory: str | Path,
    *,
    factory: BackendFactory = ImplBackend,
    resume: bool = False,
    force: bool = False,
    validation: EvalSet | None = None,
    val_every: int = 250,
    checkpoint_every: int = 250,
    log_every: int = 10,
    max_minutes: float | None = None,
    quiet: bool = False,
    group: Group | None = None,
) -> tuple[Backend, RunState]:
    """Train ``config`` in ``directory`` (``checkpoint.pth``, ``log.jsonl``); see :func:`train_loop`.

    Args:
        resume: continue the checkpoint in ``directory``; ``config`` must equal the checkpoint's
            except ``steps`` (a longer or shorter run).
        force: start over even if ``directory`` holds a checkpoint.

    Raises:
        UserError: a checkpoint exists and neither ``resume`` nor ``force``; or ``resume`` with a
        different configuration or another backend.
        FileNotFoundError: ``resume`` without a checkpoint.

    With ``group`` (a data-parallel job, see :mod:`impl.app.distributed`) this rank trains its own
    shard, gradients are averaged over the ranks, and only rank 0 validates and writes files.
    """
    directory = Path(directory)
    path = directory / CHECKPOINT
    backend, state = factory(config), RunState()
    stream = BatchStream(config) if group is None else ShardedStream(config, group.rank)
    if group is not None:
        if not hasattr(backend, "reduce_gradients"):
            raise UserError(f"the {getattr(backend, 'name', 'given')} backend cannot train data-parallel")
        backend.reduce_gradients = lambda grads: average_gradients(grads, group)  # type: ignore[attr-defined]
    main = group is None or group.main
    if resume:
        saved = load_checkpoint(path)
        kind = getattr(backend, "name", type(backend).__name__)
        if saved.get("format") != FORMAT or saved.get("backend") != kind:
            raise UserError(f"{path} is not a training checkpoint of the {kind} backend")
        ours, theirs = config.to_dict(), TrainConfig.from_dict(saved["config"]).to_dict()  # defaults filled in
        different = sorted(k for k in ours if k != "steps" and ours[k] != theirs[k])
        if different:
            changes = ", ".join(f"{k}: {theirs[k]!r} -> {ours[k]!r}" for k in different)
            raise UserError(f"--resume: the run in {directory} was trained with other settings ({changes})")
        backend.load_state_dict(saved["model"])
        backend.load_optimizer_state_dict(saved["optimizer"])
        stream.load_state(saved["rng"])
        state = RunState(
            saved["step"],
            list(saved["losses"]),
            [list(v) for v in saved["val_psnr"]],
            saved["elapsed"],
            devices=list(saved.get("devices", [])),
        )
        stream.seek(state.step)
    elif path.exists() and not force:
        raise UserError(f"{path} exists: pass --resume to continue that run, --force to start over, or another --name")
    if main:
        check_writable(directory)
    state = train_loop(
        backend,
        stream,
        config,
        state,
        validation=validation if main else None,
        val_every=val_every,
        checkpoint=(lambda s: save_checkpoint(checkpoint_dict(config, backend, stream, s), path)) if main else None,
        checkpoint_every=checkpoint_every,
        log=RunLog(directory / LOG, state.step if resume else None) if main else None,
        log_every=log_every,
        max_seconds=None if max_minutes is None else 60 * max_minutes,
        quiet=quiet or not main,
    )
    return backend, state
