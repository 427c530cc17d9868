"""The training loop and runs on disk: configuration, batch stream, resume, Ctrl-C, time limit, impl vs torch.nn."""

import json
import math
import signal
import threading

import pytest
import torch

from harness.twin import TorchBackend
from impl.app import train
from impl.app.backend import ImplBackend, initial_state
from impl.app.config import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_STEPS, TrainConfig
from impl.app.errors import UserError
from impl.app.evaluate import heldout_set
from impl.app.stream import BatchStream


def tiny(**kw):
    return TrainConfig(**{"channels": 4, "batch_size": 2, "crop": 8, "steps": 4, **kw})


def weights_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"upsampling": "bilinear"}, "^upsampling must be one of"),
        ({"optimizer": "rmsprop"}, "^optimizer must be one of"),
        ({"steps": -1}, "^steps must be an integer >= 0, got -1"),
        ({"batch_size": 0}, "^batch_size must be an integer >= 1"),
        ({"channels": 2.5}, "^channels must be an integer"),
        ({"seed": True}, "^seed must be an integer"),
        ({"crop": 10}, "^crop must be a multiple of 4"),
        ({"lr": -1.0}, r"^lr must be a number from 0 to 3.4e\+38 \(float32\)"),
        ({"lr": math.nan}, "^lr must be a number from 0"),
        ({"lr": 1e39}, "^lr must be a number from 0 to 3.4e"),  # overflows float32 (issue 22)
        ({"momentum": True}, "^momentum must be a number"),
        ({"noise": "gauss:1"}, "^noise: unknown noise"),
        ({"noise": 25}, "^noise must be a noise spec string"),
        ({"images": 3}, "^images must be a path"),
        ({"images": "a", "pkl": "b"}, "^pkl and images are exclusive"),
        ({"pkl": "b", "pairs": "n2c"}, "^pairs n2c needs clean images"),
        ({"residual": True}, r"^residual is a U-Net option \(arch unet\)$"),
        ({"arch": "unet", "residual": "yes"}, "^residual must be true or false, got 'yes'$"),
    ],
)
def test_config_errors(kw, match):
    """The library names its own fields; the CLI turns them into flags (tests/test_app_cli.py)."""
    with pytest.raises(UserError, match=match) as e:
        TrainConfig(**kw)
    assert str(e.value).startswith(e.value.field)


def test_config_round_trip_and_unknown_keys():
    config = tiny(noise="poisson:30")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match=r"unknown configuration keys \['colour'\]"):
        TrainConfig.from_dict({**config.to_dict(), "colour": 1})


def test_config_names_its_network():
    assert TrainConfig().network == "course_network('nearest', channels=48)"
    assert TrainConfig(arch="unet", depth=2, channels=8).network == "unet(depth=2, width=8)"
    assert TrainConfig(arch="unet", residual=True).network == "unet(depth=3, width=48, residual=True)"


def test_a_saved_config_without_residual_is_the_plain_unet():
    """Models saved before the option existed (the plain U-Net shipped until 2026-11-28) rebuild as they were."""
    saved = TrainConfig(arch="unet").to_dict()
    del saved["residual"]
    assert TrainConfig.from_dict(saved).residual is False


def test_learning_rate_schedules():
    cosine = TrainConfig(lr=1e-3, steps=100)
    assert cosine.learning_rate(0) == 1e-3
    assert cosine.learning_rate(50) == pytest.approx(5e-4)
    assert cosine.learning_rate(99) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert TrainConfig(lr_schedule="none", steps=100).learning_rate(99) == 5e-3


def test_default_learning_rate_follows_the_network():
    assert DEFAULT_LR == {"course": 5e-3, "unet": 1e-3}
    assert TrainConfig().lr == 5e-3 and TrainConfig(arch="unet").lr == 1e-3
    assert TrainConfig(arch="unet", lr=0.25).lr == 0.25  # an explicit lr wins
    # a saved config holds its number, so a model saved under other defaults rebuilds unchanged
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "lr": 1e-3}).lr == 1e-3
    config = TrainConfig(arch="unet", lr_schedule="none")
    config.lr = None  # set after construction: the schedule still falls back to the default
    assert config.learning_rate(7) == 1e-3


