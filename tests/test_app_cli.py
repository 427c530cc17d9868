"""The n2n command, in process, on tiny settings: train, denoise, evaluate, report, and its errors."""

import importlib.util
import json
import signal
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impl.app.course
from harness import report
from impl.app import data
from impl.app.checkpoint import load_checkpoint
from impl.app.config import DEFAULT_STEPS
from impl.app.images import read_image
from impl.app.loop import Interrupted
from n2n import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "3", "--batch-size", "2", "--channels", "4", "--crop", "8", "--val-size", "16", "--quiet"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(tmp_path, capsys):
    """A tiny run in tmp_path/runs/t with an exported model tmp_path/m.pth."""
    code, out, _ = run(capsys, "train", "--runs-dir", tmp_path / "runs", "--name", "t", *TINY, "--val-every", "2",
                       "--export", tmp_path / "m.pth")  # fmt: skip
    assert code == 0
    return tmp_path, out


def table_methods(out):
    return [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "method" not in line]


def test_train_saves_checkpoint_log_export_and_prints_the_table(trained):
    tmp_path, out = trained
    assert table_methods(out) == ["Noisy input", "NL-means", "TV (Chambolle)", "this model (impl, n2n)"]
    assert "3 steps" in out and "held-out astronaut + coffee, 16x16" in out and "noise gaussian:25" in out
    saved = load_checkpoint(tmp_path / "runs" / "t" / "checkpoint.pth")
    assert saved["step"] == 3 and saved["config"]["channels"] == 4 and saved["backend"] == "impl"
    assert saved["config"]["lr"] == 5e-3  # the course network's default
    records = [json.loads(line) for line in (tmp_path / "runs" / "t" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3] and "val_psnr" in records[0]
    exported = load_checkpoint(tmp_path / "m.pth")
    assert set(exported) == {"format", "config", "state_dict", "trained"}
    assert exported["trained"]["steps"] == 3 and exported["trained"]["devices"] == ["cpu"]


def test_train_resume_keeps_the_run_config_and_refuses_changes(trained, capsys):
    tmp_path, _ = trained
    base = ["train", "--runs-dir", tmp_path / "runs", "--name", "t", "--quiet", "--val-size", "16"]
    code, _, err = run(capsys, *base, "--no-baselines")
    assert code == 2 and "pass --resume" in err and "Traceback" not in err
    code, _, err = run(capsys, *base, "--resume", "--lr", "0.5")
    assert code == 2 and "other settings (lr: 0.005 -> 0.5)" in err
    code, out, _ = run(capsys, *base, "--resume", "--steps", "4", "--no-baselines")
    assert code == 0 and table_methods(out) == ["Noisy input", "this model (impl, n2n)"]
    saved = load_checkpoint(tmp_path / "runs" / "t" / "checkpoint.pth")
    assert saved["step"] == 4 and saved["config"]["channels"] == 4 and saved["config"]["crop"] == 8


def test_train_default_lr_and_steps_follow_arch(tmp_path, capsys):
    code, _, _ = run(capsys, "train", "--runs-dir", tmp_path, "--name", "u", *TINY, "--arch", "unet", "--depth", "1",
                     "--no-baselines")  # fmt: skip
    assert code == 0 and load_checkpoint(tmp_path / "u" / "checkpoint.pth")["config"]["lr"] == 1e-3
    # no --steps: the U-Net's default, not the course network's (a time limit of 0 stops after one step)
    no_steps = [arg for arg in TINY if arg not in ("--steps", "3")]
    code, _, _ = run(capsys, "train", "--runs-dir", tmp_path, "--name", "v", *no_steps, "--arch", "unet",
                       "--depth", "1", "--no-baselines", "--max-minutes", "0")  # fmt: skip
    saved = load_checkpoint(tmp_path / "v" / "checkpoint.pth")
    assert code == 0 and saved["config"]["steps"] == DEFAULT_STEPS["unet"] != DEFAULT_STEPS["course"]
    assert saved["step"] == 1 and saved["config"]["batch_size"] == 2


def test_train_on_user_folders_and_course_files_with_the_reference_backend(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    pairs = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save((pairs, pairs), tmp_path / "train_data.pkl")
    torch.save((pairs, pairs), tmp_path / "val_data.pkl")
    runs = ["--runs-dir", tmp_path / "runs"]
    code, out, _ = run(capsys, "train", *runs, "--name", "a", *TINY, "--images", folder, "--val-images", folder,
                       "--noise", "poisson:20", "--backend", "reference")  # fmt: skip
    assert code == 0 and "images in" in out and "noise poisson:20" in out and "(reference, n2n)" in out
    code, out, _ = run(capsys, "train", *runs, "--name", "b", *TINY, "--pkl", tmp_path / "train_data.pkl",
                       "--val-pkl", tmp_path / "val_data.pkl")  # fmt: skip
    assert code == 0 and "val_data.pkl (4 images), noise from the file" in out
    assert load_checkpoint(tmp_path / "runs" / "b" / "checkpoint.pth")["config"]["pkl"].endswith("train_data.pkl")


def test_train_time_limit_and_ctrl_c(tmp_path, capsys, monkeypatch):
    code, out, _ = run(capsys, "train", "--runs-dir", tmp_path, *TINY, "--max-minutes", "0", "--no-baselines")
    assert code == 0 and "1 steps" in out and "--max-minutes limit; continue with --name course --resume" in out

    for stop, status, text in [
        (KeyboardInterrupt(), 130, "interrupted (SIGINT) during a step; the last checkpoint in"),
        (Interrupted(signal.SIGINT, saved=True), 130, "interrupted (SIGINT); checkpoint saved in"),
        (Interrupted(signal.SIGTERM, saved=True), 143, "interrupted (SIGTERM); checkpoint saved in"),
    ]:

        def interrupted(*args, stop=stop, **kwargs):
            raise stop

        monkeypatch.setattr(cli, "train_run", interrupted)
        code, out, _ = run(capsys, "train", "--runs-dir", tmp_path, *TINY, "--force")
        assert code == status and text in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--noise", "gaussian:x"], "--noise: cannot read"),
        (["--val-every", "-1"], "--val-every must be >= 0"),
        (["--max-minutes", "-2"], "--max-minutes must be >= 0, got -2.0"),
        (["--crop", "6"], "--crop must be a multiple of 4"),
        (["--images", "/nonexistent/dir"], "--images: /nonexistent/dir is not a directory"),
        (["--val-pkl", "/nonexistent/val.pkl"], "course data file not found"),
        (["--resume"], "checkpoint not found"),
    ],
)
def test_train_flag_errors_exit_2_without_traceback(tmp_path, capsys, flags, message):
    code, _, err = run(capsys, "train", "--runs-dir", tmp_path, *TINY, *flags)
    assert code == 2 and message in err and err.startswith("n2n: error:")


