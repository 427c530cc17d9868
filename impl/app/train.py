"""Training runs on disk, and models loaded for inference.

:func:`train_run` keeps a run in a directory: ``checkpoint.pth`` (weights, optimizer state, step,
generator state, configuration, loss history; written atomically, format in
:mod:`impl.app.runfile`) and ``log.jsonl`` (one JSON object per line: step, loss, lr,
images_per_s, elapsed, and val_psnr when measured), under a lock (:mod:`impl.app.rundir`). A
resumed run continues exactly where the checkpoint left it: same weights, optimizer state and
batch stream. The loop itself is :func:`impl.app.loop.train_loop`.

Models for inference are loaded by :mod:`impl.app.inference` (re-exported here).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend, ImplBackend
from .checkpoint import check_writable, load_checkpoint, remove_stray_temporaries, save_checkpoint
from .config import TrainConfig
from .distributed import Group, ShardedStream, average_gradients
from .errors import UserError
from .evaluate import EvalSet
from .inference import BackendFactory, _load_field, _takes, load_model, model_from
from .limits import check_training
from .loop import Every, Interrupted, train_loop, validation_psnr
from .rundir import RunLock, RunLog
from .runfile import (
    FORMAT,
    RunState,
    Saved,
    backend_name,
    check_optimizer_shapes,
    checkpoint_dict,
    export_model,
    read_checkpoint,
)
from .stream import BatchStream

__all__ = [
    "CHECKPOINT",
    "FORMAT",
    "LOG",
    "BackendFactory",
    "Interrupted",
    "RunState",
    "export_model",
    "load_checkpoint",
    "load_model",
    "model_from",
    "save_checkpoint",
    "train_loop",
    "train_run",
    "validation_psnr",
]

CHECKPOINT = "checkpoint.pth"
LOG = "log.jsonl"


def _build(factory: BackendFactory, config: TrainConfig, group: Group | None) -> Backend:
    """``factory``'s backend; under a data-parallel ``group``, with the gradient averaging passed in."""
    if group is None:
        return factory(config)
    if not _takes(factory, "reduce_gradients"):
        raise UserError(f"the {backend_name(factory)} backend cannot train data-parallel")
    return factory(config, reduce_gradients=functools.partial(average_gradients, group=group))


def _read_resume(config: TrainConfig, directory: Path, kind: str) -> Saved:
    """The checked checkpoint of ``directory``, whose configuration must equal ``config`` but for ``steps``."""
    path = directory / CHECKPOINT
    saved = read_checkpoint(load_checkpoint(path), path, kind)
    theirs = TrainConfig.from_dict(saved.config).to_dict()  # defaults filled in
    ours = config.to_dict()
    different = sorted(k for k in ours if k != "steps" and ours[k] != theirs[k])
    if different:
        changes = ", ".join(f"{k}: {theirs[k]!r} -> {ours[k]!r}" for k in different)
        raise UserError(f"--resume: the run in {directory} was trained with other settings ({changes})")
    return saved


def _load_optimizer(backend: Backend, state: dict[str, Any]) -> None:
    check_optimizer_shapes(state, backend.state_dict())
    backend.load_optimizer_state_dict(state)


def _restore(saved: Saved, backend: Backend, stream: BatchStream, path: Path) -> RunState:
    """Load the checkpoint into ``backend`` and ``stream``; returns its state."""
    _load_field(path, "model", backend.load_state_dict, saved.model)
    _load_field(path, "optimizer", lambda o: _load_optimizer(backend, o), saved.optimizer)
    _load_field(path, "rng", lambda rng: stream.restore(rng, saved.state.step), saved.rng)
    return saved.state


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
            except ``steps`` (a longer or shorter run). force: start over even over a checkpoint.
        group: a data-parallel job (:mod:`impl.app.distributed`): this rank trains its shard,
            gradients are averaged over the ranks, rank 0 alone validates, locks and writes.

    Raises:
        UserError: a checkpoint and neither ``resume`` nor ``force``; a resume of other settings, backend
        or a damaged checkpoint; the run held by another process; a run too large for the memory.
        FileNotFoundError: ``resume`` without a checkpoint. Interrupted: SIGINT, SIGTERM, SIGHUP.
    """
    directory, main = Path(directory), group is None or group.main
    check_training(config)
    if resume and not (directory / CHECKPOINT).is_file():
        raise FileNotFoundError(f"checkpoint not found: {directory / CHECKPOINT}")
    stream = BatchStream(config) if group is None else ShardedStream(config, group.rank)  # data checked first
    with RunLock(directory) if main else contextlib.nullcontext():
        backend, state = _start(config, directory, factory, stream, resume=resume, force=force, group=group)
        runlog = RunLog(directory / LOG, state.step if resume else None) if main else None
        every = Every(val_every if main and validation is not None else 0, log_every, checkpoint_every)
        save = None if runlog is None else _checkpointer(config, backend, stream, directory / CHECKPOINT, runlog)
        options: dict[str, Any] = {"validation": validation if main else None, "every": every, "checkpoint": save}
        options["log"] = runlog
        options |= {"max_seconds": None if max_minutes is None else 60 * max_minutes, "quiet": quiet or not main}
        return backend, train_loop(backend, stream, config, state, window=_window(runlog, state), **options)


def _start(
    config: TrainConfig,
    directory: Path,
    factory: BackendFactory,
    stream: BatchStream,
    *,
    resume: bool,
    force: bool,
    group: Group | None,
) -> tuple[Backend, RunState]:
    """Under the run lock: check the folder, clear what a killed writer left, build the backend and
    restore the checkpoint into it (``resume``), or refuse to overwrite one (neither ``resume`` nor ``force``)."""
    path = directory / CHECKPOINT
    if group is None or group.main:
        check_writable(directory)
        remove_stray_temporaries(directory)
    if not resume and path.exists() and not force:
        raise UserError(f"{path} exists: pass --resume to continue that run, --force to start over, or another --name")
    saved = _read_resume(config, directory, backend_name(factory)) if resume else None
    backend = _build(factory, config, group)
    return backend, _restore(saved, backend, stream, path) if saved is not None else RunState()


def _checkpointer(
    config: TrainConfig, backend: Backend, stream: BatchStream, path: Path, runlog: RunLog
) -> Callable[[RunState], object]:
    def save(state: RunState) -> None:
        runlog.begin()  # a new log beside the new checkpoint, never beside the old one
        save_checkpoint(checkpoint_dict(config, backend, stream.state(), state), path)

    return save


def _window(runlog: RunLog | None, state: RunState) -> tuple[int, float]:
    """Where a resumed run's first log record starts averaging: the last record kept, if it is sane."""
    last = runlog.last if runlog is not None else {}
    step, elapsed = last.get("step"), last.get("elapsed")
    if isinstance(step, int) and 0 <= step <= state.step and isinstance(elapsed, (int, float)):
        return step, min(float(elapsed), state.elapsed)
    return state.step, state.elapsed
