"""The training loop, shared by the impl blocks and the torch.nn twin.

:func:`train_loop` drives any :class:`~impl.app.backend.Backend` (a "step function" and a forward)
over a :class:`~impl.app.stream.BatchStream`: learning-rate schedule, progress bar (loss, images/s,
ETA), validation PSNR, log records and checkpoints at intervals (decided in one place,
:class:`Every`), a time limit, and signals handled between steps: Ctrl-C (SIGINT), SIGTERM
(``timeout``, ``docker stop``, a batch system's preemption) and SIGHUP (a closed terminal) let the
step finish, write the checkpoint, then raise :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from tqdm import tqdm

from .backend import Backend
from .config import TrainConfig
from .errors import UserError
from .evaluate import EvalSet, denoise_images
from .metrics import psnr
from .runfile import RunState
from .stream import BatchStream

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Training stopped by ``signum`` between steps (after the checkpoint), or at once by a second one."""

    def __init__(self, signum: int, saved: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.saved = signum, saved


@contextlib.contextmanager
def stop_between_steps() -> Iterator[dict[str, int]]:
    """Turn the first SIGINT/SIGTERM/SIGHUP into ``flag["signum"]``, which the loop checks between
    steps; a second one raises :class:`Interrupted` at once. Only the main thread can handle
    signals; elsewhere they are left alone, and so is a signal the process ignores (``nohup``)."""
    flag = {"signum": 0}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag["signum"]:
            raise Interrupted(signum)
        flag["signum"] = signum

    # a signal already ignored stays ignored: `nohup n2n train` must outlive its terminal
    previous = {s: signal.signal(s, handler) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass(frozen=True)
class Every:
    """The every-N-steps decisions: validate, log, checkpoint (0: never; the last step always)."""

    validate: int = 0
    log: int = 10
    checkpoint: int = 0

    def due(self, step: int, last: bool, stopping: bool) -> tuple[bool, bool, bool]:
        """(validate, log, checkpoint) after step ``step``; ``last``: the run ends here;
        ``stopping``: a signal or the time limit ends it here."""
        final = last or stopping
        validate = self.validate > 0 and (step % self.validate == 0 or final)
        log = validate or step % max(self.log, 1) == 0 or final
        checkpoint = final or (self.checkpoint > 0 and step % self.checkpoint == 0)
        return validate, log, checkpoint


def validation_psnr(backend: Backend, evalset: EvalSet) -> float:
    """Mean PSNR of the backend's outputs on an evaluation set."""
    return psnr(denoise_images(backend, evalset.noisy), evalset.clean)


def _validation(backend: Backend, validation: EvalSet, state: RunState) -> dict[str, float]:
    """The validation PSNR after this step as a log field, also kept in ``state``."""
    value = validation_psnr(backend, validation)
    state.val_psnr.append([state.step, value])
    return {"val_psnr": value}


@dataclass
class _Window:
    """The steps since the last log record: their mean loss and images per second."""

    step: int
    elapsed: float

    def record(self, state: RunState, lr: float, batch_size: int) -> dict[str, Any]:
        seconds = max(state.elapsed - self.elapsed, 1e-9)  # steps and batches only, not validation
        losses = state.losses[self.step :]
        record = {
            "step": state.step,
            "loss": sum(losses) / len(losses),
            "lr": lr,
            "images_per_s": batch_size * (state.step - self.step) / seconds,
            "elapsed": state.elapsed,
        }
        self.step, self.elapsed = state.step, state.elapsed
        return record


class _Outputs:
    """Where a step's results go: the progress bar, ``log(record)`` (means over the ``window`` since
    the last record) and ``checkpoint(state)``. A failed write (a full disk) becomes one UserError
    that says which checkpoint is kept."""

    def __init__(
        self,
        checkpoint: Callable[[RunState], object] | None,
        log: Callable[[dict[str, Any]], object] | None,
        window: _Window,
        bar: tqdm,
        batch_size: int,
    ) -> None:
        self.checkpoint, self.log, self.window, self.bar, self.batch_size = checkpoint, log, window, bar, batch_size
        self.last = "none yet"  # the step of the checkpoint on disk, as a message says it

    @contextlib.contextmanager
    def writing(self, state: RunState) -> Iterator[None]:
        try:
            yield
        except (OSError, UserError) as e:
            message = str(e) if isinstance(e, UserError) else f"{e.strerror or e}"
            raise UserError(
                f"{message}; training stopped at step {state.step}; the last checkpoint ({self.last}) is kept"
            ) from None

    def save(self, state: RunState) -> None:
        if self.checkpoint is not None:
            with self.writing(state):
                self.checkpoint(state)
            self.last = f"step {state.step}"

    def record(self, state: RunState, lr: float, extra: dict[str, float]) -> None:
        record = {**self.window.record(state, lr, self.batch_size), **extra}
        self.bar.set_postfix(loss=f"{record['loss']:.5f}", img_s=f"{record['images_per_s']:.0f}", refresh=False)
        if self.log is not None:
            with self.writing(state):
                self.log(record)


def _step(backend: Backend, stream: BatchStream, config: TrainConfig, state: RunState, last: str) -> float:
    """One optimizer step; stops before a non-finite loss can reach a checkpoint. Returns its lr."""
    lr = config.learning_rate(state.step)
    t0 = time.perf_counter()
    loss = backend.train_step(*stream.next_batch(), lr)
    if not math.isfinite(loss):
        raise UserError(
            f"training diverged at step {state.step + 1}: the loss is {loss} (learning rate {lr:g}); "
            f"the last checkpoint ({last}) is kept: lower --lr and try again"
        )
    state.elapsed += time.perf_counter() - t0
    state.step += 1
    state.losses.append(loss)
    return lr


def train_loop(
    backend: Backend,
    stream: BatchStream,
    config: TrainConfig,
    state: RunState,
    *,
    validation: EvalSet | None = None,
    every: Every = Every(),
    checkpoint: Callable[[RunState], object] | None = None,
    log: Callable[[dict[str, Any]], object] | None = None,
    max_seconds: float | None = None,
    quiet: bool = False,
    window: tuple[int, float] | None = None,
) -> RunState:
    """Train from ``state.step`` to ``config.total_steps``; returns ``state`` with ``stopped`` set to
    ``'done'`` or ``'time limit'``. ``every`` says when to validate (on ``validation``), call
    ``log(record)`` and ``checkpoint(state)``; the last step, the time limit and a signal do all
    three. ``window``: (step, elapsed) of the last log record (a resume's first record averages from there).

    Raises:
        Interrupted: a signal (the checkpoint is written first). UserError: a non-finite loss or a
        failed write (naming the checkpoint that is kept).
    """
    started, total = time.perf_counter(), config.total_steps
    if state.step < total and backend.device.type not in state.devices:
        state.devices.append(backend.device.type)
    bar = tqdm(total=total, initial=state.step, unit="step", file=sys.stderr, disable=quiet, dynamic_ncols=True)
    out = _Outputs(checkpoint, log, _Window(*(window or (state.step, state.elapsed))), bar, config.batch_size)
    out.last = f"step {state.step}" if state.step else out.last
    with bar, stop_between_steps() as stop:
        while state.step < total:
            lr = _step(backend, stream, config, state, out.last)
            bar.update(1)
            timed_out = max_seconds is not None and time.perf_counter() - started > max_seconds
            signum = stop["signum"]  # read once: a later signal waits for the next step's checkpoint
            validate, log_now, save_now = every.due(state.step, state.step == total, timed_out or bool(signum))
            extra = _validation(backend, validation, state) if validate and validation is not None else {}
            if log_now:
                out.record(state, lr, extra)
            if save_now:
                out.save(state)
            if signum:
                raise Interrupted(signum, saved=checkpoint is not None)
            if timed_out and state.step < total:
                state.stopped = "time limit"
                return state
    state.stopped = "done"
    return state