def test_argparse_rejects_malformed_values(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--steps", "many"])
    assert e.value.code == 2 and "invalid int value" in capsys.readouterr().err


def test_denoise_any_size_grey_or_rgba(trained, capsys, monkeypatch):
    tmp_path, _ = trained
    rgba = np.random.default_rng(0).integers(0, 256, (37, 29, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "in.png")
    code, out, _ = run(capsys, "denoise", tmp_path / "in.png", tmp_path / "out.png", "--model", tmp_path / "m.pth")
    assert code == 0 and "wrote" in out
    whole = read_image(tmp_path / "out.png")
    assert whole.shape == (3, 37, 29) and whole.std() > 0
    code, _, _ = run(capsys, "denoise", tmp_path / "in.png", tmp_path / "tiled.png", "--model", tmp_path / "m.pth",
                     "--tile", "8")  # fmt: skip
    assert code == 0 and (read_image(tmp_path / "tiled.png") - whole).abs().max() <= 1 / 255 + 1e-6
    code, _, _ = run(capsys, "denoise", tmp_path / "in.png", tmp_path / "x8.png", "--model", tmp_path / "m.pth",
                     "--ensemble", "--tile", "8")  # fmt: skip
    ensembled = read_image(tmp_path / "x8.png")
    assert code == 0 and ensembled.shape == whole.shape and (ensembled - whole).abs().max() > 2 / 255
    Image.fromarray(rgba[:, :, 0]).save(tmp_path / "grey.jpg")
    monkeypatch.setattr(impl.app.course, "BESTMODEL", tmp_path / "m.pth")  # the shipped course network
    code, _, _ = run(capsys, "denoise", tmp_path / "grey.jpg", tmp_path / "grey_out.jpg", "--arch", "course")
    assert code == 0 and read_image(tmp_path / "grey_out.jpg").shape == (3, 37, 29)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "out.png", "--model", "m.pth"], "image file not found"),
        (["in.png", "out.bmp", "--model", "m.pth"], "OUT: the file must end in one of"),
        (["in.png", "out.png", "--model", "m.pth", "--tile", "10"], "--tile must be a positive multiple of 4"),
        (["in.png", "out.png", "--model", "none.pth"], "checkpoint not found"),
        (["in.png", "out.png"], "no model given and no"),
        (["in.png", "out.png", "--arch", "course"], "no-bestmodel.pth"),
        (["in.png", "out.png", "--model", "m.pth", "--arch", "unet"], "--arch unet but m.pth holds a course network"),
    ],
)
def test_denoise_errors(trained, capsys, monkeypatch, args, message):
    tmp_path, _ = trained
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    monkeypatch.setattr(impl.app.course, "BESTMODEL", tmp_path / "no-bestmodel.pth")
    monkeypatch.setattr(impl.app.course, "UNET_MODEL", tmp_path / "no-unet.pth")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "denoise", *args)
    assert code == 2 and message in err


