"""``n2n bench`` and ``n2n verify`` on tiny settings: the commands run, the files have the
promised content, bad flags are refused."""

import json
import re

import pytest

from harness import bench, bench_parallel, bench_profile, bench_report
from n2n import cli
from n2n.cli import main


def test_bench_quick_writes_table_and_json(tmp_path, capsys):
    out, records = tmp_path / "bench.md", tmp_path / "bench.json"
    argv = [
        "bench",
        "--quick",
        "--threads",
        "1",
        "--batches",
        "2",
        "--repeats",
        "1",
        "--out",
        str(out),
        "--json",
        str(records),
    ]
    assert main(argv) == 0
    text = out.read_text()
    assert "| case | threads | impl | reference | ratio | channels-last reference | ratio |" in text
    assert "GFLOP/s" in text and "## Targets (issue 20)" in text and "## Rounding error in float32" in text
    assert "## Targets (issue 29)" in text and "### nearest, batch 16: impl" in text  # one thread: no efficiency
    assert re.search(r"Timed rounds: \d+, of which \d+ were disturbed", text)
    rows = json.loads(records.read_text())
    assert {"case", "impl_ms", "reference_ms", "ratio", "reference_cl_ms", "ratio_cl", "flops"} <= set(rows[0])
    cases = [r["case"] for r in rows]
    assert "training step nearest, batch 2, 32x32" in cases
    assert "training step nearest, batch 16, 32x32" in cases  # the training runs' default batch
    assert any(c.startswith("peak memory") for c in cases)
    assert sum(c.startswith(("nearest[", "transpose[")) for c in cases) == 18  # every layer of both course networks
    assert "Conv2d(48, 48, kernel_size=(3, 3), padding=(1, 1)) fwd+bwd, 8x8, batch 2" in cases  # a U-Net one
    for r in rows:
        if r["unit"] == "ms" or r["reference_ms"] > 0:  # a peak with no measurable growth is NaN, not 1.0
            assert r["ratio"] == pytest.approx(r["impl_ms"] / r["reference_ms"])
        if r["unit"] == "ms":
            assert r["ratio_cl"] == pytest.approx(r["impl_ms"] / r["reference_cl_ms"])
    assert "threads 1:" in capsys.readouterr().err
    assert "| 1 process(es) x 2 thread(s) |" in text and "| 2 process(es) x 1 thread(s) |" in text
    # every direction of the convolutions, each strategy timed, the planned one named
    assert "| 48->48, 8x8, batch 2 | 1 | weight grad |" in text and "winograd 4x4:" in text


def test_bench_unet_cases_run():
    assert bench.predict_case("unet", repeats=1, threads=1, size=16).case == "predict unet 16x16"
    assert bench.step_case("unet", batch=2, repeats=1, threads=1, size=8).ratio > 0


def record(case, impl_ms, reference_ms, unit="ms", cl_ms=float("nan"), flops=0.0):
    return dict(
        case=case,
        threads=1,
        impl_ms=impl_ms,
        reference_ms=reference_ms,
        ratio=impl_ms / reference_ms,
        unit=unit,
        reference_cl_ms=cl_ms,
        ratio_cl=impl_ms / cl_ms,
        flops=flops,
    )


CONV_CASE = "Conv2d(48, 48, kernel_size=(3, 3), padding=(1, 1)) fwd+bwd, 8x8, batch 2"


def test_markdown_flags_missed_targets():
    result = {
        "machine": "test",
        "records": [
            record("fast", 1.0, 2.0, cl_ms=1.0),
            record("slow", 3.0, 2.0),
            record("memory", 13.0, 10.0, unit="MiB"),
            record("training step unet, batch 16, 32x32", 9.0, 10.0, cl_ms=6.0),
            record(
                "Conv2d(48, 48, kernel_size=(3, 3), padding=(1, 1)) fwd+bwd, 8x8, batch 2",
                2.0,
                4.0,
                cl_ms=2.0,
                flops=8e6,
            ),
        ],
        "gemm": {1: 3.0},
    }
    text = bench.markdown(result)
    assert "| fast | 1 | 1.00 ms | 2.00 ms | 0.50 | 1.00 ms | 1.00 |" in text
    assert "| slow | 1 | 3.00 ms | 2.00 ms | 1.50 ✗ | — | — |" in text
    assert "| memory | 1 | 13.00 MiB | 10.00 MiB | 1.30 ✗ | — | — |" in text
    assert "Worst time ratio (contiguous twin): **1.50**" in text
    # the targets: a bar against the contiguous twin, the channels-last ratio stated beside it
    assert "| U-Net training step, batch 16 | 1 | 0.85 | 0.90 | 1.50 | **no** |" in text
    assert "| every 3x3 stride-1 convolution case (worst) | 1 | 1.00 | 0.50 | 1.00 | yes |" in text
    assert "| peak memory of a training step (worst) |" not in text  # no record: no row
    # effective GFLOP/s: 8e6 flops in 2, 4 and 2 ms; the GEMM rate beside them
    assert "fwd+bwd, 8x8, batch 2 | 1 | 4.0 | 2.0 | 4.0 | 3.0 |" in text


