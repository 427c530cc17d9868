"""Issue 22: signals, the run lock, full disks, outputs checked before work, checked checkpoints,
memory limits, and no traceback on any path (each defect of the issue has a test here)."""

import errno
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from impl.app import checkpoint, train
from impl.app.backend import ImplBackend
from impl.app.config import TrainConfig
from n2n import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--batch-size", "2", "--channels", "4", "--crop", "8", "--val-size", "8", "--quiet", "--no-baselines"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(root):
    """Every file under ``root`` with its bytes: what a refused command must leave unchanged."""
    return {p: p.read_bytes() for p in sorted(pathlib.Path(root).rglob("*")) if p.is_file()}


def refused(capsys, *argv, names=None):
    """``n2n argv`` exits with 2 and one ``n2n: error:`` line (naming ``names``), no traceback."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith("n2n: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert names is None or names in err, err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run (runs/t: 3 steps) with its exported model m.pth, made once, copied by tests."""
    root = tmp_path_factory.mktemp("trained")
    assert cli.main(["train", "--runs-dir", str(root / "runs"), "--name", "t", "--steps", "3", *TINY,
                     "--log-every", "1", "--export", str(root / "m.pth")]) == 0  # fmt: skip
    return root


@pytest.fixture
def trained(run_dir, tmp_path):
    for path, data in files(run_dir).items():
        target = tmp_path / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return tmp_path


def spawn(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "n2n", *map(str, argv)], env=ENV, **kw)


def wait_for_log(path, lines=3, timeout=120):
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.read_text().count("\n") >= lines):
        assert time.monotonic() < deadline, f"no {lines} log lines in {path}"
        time.sleep(0.02)


LONG = ["--steps", "100000", *TINY, "--val-every", "0", "--log-every", "1"]