def test_evaluate_models_on_held_out_folder_and_course_file(trained, capsys, monkeypatch):
    tmp_path, _ = trained
    m, ckpt = tmp_path / "m.pth", tmp_path / "runs" / "t" / "checkpoint.pth"
    code, out, _ = run(capsys, "evaluate", "--model", m, "--model", ckpt, "--size", "16")
    assert code == 0 and table_methods(out) == ["Noisy input", "NL-means", "TV (Chambolle)", str(m), str(ckpt)]
    numbers = {line.split("|")[1].strip(): line.split("|")[2:] for line in out.splitlines() if line.startswith("| ")}
    assert numbers[str(m)] == numbers[str(ckpt)]  # the exported model is the checkpoint's weights
    code, out, _ = run(capsys, "evaluate", "--model", m, "--size", "16", "--no-baselines", "--ensemble")
    assert code == 0 and table_methods(out) == ["Noisy input", str(m), f"{m}, x8 self-ensemble"]
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((9, 11, 3), 128, np.uint8)).save(folder / "a.png")
    code, out, _ = run(capsys, "evaluate", "--model", m, "--images", folder, "--noise", "poisson:30", "--no-baselines")
    assert code == 0 and "noise poisson:30" in out and len(table_methods(out)) == 2
    pairs = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save((pairs, pairs), tmp_path / "val_data.pkl")
    code, out, _ = run(capsys, "evaluate", "--model", m, "--pkl", tmp_path / "val_data.pkl")
    assert code == 0 and "noise from the file" in out
    assert "| Noisy input" in out and "100.00 | 1.0000" in out  # noisy == clean in this file
    monkeypatch.setattr(impl.app.course, "BESTMODEL", m)  # the shipped models that exist: here the course one
    monkeypatch.setattr(impl.app.course, "UNET_MODEL", tmp_path / "no-unet.pth")
    code, out, _ = run(capsys, "evaluate", "--size", "16", "--tile", "8", "--no-baselines")
    assert code == 0 and table_methods(out) == ["Noisy input", str(m)]
    monkeypatch.setattr(impl.app.course, "BESTMODEL", tmp_path / "no-bestmodel.pth")
    code, _, err = run(capsys, "evaluate", "--size", "16", "--no-baselines")
    assert code == 2 and "no-unet.pth" in err
    torch.save(([1],), tmp_path / "bad.pkl")
    code, _, err = run(capsys, "evaluate", "--model", m, "--pkl", tmp_path / "bad.pkl")
    assert code == 2 and "expected a pair of uint8 tensors" in err