def test_default_steps_follow_the_network_and_batch_is_shared():
    assert DEFAULT_STEPS == {"course": 20000, "unet": 7000} and DEFAULT_BATCH_SIZE == 16
    assert TrainConfig().steps == 20000 and TrainConfig(arch="unet").steps == 7000
    assert TrainConfig().batch_size == TrainConfig(arch="unet").batch_size == 16
    assert TrainConfig(arch="unet", steps=7).steps == 7  # explicit steps win
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "steps": 3500}).steps == 3500
    config = TrainConfig(arch="unet")
    config.steps = None  # set after construction: the schedule still spans the default
    assert config.total_steps == 7000 and config.learning_rate(3500) == pytest.approx(5e-4)


# --- the batch stream -------------------------------------------------------------------------------


def test_stream_is_reproducible_and_resumable():
    a, b = BatchStream(tiny()), BatchStream(tiny())
    first = [a.next_batch() for _ in range(3)]
    assert all(torch.equal(x, y) for p, q in zip(first, [b.next_batch() for _ in range(3)]) for x, y in zip(p, q))
    state = a.state()
    nxt = a.next_batch()
    c = BatchStream(tiny())
    c.restore(state, 3)
    assert all(torch.equal(x, y) for x, y in zip(nxt, c.next_batch()))
    other = BatchStream(tiny(seed=1)).next_batch()
    assert not torch.equal(other[0], first[0][0])
    x, t = first[0]
    assert x.shape == t.shape == (2, 3, 8, 8) and not torch.equal(x, t)


def test_stream_noise2clean_targets_are_clean_crops():
    x, t = BatchStream(tiny(pairs="n2c", noise="gaussian:0")).next_batch()
    assert torch.equal(x, t)  # sigma 0: the input is the clean crop too


def test_stream_from_course_pairs(tmp_path):
    noisy = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save((noisy, noisy), tmp_path / "train_data.pkl")
    x, t = BatchStream(tiny(pkl=str(tmp_path / "train_data.pkl"))).next_batch()
    assert x.shape == (2, 3, 8, 8) and torch.equal(x, t)


# --- backends share initial weights; impl and torch.nn train alike ----------------------------------


def test_impl_and_reference_start_equal_and_train_alike():
    config = tiny(steps=5)
    impl_backend, ref_backend = ImplBackend(config), TorchBackend(config)
    assert weights_equal(impl_backend.state_dict(), ref_backend.state_dict())
    assert weights_equal(impl_backend.state_dict(), initial_state(config))
    assert not weights_equal(initial_state(config), initial_state(tiny(seed=1)))
    ours = train.train_loop(impl_backend, BatchStream(config), config, train.RunState(), quiet=True)
    theirs = train.train_loop(ref_backend, BatchStream(config), config, train.RunState(), quiet=True)
    assert ours.stopped == theirs.stopped == "done"
    assert ours.losses == pytest.approx(theirs.losses, rel=1e-5)  # float32 rounding only
    for k, v in ref_backend.state_dict().items():
        torch.testing.assert_close(impl_backend.state_dict()[k], v, rtol=1e-4, atol=1e-6)


def test_impl_backend_infers_in_eval_mode_and_trains_in_training_mode():
    """Inference needs no backward: the network runs it in eval mode (its convolutions keep their
    input, not what a training step keeps for the weight gradient) and trains in training mode."""
    config = tiny()
    backend = ImplBackend(config)
    x, t = BatchStream(config).next_batch()
    backend.forward(x)
    assert not backend.net.training and not backend.net.modules[0].training
    backend.train_step(x, t, 1e-3)
    assert backend.net.training and backend.net.modules[0].training


