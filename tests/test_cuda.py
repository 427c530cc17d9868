"""The parity checks on a CUDA device (device and dtype follow the input). Skipped without CUDA."""

import pytest
import torch

import impl
import impl.app.course
import impl.models
import reference
import reference.models
from impl.app.backend import ImplBackend
from tests.helpers import assert_parity
from tests.registry import SAMPLES, pair

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.fixture(autouse=True)
def full_float32(monkeypatch):
    """torch.nn's cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later; the
    parity checks compare full float32."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


CASES = [
    ("Conv2d", (4, 6, 3), dict(stride=2, padding=1)),
    ("Conv2d", (4, 6, 3), dict(padding="same", dilation=2, padding_mode="reflect", groups=2)),
    ("Conv2d", (4, 6, (3, 2)), dict(padding=(2, 1), padding_mode="circular")),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1)),
    ("ConvTranspose2d", (4, 6, 3), dict(dilation=2, output_padding=1, groups=2)),
    ("Upsampling", (), dict(scale_factor=2)),
    ("Upsampling", (), dict(scale_factor=1.5, mode="nearest-exact")),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True)),
    ("ReLU", (), {}),
    ("LeakyReLU", (0.1,), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,args,kw", CASES)
def test_parity_on_cuda(name, args, kw, dtype):
    x = torch.randn(2, 4, 9, 8, dtype=dtype, device="cuda")
    results = assert_parity(getattr(impl, name)(*args, **kw), getattr(reference, name)(*args, **kw), x)
    assert all(t.device.type == "cuda" for t in results.values())


@pytest.mark.parametrize(
    "optimizer,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.01, amsgrad=True))]
)
def test_training_step_on_cuda(optimizer, kw):
    torch.manual_seed(0)
    net = impl.models.course_network().to(device="cuda")
    ref = reference.models.course_network().to("cuda")
    ref.load_state_dict(net.state_dict())
    opt, ref_opt = getattr(impl, optimizer)(net.param(), **kw), getattr(reference, optimizer)(ref.parameters(), **kw)
    x, t = torch.rand(4, 3, 16, 16, device="cuda"), torch.rand(4, 3, 16, 16, device="cuda")
    loss = impl.MSELoss()
    for _ in range(3):
        opt.zero_grad()
        loss(net(x), t)
        net.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        reference.MSELoss()(ref(x), t).backward()
        ref_opt.step()
    for name, p in ref.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], p, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_registry_parity_on_cuda(sample, dtype):
    """Every block of the registry, as in tests/test_registry.py, with the input on the GPU."""
    torch.manual_seed(0)
    x = torch.randn(sample.shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to("cuda")
    results = assert_parity(*pair(sample), x)
    assert all(t.device.type == "cuda" for t in results.values())


def test_model_predicts_on_the_input_device():
    model = impl.app.course.Model()  # the course network, on CUDA when there is one
    assert model.backend.device.type == "cuda"
    x = torch.randint(0, 256, (2, 3, 21, 13), dtype=torch.uint8, device="cuda")
    y = model.predict(x)
    assert y.device == x.device and y.shape == x.shape and y.dtype == torch.float32
    on_cpu = ImplBackend(model.config, device="cpu")
    on_cpu.load_state_dict(model.backend.state_dict())
    model.backend = on_cpu
    torch.testing.assert_close(model.predict(x.cpu()), y.cpu(), rtol=0, atol=1e-3)