def test_report_writes_markdown_and_figures_and_reuses_runs(tmp_path, capsys, monkeypatch):
    args = ["report", "--out", tmp_path / "rep", "--runs-dir", tmp_path / "runs", "--steps", "2", "--unet-steps", "2",
            "--batch-size", "2", "--unet-batch-size", "3", "--channels", "4", "--unet-channels", "4",
            "--val-every", "1", "--size", "16", "--quiet"]  # fmt: skip
    monkeypatch.setattr(impl.app.course, "UNET_MODEL", tmp_path / "no-unet.pth")
    code, out, _ = run(capsys, *args)
    assert code == 0 and "denoising.md" in out
    text = (tmp_path / "rep" / "denoising.md").read_text()
    for needle in ["| impl N2N ", "| reference N2N ", "| impl N2C ", "| U-Net N2N ", "| U-Net N2C ", "| NL-means ",
                   "| TV (Chambolle) ", "Quality bars", "within 0.1 dB", ">= 28.5 dB", "n/a: not the main job",
                   ">= +1.0 dB", "unet(depth=3, width=4, residual=True)", "| 2 | cpu |", "--unet-batch-size 3",
                   "U-Net lr 0.001, batch 3, 2 steps", "figures/loss.png", "figures/crops.png",
                   ", ".join(data.HELD_OUT)]:  # fmt: skip
        assert needle in text, needle
    assert "BM3D" not in text  # no shipped U-Net here
    for name in ("loss.png", "crops.png"):
        assert (tmp_path / "rep" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = ["impl-n2c", "impl-n2n", "reference-n2n", "unet-n2c", "unet-n2n"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs
    calls, real = [], report.train_run
    monkeypatch.setattr(report, "train_run", lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    monkeypatch.setattr(impl.app.course, "UNET_MODEL", tmp_path / "runs" / "unet-n2n" / "checkpoint.pth")
    code, _, _ = run(capsys, *args)
    assert code == 0 and calls == [True] * 5  # finished runs with the same config: reused
    text = (tmp_path / "rep" / "denoising.md").read_text()
    assert "| U-Net shipped (impl/unet.pth) " in text and "vs colour BM3D (32.8 dB quoted, not run)" in text
    assert "| U-Net shipped (impl/unet.pth), x8 self-ensemble " in text and "dB); x8 self-ensemble " in text
    (tmp_path / "rep" / "bm3d.json").write_text(json.dumps(bm3d_record(16, 5.0, 99.0)))  # measured BM3D
    code, _, _ = run(capsys, *args)
    text = (tmp_path / "rep" / "denoising.md").read_text()
    assert code == 0 and "quoted, not run" not in text and "BM3D 99.00 dB, SSIM 0.9500" in text
    assert "| shipped U-Net vs colour BM3D on the same noisy pixels (bm3d 0.0, measured) | >= 5.00 dB |" in text
    assert "| >= 99.00 dB |" in text and "trained on clipped inputs)" in text and text.count("| yes |") >= 1
    assert "U-Net shipped (impl/unet.pth): `unet(depth=3, width=4, residual=True)`, N2N with raw targets" in text
    assert "training time not recorded" in text  # a training checkpoint has no "trained" record
    trained = {"config": report.TrainConfig().to_dict(), "trained": {"steps": 5, "seconds": 2.0, "devices": ["cuda"]}}
    assert "5 steps, 2 s of training on cuda." in report._shipped_text(trained)
    changed = [a if a != "2" else "3" for a in args]
    calls.clear()
    code, _, _ = run(capsys, *changed)
    assert code == 0 and calls == [False] * 5  # another config: trained again


def _verdict_text(psnrs, unet_state, cpu_step_ms=None, config=None):
    rows = [report.Row(name, psnr, 0.9, []) for name, psnr in psnrs.items()]
    configs = {name: config or report.TrainConfig() for name, *_ in report.RUNS}
    states = {name: report.RunState(step=1) for name, *_ in report.RUNS}
    states["impl N2N"] = report.RunState(step=4000, losses=[0.1], elapsed=600.0)
    states["U-Net N2N"] = unet_state
    return report._markdown(configs, rows, states, 30.0, 256, cpu_step_ms)


PSNRS = {"Noisy input": 20.8, "NL-means": 30.1, "impl N2N": 28.6, "reference N2N": 28.65, "impl N2C": 28.7,
         "U-Net N2N": 31.2, "U-Net N2C": 31.25}  # fmt: skip


def test_report_verdicts():
    cpu = report.RunState(step=1000, elapsed=600.0, devices=["cpu"])
    text = _verdict_text(PSNRS, cpu)
    assert "| 10.5 min | yes |" in text and "| -0.050 dB | yes |" in text and "| 28.60 dB | yes |" in text
    assert "| +1.10 dB | yes |" in text and "| +0.050 dB | yes |" in text  # U-Net over NL-means, N2C - N2N
    assert "| 10.0 min (measured) + 0.5 min evaluation | yes |" in text
    text = _verdict_text({**PSNRS, "impl N2N": 28.4, "U-Net N2N": 31.0}, report.RunState(step=1))
    assert "| 28.40 dB | **no** |" in text and "| +0.300 dB | **no** |" in text and "| 0 |" in text
    assert "| +0.90 dB | **no** |" in text and "| +0.250 dB | **no** |" in text
    assert "| 0.0 min (measured) + 0.5 min evaluation | yes |" in text and "cpu (not recorded)" in text
    gpu = report.RunState(step=1000, elapsed=60.0, devices=["cuda"])
    text = _verdict_text(PSNRS, gpu, cpu_step_ms=900.0, config=report.TrainConfig(batch_size=64))
    assert "| 15.0 min (estimated: steps x 900 ms) + 0.5 min evaluation | **no** |" in text
    text = _verdict_text(PSNRS, gpu, cpu_step_ms=900.0)  # the default batch, 16
    assert "| 3.8 min (estimated: steps x 225 ms) + 0.5 min evaluation | yes |" in text  # scaled per image
    assert "unknown: trained off the CPU and no bench.json" in _verdict_text(PSNRS, gpu)
    assert "n/a: not the main job" in _verdict_text(PSNRS, gpu, config=report.TrainConfig(channels=8))


def bm3d_record(size, clipped_db, unclipped_db):
    scores = {"clipped": {"psnr": clipped_db, "ssim": 0.85}, "unclipped": {"psnr": unclipped_db, "ssim": 0.95}}
    return {"method": "CBM3D", "package": "bm3d 0.0", "noise": "gaussian:25", "seed": 2022, "size": size, **scores}


def test_report_compares_the_shipped_unet_with_the_measured_bm3d():
    unet = report.RunState(step=1000, elapsed=600.0, devices=["cpu"])
    psnrs = {**PSNRS, report.SHIPPED_UNET: 31.0, report.SHIPPED_UNET + ", x8 self-ensemble": 31.2}
    unclipped = {report.SHIPPED_UNET: 30.6, report.SHIPPED_UNET + ", x8 self-ensemble": 30.8}
    rows = [report.Row(name, psnr, 0.9, []) for name, psnr in psnrs.items()]
    configs = {name: report.TrainConfig() for name, *_ in report.RUNS}
    states = {name: unet for name, *_ in report.RUNS}
    quoted = report._markdown(configs, rows, states, 30.0, 256, None)
    assert "| >= 32.80 dB | 31.00 dB (-1.80 dB); x8 self-ensemble 31.20 dB (-1.60 dB) | **no** |" in quoted
    text = report._markdown(configs, rows, states, 30.0, 256, None, "", bm3d_record(256, 30.86, 32.18), unclipped)
    assert "| >= 30.86 dB | 31.00 dB (+0.14 dB); x8 self-ensemble 31.20 dB (+0.34 dB) | yes |" in text
    assert "| >= 32.18 dB | 30.60 dB (-1.58 dB); x8 self-ensemble 30.80 dB (-1.38 dB) | **no** |" in text
    assert "30.86 dB, SSIM 0.8500 on these noisy pixels" in text and "30.60 dB, 30.80 dB (plain, x8" in text
    assert "quoted, not run" not in text


@pytest.mark.parametrize(
    "contents",
    [
        "not json",
        json.dumps({"size": 256}),
        json.dumps(bm3d_record(128, 30.0, 32.0)),
        json.dumps({**bm3d_record(256, 30.0, 32.0), "clipped": {"psnr": "high"}}),
        json.dumps({**bm3d_record(256, 30.0, 32.0), "package": 4}),
    ],  # fmt: skip
)
def test_report_ignores_a_bm3d_file_it_cannot_use(tmp_path, contents):
    assert report._bm3d(tmp_path, 256) is None  # no file
    (tmp_path / "bm3d.json").write_text(contents)
    assert report._bm3d(tmp_path, 256) is None
    (tmp_path / "bm3d.json").write_text(json.dumps(bm3d_record(256, 30.0, 32.0)))
    assert report._bm3d(tmp_path, 256)["unclipped"] == {"psnr": 32.0, "ssim": 0.95}


def test_bm3d_reference_tool_writes_the_file_the_report_reads(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bm3d_reference", ROOT / "tools" / "bm3d_reference.py")
    fake = types.ModuleType("bm3d")
    fake.bm3d_rgb = lambda z, sigma: z * 0.5 + 0.25  # (H, W, 3) float64 in and out
    monkeypatch.setitem(sys.modules, "bm3d", fake)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "version", lambda name: "9.9")
    monkeypatch.setattr(tool, "SIZE", 32)
    tool.main(str(tmp_path / "bm3d.json"))
    record = report._bm3d(tmp_path, 32)
    assert record["package"] == "bm3d 9.9" and record["clipped"]["psnr"] != record["unclipped"]["psnr"]
    assert "wrote" in capsys.readouterr().out


def test_report_reads_the_cpu_step_time_of_the_bench(tmp_path):
    assert report._cpu_step_ms(tmp_path) is None
    (tmp_path / "bench.json").write_text("not json")
    assert report._cpu_step_ms(tmp_path) is None
    records = [{"case": report.BENCH_UNET_CASE, "threads": t, "impl_ms": 100.0 * t} for t in (1, 2)]
    (tmp_path / "bench.json").write_text(json.dumps(records))
    assert report._cpu_step_ms(tmp_path) == 200.0
    assert report._config_of({"config": {"arch": "resnet"}}) is None
    assert report._config_of({}) == report.TrainConfig()
