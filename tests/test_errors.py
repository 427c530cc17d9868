"""Bad arguments and bad inputs: a clear error naming what was wrong, torch's class where torch has one."""

import pytest
import torch

import impl
import reference

BAD_CONV_ARGS = [
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(kernel_size=-1), ValueError, "kernel_size"),
    (dict(kernel_size=(3,)), TypeError, "kernel_size"),
    (dict(kernel_size=3, stride=0), ValueError, "stride"),
    (dict(kernel_size=3, padding=-1), ValueError, "padding"),
    (dict(kernel_size=3, dilation=0), ValueError, "dilation"),
    (dict(kernel_size=3, groups=3), ValueError, "divisible by groups"),
    (dict(kernel_size=3, groups=0), ValueError, "groups"),
    (dict(kernel_size=3, padding="same", stride=2), ValueError, "strided"),
    (dict(kernel_size=3, padding="full"), ValueError, "padding"),
    (dict(kernel_size=3, padding_mode="mirror"), ValueError, "padding_mode"),
    (dict(kernel_size=True), TypeError, "kernel_size"),
]


@pytest.mark.parametrize("kw,exc,match", BAD_CONV_ARGS)
def test_conv2d_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        impl.Conv2d(4, 4, **kw)


def test_out_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="out_channels must be divisible by groups, got 3 and 2"):
        impl.Conv2d(4, 3, 3, groups=2)


@pytest.mark.parametrize("channels", [(0, 4), (4, -1), (2.5, 4)])
def test_conv_bad_channels(channels):
    with pytest.raises(ValueError, match="channels"):
        impl.Conv2d(*channels, 3)


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(output_padding=2, stride=2), RuntimeError, "output_padding must be smaller"),
        (dict(output_padding=1), RuntimeError, "output_padding must be smaller"),
        (dict(groups=3), ValueError, "divisible by groups"),
        (dict(padding_mode="reflect"), ValueError, "zeros"),
    ],
)
def test_conv_transpose2d_bad_arguments_like_torch(kw, exc, match):
    with pytest.raises(exc, match=match):
        impl.ConvTranspose2d(4, 4, 3, **kw)
    with pytest.raises(exc):  # torch raises the same class (some only at forward)
        reference.ConvTranspose2d(4, 4, 3, **kw)(torch.randn(1, 4, 5, 5))


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(size=4, scale_factor=2), ValueError, "only one of size or scale_factor"),
        (dict(), ValueError, "either size or scale_factor"),
        (dict(scale_factor=2, mode="bilinear-ish"), NotImplementedError, "mode"),
    ],
)
def test_upsampling_bad_arguments_like_torch(kw, exc, match):
    with pytest.raises(exc, match=match):
        impl.Upsampling(**kw)
    with pytest.raises(exc):  # torch raises the same class, at forward
        reference.Upsampling(**kw)(torch.randn(1, 1, 4, 4))


@pytest.mark.parametrize(
    "kw,exc",
    [
        (dict(scale_factor=0), ValueError),
        (dict(scale_factor=-1.5), ValueError),
        (dict(scale_factor=(1, 2, 3)), TypeError),
        (dict(scale_factor="2"), TypeError),
        (dict(size=0), ValueError),
    ],
)
def test_upsampling_bad_sizes(kw, exc):
    with pytest.raises(exc):
        impl.Upsampling(**kw)


def test_upsampling_to_nothing():
    with pytest.raises(RuntimeError, match="greater than 0"):
        impl.Upsampling(scale_factor=0.1)(torch.randn(1, 1, 4, 4))