def test_targets_are_rows_with_the_worst_case_per_thread_count():
    rows = bench_report.targets(
        [
            record("peak memory of a training step unet, batch 64", 1.3, 1.0, unit="MiB"),
            record("predict unet 512x512", 8.0, 10.0),
        ]
    )
    by_name = {r["name"]: r for r in rows}
    assert by_name["peak memory of a training step (worst)"]["met"] is False
    assert by_name["U-Net inference, 512x512"] == dict(
        name="U-Net inference, 512x512",
        threads=1,
        target=0.9,
        ratio=0.8,
        ratio_cl=pytest.approx(float("nan"), nan_ok=True),
        case="predict unet 512x512",
        met=True,
    )


@pytest.mark.parametrize("flags", [["--threads", "0"], ["--batches", "-1"], ["--repeats", "0"]])
def test_bench_refuses_bad_flags(flags, capsys):
    assert main(["bench", *flags]) == 2
    assert "must be" in capsys.readouterr().err


def test_verify_command_writes_the_report(tmp_path, monkeypatch):
    import tests.verify as verify

    monkeypatch.setattr(verify, "SAMPLES", verify.SAMPLES[:2])
    monkeypatch.setattr(verify, "PROPERTY_TESTS", verify.PROPERTY_TESTS[4:5])
    out = tmp_path / "verification.md"
    assert main(["verify", "--out", str(out), "--profile", "dev"]) == 0
    text = out.read_text()
    assert "| Conv2d | strided |" in text and "| pass |" in text
    # the count is what ran: the profile in force when the test module was imported
    assert re.search(r"`test_elementwise::test_activation_hypothesis` \| \d+ \|", text)


def test_bench_without_json_and_verify_from_the_repository_root(tmp_path, monkeypatch):
    import sys

    import tests.verify as verify

    fake = {"machine": "m", "records": [], "gflops": {}}
    monkeypatch.setattr(
        bench,
        "run",
        lambda *a, **k: {
            **fake,
            "records": [{"case": "c", "threads": 1, "impl_ms": 1.0, "reference_ms": 1.0, "ratio": 1.0, "unit": "ms"}],
        },
    )
    bench.main(out=str(tmp_path / "b.md"))
    assert (tmp_path / "b.md").exists() and not (tmp_path / "bench.json").exists()
    ran = []
    monkeypatch.setattr(cli.subprocess, "run", lambda command, check: ran.append(command) or Done())
    assert main(["verify", "--out", str(tmp_path / "v.md"), "--profile", "dev"]) == 0
    assert ran == [[sys.executable, "-m", "tests.verify", "--out", str(tmp_path / "v.md"), "--profile", "dev"]]
    assert "tests.verify" not in sys.modules or verify  # nothing shipped imported it to run
    monkeypatch.chdir(tmp_path)  # no tests/ here: not a source checkout
    assert main(["verify"]) == 2


class Done:
    returncode = 0


def test_bench_times_the_check_command(monkeypatch):
    loops = {"the loop-based one": "tests/data/submissions/ok_positional_order"}
    monkeypatch.setattr(bench, "CHECKED", {**loops, "not in an installed copy": "tests/data/no_such_folder"})
    times = bench.check_times(quick=True)
    assert list(times) == ["the loop-based one"] and times["the loop-based one"] > 0
    text = bench.markdown({"machine": "m", "records": [_record()], "gflops": {}, "check": times})
    assert "Time to check a submission" in text and "| the loop-based one |" in text


def _record():
    return {"case": "c", "threads": 1, "impl_ms": 1.0, "reference_ms": 1.0, "ratio": 1.0, "unit": "ms"}


def test_the_full_bench_covers_every_3x3_stride_1_convolution_of_both_networks(monkeypatch):
    """Without --quick (too slow to run here): which shapes are timed and measured, and at which batch."""
    timed = []
    monkeypatch.setattr(bench.bench_conv, "layer_case", lambda *a: (f"case {a}", [1.0, 1.0, 1.0], 1.0))
    monkeypatch.setattr(bench.bench_conv, "strategy_rows", lambda *a: timed.append(a[:4]) or [])
    monkeypatch.setattr(bench.bench_conv, "gemm_rate", lambda repeats: 1.0)
    convs = bench.conv_sections([64], repeats=1, threads=1, quick=False)
    unet = [(bench.DEFAULT_BATCH_SIZE, *c) for c in bench.bench_conv.UNET_CONVS]
    assert [r.case for r in convs["layers"]] == [f"case {(*s, 1)}" for s in unet]
    assert timed == unet + [(64, *c) for c in bench.bench_conv.COURSE_CONVS]
    errors = bench._error_shapes([64], quick=False)
    assert set(errors) == set(unet) | {(bench.DEFAULT_BATCH_SIZE, *c) for c in bench.bench_conv.COURSE_CONVS}
    assert len(errors) == len(set(errors))  # a convolution both networks have is measured once


