"""Faults during training and untrusted files (issue 7): a diverging loss, a crafted pickle,
a process killed while it writes a checkpoint."""

import math
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from impl.app import checkpoint, data, train
from impl.app.backend import ImplBackend
from impl.app.config import TrainConfig
from impl.app.errors import UserError
from impl.app.rundir import LOCK


def tiny(**kw):
    return TrainConfig(**{"channels": 4, "batch_size": 2, "crop": 8, "steps": 6, **kw})


class NanAt(ImplBackend):
    """An impl backend whose loss becomes ``value`` at step ``at`` (1-based)."""

    at, value = 3, math.nan

    def __init__(self, config):
        super().__init__(config)
        self.steps = 0

    def train_step(self, inputs, targets, lr):
        self.steps += 1
        loss = super().train_step(inputs, targets, lr)
        return self.value if self.steps == self.at else loss


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, value):
    NanAt.value = value
    with pytest.raises(
        UserError, match=rf"diverged at step 3: the loss is {value}.*last checkpoint \(step 2\) is kept"
    ):
        train.train_run(tiny(), tmp_path, factory=NanAt, checkpoint_every=2, quiet=True)
    saved = checkpoint.load_checkpoint(tmp_path / train.CHECKPOINT)
    assert saved["step"] == 2
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_divergence_before_any_checkpoint_says_so(tmp_path):
    NanAt.value = math.nan
    with pytest.raises(UserError, match=r"last checkpoint \(none yet\)"):
        train.train_run(tiny(), tmp_path, factory=NanAt, checkpoint_every=5, quiet=True)
    assert not (tmp_path / train.CHECKPOINT).exists()


class Payload:
    """Unpickling this would create a file: what a malicious checkpoint does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("wrap", [lambda p: p, lambda p: {"model": {"0.weight": p}}, lambda p: (torch.zeros(1), p)])
def test_crafted_pickles_run_nothing(tmp_path, wrap):
    marker = tmp_path / "pwned"
    for name in ("checkpoint.pth", "train_data.pkl"):
        path = tmp_path / name
        torch.save(wrap(Payload(marker)), path)
        with pytest.raises((UserError, pickle.UnpicklingError, RuntimeError)):
            if name.endswith(".pth"):
                checkpoint.load_checkpoint(path)
            else:
                data.load_course_pairs(path)
        assert not marker.exists(), "loading ran the payload"


WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from impl.app import checkpoint
real_save = torch.save
def announced_save(obj, f):
    print("writing", flush=True)
    real_save(obj, f)
checkpoint.torch.save = announced_save
big = {{"model": {{"w": torch.full((8_000_000,), float(sys.argv[1]))}}, "step": int(sys.argv[1])}}
checkpoint.save_checkpoint(big, sys.argv[2])
print("saved", flush=True)
"""


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    """Kill a real writer process at random moments of its write, many times: the file is
    always the last complete checkpoint, never a partial one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = tmp_path / "checkpoint.pth"
    checkpoint.save_checkpoint({"model": {"w": torch.full((8_000_000,), 0.0)}, "step": 0}, path)
    script = WRITER.format(root=root)
    rng = torch.Generator().manual_seed(0)
    last = 0
    for attempt in range(1, 7):
        proc = subprocess.Popen([sys.executable, "-c", script, str(attempt), str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"writing\n"
        time.sleep(0.15 * torch.rand((), generator=rng).item())  # somewhere inside the ~32 MB write
        proc.send_signal(signal.SIGKILL)
        finished = proc.communicate()[0] == b"saved\n"
        saved = checkpoint.load_checkpoint(path)
        # killed before the rename: the previous file; after it (before "saved" was printed): the new one
        assert saved["step"] in ({attempt} if finished else {last, attempt})
        assert torch.equal(saved["model"]["w"], torch.full((8_000_000,), float(saved["step"])))
        last = saved["step"]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pth"]
    assert all(name.startswith(".checkpoint.pth.") and name.endswith(".tmp") for name in leftovers)


def test_unwritable_output_folder_fails_before_training(tmp_path, capsys):
    from n2n.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["train", "--runs-dir", str(blocker), "--steps", "1", "--quiet"]) == 2
    assert "could not write" in capsys.readouterr().err
    assert main(["train", "--runs-dir", str(tmp_path), "--export", str(blocker / "m.pth"), "--steps", "1"]) == 2
    assert "could not write" in capsys.readouterr().err
    assert not (tmp_path / "course").exists()  # refused before the run folder was made


def test_disk_full_while_checkpointing_keeps_the_previous_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    train.train_run(tiny(steps=2), tmp_path, checkpoint_every=2, quiet=True)
    before = (tmp_path / train.CHECKPOINT).read_bytes()

    def full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(UserError, match="could not write .*checkpoint.pth: No space left on device"):
        train.train_run(tiny(steps=4), tmp_path, resume=True, checkpoint_every=1, quiet=True)
    assert (tmp_path / train.CHECKPOINT).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, train.CHECKPOINT, train.LOG]


def test_exif_rotated_photo_is_read_upright(tmp_path):
    from PIL import Image

    from impl.app.images import read_image

    pixels = Image.new("RGB", (12, 8), (0, 0, 0))
    pixels.paste((255, 0, 0), (0, 0, 4, 4))  # a red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer turns the stored image 90 degrees clockwise
    pixels.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (3, 12, 8)  # portrait, as shown
    assert image[0, 0, -1] > 0.8 and image[0, -1, 0] < 0.2  # the red corner is now top-right


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 5)])
def test_images_smaller_than_the_receptive_field_denoise(size):
    from impl.app.course import Model

    out = Model().predict(torch.full((1, 3, *size), 128.0))
    assert out.shape == (1, 3, *size) and bool(torch.isfinite(out).all())


def test_an_exception_inside_a_write_propagates_and_leaves_no_temporary(tmp_path):
    def broken(f):
        f.write(b"half")
        raise ValueError("not an OSError")

    with pytest.raises(ValueError, match="not an OSError"):
        checkpoint.atomic_write(tmp_path / "x.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_run_killed_by_sigkill_and_resumed_ends_bit_identical(tmp_path):
    """A real `n2n train` process killed (SIGKILL) mid-run, then `--resume`d: the same weights,
    optimizer state and losses as the same run left alone."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "-m", "n2n", "train", "--name", "r", "--steps", "300", "--batch-size", "2",
            "--channels", "4", "--crop", "8", "--val-every", "0", "--checkpoint-every", "1", "--log-every", "1",
            "--quiet", "--no-baselines", "--val-size", "8"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    subprocess.run([*argv, "--runs-dir", str(tmp_path / "alone")], check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*argv, "--runs-dir", str(killed)], env=env, stdout=subprocess.DEVNULL)
    log = killed / "r" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 20) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    step = checkpoint.load_checkpoint(killed / "r" / train.CHECKPOINT)["step"]
    assert 10 <= step < 300  # the log line of a step is written just before its checkpoint
    subprocess.run([*argv, "--runs-dir", str(killed), "--resume"], check=True, env=env, capture_output=True)
    a = checkpoint.load_checkpoint(tmp_path / "alone" / "r" / train.CHECKPOINT)
    b = checkpoint.load_checkpoint(killed / "r" / train.CHECKPOINT)
    assert a["step"] == b["step"] == 300 and a["losses"] == b["losses"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(state_a[i][k], state_b[i][k]) for i in state_a for k in state_a[i])
