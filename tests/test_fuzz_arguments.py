"""Bad arguments everywhere a user can reach (issue 7), drawn by hypothesis: every block's
constructor, the optimizers' options, and every flag of every ``n2n`` command. Each either works
or raises a documented error whose message names the argument; a refused command exits with
status 2, prints ``n2n: error`` or argparse's usage error, no traceback, and writes no files."""

import contextlib
import io
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import impl
from n2n import cli

# values a user can pass by mistake: wrong types, zero, negative, huge, non-finite, wrong arity
ODD = st.one_of(
    st.integers(-3, 0),
    st.sampled_from(
        [
            None,
            "3",
            "abc",
            2.5,
            -1.5,
            float("nan"),
            float("inf"),
            True,
            (),
            (1,),
            (1, 2, 3),
            (0, 1),
            (-1, 2),
            [3, 3],
            1j,
            object(),
        ]
    ),
)
GOOD = {
    "Conv2d": {"in_channels": 4, "out_channels": 6, "kernel_size": 3},
    "ConvTranspose2d": {"in_channels": 4, "out_channels": 6, "kernel_size": 3},
    "Upsampling": {"scale_factor": 2},
    "MaxPool2d": {"kernel_size": 2},
    "LeakyReLU": {"negative_slope": 0.1},
    "Shift": {"offset": -0.5},
}
OPTIONS = {
    "Conv2d": ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
               "padding_mode"],
    "ConvTranspose2d": ["in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups",
                        "bias", "dilation"],
    "Upsampling": ["size", "scale_factor", "mode"],
    "MaxPool2d": ["kernel_size", "stride", "padding", "dilation", "ceil_mode"],
    "LeakyReLU": ["negative_slope"],
    "Shift": ["offset"],
}  # fmt: skip
DOCUMENTED = (TypeError, ValueError)


def _name_in(text: str, argument: str) -> bool:
    return argument in text or argument.replace("_", " ") in text


@pytest.mark.parametrize("block", sorted(OPTIONS))
@given(data=st.data())
def test_constructors_refuse_bad_arguments_by_name(block, data):
    argument = data.draw(st.sampled_from(OPTIONS[block]), label="argument")
    value = data.draw(ODD, label="value")
    kwargs = {**GOOD[block], argument: value}
    try:
        module = getattr(impl, block)(**kwargs)
    except DOCUMENTED as e:
        # the message names the argument (or, for a pair, the argument it belongs to) and the value
        assert _name_in(str(e), argument) or argument in ("in_channels", "out_channels", "groups"), str(e)
        if argument in ("in_channels", "out_channels", "groups"):
            assert any(_name_in(str(e), a) for a in ("in_channels", "out_channels", "groups")), str(e)
        return
    repr(module)  # accepted: a working module, shown by its repr
    x = torch.rand(2, 4, 9, 8)
    try:
        out = module(x)
    except DOCUMENTED + (impl.ShapeError,) as e:
        assert block in str(e) or "size" in str(e), str(e)  # e.g. a kernel larger than the padded input
        return
    assert out.dim() == 4 and out.dtype == x.dtype


OPTIMIZER_OPTIONS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"],
    "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_OPTIONS))
@given(data=st.data())
def test_optimizers_refuse_bad_options_by_name_and_keep_parameters(name, data):
    argument = data.draw(st.sampled_from(OPTIMIZER_OPTIONS[name]), label="argument")
    value = data.draw(st.one_of(ODD, st.sampled_from([(0.9, 1.5), (-0.1, 0.9), (0.9,), (float("nan"), 0.9)])))
    conv = impl.Conv2d(2, 2, 3)
    before = {k: v.clone() for k, v in conv.state_dict().items()}
    try:
        optimizer = getattr(impl, name)(conv.param(), **{"lr": 0.1, argument: value})
    except DOCUMENTED as e:
        assert argument in str(e) or (argument == "betas" and "beta" in str(e)), str(e)
        assert all(torch.equal(v, before[k]) for k, v in conv.state_dict().items())
        return
    conv.zero_grad()
    conv(torch.rand(1, 2, 5, 5))
    conv.backward(torch.ones(1, 2, 3, 3))
    optimizer.step()  # accepted options give finite parameters
    assert all(bool(torch.isfinite(v).all()) for v in conv.state_dict().values())


def test_optimizers_refuse_parameters_that_are_not_parameters():
    for bad in (None, 3, [torch.zeros(2)], [("w", "not a tensor")], []):
        with pytest.raises(DOCUMENTED, match="param"):
            impl.SGD(bad, lr=0.1)


