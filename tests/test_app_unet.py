"""The U-Net in the application: configuration, tiling geometry, both backends, the Model API and n2n."""

import pytest
import torch
from PIL import Image

import impl.app.course
from harness.twin import TorchBackend
from impl.app.api import CourseModel
from impl.app.backend import ImplBackend, build_network, initial_state
from impl.app.checkpoint import load_checkpoint
from impl.app.config import TrainConfig
from impl.app.errors import UserError
from impl.app.images import read_image
from impl.app.tiling import run_tiled
from impl.models import unet
from n2n import cli

SMALL = {"arch": "unet", "depth": 2, "channels": 6, "batch_size": 2, "crop": 16}


def receptive_radius(config: TrainConfig) -> int:
    """The largest distance (in pixels, per axis) from which one input pixel changes an output
    pixel, over every position of that pixel relative to the network's pooling grid."""
    net = build_network(config)
    net.load_state_dict({k: v.double() for k, v in initial_state(config).items()})
    net.to(dtype=torch.float64)
    side = 4 * config.geometry.margin
    x = torch.rand(8, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    radius = 0
    for phase in range(config.multiple):
        center = side // 2 + phase
        changed = x.clone()  # several images: a ReLU dead in one is alive in another
        changed[..., center, center] += torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
        rows, cols = ((net(changed) - net(x)).abs().sum(dim=(0, 1)) > 0).nonzero(as_tuple=True)
        radius = max(radius, int((rows - center).abs().max()), int((cols - center).abs().max()))
    return radius


@pytest.mark.parametrize(
    "config, radius",
    [
        (TrainConfig(channels=8), 9),
        (TrainConfig(arch="unet", depth=1, channels=4), 7),
        (TrainConfig(arch="unet", depth=2, channels=4), 17),
        (TrainConfig(arch="unet", depth=3, channels=4), 37),
        (TrainConfig(arch="unet", depth=2, channels=4, residual=True), 17),
    ],
    ids=["course", "unet1", "unet2", "unet3", "unet2-residual"],
)
def test_margin_covers_the_measured_receptive_field(config, radius):
    measured = receptive_radius(config)
    assert measured == radius  # the radius the geometry's docstring states
    margin = config.geometry.margin
    assert measured <= margin < measured + 2 * config.multiple and margin % config.multiple == 0


@pytest.mark.parametrize("residual", [False, True])
def test_tiled_unet_equals_the_whole_image(residual):
    backend = ImplBackend(TrainConfig(**SMALL, residual=residual), device="cpu")
    x = torch.rand(2, 3, 45, 37, generator=torch.Generator().manual_seed(1))
    geometry = backend.config.geometry
    assert geometry == (4, 20)
    whole = run_tiled(backend.forward, x, tile=64, geometry=geometry)  # one piece
    tiled = run_tiled(backend.forward, x, tile=8, geometry=geometry)  # 6 x 5 tiles
    assert whole.shape == x.shape
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    with pytest.raises(UserError, match="^tile must be a positive multiple of 4, got 6"):
        run_tiled(backend.forward, x, tile=6, geometry=geometry)


def test_unet_config_checks_the_crop_and_depth():
    assert TrainConfig(arch="unet").multiple == 8 and TrainConfig().multiple == 4
    with pytest.raises(UserError, match="^crop must be a multiple of 8 .the unet network halves the size 3 times"):
        TrainConfig(arch="unet", crop=36)
    with pytest.raises(UserError, match="^depth must be an integer >= 0, got -1"):
        TrainConfig(arch="unet", depth=-1)
    with pytest.raises(UserError, match="^arch must be one of"):
        TrainConfig(arch="resnet")


@pytest.mark.parametrize(
    "device, rel, rtol",
    [
        ("cpu", 1e-5, 1e-4),
        pytest.param(
            "cuda", 1e-4, 1e-3, marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
        ),
    ],
)
def test_unet_backends_train_alike(device, rel, rtol, monkeypatch):
    """impl and torch.nn U-Nets from the same initial weights: equal losses over 5 Adam steps."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # torch.nn in full float32 on a GPU
    config = TrainConfig(**SMALL)
    impl_b, ref_b = ImplBackend(config, device=device), TorchBackend(config, device=device)
    assert impl_b.state_dict().keys() == ref_b.state_dict().keys()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, t = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)
        assert impl_b.train_step(x, t, 1e-3) == pytest.approx(ref_b.train_step(x, t, 1e-3), rel=rel)
    for key, value in impl_b.state_dict().items():
        torch.testing.assert_close(value, ref_b.state_dict()[key], rtol=rtol, atol=1e-5)


def test_model_api_with_a_unet_backend():
    model = CourseModel(ImplBackend, impl.app.course.UNET_MODEL)
    model.config = TrainConfig(**SMALL)
    model.backend = ImplBackend(model.config, device="cpu")
    noisy = torch.randint(0, 256, (2, 3, 21, 13), dtype=torch.uint8)
    out = model.predict(noisy)
    assert out.shape == noisy.shape and out.dtype == torch.float32
    model.train(noisy[..., :16, :8].float(), noisy[..., :16, :8], 1)
    with pytest.raises(ValueError, match="H, W multiples of 4"):
        model.train(noisy[..., :12, :6], noisy[..., :12, :6], 1)


def test_n2n_trains_denoises_and_evaluates_a_unet(tmp_path, capsys, monkeypatch):
    m = tmp_path / "u.pth"
    argv = ["train", "--runs-dir", tmp_path, "--name", "u", "--arch", "unet", "--depth", "2", "--channels", "4",
            "--residual", "--steps", "2", "--batch-size", "2", "--crop", "8", "--val-size", "16", "--quiet",
            "--no-baselines", "--export", m]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0
    saved = load_checkpoint(m)
    assert saved["config"]["arch"] == "unet" and saved["config"]["depth"] == 2 and saved["config"]["residual"]
    assert saved["state_dict"].keys() == unet(2, 4, residual=True).state_dict().keys()
    Image.new("RGB", (19, 11), (200, 30, 90)).save(tmp_path / "in.png")
    monkeypatch.setattr(impl.app.course, "UNET_MODEL", m)  # the shipped U-Net: the default of denoise
    monkeypatch.setattr(impl.app.course, "BESTMODEL", tmp_path / "no-bestmodel.pth")
    assert cli.main(["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--tile", "8"]) == 0
    assert read_image(tmp_path / "out.png").shape == (3, 11, 19)
    assert cli.main(["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--tile", "6"]) == 2
    assert "--tile must be a positive multiple of 4, got 6" in capsys.readouterr().err
    assert cli.main(["evaluate", "--size", "16", "--no-baselines"]) == 0
    assert str(m) in capsys.readouterr().out


def test_shipped_unet_is_a_unet():
    saved = load_checkpoint(impl.app.course.UNET_MODEL)
    config = TrainConfig.from_dict(saved["config"])
    assert config.arch == "unet" and config.pairs == "n2n"
    assert saved["state_dict"].keys() == build_network(config).state_dict().keys()
