"""One session on a CUDA machine (run from the repository root with ``python3 tools/device_session.py OUT``).

In parallel, on the one GPU:

1. the CUDA tests (``tests/test_cuda.py``: every registry block, the training steps, the U-Net
   backends and the Model API on the GPU) and the U-Net application tests;
2. the report's two U-Net runs (``runs/report/unet-n2n``, ``unet-n2c``: the configuration
   ``n2n report --unet-steps STEPS`` reuses);
3. the pretrained U-Net, trained longer on larger crops, exported to ``impl/unet.pth``: its step
   count is set from a short timing probe so that it ends within ``--long-seconds``.

Everything it makes is packed into ``OUT/runs.tgz``; logs go to ``OUT/*.log``. It needs the
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

TRAIN = [sys.executable, "-m", "impl.app.cli", "train", "--quiet", "--no-baselines", "--arch", "unet"]
LONG = ["--crop", "64", "--batch-size", "32", "--val-every", "1000"]


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
    parser.add_argument("--export", default="impl/unet.pth", help="the pretrained U-Net (default impl/unet.pth)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ["PYTHONPATH"] = str(Path.cwd())
    began = time.time()

    probe_flags = ["--steps", str(args.probe_steps), "--val-every", "0", "--lr-schedule", "none"]
    probe = start(args.out, "probe", [*TRAIN, "--runs-dir", args.runs, "--name", "probe", *LONG, *probe_flags])
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
        ),  # fmt: skip
    }
    for pairs in ("n2n", "n2c"):
        jobs[f"unet-{pairs}"] = start(args.out, f"unet-{pairs}", [*TRAIN, "--runs-dir", f"{args.runs}/report", "--name",
                                      f"unet-{pairs}", "--pairs", pairs, "--steps", str(args.unet_steps)])  # fmt: skip
    probe.wait()
    records = [json.loads(line) for line in Path(args.runs, "probe", "log.jsonl").read_text().splitlines()]
    rate = records[-1]["images_per_s"] / 32  # steps/s over the probe's last records, under the same load
    steps = max(1, int(rate * args.long_seconds) // 500 * 500 or int(rate * args.long_seconds))
    print(f"probe: {rate:.1f} steps/s -> long run of {steps} steps", flush=True)
    jobs["unet-long"] = start(args.out, "unet-long", [*TRAIN, "--runs-dir", args.runs, "--name", "unet-long", *LONG,
                              "--steps", str(steps), "--export", args.export])  # fmt: skip
    codes = {name: job.wait() for name, job in jobs.items()}
    print(json.dumps({"codes": codes, "seconds": round(time.time() - began)}), flush=True)
    with tarfile.open(args.out / "runs.tgz", "w:gz") as tar:
        for path in (
            f"{args.runs}/report/unet-n2n",
            f"{args.runs}/report/unet-n2c",
            f"{args.runs}/unet-long",
            args.export,
        ):
            if Path(path).exists():
                tar.add(path)
    return max(codes.values())


if __name__ == "__main__":
    sys.exit(main())