# --- 1. SIGTERM and SIGHUP save a checkpoint and exit with 128 + the signal ----------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_a_checkpoint_between_steps(tmp_path, signum):
    proc = spawn("train", "--runs-dir", tmp_path, "--name", "t", *LONG, "--checkpoint-every", "1000",
                 stdout=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_log(tmp_path / "t" / train.LOG, lines=5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum
    assert f"interrupted ({signal.Signals(signum).name}); checkpoint saved in" in out
    step = checkpoint.load_checkpoint(tmp_path / "t" / train.CHECKPOINT)["step"]
    assert 5 <= step < 1000  # saved on the signal, not at an interval


def test_a_run_under_nohup_ignores_sighup_and_still_saves_on_sigterm(tmp_path):
    def ignore_hangups():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = spawn("train", "--runs-dir", tmp_path, "--name", "t", *LONG, "--checkpoint-every", "1000",
                 stdout=subprocess.PIPE, text=True, preexec_fn=ignore_hangups)  # fmt: skip
    log = tmp_path / "t" / train.LOG
    wait_for_log(log, lines=3)
    proc.send_signal(signal.SIGHUP)
    lines = log.read_text().count("\n")
    wait_for_log(log, lines=lines + 5)  # still training
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "checkpoint saved" in out


# --- 2. the run lock --------------------------------------------------------------------------------


def test_a_second_run_on_a_held_folder_is_refused_naming_the_holder(tmp_path):
    holder = spawn("train", "--runs-dir", tmp_path, "--name", "t", *LONG, stdout=subprocess.DEVNULL)
    try:
        wait_for_log(tmp_path / "t" / train.LOG)
        for extra in (["--force"], ["--resume"]):
            second = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "n2n",
                    "train",
                    "--runs-dir",
                    str(tmp_path),
                    "--name",
                    "t",
                    "--steps",
                    "2",
                    *TINY,
                    *extra,
                ],  # fmt: skip
                env=ENV,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 2, second.stderr
            assert f"in use by another n2n process (PID {holder.pid})" in second.stderr
            assert "Traceback" not in second.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the lock died with its holder: the run resumes at once
    subprocess.run([sys.executable, "-m", "n2n", "train", "--runs-dir", str(tmp_path), "--name", "t",
                    "--resume", "--steps", "100000", "--max-minutes", "0", *TINY],  # fmt: skip
                   env=ENV, check=True, capture_output=True, timeout=120)  # fmt: skip


# --- 3. a full disk -----------------------------------------------------------------------------------


def test_torch_save_failing_on_a_full_disk_is_one_line_and_keeps_the_checkpoint(trained, capsys, monkeypatch):
    def full(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 47")

    before = files(trained)
    monkeypatch.setattr(checkpoint.torch, "save", full)
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--steps", "5",
                  *TINY, "--checkpoint-every", "1")  # fmt: skip
    assert "could not write" in err and "is the disk full?" in err and "the last checkpoint (step 3) is kept" in err
    now = files(trained)
    ckpt = trained / "runs" / "t" / train.CHECKPOINT
    assert now[ckpt] == before[ckpt] and set(now) == set(before)  # no temporary left


def test_log_write_failing_on_a_full_disk_is_one_line_and_keeps_the_checkpoint(trained, capsys, monkeypatch):
    real_open = pathlib.Path.open

    def full_log(self, mode="r", *args, **kwargs):
        if self.name == train.LOG and mode == "a":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", full_log)
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--steps", "5", *TINY)
    assert "log.jsonl: No space left on device" in err and "the last checkpoint (step 3) is kept" in err
    assert checkpoint.load_checkpoint(trained / "runs" / "t" / train.CHECKPOINT)["step"] == 3


def test_stray_temporaries_of_a_killed_writer_are_removed_by_the_next_run(trained, capsys):
    stray = trained / "runs" / "t" / ".checkpoint.pth.k1ll3d.tmp"
    stray.write_bytes(b"half a checkpoint")
    code, _, err = run(
        capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--steps", "4", *TINY
    )
    assert code == 0, err
    assert not stray.exists()


# --- 4. every output checked before the work ------------------------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts its work (reading the image, loading a model, training)."""

    def work(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    for name in ("read_image", "load_model", "train_run"):
        monkeypatch.setattr(cli, name, work)


@pytest.mark.parametrize("output", ["out.bmp", "a-file/out.png", "a-folder"])
def test_denoise_checks_its_output_before_any_work(trained, capsys, no_work, output):
    Image.new("RGB", (8, 8)).save(trained / "in.png")
    (trained / "a-file").write_text("in the way")
    (trained / "a-folder").mkdir()
    before = files(trained)
    refused(capsys, "denoise", trained / "in.png", trained / output, "--model", trained / "m.pth", names="OUT")
    assert files(trained) == before


def test_denoise_refuses_to_write_over_its_input(trained, capsys):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(trained / "in.png")
    before = files(trained)
    err = refused(capsys, "denoise", trained / "in.png", trained / "in.png", "--model", trained / "m.pth")
    assert "is the input file" in err and files(trained) == before


def test_train_checks_export_and_runs_folder_before_training(trained, capsys, no_work):
    (trained / "a-folder").mkdir()
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", *TINY, "--export", trained / "a-folder",
            names="--export")  # fmt: skip
    (trained / "a-file").write_text("x")
    refused(capsys, "train", "--runs-dir", trained / "a-file", *TINY, names="--runs-dir")
    with monkeypatch_access():
        refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", *TINY, names="is not writable")


class monkeypatch_access:
    """``os.access`` says nothing is writable (a read-only folder; chmod does not stop root)."""

    def __enter__(self):
        self.real = os.access
        os.access = lambda path, mode: not (mode & os.W_OK)

    def __exit__(self, *exc):
        os.access = self.real


# --- 5. checkpoints and models are checked on load, naming the field ------------------------------------


def tampered(saved, change):
    saved = dict(saved)
    change(saved)
    return saved


def _set(key, value):
    return lambda s: s.__setitem__(key, value)


def _weights_of(channels):
    return lambda s: s.__setitem__("model", ImplBackend(TrainConfig(channels=channels, crop=8)).state_dict())


CHECKPOINT_TAMPERINGS = {
    "losses missing": (lambda s: s.pop("losses"), "field 'losses' is missing"),
    "losses of the wrong type": (_set("losses", "many"), "field 'losses' must be a list of numbers"),
    "step -5": (_set("step", -5), "field 'step' must be an integer >= 0, got -5"),
    "step 1e9": (_set("step", 1e9), "field 'step' must be an integer >= 0, got 1000000000.0"),
    "step past the losses": (_set("step", 10**9), "field 'step' is 1000000000 but 'losses' holds 3 steps"),
    "bad generator state": (_set("rng", {"generator": torch.zeros(7, dtype=torch.uint8)}), "field 'rng'"),
    "no generator state": (_set("rng", {}), "field 'rng'"),
    "empty optimizer state": (_set("optimizer", {}), "field 'optimizer' must be an optimizer state dict"),
    "optimizer state of other shapes": (
        lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(2)),
        "field 'optimizer' does not fit this run's configuration: state 0.exp_avg is cpu (2,), expected (4, 3, 3, 3)",
    ),
    "weights of another width": (_weights_of(5), "field 'model' does not fit this run's configuration"),
    "meta weights": (lambda s: s["model"].__setitem__("0.weight", torch.empty(4, 3, 3, 3, device="meta")), "'model'"),
    "config not a dict": (_set("config", [1]), "field 'config' must be a dict"),
    "validations of the wrong type": (_set("val_psnr", [["a"]]), "field 'val_psnr'"),
    "elapsed not finite": (_set("elapsed", math.nan), "field 'elapsed'"),
    "devices a string": (_set("devices", "cpu"), "field 'devices'"),
    "another backend": (_set("backend", "reference"), "not a training checkpoint of the impl backend"),
}