@pytest.mark.parametrize(
    "make",
    [
        lambda: impl.SGD(impl.Conv2d(1, 1, 1).param(), lr=-0.1),
        lambda: impl.Adam(impl.Conv2d(1, 1, 1).param(), lr=-1),
    ],
)
def test_negative_learning_rate(make):
    with pytest.raises(ValueError, match="Invalid learning rate: lr=-.*expected a finite number >= 0"):
        make()


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(momentum=-1), "momentum"),
        (dict(weight_decay=-1), "weight_decay"),
        (dict(nesterov=True), "Nesterov"),
        (dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov"),
    ],
)
def test_sgd_bad_hyper_parameters_like_torch(kw, match):
    conv = impl.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match=match):
        impl.SGD(conv.param(), lr=0.1, **kw)
    with pytest.raises(ValueError):
        reference.SGD(reference.Conv2d(1, 1, 1).parameters(), lr=0.1, **kw)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(betas=(1.0, 0.9)), "beta parameter at index 0"),
        (dict(betas=(0.9, -0.1)), "index 1"),
        (dict(eps=-1), "epsilon"),
        (dict(weight_decay=-1), "weight_decay"),
    ],
)
def test_adam_bad_hyper_parameters_like_torch(kw, match):
    with pytest.raises(ValueError, match=match):
        impl.Adam(impl.Conv2d(1, 1, 1).param(), **kw)
    with pytest.raises(ValueError):
        reference.Adam(reference.Conv2d(1, 1, 1).parameters(), **kw)


def test_optimizer_bad_params():
    with pytest.raises(ValueError, match="empty"):
        impl.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="pair"):
        impl.SGD([torch.zeros(1)], lr=0.1)
    with pytest.raises(ValueError, match="gradient shape"):
        impl.SGD([(torch.zeros(2), torch.zeros(3))], lr=0.1)


def test_failed_step_leaves_parameters_unchanged():
    a, b = torch.ones(2), torch.ones(2)
    ga, gb = torch.ones(2), torch.ones(2)
    opt = impl.SGD([(a, ga), (b, gb)], lr=0.1)
    opt.params[1] = (b, torch.ones(2, dtype=torch.float64))  # corrupted after construction
    with pytest.raises(ValueError, match=r"params\[1\]"):
        opt.step()
    assert torch.equal(a, torch.ones(2))


BAD_INPUTS = [
    (torch.randn(4, 5, 5), "expected input with 3 channels"),
    (torch.randn(5, 5), "3D \\(C, H, W\\) or 4D"),
    (torch.randn(1, 1, 3, 5, 5), "3D \\(C, H, W\\) or 4D"),
    (torch.zeros(1, 3, 5, 5, dtype=torch.uint8), "floating-point.*uint8"),
    (torch.zeros(1, 3, 5, 5, dtype=torch.int64), "floating-point.*int64"),
    (torch.zeros(1, 3, 5, 5, dtype=torch.bool), "floating-point.*bool"),
    (torch.zeros(1, 3, 5, 5, dtype=torch.float64), "float64.*parameters are torch.float32"),
    (torch.randn(1, 3, 1, 1), "smaller than the dilated kernel"),
]