@pytest.mark.parametrize("factory", [ImplBackend, TorchBackend])
def test_sgd_backend_and_optimizer_state_round_trip(factory):
    config = tiny(optimizer="sgd", lr=0.1, lr_schedule="none")
    a = factory(config)
    stream = BatchStream(config)
    batches = [stream.next_batch() for _ in range(3)]
    a.train_step(*batches[0], 0.1)
    b = factory(config)
    b.load_state_dict(a.state_dict())
    b.load_optimizer_state_dict(a.optimizer_state_dict())
    for batch in batches[1:]:
        assert a.train_step(*batch, 0.1) == b.train_step(*batch, 0.1)
    assert weights_equal(a.state_dict(), b.state_dict())


# --- runs on disk: resume, Ctrl-C, time limit ---------------------------------------------------------


def test_resume_is_bit_identical(tmp_path):
    # a constant learning rate: the cosine schedule depends on the total number of steps
    # (the Ctrl-C test below resumes a cosine run)
    flat = {"lr_schedule": "none"}
    whole, whole_state = train.train_run(tiny(steps=4, **flat), tmp_path / "whole", quiet=True, log_every=1)
    train.train_run(tiny(steps=2, **flat), tmp_path / "split", quiet=True, log_every=1)
    split, split_state = train.train_run(
        tiny(steps=4, **flat), tmp_path / "split", resume=True, quiet=True, log_every=1
    )
    assert weights_equal(whole.state_dict(), split.state_dict())
    assert whole_state.losses == split_state.losses and len(split_state.losses) == 4
    saved = train.load_checkpoint(tmp_path / "split" / train.CHECKPOINT)
    assert saved["step"] == 4 and saved["config"]["steps"] == 4
    assert weights_equal(saved["model"], whole.state_dict())
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / train.LOG).read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_truncates_log_records_after_the_checkpoint(tmp_path):
    train.train_run(tiny(steps=2), tmp_path, quiet=True, log_every=1)
    with (tmp_path / train.LOG).open("a") as f:
        f.write(json.dumps({"step": 3, "loss": 9.0}) + "\n")  # written after the last checkpoint
        f.write('{"step": 4, "lo')  # cut short by a crash
    train.train_run(tiny(steps=3), tmp_path, resume=True, quiet=True, log_every=1)
    records = [json.loads(line) for line in (tmp_path / train.LOG).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and records[2]["loss"] != 9.0


def test_log_records_validation_and_images_per_second(tmp_path):
    val = heldout_set(size=16)
    _, state = train.train_run(tiny(steps=4), tmp_path, validation=val, val_every=2, log_every=3, quiet=True)
    records = [json.loads(line) for line in (tmp_path / train.LOG).read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4]
    assert [r.get("val_psnr") is not None for r in records] == [True, False, True]
    assert all(set(r) >= {"step", "loss", "lr", "images_per_s", "elapsed"} and r["images_per_s"] > 0 for r in records)
    assert [s for s, _ in state.val_psnr] == [2, 4] and state.val_psnr[1][1] == records[2]["val_psnr"]


def test_checkpoints_at_intervals(tmp_path, monkeypatch):
    saved_steps = []
    real = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint", lambda obj, path: (saved_steps.append(obj["step"]), real(obj, path)))
    train.train_run(tiny(steps=5), tmp_path, checkpoint_every=2, quiet=True)
    assert saved_steps == [2, 4, 5]


def test_run_refuses_to_overwrite_and_checks_resume(tmp_path):
    train.train_run(tiny(steps=1), tmp_path, quiet=True)
    with pytest.raises(UserError, match="pass --resume to continue that run, --force to start over"):
        train.train_run(tiny(steps=1), tmp_path, quiet=True)
    with pytest.raises(UserError, match=r"other settings \(lr: 0.005 -> 0.01\)"):
        train.train_run(tiny(steps=2, lr=0.01), tmp_path, resume=True, quiet=True)
    with pytest.raises(UserError, match="not a training checkpoint of the reference backend"):
        train.train_run(tiny(steps=2), tmp_path, factory=TorchBackend, resume=True, quiet=True)
    with pytest.raises(FileNotFoundError):
        train.train_run(tiny(steps=2), tmp_path / "empty", resume=True, quiet=True)
    _, state = train.train_run(tiny(steps=2, lr=0.01), tmp_path, force=True, quiet=True)
    assert state.step == 2


class InterruptAt:
    """An ImplBackend factory whose backend receives Ctrl-C (SIGINT) during step ``at``."""

    def __init__(self, at, twice=False):
        self.at, self.twice = at, twice

    def __call__(self, config):
        backend = ImplBackend(config)
        step, count = backend.train_step, [0]

        def train_step(*args):
            count[0] += 1
            if count[0] == self.at:
                signal.raise_signal(signal.SIGINT)
                if self.twice:
                    signal.raise_signal(signal.SIGINT)
            return step(*args)

        backend.train_step = train_step
        return backend


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train.train_run(tiny(steps=4), tmp_path / "a", factory=InterruptAt(2), quiet=True)
    assert train.load_checkpoint(tmp_path / "a" / train.CHECKPOINT)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    resumed, _ = train.train_run(tiny(steps=4), tmp_path / "a", resume=True, quiet=True)
    whole, _ = train.train_run(tiny(steps=4), tmp_path / "b", quiet=True)
    assert weights_equal(resumed.state_dict(), whole.state_dict())


def test_second_ctrl_c_interrupts_at_once(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train.train_run(tiny(steps=4), tmp_path, factory=InterruptAt(2, twice=True), quiet=True)
    assert not (tmp_path / train.CHECKPOINT).exists()  # interrupted inside the step: nothing saved


def test_a_signal_after_the_save_decision_still_saves_the_step_it_stops_at():
    """SIGTERM sent while step 2 logs (after the loop decided not to save step 2): the run goes on to
    step 3, saves it, then stops; it never reports a checkpoint it did not write."""
    config, saved = tiny(steps=10), []

    def log(record):
        if record["step"] == 2:
            signal.raise_signal(signal.SIGTERM)

    every = train.Every(log=1, checkpoint=1000)
    with pytest.raises(train.Interrupted) as stopped:
        train.train_loop(ImplBackend(config), BatchStream(config), config, train.RunState(), every=every,
                         checkpoint=lambda state: saved.append(state.step), log=log, quiet=True)  # fmt: skip
    assert stopped.value.saved and stopped.value.signum == signal.SIGTERM
    assert saved == [3]


def test_loop_runs_outside_the_main_thread(tmp_path):
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=train.train_run(tiny(steps=2), tmp_path, quiet=True)))
    thread.start()
    thread.join()
    assert result["out"][1].step == 2


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    _, state = train.train_run(tiny(steps=50), tmp_path, max_minutes=0, quiet=True, validation=heldout_set(size=16))
    assert state.stopped == "time limit" and state.step == 1
    saved = train.load_checkpoint(tmp_path / train.CHECKPOINT)
    assert saved["step"] == 1 and saved["val_psnr"][0][0] == 1


# --- saved models -------------------------------------------------------------------------------------


def test_export_and_load_model(tmp_path):
    config = tiny(upsampling="transpose", channels=3)
    backend, _ = train.train_run(config, tmp_path / "run", quiet=True)
    train.export_model(tmp_path / "best.pth", config, backend)
    x = torch.rand(1, 3, 8, 8)
    for path in (tmp_path / "best.pth", tmp_path / "run" / train.CHECKPOINT):
        loaded = train.load_model(path)
        assert weights_equal(loaded.state_dict(), backend.state_dict())
        assert torch.equal(loaded.forward(x), backend.forward(x))
    assert isinstance(train.load_model(tmp_path / "best.pth", TorchBackend), TorchBackend)
    torch.save({"config": {}}, tmp_path / "nomodel.pth")
    with pytest.raises(UserError, match="not a model saved by n2n"):
        train.load_model(tmp_path / "nomodel.pth")