@pytest.mark.parametrize("case", CHECKPOINT_TAMPERINGS)
def test_a_tampered_checkpoint_is_refused_on_resume_naming_the_field(trained, capsys, case):
    change, message = CHECKPOINT_TAMPERINGS[case]
    path = trained / "runs" / "t" / train.CHECKPOINT
    saved = checkpoint.load_checkpoint(path)
    saved["optimizer"] = {**saved["optimizer"], "state": {k: dict(v) for k, v in saved["optimizer"]["state"].items()}}
    saved["model"] = dict(saved["model"])
    torch.save(tampered(saved, change), path)
    before = files(trained)
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--steps", "5", *TINY,
            names=message)  # fmt: skip
    assert files(trained) == before


MODEL_TAMPERINGS = {
    "weights of another width": (_weights_of(5), "field 'state_dict' does not fit"),
    "a weight missing": (lambda s: s["state_dict"].pop("0.bias"), "missing keys ['0.bias']"),
    "a weight not a tensor": (lambda s: s["state_dict"].__setitem__("0.bias", [0.0]), "field 'state_dict' must be"),
    "config channels invalid": (lambda s: s["config"].__setitem__("channels", -3), "field 'config.channels' must be"),
    "config channels absurd": (lambda s: s["config"].__setitem__("channels", 200000), "GB of memory"),
    "config unknown key": (lambda s: s["config"].__setitem__("colour", 1), "unknown configuration keys ['colour']"),
}


def _model_file(trained, case):
    change, message = MODEL_TAMPERINGS[case]
    saved = checkpoint.load_checkpoint(trained / "m.pth")
    saved["state_dict"], saved["config"] = dict(saved["state_dict"]), dict(saved["config"])
    saved = tampered(saved, change)
    if "model" in saved:
        saved["state_dict"] = saved.pop("model")
    torch.save(saved, trained / "bad.pth")
    return message


@pytest.mark.parametrize("case", MODEL_TAMPERINGS)
def test_a_tampered_model_is_refused_by_denoise_and_evaluate_naming_the_field(trained, capsys, case):
    message = _model_file(trained, case)
    Image.new("RGB", (8, 8)).save(trained / "in.png")
    before = files(trained)
    err = refused(capsys, "denoise", trained / "in.png", trained / "out.png", "--model", trained / "bad.pth",
                  names=message)  # fmt: skip
    assert "--channels" not in err  # the value came from the file, not from a flag
    refused(capsys, "evaluate", "--model", trained / "bad.pth", "--size", "8", "--no-baselines", names=message)
    assert files(trained) == before


