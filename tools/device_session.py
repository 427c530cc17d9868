"""One session on a CUDA machine (run from the repository root with ``python3 tools/device_session.py OUT``).

In parallel, on the one GPU:

1. the CUDA tests (``tests/test_cuda.py``: every registry block, the training steps, the U-Net
   backends and the Model API on the GPU) and the U-Net application tests;
2. the U-Net budget runs of :data:`SWEEP` (``RUNS/sweep/NAME-{n2n,n2c}``, ``--unet-steps`` each):
   the pixels per step of the main job's batch, laid out as fewer, larger crops;
3. the longer U-Net runs of :data:`LONG`, exported to ``RUNS/NAME.pth`` (candidates for the shipped
   ``impl/unet.pth``): their step count is set from a short timing probe so that they end within
   about ``--long-seconds``.

Everything under ``RUNS`` is packed into ``OUT/runs.tgz``; logs go to ``OUT/*.log``. It needs the
packages the device image has (torch, pytest, hypothesis, scikit-image, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

TRAIN = [sys.executable, "-m", "n2n", "train", "--quiet", "--no-baselines", "--arch", "unet", "--residual"]
PROBE = ["--crop", "64", "--batch-size", "32"]
# the (residual) U-Net budget runs: name -> flags (each trained with --pairs n2n and n2c, --targets raw)
SWEEP = {
    "c32-b64": ["--crop", "32", "--batch-size", "64"],
    "c64-b16": ["--crop", "64", "--batch-size", "16"],
    "c128-b4": ["--crop", "128", "--batch-size", "4"],
    "c64-b16-lr2": ["--crop", "64", "--batch-size", "16", "--lr", "2e-3"],
}
# the longer runs, one of which becomes the shipped U-Net
LONG = {
    "long-c64-b32": ["--crop", "64", "--batch-size", "32"],
    "long-c128-b16": ["--crop", "128", "--batch-size", "16"],
}


def start(out: Path, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    log = (out / f"{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--unet-steps", type=int, default=1000)
    parser.add_argument("--long-seconds", type=float, default=240.0)
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--runs", default="runs", help="where the runs go (default runs)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ["PYTHONPATH"] = str(Path.cwd())
    began = time.time()

    probe_flags = ["--steps", str(args.probe_steps), "--val-every", "0", "--lr-schedule", "none"]
    probe = start(args.out, "probe", [*TRAIN, "--runs-dir", args.runs, "--name", "probe", *PROBE, *probe_flags])
    jobs = {
        "pytest": start(
            args.out,
            "pytest",
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_cuda.py",
                "tests/test_app_unet.py",
                "-rs",
                "-k",
                "not shipped",
            ],
        ),
    }
    probe.wait()
    records = [json.loads(line) for line in Path(args.runs, "probe", "log.jsonl").read_text().splitlines()]
    rate = records[-1]["images_per_s"] / 32  # steps/s over the probe's last records
    steps = max(1, int(0.7 * rate * args.long_seconds) // 500 * 500 or int(rate * args.long_seconds))
    print(f"probe: {rate:.1f} steps/s -> long runs of {steps} steps", flush=True)
    limit = str((args.long_seconds + 60) / 60)
    for name, flags in LONG.items():
        jobs[name] = start(args.out, name, [*TRAIN, "--runs-dir", args.runs, "--name", name, *flags, "--targets", "raw",
                           "--steps", str(steps), "--val-every", "1000", "--max-minutes", limit,
                           "--export", f"{args.runs}/{name}.pth"])  # fmt: skip
    for name, flags in SWEEP.items():
        for pairs in ("n2n", "n2c"):
            jobs[f"{name}-{pairs}"] = start(args.out, f"{name}-{pairs}", [*TRAIN, "--runs-dir", f"{args.runs}/sweep",
                                            "--name", f"{name}-{pairs}", *flags, "--targets", "raw", "--pairs", pairs,
                                            "--steps", str(args.unet_steps)])  # fmt: skip
    codes = {name: job.wait() for name, job in jobs.items()}
    print(json.dumps({"codes": codes, "seconds": round(time.time() - began)}), flush=True)
    with tarfile.open(args.out / "runs.tgz", "w:gz") as tar:
        tar.add(args.runs)
    return max(codes.values())


if __name__ == "__main__":
    sys.exit(main())