# Each command with each of its value flags set to a bad value: a clear error, status 2, no files.
BAD_FLAG_VALUES = {
    "train": {
        "--channels": ["0", "-4", "abc", "2.5"],
        "--depth": ["-1", "x"],
        "--batch-size": ["0", "-1", "nan"],
        "--steps": ["-1", "1e3"],
        "--crop": ["0", "6", "-8", "big"],
        "--seed": ["-1", "0.5"],
        "--lr": ["-1", "nan", "inf", "fast"],
        "--momentum": ["-0.5", "nan"],
        "--noise": ["gaussian", "gaussian:-5", "uniform:3", "poisson:0", "gaussian:9-2", ""],
        "--arch": ["resnet"],
        "--pairs": ["n2x"],
        "--targets": ["soft"],
        "--optimizer": ["adagrad"],
        "--upsampling": ["bilinear"],
        "--lr-schedule": ["step"],
        "--images": ["no-such-folder"],
        "--pkl": ["no-such.pkl"],
        "--val-every": ["-1", "x"],
        "--checkpoint-every": ["-2"],
        "--log-every": ["-3"],
        "--max-minutes": ["-1", "soon"],
        "--val-size": ["0", "-16"],
        "--val-images": ["no-such-folder"],
        "--val-pkl": ["no-such.pkl"],
    },
    "denoise": {"--tile": ["0", "-8", "10", "x"], "--model": ["no-such.pth"], "--arch": ["resnet"]},
    "evaluate": {
        "--tile": ["0", "7"],
        "--model": ["no-such.pth"],
        "--noise": ["gaussian:-1", "x"],
        "--size": ["0", "-1"],
        "--images": ["no-such-folder"],
        "--pkl": ["no-such.pkl"],
    },
    "report": {
        "--steps": ["-1", "x"],
        "--unet-steps": ["-1"],
        "--batch-size": ["0"],
        "--unet-batch-size": ["0", "x"],
        "--channels": ["0"],
        "--unet-channels": ["0", "x"],
        "--size": ["0"],
        "--val-every": ["x", "-1"],
    },
    "bench": {"--threads": ["0", "x"], "--batches": ["-1"], "--repeats": ["0"]},
    "verify": {"--profile": ["fast"]},
}
CASES = [(command, flag) for command, flags in BAD_FLAG_VALUES.items() for flag in flags]


@pytest.mark.parametrize("command, flag", CASES, ids=[f"{c} {f}" for c, f in CASES])
@given(data=st.data())
def test_every_command_refuses_bad_flag_values(command, flag, data, tmp_path_factory):
    value = data.draw(st.sampled_from(BAD_FLAG_VALUES[command][flag]), label="value")
    work = tmp_path_factory.mktemp("cmd")
    argv = {
        "train": [
            "train",
            "--runs-dir",
            str(work / "runs"),
            "--steps",
            "1",
            "--batch-size",
            "1",
            "--channels",
            "2",
            "--crop",
            "8",
            "--val-size",
            "8",
            "--quiet",
            "--no-baselines",
        ],
        "denoise": ["denoise", str(work / "in.png"), str(work / "out.png")],
        "evaluate": ["evaluate", "--size", "8", "--no-baselines"],
        "report": [
            "report",
            "--out",
            str(work / "rep"),
            "--runs-dir",
            str(work / "runs"),
            "--steps",
            "1",
            "--unet-steps",
            "1",
            "--size",
            "8",
            "--quiet",
        ],
        "bench": ["bench", "--out", str(work / "bench.md"), "--quick", "--repeats", "1"],
        "verify": ["verify", "--out", str(work / "v.md")],
    }[command] + [flag, value]
    if command == "denoise":
        from PIL import Image

        Image.new("RGB", (8, 8)).save(work / "in.png")
    before = sorted(work.rglob("*"))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse: a wrong type or choice
            code = e.code
    err = stderr.getvalue()
    assert code == 2, f"{argv}: exit {code}"
    assert "Traceback" not in err and ("n2n: error: " in err or "error: argument" in err), err
    named = flag.lstrip("-")
    assert named in err or (flag in PATH_FLAGS and _mentions_file(err, value)), err
    assert sorted(work.rglob("*")) == before, "a refused command left files behind"


PATH_FLAGS = {"--images", "--pkl", "--model", "--val-images", "--val-pkl"}


def _mentions_file(err: str, value: str) -> bool:
    """A missing file or folder is named by its path (and a model path by 'not found')."""
    return bool(value) and (value in err or Path(value).name in err)