def test_a_saved_config_error_names_the_file_not_a_flag(trained, capsys):
    path = trained / "runs" / "t" / train.CHECKPOINT
    saved = checkpoint.load_checkpoint(path)
    saved["config"] = {**saved["config"], "crop": 6}
    torch.save(saved, path)
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--quiet")
    assert "the saved configuration's crop must be a multiple of 4" in err and "--crop" not in err
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--crop", "10")
    assert "--crop must be a multiple of 4" in err  # the user's own flag
    saved["config"] = {**saved["config"], "crop": 8, "channels": 200000}
    torch.save(saved, path)
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--quiet")
    assert "the saved configuration's channels: training a network of 200000 channels needs about" in err


def test_nan_weights_warn(trained, capsys):
    saved = checkpoint.load_checkpoint(trained / "m.pth")
    saved["state_dict"] = {k: torch.full_like(v, math.nan) for k, v in saved["state_dict"].items()}
    torch.save(saved, trained / "nan.pth")
    Image.new("RGB", (8, 8)).save(trained / "in.png")
    code, _, err = run(capsys, "denoise", trained / "in.png", trained / "out.png", "--model", trained / "nan.pth")
    assert code == 0 and "n2n: warning:" in err and "NaN or infinite weights" in err
    assert "the output is uniform or not finite" in err


# --- 6-7. sizes the metrics and the network cannot take ------------------------------------------------


def _course_pairs(path, shape):
    pairs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save((pairs, pairs), path)
    return path


@pytest.mark.parametrize("side", [1, 2])
def test_images_below_3x3_are_refused_before_evaluating(trained, capsys, side):
    m = trained / "m.pth"
    refused(capsys, "evaluate", "--model", m, "--size", side, names="--size must be an integer >= 3")
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", "--steps", "1", *TINY,
            "--val-size", side, names="--val-size must be an integer >= 3")  # fmt: skip
    folder = trained / "tiny"
    folder.mkdir()
    Image.new("RGB", (side, 5)).save(folder / "a.png")
    refused(capsys, "evaluate", "--model", m, "--images", folder, names="--images:")
    pkl = _course_pairs(trained / "val.pkl", (2, 3, side, side))
    refused(capsys, "evaluate", "--model", m, "--pkl", pkl, names="SSIM")
    assert not (trained / "runs" / "new").exists()


@pytest.mark.parametrize("shape", [(2, 3, 30, 30), (2, 3, 32, 16), (2, 3, 1, 1)])
def test_train_pkl_sizes_the_network_cannot_take_are_refused_up_front(trained, capsys, monkeypatch, shape):
    monkeypatch.setattr(ImplBackend, "train_step", lambda *args: pytest.fail("training started"))
    pkl = _course_pairs(trained / "train.pkl", shape)
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", "--pkl", pkl, *TINY,
            names="--pkl:")  # fmt: skip
    assert not (trained / "runs" / "new").exists()


# --- 8. memory and overflow -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--channels", "100000"], "--channels: training a network of 100000 channels needs about"),
        (["--batch-size", "100000000"], "--batch-size: a training step on 100000000 crops of 8x8 needs about"),
        (["--lr", "1e39"], "--lr must be a number from 0 to 3.4e+38 (float32), got 1e+39"),
    ],
)
def test_absurd_sizes_are_refused_before_allocating_and_keep_the_log(trained, capsys, flags, message):
    before = files(trained)
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--force", "--steps", "2", *TINY, *flags,
            names=message)  # fmt: skip
    assert files(trained) == before  # --force emptied nothing


def test_a_tile_that_cannot_fit_is_refused_with_the_estimate(trained, capsys, monkeypatch):
    from impl.app import limits

    monkeypatch.setattr(limits, "available_bytes", lambda device=None: 30 * 2**20)
    Image.new("RGB", (600, 400)).save(trained / "in.png")
    err = refused(capsys, "denoise", trained / "in.png", trained / "out.png", "--model", trained / "m.pth",
                  "--tile", "100000", names="--tile: running 1 x 400x600 pixels at once needs about")  # fmt: skip
    assert "more than the 0.0293 GB available" in err and not (trained / "out.png").exists()
    code, _, _ = run(capsys, "denoise", trained / "in.png", trained / "out.png", "--model", trained / "m.pth")
    assert code == 0  # the default tile fits


def test_out_of_memory_during_work_is_one_line(trained, capsys, monkeypatch):
    def oom(self, *args):
        raise MemoryError

    monkeypatch.setattr(ImplBackend, "train_step", oom)
    err = refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", "--steps", "2", *TINY)
    assert "out of memory (MemoryError); lower --tile, --batch-size or --channels" in err


