"""The ``n2n`` command: ``train``, ``denoise``, ``evaluate``, ``report``, ``bench``, ``verify``.

Expected errors (missing or unreadable files, wrong file contents, bad flag values, too little
memory) print one line ``n2n: error: ...`` on stderr and exit with status 2, without a traceback
(:data:`EXPECTED`, in :func:`main`); an error about a library field names the flag the user passed
(:func:`_flag`). Ctrl-C, SIGTERM or SIGHUP during training save a checkpoint and exit with 128 +
the signal number.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from harness.bench import main as bench_main
from harness.check.child import DEFAULT_TOTAL_TIME
from harness.check.class_folder import merge
from harness.check.class_report import text as class_text
from harness.check.classroom import DEFAULT_WALL_LIMIT, Settings, check_class, parse_shard
from harness.check.command import DEFAULT_TIME_LIMIT, RULES, write_json, write_junit, write_markdown
from harness.check.command import check as run_check
from harness.check.command import text as check_text
from harness.check.isolation import ISOLATIONS
from harness.report import DEFAULT_UNET_CHANNELS, make_report
from harness.twin import TorchBackend
from impl.app import course, distributed
from impl.app.backend import Backend, ImplBackend
from impl.app.checkpoint import check_can_create, load_checkpoint
from impl.app.config import (
    ARCHS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    DEFAULT_STEPS,
    LR_SCHEDULES,
    OPTIMIZERS,
    UPSAMPLINGS,
    TrainConfig,
)
from impl.app.data import EVAL_SIZE
from impl.app.ensemble import self_ensemble
from impl.app.errors import UserError, field_error
from impl.app.evaluate import (
    DEFAULT_NOISE,
    EVAL_BATCH,
    EVAL_SEED,
    EvalSet,
    evaluate,
    folder_set,
    format_table,
    heldout_set,
    pkl_set,
)
from impl.app.images import check_suffix, read_image, write_image
from impl.app.limits import check_tiles, check_training
from impl.app.noise import PAIRS, TARGETS
from impl.app.rundir import run_directory
from impl.app.runfile import RunState, read_checkpoint
from impl.app.tiling import DEFAULT_TILE, check_tile, run_tiled
from impl.app.train import CHECKPOINT, BackendFactory, Interrupted, export_model, load_model, train_run
from impl.errors import StateDictError

CONFIG_FLAGS = [f for f in TrainConfig.__dataclass_fields__]


def _shipped(arch: str) -> Path:
    """The pretrained model shipped for ``arch``: ``impl/bestmodel.pth`` (course) or ``impl/unet.pth``."""
    return course.UNET_MODEL if arch == "unet" else course.BESTMODEL  # read at the call: tests point them elsewhere


def _factory(name: str) -> BackendFactory:
    if name == "reference":
        return TorchBackend
    return ImplBackend


def _add_evalset_flags(p: argparse.ArgumentParser, prefix: str) -> None:
    what = "validation" if prefix else "evaluation"
    group = p.add_mutually_exclusive_group()
    group.add_argument(f"--{prefix}images", metavar="DIR", help=f"{what} on the PNG/JPEG files of DIR (noise added)")
    group.add_argument(f"--{prefix}pkl", metavar="FILE", help=f"{what} on a course val_data.pkl (noisy, clean)")
    p.add_argument(
        f"--{prefix}size", type=int, default=EVAL_SIZE, help=f"held-out center-crop side (default {EVAL_SIZE})"
    )
    p.add_argument(f"--{prefix}seed", type=int, default=EVAL_SEED, help=f"noise seed (default {EVAL_SEED})")


def _train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a denoiser (default: the main job)")
    p.add_argument("--name", default="course", help="run name: runs/NAME/ (default course)")
    p.add_argument("--runs-dir", default="runs", help="where runs are kept (default runs)")
    d = TrainConfig()
    p.add_argument("--arch", choices=ARCHS, help=f"network (default {d.arch})")
    p.add_argument("--upsampling", choices=UPSAMPLINGS, help=f"default {d.upsampling}")
    p.add_argument("--channels", type=int, help=f"hidden channels (default {d.channels})")
    p.add_argument("--depth", type=int, help=f"U-Net poolings (default {d.depth}; --arch unet)")
    p.add_argument("--residual", action="store_true", default=None, help="U-Net as x + body(x - 0.5) (--arch unet)")
    p.add_argument("--noise", help=f"gaussian:SIGMA, gaussian:LOW-HIGH, poisson:PEAK (default {d.noise})")
    p.add_argument("--pairs", choices=PAIRS, help=f"Noise2Noise or Noise2Clean (default {d.pairs})")
    p.add_argument(
        "--targets", choices=TARGETS, help=f"Noise2Noise targets clipped to [0, 1] or raw (default {d.targets})"
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d.optimizer}")
    p.add_argument(
        "--lr",
        type=float,
        help=f"peak learning rate (default {DEFAULT_LR['course']:g} for the course network, "
        f"{DEFAULT_LR['unet']:g} for the U-Net)",
    )
    p.add_argument("--momentum", type=float, help=f"SGD momentum (default {d.momentum})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"default {d.lr_schedule}")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument(
        "--steps",
        type=int,
        help=f"optimizer steps (default {DEFAULT_STEPS['course']} for the course network, "
        f"{DEFAULT_STEPS['unet']} for the U-Net)",
    )
    p.add_argument("--crop", type=int, help=f"training crop side (default {d.crop})")
    p.add_argument("--seed", type=int, help=f"weights, crops and noise (default {d.seed})")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="train on the PNG/JPEG files of DIR")
    source.add_argument("--pkl", metavar="FILE", help="train on a course train_data.pkl (noisy pairs)")
    _add_evalset_flags(p, "val-")
    _add_run_flags(p)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """``train``'s flags that do not change the result: intervals, limits, the run folder's use, output."""
    p.add_argument("--val-every", type=int, default=250, help="validation PSNR every N steps (default 250, 0: off)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="checkpoint every N steps (default 250)")
    p.add_argument("--log-every", type=int, default=10, help="log.jsonl record every N steps (default 10)")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--resume", action="store_true", help="continue runs/NAME/checkpoint.pth")
    p.add_argument("--force", action="store_true", help="start over even if runs/NAME/ holds a checkpoint")
    p.add_argument("--export", metavar="PATH", help="also save the trained weights for inference to PATH")
    p.add_argument("--backend", choices=("impl", "reference"), default="impl", help="blocks or torch.nn twin")
    p.add_argument("--no-baselines", action="store_true", help="results table without NL-means and TV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--dist-timeout", type=float, default=60.0, help="under torchrun: seconds before a silent rank is an error"
    )


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="PSNR/SSIM table: noisy input, NL-means, TV and models")
    p.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="model or checkpoint (repeatable; default the shipped course network and U-Net)",
    )
    _add_evalset_flags(p, "")
    p.add_argument("--noise", default=DEFAULT_NOISE, help=f"noise added to clean images (default {DEFAULT_NOISE})")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help=f"tile side (default {DEFAULT_TILE})")
    p.add_argument("--no-baselines", action="store_true", help="skip NL-means and TV")
    p.add_argument("--ensemble", action="store_true", help="also each model's x8 self-ensemble (flips and turns)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="n2n", description="Noise2Noise denoiser built from the impl blocks.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("denoise", help="denoise one PNG/JPEG of any size")
    p.add_argument("input", metavar="IN", help="noisy PNG/JPEG (greyscale and RGBA are read as RGB)")
    p.add_argument("output", metavar="OUT", help="denoised PNG/JPEG (by suffix)")
    p.add_argument("--model", metavar="PATH", help="model or checkpoint (default the shipped model of --arch)")
    p.add_argument(
        "--arch", choices=ARCHS, help="shipped model to use: unet (default, impl/unet.pth) or course (bestmodel.pth)"
    )
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help=f"tile side (default {DEFAULT_TILE})")
    ensemble_help = "average the outputs over the 8 flips and quarter turns (+0.2-0.4 dB, 8x the time)"
    p.add_argument("--ensemble", action="store_true", help=ensemble_help)
    _evaluate_parser(sub)
    p = sub.add_parser("report", help="train impl/reference N2N and impl N2C, write reports/denoising.md")
    p.add_argument("--out", default="reports", help="report directory (default reports)")
    p.add_argument("--runs-dir", default="runs/report", help="where its runs are kept (default runs/report)")
    for prefix, runs, defaults in (
        ("", "course network", (DEFAULT_STEPS["course"], DEFAULT_BATCH_SIZE, 48)),
        ("unet-", "U-Net", (DEFAULT_STEPS["unet"], DEFAULT_BATCH_SIZE, DEFAULT_UNET_CHANNELS)),
    ):
        for name, default in zip(("steps", "batch-size", "channels"), defaults):
            text = f"{runs} runs' {name} (default {default})"
            p.add_argument(f"--{prefix}{name}", type=int, default=default, help=text)
    p.add_argument("--val-every", type=int, default=250, help="default 250")
    p.add_argument("--size", type=int, default=EVAL_SIZE, help=f"held-out crop side (default {EVAL_SIZE})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p = sub.add_parser("bench", help="time impl against torch.nn side by side, write reports/bench.md")
    p.add_argument("--out", default="reports/bench.md", help="Markdown table (default reports/bench.md)")
    p.add_argument("--json", metavar="PATH", help="also one JSON record per case (case, impl_ms, reference_ms, ratio)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to run at (default 1 2)")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 128], help="layer-case batch sizes (default 64 128)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per case (default 15)")
    p.add_argument("--quick", action="store_true", help="a smoke run: course networks only, 128x128 predict")
    p = sub.add_parser("verify", help="parity over the block registry, write reports/verification.md (source checkout)")
    p.add_argument("--out", default="reports/verification.md", help="default reports/verification.md")
    p.add_argument("--profile", default="ci", choices=("dev", "ci"), help="hypothesis profile (default ci)")
    _check_parser(sub)
    return parser


def _check_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="check anybody's blocks against torch (runs the target's code in a child process)")
    what = "a folder with Miniproject_2/model.py, that folder, a .py file or a module name; several: a class"
    p.add_argument("target", nargs="*", metavar="TARGET", help=what)
    p.add_argument("--adapter", metavar="FILE", help="a Python file settling the target's contract (see README)")
    only = "check only these blocks (course or torch names; 'course network' for its training)"
    p.add_argument("--blocks", metavar="NAME,...", help=only)
    p.add_argument("--json", metavar="PATH", help="one record per finding")
    p.add_argument("--junit-xml", metavar="PATH", help="one test case per block and check")
    p.add_argument("--markdown", metavar="PATH", help="a report to read")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and drawn configurations (default 0)")
    limit = "seconds per check (default 30; the import gets at least 30)"
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help=limit)
    total = f"seconds for the whole run; checks left then are reported as timed out (default {DEFAULT_TOTAL_TIME:g})"
    p.add_argument("--total-time", type=float, default=DEFAULT_TOTAL_TIME, help=total)
    p.add_argument("--quick", action="store_true", help="landmark configurations only, a few seconds")
    isolation = "where the target's code runs: bubblewrap where it works (auto, the default), bwrap, or process"
    p.add_argument("--isolation", choices=ISOLATIONS, default="auto", help=isolation)
    rule = "the EE-559 rule (tensor operations only, no autograd, fold/unfold only from torch.nn): auto checks it "
    p.add_argument("--rule", choices=RULES, default="auto", help=rule + "for the course layout (Miniproject_2/)")
    p.add_argument("--repro", metavar="DIR", help="write a standalone reproducer per layer finding into DIR")
    g = p.add_argument_group("a class (several targets, --each, --out, --shard or --merge)")
    g.add_argument("--each", metavar="FOLDER", help="check every sub-folder of FOLDER that holds a submission")
    g.add_argument("--out", metavar="DIR", help="per submission DIR/NAME/report.*, the class DIR/class.{csv,md,html}")
    g.add_argument("--jobs", type=int, help="submissions checked at once (default: the machine's cores)")
    limit = f"seconds for a whole submission before its row says error (default {DEFAULT_WALL_LIMIT:g})"
    g.add_argument("--wall-limit", type=float, default=DEFAULT_WALL_LIMIT, help=limit)
    g.add_argument("--shard", metavar="K/N", help="check only the K-th of N slices of the class (sorted names)")
    g.add_argument("--merge", nargs="+", metavar="DIR", help="join the --out folders of shards into --out")


def _evalset(args: argparse.Namespace, prefix: str, noise: str) -> EvalSet:
    """The evaluation set the flags ``--{prefix}images/pkl/size/seed`` describe (fields named alike)."""
    images, pkl = getattr(args, f"{prefix}images"), getattr(args, f"{prefix}pkl")
    seed = getattr(args, f"{prefix}seed")
    if pkl is not None:
        return pkl_set(pkl, f"{prefix}pkl")
    if images is not None:
        return folder_set(images, noise, seed, f"{prefix}images")
    return heldout_set(noise, seed, getattr(args, f"{prefix}size"), field=f"{prefix}size")


def _warn(text: str) -> None:
    print(f"n2n: warning: {text}", file=sys.stderr)


def _load(path: str | None, arch: str = "unet") -> tuple[str, Backend]:
    """``path``'s model, or else the one shipped for ``arch``; warns about weights that are not finite."""
    model = Path(path) if path is not None else _shipped(arch)
    if path is None and not model.is_file():
        raise UserError(f"no model given and no {model}; pass --model PATH or train one (see README)")
    backend = load_model(model)
    if not all(bool(torch.isfinite(t).all()) for t in backend.state_dict().values()):
        _warn(f"{model} holds NaN or infinite weights: its outputs are meaningless")
    return str(model), backend