def test_parallel_efficiency_and_issue_29_targets_are_rows():
    one, two = record("training step unet, batch 16, 32x32", 8.0, 10.0, cl_ms=9.0), None
    two = {**record("training step unet, batch 16, 32x32", 5.0, 5.0, cl_ms=6.0), "threads": 2}
    layer = {**record("ReLU() fwd+bwd, batch 2", 1.0, 1.0), "threads": 2}  # no 1-thread record: no row
    (eff,) = bench_parallel.efficiencies([one, two, layer])
    layer_one = record("ReLU() fwd+bwd, batch 2", 1.0, 1.0)  # an efficiency, but no target: not a step
    assert [r["name"] for r in bench_parallel.targets([layer_one, layer])] == []
    assert eff == dict(case=one["case"], threads=2, impl=0.8, torch=1.0, **{"torch channels-last": 0.75})
    predict = record("predict unet 512x512", 9, 10)
    rows = {(r["name"], r["threads"]): r for r in bench_parallel.targets([one, two, predict])}
    step = "training step unet, batch 16, 32x32: time ratio"
    assert rows[(step, 1)] == dict(name=step, threads=1, bar=0.9, measured=0.8, kind="at most", met=True)
    assert rows[("training step unet, batch 16, 32x32: time ratio", 2)]["met"] is False  # 1.0 > 0.9
    assert rows[("predict unet 512x512: time ratio", 1)]["met"] is True
    efficiency = rows[("training step unet, batch 16, 32x32: parallel efficiency", 2)]
    assert efficiency["kind"] == "at least" and efficiency["bar"] == pytest.approx(0.95) and not efficiency["met"]
    text = "\n".join(bench_parallel.markdown({"records": [one, two], "profile": []}))
    assert "| training step unet, batch 16, 32x32 | 2 | 0.80 | 1.00 | 0.75 | -0.20 |" in text
    assert "| training step unet, batch 16, 32x32: parallel efficiency | 2 | at least 0.95 | 0.80 | **no** |" in text
    assert bench_parallel.markdown({"records": [], "profile": []}) == []


def _profile_row(side, op, direction, threads, ms):
    return dict(network="unet", batch=16, threads=threads, side=side, op=op, direction=direction, ms=ms)


def test_profile_tables_keep_the_costliest_operations_and_sum_the_rest(monkeypatch):
    monkeypatch.setattr(bench_parallel, "PROFILE_ROWS", 1)
    rows = [
        _profile_row("impl", "conv", "forward", 1, 4.0),
        _profile_row("impl", "conv", "forward", 2, 2.5),
        _profile_row("impl", "relu", "backward", 1, 1.0),
        _profile_row("impl", "relu", "backward", 2, 1.0),
        _profile_row("impl", "step", "", 1, 6.0),
        _profile_row("impl", "step", "", 2, 4.0),
        _profile_row("torch", "aten::mm", "forward", 1, 3.0),
        _profile_row("torch", "aten::mm", "forward", 2, 1.5),
    ]
    text = "\n".join(bench_parallel.markdown({"records": [], "profile": rows}))
    assert "### unet, batch 16: impl" in text and "### unet, batch 16: torch" in text
    assert "| conv forward | 4.00 | 2.50 | 0.80 |" in text
    assert "| 1 other operations | 1.00 | 1.00 | 0.50 |" in text
    assert "| whole step | 6.00 | 4.00 | 0.75 |" in text
    assert "| sum of the above | 3.00 | 1.50 | 1.00 |" in text  # torch: no whole-step row of its own


def test_the_profile_times_every_layer_of_impl_in_each_direction_and_torch_by_operation():
    net, ref = bench._networks("unet")
    rows = bench_profile.profile_rows("unet", net, ref, batch=2, steps=1, threads=1)
    impl_ops = {(r["op"], r["direction"]) for r in rows if r["side"] == "impl"}
    assert ("LeakyReLU(negative_slope=0.1) at 32x32", "backward") in impl_ops
    assert ("MaxPool2d(kernel_size=(2, 2)) at 8x8", "forward") in impl_ops
    assert ("Conv2d(48, 3, kernel_size=(1, 1)) at 32x32", "backward") in impl_ops
    assert {("rest", ""), ("step", "")} <= impl_ops
    impl_ms = {(r["op"], r["direction"]): r["ms"] for r in rows if r["side"] == "impl"}
    parts = sum(ms for key, ms in impl_ms.items() if key != ("step", ""))
    assert parts == pytest.approx(impl_ms[("step", "")])  # one step: the parts add up to it
    torch_ops = {r["op"] for r in rows if r["side"] == "torch"}
    assert "aten::convolution_backward" in torch_ops
    # the profiled copy leaves the network itself as it was
    assert type(net.modules[0]).__name__ == "Sequential" and "Timed" not in repr(net)