# --- 9. meta tensors ------------------------------------------------------------------------------------


def test_a_pkl_of_meta_tensors_is_refused(trained, capsys):
    meta = torch.empty(2, 3, 8, 8, dtype=torch.uint8, device="meta")
    torch.save((meta, meta), trained / "meta.pkl")
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", "--pkl", trained / "meta.pkl", *TINY,
            names="--pkl:")  # fmt: skip
    refused(capsys, "evaluate", "--model", trained / "m.pth", "--pkl", trained / "meta.pkl", names="meta tensors")


# --- the questionable items, decided --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/tmp/absolute", "", ".", "a/../.."])
def test_a_run_name_outside_the_runs_folder_is_refused(tmp_path, capsys, name):
    (tmp_path / "runs").mkdir()
    before = sorted(tmp_path.rglob("*"))
    refused(capsys, "train", "--runs-dir", tmp_path / "runs", "--name", name, "--steps", "1", *TINY,
            names="--name must be a folder name inside the runs folder")  # fmt: skip
    assert sorted(tmp_path.rglob("*")) == before


class NanAtFirst(ImplBackend):
    def train_step(self, inputs, targets, lr):
        return math.nan


def test_force_keeps_the_old_log_until_the_new_run_has_made_a_step(trained, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_factory", lambda name: NanAtFirst)
    before = files(trained)
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--force", "--steps", "2", *TINY,
            names="diverged at step 1")  # fmt: skip
    assert files(trained) == before  # the old checkpoint beside its own log, not an empty one


def test_the_first_record_after_a_resume_averages_since_the_last_record(tmp_path):
    config = TrainConfig(channels=4, batch_size=2, crop=8, steps=3, lr_schedule="none")
    train.train_run(config, tmp_path, log_every=2, checkpoint_every=3, quiet=True)
    log = tmp_path / train.LOG
    kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] != 3]
    log.write_text("\n".join(kept) + "\n")  # as if killed between the checkpoint of step 3 and a record
    config.steps = 4
    _, state = train.train_run(config, tmp_path, resume=True, log_every=2, quiet=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert records[1]["loss"] == pytest.approx(sum(state.losses[2:4]) / 2)  # steps 3 and 4, not 4 alone


def test_val_images_errors_name_val_images(trained, capsys):
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", *TINY, "--val-images", trained / "no",
            names="--val-images:")  # fmt: skip
    refused(capsys, "train", "--runs-dir", trained / "runs", "--name", "new", *TINY, "--val-pkl", trained / "m.pth",
            names="--val-pkl:")  # fmt: skip


def png16(path, array):
    """A 16-bit colour PNG written by hand (PIL cannot write one)."""
    h, w, c = array.shape

    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, {3: 2, 4: 6}[c], 0, 0, 0])
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_pngs_keep_their_low_bits(tmp_path, channels):
    from impl.app.images import read_image

    values = np.random.default_rng(0).integers(0, 65536, (5, 7, channels), dtype=np.uint16)
    image = read_image(png16(tmp_path / "deep.png", values))
    assert np.abs(image.permute(1, 2, 0).numpy() - values[:, :, :3] / 65535).max() < 1e-6


def test_float_tiffs_are_read_as_values_not_black(tmp_path):
    from impl.app.images import read_image

    Image.fromarray(np.full((4, 5), 0.25, np.float32), mode="F").save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif").mean().item() == pytest.approx(0.25)


# --- the fuzz: every command, every kind of hostile file: one line, status 2, nothing changed -----------


class Payload:
    """Unpickling this would create a file: what a malicious checkpoint does."""

    def __reduce__(self):
        return (open, (str(ROOT / "tests" / "pwned-by-a-pickle"), "w"))


def _png_bytes(size=(8, 8)):
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_header():
    """A PNG whose header claims 40000 x 40000 pixels (PIL's decompression-bomb limit is 2 x 89 M)."""
    good = _png_bytes()
    header = (40000).to_bytes(4, "big") * 2 + good[24:29]
    return good[:16] + header + zlib.crc32(b"IHDR" + header).to_bytes(4, "big") + good[33:]


