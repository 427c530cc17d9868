"""Data-parallel training (issue 9): two gloo processes on loopback against one process on the
combined batches, a rank that dies, and the bucketing of the gradient all_reduce."""

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist

from harness.twin import TorchBackend
from impl.app import distributed, train
from impl.app.backend import ImplBackend
from impl.app.checkpoint import load_checkpoint
from impl.app.config import TrainConfig
from impl.app.errors import UserError
from n2n import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SGD: unlike Adam, its update scales with the gradient, so a sum instead of a mean shows
FLAGS = [
    "--channels",
    "4",
    "--batch-size",
    "2",
    "--crop",
    "8",
    "--steps",
    "3",
    "--val-every",
    "0",
    "--optimizer",
    "sgd",
    "--lr",
    "0.1",
]
CLI = "import sys; from n2n.cli import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(code, args, rank, port, world_size=2):
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_ranks_equal_one_process_on_the_combined_batches(tmp_path):
    port = free_port()
    args = [
        "train",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "ddp",
        *FLAGS,
        "--quiet",
        "--no-baselines",
        "--val-size",
        "16",
    ]
    procs = [launch(CLI, args, rank, port) for rank in (0, 1)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "run " in outs[0][0] and outs[1][0] == ""  # rank 0 alone prints the results
    assert sorted(os.listdir(tmp_path / "ddp")) == [".n2n.lock", "checkpoint.pth", "log.jsonl"]  # rank 0 alone writes
    saved = load_checkpoint(tmp_path / "ddp" / "checkpoint.pth")

    config = TrainConfig(channels=4, batch_size=2, crop=8, steps=3, optimizer="sgd", lr=0.1)
    streams = [distributed.ShardedStream(config, rank) for rank in (0, 1)]
    single = ImplBackend(TrainConfig(channels=4, batch_size=4, crop=8, steps=3, optimizer="sgd", lr=0.1), device="cpu")
    for step in range(3):
        (x0, t0), (x1, t1) = (s.next_batch() for s in streams)
        single.train_step(torch.cat([x0, x1]), torch.cat([t0, t1]), config.learning_rate(step))
    for name, value in single.state_dict().items():
        torch.testing.assert_close(saved["model"][name], value, rtol=1e-5, atol=1e-6)


DIES = """
import datetime, os, torch.distributed as dist
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
os._exit(1)
"""


def test_a_dead_rank_stops_the_others_with_a_clear_error(tmp_path):
    port = free_port()
    args = ["train", "--runs-dir", str(tmp_path), *FLAGS, "--quiet", "--dist-timeout", "20"]
    started = time.monotonic()
    survivor, dead = launch(CLI, args, 0, port), launch(DIES, [], 1, port)
    out, err = survivor.communicate(timeout=120)
    dead.communicate(timeout=60)
    assert survivor.returncode == 2, (out, err)
    assert "another process of the job stopped or timed out" in err
    assert time.monotonic() - started < 60


@pytest.fixture
def single_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield distributed.Group(0, 1, torch.device("cpu"))
    dist.destroy_process_group()


def test_gradients_are_bucketed_into_few_all_reduce_calls(single_process_group, monkeypatch):
    calls = []
    real = dist.all_reduce
    monkeypatch.setattr(dist, "all_reduce", lambda t: (calls.append(t.numel()), real(t))[1])
    grads = [torch.full((256, 1024), float(i)) for i in range(5)]  # 1 MiB each
    distributed.average_gradients(grads, single_process_group, bucket_mb=2.5)
    assert calls == [2 * 256 * 1024, 2 * 256 * 1024, 256 * 1024]
    assert all(torch.equal(g, torch.full((256, 1024), float(i))) for i, g in enumerate(grads))
    calls.clear()
    distributed.average_gradients(grads, single_process_group)
    assert len(calls) == 1
    calls.clear()
    distributed.average_gradients([], single_process_group)
    assert calls == []


def test_all_reduce_failure_is_a_user_error(single_process_group, monkeypatch):
    def broken(t):
        raise RuntimeError("Connection closed by peer")

    monkeypatch.setattr(dist, "all_reduce", broken)
    with pytest.raises(UserError, match="rank 0: another process .* Connection closed by peer"):
        distributed.average_gradients([torch.zeros(3)], single_process_group)


def test_not_launched_by_torchrun_is_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup() is None
    distributed.teardown()  # nothing to tear down


def test_unreachable_rendezvous_is_a_user_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(UserError, match="could not join the distributed job"):
        distributed.setup(timeout_s=2)


def test_sharded_streams_differ_by_rank_and_resume_by_step():
    config = TrainConfig(channels=4, batch_size=2, crop=8)
    a, b = distributed.ShardedStream(config, 0), distributed.ShardedStream(config, 1)
    first = a.next_batch()
    assert not torch.equal(first[0], b.next_batch()[0])
    second = a.next_batch()
    resumed = distributed.ShardedStream(config, 0)
    resumed.restore(a.state(), 1)
    assert torch.equal(resumed.next_batch()[0], second[0])


def test_torchrun_refusals(tmp_path, monkeypatch, capsys):
    group = distributed.Group(0, 2, torch.device("cpu"))
    monkeypatch.setattr(distributed, "setup", lambda timeout_s=60.0: group)
    monkeypatch.setattr(distributed, "teardown", lambda: None)
    assert cli.main(["train", "--runs-dir", str(tmp_path), *FLAGS, "--max-minutes", "1"]) == 2
    assert "--max-minutes is not supported under torchrun" in capsys.readouterr().err
    config = TrainConfig(channels=4, batch_size=2, crop=8, steps=1)
    with pytest.raises(UserError, match="the reference backend cannot train data-parallel"):
        train.train_run(config, tmp_path / "ref", factory=TorchBackend, group=group, quiet=True)
