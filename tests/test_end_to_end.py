"""End to end: identical initial weights and batches, impl and torch.nn train step for step."""

import pytest
import torch

import impl
import impl.models
import reference
import reference.models
from impl.models import course_network, unet
from reference.models import course_network as ref_course_network
from reference.models import unet as ref_unet
from tests.helpers import tolerance


def noisy_pairs(steps, batch, size, seed=0):
    """Noise2Noise batches: smooth random images, two independent Gaussian noises (sigma 25/255)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        clean = torch.rand(batch, 3, size // 4, size // 4, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)
        yield [(clean + 25 / 255 * torch.randn(clean.shape, generator=g)).clamp(0, 1) for _ in range(2)]


def train_both(net, ref, make_opt, make_ref_opt, steps, batch=8, size=32, stride=1):
    ref.load_state_dict(net.state_dict())
    opt, ref_opt = make_opt(net.param()), make_ref_opt(ref.parameters())
    loss, ref_loss = impl.MSELoss(), reference.MSELoss()
    losses, ref_losses = [], []
    for x, t in noisy_pairs(steps, batch, size):
        t = t[:, :, ::stride, ::stride]  # a network that halves the resolution gets a subsampled target
        opt.zero_grad()
        losses.append(loss(net(x), t).item())
        net.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        out = ref_loss(ref(x), t)
        out.backward()
        ref_opt.step()
        ref_losses.append(out.item())
    return losses, ref_losses


def test_small_conv_network_20_steps():
    torch.manual_seed(0)

    def build(m):
        return m.Sequential(m.Conv2d(3, 8, 3, stride=2, padding=1), m.ReLU(), m.Conv2d(8, 3, 3, padding=1), m.Sigmoid())

    net, ref = build(impl), build(reference)
    losses, ref_losses = train_both(
        net,
        ref,
        lambda p: impl.SGD(p, lr=0.5, momentum=0.9),
        lambda p: reference.SGD(p, lr=0.5, momentum=0.9),
        steps=20,
        size=16,
        stride=2,
    )
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("upsampling", ["nearest", "transpose"])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_course_network_50_steps(upsampling, optimizer):
    torch.manual_seed(0)
    net, ref = course_network(upsampling), ref_course_network(upsampling)
    kw = dict(lr=0.05, momentum=0.9) if optimizer == "SGD" else dict(lr=1e-3)
    losses, ref_losses = train_both(
        net,
        ref,
        lambda p: getattr(impl, optimizer)(p, **kw),
        lambda p: getattr(reference, optimizer)(p, **kw),
        steps=50,
    )
    # float32 over 50 steps: rounding differences compound through the updates; 1e-4 relative
    # is far below any real gradient bug (those change the loss at the 1e-2 level within steps)
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    for name, p in ref.state_dict().items():
        assert torch.allclose(net.state_dict()[name], p, atol=1e-4), name
    assert sum(losses[-10:]) < sum(losses[:10])


@pytest.mark.parametrize("residual", [False, True])
def test_unet_20_steps(residual):
    """The U-Net (max-pooling, concatenation skips, LeakyReLU, nearest upsampling; and the residual
    variant's Add) trains step for step."""
    torch.manual_seed(0)
    net, ref = unet(depth=2, width=8, residual=residual), ref_unet(depth=2, width=8, residual=residual)
    losses, ref_losses = train_both(
        net, ref, lambda p: impl.Adam(p, lr=3e-3), lambda p: reference.Adam(p, lr=3e-3), steps=20, size=16
    )
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    for name, p in ref.state_dict().items():
        assert torch.allclose(net.state_dict()[name], p, atol=1e-4), name
    assert sum(losses[-5:]) < sum(losses[:5])


SHIPPED = {
    "unet(3, 48, residual=True)": lambda models: models.unet(3, 48, residual=True),
    "course_network('nearest', 48)": lambda models: models.course_network("nearest", 48),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_widths_train_step_for_step(name):
    """The shipped networks at their real widths, Adam at the product's peak lr, float64: each
    step's loss and the final weights agree with the torch.nn twin within the rounding bound.

    One pass rounds within tau = tolerance(float64, K) of its largest values, K the largest
    activation (helpers.tolerance). Adam's step lr * m / (sqrt(v) + eps) moves by at most
    lr * tau * G / eps for a gradient error of tau * G (G: the largest gradient), and by at most
    2 * lr where the sign flips; the weights drift by the sum of those bounds over the steps, and
    the loss by tau * L plus the drift times the gradient's L1 norm."""
    torch.manual_seed(0)
    net, ref = SHIPPED[name](impl.models), SHIPPED[name](reference.models)
    ref.load_state_dict(net.state_dict())
    net.double(), ref.double()
    lr, eps, steps, batch, size = 5e-3, 1e-8, 3, 4, 16
    opt, ref_opt = impl.Adam(net.param(), lr=lr, eps=eps), reference.Adam(ref.parameters(), lr=lr, eps=eps)
    loss, ref_loss = impl.MSELoss(), reference.MSELoss()
    tau = tolerance(torch.float64, batch * 2 * 48 * size * size)
    drift = 0.0
    for x, t in noisy_pairs(steps, batch, size):
        x, t = x.double(), t.double()
        opt.zero_grad()
        value = loss(net(x), t).item()
        net.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        out = ref_loss(ref(x), t)
        out.backward()
        ref_opt.step()
        grads = [p.grad for p in ref.parameters()]
        l1, largest = sum(g.abs().sum().item() for g in grads), max(g.abs().max().item() for g in grads)
        assert abs(value - out.item()) <= tau * max(1.0, out.item()) + drift * l1, (value, out.item())
        drift += lr * min(2.0, tau * largest / eps)
    for key, p in ref.state_dict().items():
        err = (net.state_dict()[key] - p).abs().max().item()
        assert err <= drift, f"{key}: weights differ by {err:.2e} > {drift:.2e}"
