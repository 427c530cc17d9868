"""The EE-559 Model API: impl.app.course.Model, harness.twin.Model and the Miniproject_2 re-export."""

import importlib

import pytest
import torch

import harness.twin
import impl
import impl.app.course
from impl.app.api import BESTMODEL_COMMAND
from impl.app.config import TrainConfig
from impl.app.train import export_model

MODELS = [impl.app.course.Model, harness.twin.Model]


def images(*shape, seed=0):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    """A small bestmodel.pth in tmp_path (never a committed fake): channels 4, transpose upsampling."""
    config = TrainConfig(channels=4, upsampling="transpose", seed=5)
    backend = impl.app.backend.ImplBackend(config)
    path = export_model(tmp_path / "bestmodel.pth", config, backend)
    monkeypatch.setattr(impl.app.course, "BESTMODEL", path)
    monkeypatch.setattr(harness.twin, "BESTMODEL", path)
    return backend


@pytest.mark.parametrize("Model", MODELS)
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 37, 29), (3, 3, 5, 6), (3, 37, 29)])
def test_predict_shape_dtype_range_any_size(Model, shape):
    model = Model()
    out = model.predict(images(*shape))
    assert out.shape == shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 255 and out.std() > 0


@pytest.mark.parametrize("Model", MODELS)
def test_uint8_and_float_inputs_give_the_same_result(Model):
    model = Model()
    x = images(2, 3, 12, 16)
    assert torch.equal(model.predict(x), model.predict(x.float()))
    assert torch.equal(model.predict(x), model.predict(x.double()))


def test_impl_and_reference_models_agree():
    x = images(2, 3, 20, 20)
    torch.testing.assert_close(impl.app.course.Model().predict(x), harness.twin.Model().predict(x), rtol=0, atol=1e-4)


def test_predict_tiles_large_images_like_whole_ones():
    model = impl.app.course.Model()
    x = images(1, 3, 40, 36)
    whole = model.predict(x)
    shapes, forward = [], model.backend.forward
    model.backend.forward = lambda t: shapes.append(tuple(t.shape[-2:])) or forward(t)
    model.tile = 16
    torch.testing.assert_close(model.predict(x), whole, rtol=0, atol=1e-4)
    assert len(shapes) == 9 and max(max(s) for s in shapes) <= 16 + 2 * 16  # 3 x 3 tiles with margins


@pytest.mark.parametrize("Model", MODELS)
def test_load_pretrained_model_uses_the_file_config_and_weights(Model, pretrained):
    model = Model()
    model.load_pretrained_model()
    assert model.backend.config.channels == 4 and model.backend.config.upsampling == "transpose"
    x = images(1, 3, 16, 16)
    torch.testing.assert_close(model.predict(x), pretrained.forward(x.float() / 255) * 255, rtol=0, atol=1e-4)


@pytest.mark.parametrize("Model", MODELS)
def test_missing_pretrained_model_names_path_and_command(Model, tmp_path, monkeypatch):
    monkeypatch.setattr(impl.app.course, "BESTMODEL", tmp_path / "bestmodel.pth")
    monkeypatch.setattr(harness.twin, "BESTMODEL", tmp_path / "bestmodel.pth")
    with pytest.raises(FileNotFoundError, match=r"bestmodel.pth; train it .* n2n train --name bestmodel"):
        Model().load_pretrained_model()


def test_missing_model_command_is_the_readme_command():
    # the error tells a user how to rebuild bestmodel.pth: the same command the README gives
    readme = (impl.app.course.Path(impl.__file__).parents[1] / "README.md").read_text()
    assert f"\n{BESTMODEL_COMMAND}\n" in readme


def test_shipped_model_path_is_inside_the_package():
    assert impl.app.course.BESTMODEL == impl.app.course.Path(impl.__file__).parent / "bestmodel.pth"
    assert harness.twin.BESTMODEL == impl.app.course.BESTMODEL


@pytest.mark.parametrize("Model", MODELS)
def test_train_lowers_the_loss_on_noisy_pairs(Model):
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(16, 3, 1, 1, generator=g).expand(16, 3, 8, 8) * 255
    noisy_a = (clean + 25 * torch.randn(16, 3, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    noisy_b = (clean + 25 * torch.randn(16, 3, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    model = Model()
    before = ((model.predict(noisy_a) - clean) ** 2).mean()
    model.train(noisy_a, noisy_b, 3)
    after = ((model.predict(noisy_a) - clean) ** 2).mean()
    assert after < before
    model.train(noisy_a, noisy_b.float(), 0)  # zero epochs: nothing changes
    assert ((model.predict(noisy_a) - clean) ** 2).mean() == after


def test_train_is_deterministic():
    x, t = images(8, 3, 8, 8), images(8, 3, 8, 8, seed=1)
    a, b = impl.app.course.Model(), impl.app.course.Model()
    a.train(x, t, 1)
    b.train(x, t, 1)
    assert torch.equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("Model", MODELS)
def test_train_passes_over_all_pairs_in_batches_of_16_at_the_peak_lr(Model, monkeypatch):
    model, seen = Model(), []
    monkeypatch.setattr(model.backend, "train_step", lambda x, t, lr: seen.append((len(x), lr)))
    model.train(images(40, 3, 8, 8), images(40, 3, 8, 8, seed=1), 2)
    assert seen == [(16, 5e-3), (16, 5e-3), (8, 5e-3)] * 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m.predict([[1]]), TypeError, "test_input must be a torch.Tensor, got list"),
        (lambda m: m.predict(torch.zeros(1, 3, 4, 4, dtype=torch.int32)), TypeError, "uint8 or floating point"),
        (lambda m: m.predict(torch.zeros(1, 1, 4, 4)), ValueError, r"N x 3 x H x W .* got \(1, 1, 4, 4\)"),
        (lambda m: m.predict(torch.zeros(3, 4)), ValueError, "N x 3 x H x W"),
        (lambda m: m.train(images(2, 3, 8, 8), images(3, 3, 8, 8), 1), ValueError, "equal shapes"),
        (lambda m: m.train(images(2, 3, 6, 8), images(2, 3, 6, 8), 1), ValueError, "multiples of 4"),
        (lambda m: m.train(images(3, 8, 8), images(3, 8, 8), 1), ValueError, "N x 3 x H x W"),
        (lambda m: m.train(images(2, 3, 8, 8), images(2, 3, 8, 8), -1), ValueError, "num_epochs"),
    ],
)
def test_bad_inputs_name_argument_expected_received(call, error, match):
    with pytest.raises(error, match=match):
        call(impl.app.course.Model())


def test_course_names_and_miniproject_reexport():
    mp = importlib.import_module("Miniproject_2.model")
    for name in [
        "Model",
        "Conv2d",
        "TransposeConv2d",
        "NearestUpsampling",
        "ReLU",
        "Sigmoid",
        "MSE",
        "SGD",
        "Sequential",
    ]:
        assert getattr(mp, name) is (impl.app.course.Model if name == "Model" else getattr(impl, name))
    assert mp.TransposeConv2d is impl.ConvTranspose2d and mp.MSE is impl.MSELoss