HOSTILE_IMAGES = {
    "empty": lambda: b"",
    "text": lambda: b"not an image at all\n",
    "truncated": lambda: _png_bytes()[:40],
    "bomb": _bomb_header,
}
u8 = torch.uint8
HOSTILE_PICKLES = {
    "payload": lambda: (torch.zeros(1), Payload()),
    "a list": lambda: [1, 2],
    "a dict": lambda: {"a": 1},
    "floats": lambda: (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)),
    "meta": lambda: (torch.empty(2, 3, 8, 8, dtype=u8, device="meta"),) * 2,
    "1x1": lambda: (torch.zeros(2, 3, 1, 1, dtype=u8),) * 2,
    "30x30": lambda: (torch.zeros(2, 3, 30, 30, dtype=u8),) * 2,
    "shapes differ": lambda: (torch.zeros(2, 3, 8, 8, dtype=u8), torch.zeros(3, 3, 8, 8, dtype=u8)),
    "empty": lambda: (torch.zeros(0, 3, 8, 8, dtype=u8),) * 2,
    "5-d": lambda: (torch.zeros(1, 2, 3, 8, 8, dtype=u8),) * 2,
}
HOSTILE_BYTES = {"garbage": b"\x80\x04garbage", "zero bytes": b"", "a zip of nothing": b"PK\x05\x06" + b"\0" * 18}


def _hostile_files(root):
    """{(kind, name): path} of every hostile file: images, course pickles, model/checkpoint files."""
    made = {}
    for name, content in HOSTILE_IMAGES.items():
        (root / "img" / name).mkdir(parents=True)
        made["image", name] = root / "img" / name / "x.png"
        made["image", name].write_bytes(content())
    for name, content in {**HOSTILE_PICKLES, **{k: None for k in HOSTILE_BYTES}}.items():
        made["pickle", name] = root / f"{name}.pkl"
        if content is None:
            made["pickle", name].write_bytes(HOSTILE_BYTES[name])
        else:
            torch.save(content(), made["pickle", name])
    for name in [*CHECKPOINT_TAMPERINGS, "payload", "a course pickle", *HOSTILE_BYTES]:
        made["checkpoint", name] = root / f"{name}.pth"
    return made


def _write_checkpoints(trained, made):
    saved = checkpoint.load_checkpoint(trained / "runs" / "t" / train.CHECKPOINT)
    for name, (change, _) in CHECKPOINT_TAMPERINGS.items():
        copy = {**saved, "model": dict(saved["model"]), "config": dict(saved["config"])}
        copy["optimizer"] = {
            **saved["optimizer"],
            "state": {k: dict(v) for k, v in saved["optimizer"]["state"].items()},
        }
        torch.save(tampered(copy, change), made["checkpoint", name])
    torch.save({**saved, "model": {"0.weight": Payload()}}, made["checkpoint", "payload"])
    torch.save((torch.zeros(2, 3, 8, 8, dtype=u8),) * 2, made["checkpoint", "a course pickle"])
    for name, content in HOSTILE_BYTES.items():
        made["checkpoint", name].write_bytes(content)


# each command with the place a hostile file goes: (kind, argv with FILE / DIR for it)
COMMANDS = [
    ("image", ["denoise", "FILE", "{t}/out.png", "--model", "{t}/m.pth"]),
    ("image", ["evaluate", "--model", "{t}/m.pth", "--images", "DIR", "--no-baselines"]),
    ("image", ["train", "--runs-dir", "{t}/runs", "--name", "new", *TINY, "--images", "DIR"]),
    ("image", ["train", "--runs-dir", "{t}/runs", "--name", "new", *TINY, "--val-images", "DIR"]),
    ("pickle", ["evaluate", "--model", "{t}/m.pth", "--pkl", "FILE", "--no-baselines"]),
    ("pickle", ["train", "--runs-dir", "{t}/runs", "--name", "new", *TINY, "--pkl", "FILE"]),
    ("pickle", ["train", "--runs-dir", "{t}/runs", "--name", "new", *TINY, "--val-pkl", "FILE"]),
    ("checkpoint", ["denoise", "{t}/in.png", "{t}/out.png", "--model", "FILE"]),
    ("checkpoint", ["evaluate", "--model", "FILE", "--size", "8", "--no-baselines"]),
    ("checkpoint", ["train", "--runs-dir", "{t}/runs", "--name", "t", "--resume", "--steps", "5", *TINY]),
]
MODEL_DAMAGE = ["weights of another width", "meta weights", "config not a dict", "payload", "a course pickle"]
NAMES = {  # what each command must refuse: a model file needs only its config and weights (the rest of
    # a checkpoint is training history), an evaluation set takes any size from 3x3 up
    "image": list(HOSTILE_IMAGES),
    "pickle": [*HOSTILE_PICKLES, *HOSTILE_BYTES],
    "checkpoint": [*CHECKPOINT_TAMPERINGS, "payload", "a course pickle", *HOSTILE_BYTES],
    "model": [*MODEL_DAMAGE, *HOSTILE_BYTES],
}