def _train_config(args: argparse.Namespace, directory: Path) -> TrainConfig:
    """The flags over the resumed checkpoint's configuration; a bad saved value is named as the file's."""
    path = directory / CHECKPOINT
    # not TrainConfig().to_dict(): defaults that depend on the network (lr) must follow --arch
    values = read_checkpoint(load_checkpoint(path), path, args.backend).config if args.resume else {}
    explicit = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    try:
        config = TrainConfig.from_dict({**values, **explicit})
        check_training(config)  # here too: a value too large for the memory may be a saved one
    except UserError as e:
        if e.field in values and e.field not in explicit:
            raise UserError(f"{path}: the saved configuration's {e.field}{e.detail}") from None
        raise
    return config


def _train_outputs(args: argparse.Namespace) -> Path:
    """Check, creating nothing, every path the run will write; returns the run folder."""
    for name in ("val_every", "checkpoint_every", "log_every", "max_minutes"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise field_error(name, f"must be >= 0, got {value}")
    directory = run_directory(args.runs_dir, args.name)
    check_can_create(directory, "runs_dir", directory=True)
    if args.export:
        check_can_create(args.export, "export")  # before hours of training, not after
    return directory


def _train(args: argparse.Namespace) -> int:
    directory = _train_outputs(args)
    config = _train_config(args, directory)
    valset = _evalset(args, "val_", config.noise)
    group = distributed.setup(args.dist_timeout)
    if group is not None and args.max_minutes is not None:
        distributed.teardown()
        raise UserError("--max-minutes is not supported under torchrun (ranks could stop at different steps)")
    options = {k: getattr(args, k) for k in ("val_every", "checkpoint_every", "log_every", "max_minutes", "quiet")}
    try:
        backend, state = train_run(
            config,
            directory,
            factory=_factory(args.backend),
            resume=args.resume,
            force=args.force,
            validation=valset,
            group=group,
            **options,
        )
    except KeyboardInterrupt as e:
        return _interrupted(e, directory, args.name)
    finally:
        distributed.teardown()
    if group is not None and not group.main:
        return 0  # rank 0 alone exports, reports and prints
    if args.export:
        export_model(args.export, config, backend, state)
    _summary(args, directory, valset, backend, state, group.world_size if group is not None else 1)
    return 0


def _interrupted(e: KeyboardInterrupt, directory: Path, name: str) -> int:
    """The exit status of a run stopped by a signal: 128 + its number, like a shell's."""
    signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
    if isinstance(e, Interrupted) and e.saved:
        print(f"\ninterrupted ({signal.Signals(signum).name}); checkpoint saved in {directory}; "
              f"continue with --name {name} --resume")  # fmt: skip
    else:
        print(
            f"\ninterrupted ({signal.Signals(signum).name}) during a step; the last checkpoint in {directory} is kept"
        )
    return 128 + signum


def _summary(
    args: argparse.Namespace, directory: Path, valset: EvalSet, backend: Backend, state: RunState, world: int
) -> None:
    config = backend.config
    images_per_s = state.step * config.batch_size * world / state.elapsed if state.elapsed else 0.0  # per process
    print(f"run {directory}: {state.step} steps, {state.elapsed:.0f} s of training, {images_per_s:.0f} images/s")
    if state.stopped == "time limit":
        print(f"stopped at the --max-minutes limit; continue with --name {args.name} --resume")
    rows = evaluate(valset, {f"this model ({args.backend}, {config.pairs})": backend}, baselines=not args.no_baselines)
    print(f"\n{valset.name}, noise {config.noise if args.val_pkl is None else 'from the file'}:\n{format_table(rows)}")


def _check_output_image(source: str, output: str) -> None:
    """Refuse, before any work, an output ``denoise`` could not write or should not: a wrong
    suffix, an unwritable folder, the input file itself."""
    check_suffix(output, "output")
    if Path(output).exists() and Path(source).exists() and os.path.samefile(source, output):
        raise field_error("output", f": {output} is the input file; write the result to another file")
    check_can_create(output, "output")


def _denoise(args: argparse.Namespace) -> int:
    tile = check_tile(args.tile)
    _check_output_image(args.input, args.output)
    image = read_image(args.input)
    path, backend = _load(args.model, args.arch or "unet")
    if args.arch is not None and backend.config.arch != args.arch:
        raise UserError(f"--arch {args.arch} but {path} holds a {backend.config.arch} network; drop one of them")
    check_tiles(backend.config, 1, image.shape[-2], image.shape[-1], tile)
    forward = self_ensemble(backend.forward) if args.ensemble else backend.forward
    out = run_tiled(forward, image[None], tile, backend.config.geometry)[0]
    if not bool(torch.isfinite(out).all()) or float(out.max() - out.min()) < 1 / 255:
        _warn(f"the output is uniform or not finite (a damaged model?); {args.output} will be one flat colour")
    write_image(args.output, out)
    print(f"wrote {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    tile = check_tile(args.tile)
    evalset = _evalset(args, "", args.noise)
    if args.model:
        models = dict(_load(path) for path in args.model)
    else:  # the shipped models that exist
        shipped = [arch for arch in ARCHS if _shipped(arch).is_file()] or ["unet"]
        models = dict(_load(None, arch) for arch in shipped)
    biggest = max(evalset.noisy, key=lambda x: x.shape[-2] * x.shape[-1])
    for backend in models.values():
        check_tiles(backend.config, min(len(evalset.noisy), EVAL_BATCH), biggest.shape[-2], biggest.shape[-1], tile)
    rows = evaluate(evalset, models, tile, baselines=not args.no_baselines, ensemble=models if args.ensemble else ())
    print(f"{evalset.name}, noise {args.noise if args.pkl is None else 'from the file'}:\n{format_table(rows)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    path = make_report(
        args.out,
        args.runs_dir,
        steps=args.steps,
        unet_steps=args.unet_steps,
        batch_size=args.batch_size,
        unet_batch_size=args.unet_batch_size,
        channels=args.channels,
        unet_channels=args.unet_channels,
        val_every=args.val_every,
        size=args.size,
        quiet=args.quiet,
    )
    print(f"wrote {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:

    for name in ("threads", "batches"):
        if min(getattr(args, name)) < 1:
            raise UserError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {args.repeats}")
    bench_main(args.out, args.json, args.threads, args.batches, args.repeats, args.quick)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """The verification report is built from the test suite's registry and properties, so it runs
    as its own process in a source checkout (``python -m tests.verify``): nothing shipped imports tests/."""
    if not Path("tests/verify.py").is_file():
        raise UserError("n2n verify runs from the root of a source checkout (it reads tests/); none here")
    command = [sys.executable, "-m", "tests.verify", "--out", args.out, "--profile", args.profile]
    return subprocess.run(command, check=False).returncode


def _check(args: argparse.Namespace) -> int:
    """The report is written only once every process of the target is gone (``run_check``
    returns then), so nothing the target printed can come after it."""
    if len(args.target) != 1 or any(getattr(args, k) for k in ("each", "out", "shard", "merge")):
        return _check_class(args)
    options = {"total_time": args.total_time, "isolation": args.isolation, "rule": args.rule, "repro": args.repro}
    try:
        report = run_check(args.target[0], args.adapter, args.blocks, args.seed, args.time_limit, args.quick, **options)
    except KeyboardInterrupt:  # a user's Ctrl-C, or (isolated as a plain process) the target's SIGINT
        print("n2n: interrupted; no report written", file=sys.stderr)
        return 130
    sys.stdout.write(check_text(report))
    if report.reproducers:
        sys.stdout.write(f"\nreproducers: {len(report.reproducers)} in {args.repro}\n")
    for path, write in ((args.markdown, write_markdown), (args.json, write_json), (args.junit_xml, write_junit)):
        if path:
            write(report, Path(path))
    return report.exit_status


def _check_class(args: argparse.Namespace) -> int:
    """Several submissions: the class table on stdout, the reports under ``--out``."""
    for name in ("json", "junit_xml", "markdown"):
        if getattr(args, name):
            raise field_error(name, "is for one target; a class's reports are written under --out DIR")
    if args.merge:
        return _merge(args)
    if not args.target and not args.each:
        raise UserError("n2n check needs a TARGET, several, --each FOLDER or --merge DIR ...")
    for name in ("time_limit", "wall_limit"):
        value = getattr(args, name)
        if not math.isfinite(value) or value <= 0:
            raise field_error(name, f"must be a positive, finite number of seconds, got {value}")
    settings = Settings(args.adapter, args.blocks, args.seed, args.time_limit, args.quick, args.wall_limit)
    part = parse_shard(args.shard) if args.shard else None
    with contextlib.nullcontext(args.out) if args.out else tempfile.TemporaryDirectory(prefix="n2n-class-") as out:
        run = check_class(args.target, args.each, Path(out), settings, args.jobs, part)
    sys.stdout.write(class_text(run.records))
    checked = len(run.records) - run.from_cache
    print(f"\n{len(run.records)} submission(s): {checked} checked, {run.from_cache} taken from the cache")
    if args.out:
        print(f"wrote {', '.join(str(p) for p in run.files[1:])} and a folder per submission")
    return 0 if run.ok else 1


def _merge(args: argparse.Namespace) -> int:
    if not args.out:
        raise UserError("--merge needs --out DIR, the folder to write the joined class into")
    if args.target or args.each or args.shard:
        raise UserError("--merge joins folders already checked; drop the targets, --each and --shard")
    records = merge([Path(d) for d in args.merge], Path(args.out))
    sys.stdout.write(class_text(records))
    print(f"\nmerged {len(args.merge)} folder(s), {len(records)} submission(s), into {args.out}")
    return 0 if all(r["status"] == "pass" for r in records) else 1


COMMANDS = {
    "check": _check,
    "train": _train,
    "denoise": _denoise,
    "evaluate": _evaluate,
    "report": _report,
    "bench": _bench,
    "verify": _verify,
}


#: what the library raises for something the user can fix; anything else is a bug and keeps its traceback
EXPECTED = (UserError, FileNotFoundError, NotADirectoryError, StateDictError, MemoryError, torch.OutOfMemoryError)


def _message(e: BaseException, parser: argparse.ArgumentParser, command: str) -> str:
    """The one-line text of an expected error: a library field becomes the flag of ``command``."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"out of memory ({what}); lower --tile, --batch-size or --channels"
    if isinstance(e, UserError) and e.field is not None:
        return _flag(parser, command, e.field) + e.detail
    return str(e)


def _flag(parser: argparse.ArgumentParser, command: str, field: str) -> str:
    """``command``'s flag (or positional's metavar) whose value is ``field``; the field itself if none."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in sub._actions:
        if action.dest == field:
            return max(action.option_strings, key=len) if action.option_strings else str(action.metavar)
    return field


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``n2n``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except EXPECTED as e:
        lines = [line.strip() for line in _message(e, parser, args.command).splitlines() if line.strip()]
        print(f"n2n: error: {'; '.join(lines)}", file=sys.stderr)  # one line, whatever a library wrote
        return 2