@pytest.mark.parametrize("layer", ["Conv2d", "ConvTranspose2d"])
@pytest.mark.parametrize("x,match", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_names_layer_expected_and_received(layer, x, match):
    if layer == "ConvTranspose2d" and "dilated kernel" in match:
        x, match = torch.randn(1, 3, 1, 1), "empty output"
        kw = dict(padding=2)
    else:
        kw = {}
    mod = getattr(impl, layer)(3, 4, 3, **kw)
    with pytest.raises(RuntimeError, match=f"{layer}: .*{match}"):
        mod(x)
    with pytest.raises(RuntimeError):  # torch agrees it is an error, with the same class
        getattr(reference, layer)(3, 4, 3, **kw)(x)


def test_not_a_tensor():
    for mod in (impl.Conv2d(3, 4, 3), impl.ReLU(), impl.Upsampling(scale_factor=2)):
        with pytest.raises(TypeError, match="must be a torch.Tensor"):
            mod([[1.0]])


@pytest.mark.parametrize("mode,padding,size", [("reflect", 3, 3), ("circular", 4, 3)])
def test_padding_too_large_for_mode(mode, padding, size):
    x = torch.randn(1, 1, size, size)
    with pytest.raises(RuntimeError, match=f"padding_mode='{mode}'"):
        impl.Conv2d(1, 1, 1, padding=padding, padding_mode=mode)(x)
    with pytest.raises(RuntimeError):
        reference.Conv2d(1, 1, 1, padding=padding, padding_mode=mode)(x)


@pytest.mark.parametrize(
    "mod,x",
    [
        (impl.Conv2d(3, 4, 3), torch.randn(2, 3, 6, 6)),
        (impl.ConvTranspose2d(3, 4, 3), torch.randn(3, 6, 6)),
        (impl.Upsampling(scale_factor=2), torch.randn(2, 3, 6, 6)),
        (impl.ReLU(), torch.randn(2, 3)),
    ],
)
def test_backward_with_wrong_grad_shape(mod, x):
    mod(x)
    with pytest.raises(RuntimeError, match="grad_output"):
        mod.backward(torch.randn(1, 2, 3))


def test_mse_errors():
    loss = impl.MSELoss()
    with pytest.raises(ValueError, match="reduction"):
        impl.MSELoss("average")
    with pytest.raises(RuntimeError, match=r"same shape, got \(2, 3\) and \(3, 2\)"):
        loss(torch.randn(2, 3), torch.randn(3, 2))
    with pytest.raises(TypeError, match="target must be a floating-point"):
        loss(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.uint8))
    loss(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="grad_output must have shape"):
        loss.backward(torch.ones(2, 3))
    none = impl.MSELoss("none")
    none(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="needs grad_output"):
        none.backward()


def test_other_argument_errors():
    with pytest.raises(TypeError, match="negative_slope"):
        impl.LeakyReLU("0.1")
    with pytest.raises(TypeError, match="argument 1 must be a Module"):
        impl.Sequential(impl.ReLU(), "relu")
    with pytest.raises(ValueError, match="upsampling"):
        __import__("impl.models").models.course_network("bilinear")
    with pytest.raises(ValueError, match="upsampling"):
        __import__("reference.models").models.course_network("bilinear")


def test_base_module_is_abstract():
    with pytest.raises(NotImplementedError):
        impl.Module()(torch.zeros(1))
    with pytest.raises(NotImplementedError):
        impl.Module().backward(torch.zeros(1))


def test_failed_forward_leaves_module_unchanged():
    conv = impl.Conv2d(3, 4, 3)
    x, g = torch.randn(1, 3, 5, 5), torch.randn(1, 4, 3, 3)
    conv(x)
    state = {k: v.clone() for k, v in conv.state_dict().items()}
    with pytest.raises(RuntimeError):
        conv(torch.randn(1, 2, 5, 5))
    gx = conv.backward(g)  # still the backward of the last good forward
    assert gx.shape == x.shape
    assert all(torch.equal(v, state[k]) for k, v in conv.state_dict().items())


def test_concat_and_unet_arguments():
    with pytest.raises(ValueError, match="at least one branch"):
        impl.Concat()
    with pytest.raises(TypeError, match="branch 1 must be a Module"):
        impl.Concat(impl.ReLU(), "relu")
    for models in (__import__("impl.models").models, __import__("reference.models").models):
        with pytest.raises(ValueError, match="depth >= 0 and width >= 1, got depth=-1"):
            models.unet(depth=-1)


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity"])
def test_elementwise_errors_name_the_layer(name):
    mod = getattr(impl, name)()
    if name != "Identity":
        with pytest.raises(TypeError, match=f"^{name}: input must be a floating-point tensor, got dtype torch.int64"):
            mod(torch.zeros(3, dtype=torch.int64))
    mod(torch.zeros(2, 3))
    if name != "Identity":
        with pytest.raises(
            RuntimeError, match=rf"^{name}.backward: grad_output must have the output's shape \(2, 3\), got \(3,\)"
        ):
            mod.backward(torch.zeros(3))