def _kind(index):
    kind, template = COMMANDS[index]
    return "model" if kind == "checkpoint" and "--resume" not in template else kind


CASES = [
    (i, name)
    for i in range(len(COMMANDS))
    for name in NAMES[_kind(i)]
    if name != "30x30" or COMMANDS[i][1][-2] == "--pkl" and COMMANDS[i][1][0] == "train"  # training needs 4k x 4k
]


def _case_id(index, name):
    kind, template = COMMANDS[index]
    slot = next((i for i, a in enumerate(template) if a in ("FILE", "DIR")), None)
    where = "--resume" if slot is None else template[slot - 1] if template[slot - 1].startswith("--") else "IN"
    return f"{template[0]} {where} {name}"


@pytest.mark.parametrize("index, name", CASES, ids=[_case_id(i, n) for i, n in CASES])
def test_every_command_refuses_every_hostile_file(trained, capsys, index, name):
    kind, template = COMMANDS[index]
    made = _hostile_files(trained / "hostile")
    _write_checkpoints(trained, made)
    Image.new("RGB", (8, 8)).save(trained / "in.png")
    target = made[kind, name]
    if template[-1] != "FILE" and "--resume" in template:  # the run's own checkpoint is the hostile file
        (trained / "runs" / "t" / train.CHECKPOINT).write_bytes(target.read_bytes())
    argv = [str(target if a == "FILE" else target.parent if a == "DIR" else a.format(t=trained)) for a in template]
    before = files(trained)
    code, out, err = run(capsys, *argv)
    assert code == 2, (argv, out, err)
    assert err.startswith("n2n: error: ") and "Traceback" not in err and err.count("\n") == 1, err
    assert files(trained) == before, "a refused command changed a file"
    assert not (ROOT / "tests" / "pwned-by-a-pickle").exists(), "loading ran the payload"


# --- the corners of the helpers -------------------------------------------------------------------------


def test_a_write_under_a_file_is_a_user_error_and_leaves_nothing(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(checkpoint.UserError, match="could not write"):
        checkpoint.atomic_write(tmp_path / "a-file" / "x.bin", lambda f: f.write(b"data"))
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_field_without_a_flag_is_named_as_it_is():
    assert cli._flag(cli.build_parser(), "denoise", "batch_size") == "batch_size"
    assert cli._flag(cli.build_parser(), "denoise", "output") == "OUT"
    assert cli._flag(cli.build_parser(), "train", "val_images") == "--val-images"


def test_a_checkpoint_from_before_devices_were_recorded_resumes(trained, capsys):
    path = trained / "runs" / "t" / train.CHECKPOINT
    saved = checkpoint.load_checkpoint(path)
    del saved["devices"]
    torch.save(saved, path)
    code, _, err = run(
        capsys, "train", "--runs-dir", trained / "runs", "--name", "t", "--resume", "--steps", "4", *TINY
    )
    assert code == 0, err
    assert checkpoint.load_checkpoint(path)["devices"] == ["cpu"]


def test_available_memory_without_proc_meminfo_is_the_physical_memory(monkeypatch):
    from impl.app import limits

    def no_proc(*args, **kwargs):
        raise OSError("not Linux")

    monkeypatch.setattr(limits, "open", no_proc, raising=False)
    assert limits.available_bytes() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
