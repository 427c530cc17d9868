"""Details of the contract that the mutation run (tox -e mutation) showed were unchecked:
exact reprs, argument names in messages, defaults, optimizer state exchange."""

import re

import pytest
import torch

import impl
from impl.models import unet


@pytest.mark.parametrize(
    "mod,text",
    [
        (impl.Conv2d(2, 3, 3, dilation=2), "Conv2d(2, 3, kernel_size=(3, 3), dilation=(2, 2))"),
        (impl.ConvTranspose2d(2, 3, 3), "ConvTranspose2d(2, 3, kernel_size=(3, 3))"),
        (
            impl.ConvTranspose2d(2, 3, 3, stride=2, output_padding=(1, 0)),
            "ConvTranspose2d(2, 3, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 0))",
        ),
        (impl.MaxPool2d(2), "MaxPool2d(kernel_size=(2, 2))"),
        (
            impl.MaxPool2d(3, 1, 1, 2, True),
            "MaxPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(2, 2), ceil_mode=True)",
        ),
        (impl.Concat(impl.ReLU(), impl.Identity()), "Concat(ReLU(), Identity())"),
        (impl.Concat(impl.Tanh(), dim=1), "Concat(Tanh(), dim=1)"),
        (impl.Add(impl.ReLU(), impl.Identity()), "Add(ReLU(), Identity())"),
        (impl.Shift(-0.5), "Shift(offset=-0.5)"),
        (impl.Sequential(impl.ReLU(), impl.Sigmoid()), "Sequential(\n  (0): ReLU()\n  (1): Sigmoid()\n)"),
    ],
)
def test_exact_repr(mod, text):
    assert repr(mod) == text


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(kernel_size=0), "kernel_size"),
        (dict(kernel_size=2, stride=0), "stride"),
        (dict(kernel_size=2, padding=-1), "padding"),
        (dict(kernel_size=2, dilation=0), "dilation"),
    ],
)
def test_maxpool_argument_errors_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be >= "):
        impl.MaxPool2d(**kw)


def test_maxpool_one_dimension_too_small():
    with pytest.raises(RuntimeError, match=r"MaxPool2d: input of size \(1, 5\) is too small .* \(output \(0, 1\)\)"):
        impl.MaxPool2d(3)(torch.randn(1, 1, 1, 5))


def test_maxpool_unbatched_backward_error_shows_the_unbatched_shape():
    pool = impl.MaxPool2d(2)
    pool(torch.randn(1, 4, 4))
    with pytest.raises(RuntimeError, match=r"output's shape \(1, 2, 2\), got \(1, 3, 3\)"):
        pool.backward(torch.randn(1, 3, 3))


def test_unet_defaults_and_bounds():
    net = unet()
    pools = []

    def walk(m):
        pools.extend(c for _, c in m.children() if isinstance(c, impl.MaxPool2d))
        for _, c in m.children():
            walk(c)

    walk(net)
    assert len(pools) == 3  # depth 3
    assert net[0][0].out_channels == 48 and net[0][0].in_channels == 3  # width 48, RGB
    assert len(unet(depth=0, width=1)) == 2  # the smallest network is allowed
    with pytest.raises(ValueError, match="width=0"):
        unet(width=0)


def test_abstract_module_messages_name_the_class():
    class Block(impl.Module):
        pass

    with pytest.raises(NotImplementedError, match="^Block does not implement forward$"):
        Block()(torch.zeros(1))
    with pytest.raises(NotImplementedError, match="^Block does not implement backward$"):
        Block().backward(torch.zeros(1))


def test_eval_sets_training_false_everywhere():
    net = impl.Sequential(impl.ReLU())
    assert net.eval().training is False and net[0].training is False
    assert net.train().training is True


def test_load_state_dict_messages_name_the_class_and_the_value():
    conv = impl.Conv2d(1, 1, 1)
    with pytest.raises(RuntimeError, match=r"^Conv2d.load_state_dict: missing keys \['bias'\]"):
        conv.load_state_dict({"weight": torch.zeros(1, 1, 1, 1)})
    with pytest.raises(RuntimeError, match=r"^Conv2d.load_state_dict: 'bias' expects shape \(1,\), got list$"):
        conv.load_state_dict({"weight": torch.zeros(1, 1, 1, 1), "bias": [0.0]})


def test_optimizer_state_dict_lr_copies_and_conversion():
    conv = impl.Conv2d(1, 2, 1)
    opt = impl.Adam(conv.param(), lr=0.05)
    for _, g in conv.param():
        g.fill_(1)
    opt.step()
    state = opt.state_dict()
    assert state["param_groups"][0]["lr"] == 0.05
    state["state"][0]["exp_avg"].fill_(123)  # a copy: the optimizer is untouched
    assert not bool((opt.state[0]["exp_avg"] == 123).any())
    double = impl.Conv2d(1, 2, 1).double()
    other = impl.Adam(double.param())
    other.load_state_dict(state)
    assert other.state[0]["exp_avg"].dtype == torch.float64  # moved to the parameter's dtype
    assert other.state[0]["step"].dtype == torch.float32  # the step stays as torch keeps it
    with pytest.raises(ValueError, match="^Adam.load_state_dict: state has 2 parameters, optimizer has 1$"):
        impl.Adam([(torch.zeros(1), torch.zeros(1))]).load_state_dict(state)


@pytest.mark.parametrize("name", ["Concat", "Add"])
def test_branch_container_messages(name):
    with pytest.raises(ValueError, match=f"^{name} needs at least one branch$"):
        getattr(impl, name)()
    with pytest.raises(TypeError, match=f"^{name}: branch 1 must be a Module, got str$"):
        getattr(impl, name)(impl.ReLU(), "relu")


def test_add_refuses_outputs_of_different_shapes_instead_of_broadcasting():
    add = impl.Add(impl.Identity(), impl.Conv2d(2, 1, 1))
    with pytest.raises(
        RuntimeError, match=r"^Add: the branch outputs must have one shape, got \[\(1, 2, 3, 3\), \(1, 1, 3, 3\)\]$"
    ):
        add(torch.zeros(1, 2, 3, 3))


def test_reflect_padding_limit_on_the_width():
    conv = impl.Conv2d(1, 1, 1, padding=(0, 3), padding_mode="reflect")
    with pytest.raises(RuntimeError, match="padding_mode='reflect' needs padding"):
        conv(torch.randn(1, 1, 8, 3))
    assert conv(torch.randn(1, 1, 8, 4)).shape == (1, 1, 8, 10)


def test_optimizer_defaults_and_param_groups_like_torch():
    conv = impl.Conv2d(1, 1, 1)
    ref = torch.nn.Conv2d(1, 1, 1)
    for name, kw in (
        ("SGD", dict(momentum=0.5, dampening=0.1, weight_decay=0.2, maximize=True)),
        ("Adam", dict(betas=(0.8, 0.9), eps=1e-6, weight_decay=0.3, amsgrad=True, maximize=True)),
    ):
        ours = getattr(impl, name)(conv.param(), **kw)
        theirs = getattr(torch.optim, name)(ref.parameters(), **kw)
        assert ours.lr == 1e-3 == theirs.defaults["lr"]
        group, ref_group = ours.state_dict()["param_groups"][0], theirs.state_dict()["param_groups"][0]
        for key, value in group.items():
            assert ref_group[key] == value, key
    sgd = impl.SGD(conv.param(), nesterov=True, momentum=0.9)
    assert sgd.state_dict()["param_groups"][0]["nesterov"] is True
    nesterov = r"^Nesterov momentum requires a momentum and zero dampening \(nesterov=True, momentum=0, dampening=0\)$"
    with pytest.raises(ValueError, match=nesterov):
        impl.SGD(conv.param(), nesterov=True)


def test_optimizer_boundaries_allowed_like_torch():
    conv = impl.Conv2d(1, 1, 1)
    impl.Adam(conv.param(), betas=(0.0, 0.0), eps=0.0)  # torch accepts these too
    torch.optim.Adam(torch.nn.Conv2d(1, 1, 1).parameters(), betas=(0.0, 0.0), eps=0.0)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_weight_decay_of_one(name):
    p, g = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    q = p.clone().requires_grad_(True)
    getattr(impl, name)([(p, g)], lr=0.1, weight_decay=1.0).step()
    q.grad = torch.zeros(3, dtype=torch.float64)
    getattr(torch.optim, name)([q], lr=0.1, weight_decay=1.0, foreach=False).step()
    assert torch.allclose(p, q.detach())
    assert not torch.equal(p, torch.ones(3, dtype=torch.float64))


def test_adam_step_counter_is_float32_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        opt = impl.Adam([(torch.zeros(2), torch.ones(2))])
        opt.step()
    finally:
        torch.set_default_dtype(previous)
    assert opt.state[0]["step"].dtype == torch.float32


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(kernel_size=(2,)), "kernel_size"),
        (dict(kernel_size=2, stride=(1,)), "stride"),
        (dict(kernel_size=2, padding=(1,)), "padding"),
        (dict(kernel_size=2, dilation=(1,)), "dilation"),
    ],
)
def test_maxpool_malformed_sizes_name_the_argument(kw, name):
    with pytest.raises(TypeError, match=f"^{name} must be an int or a pair of ints"):
        impl.MaxPool2d(**kw)


def test_upsampling_messages_and_fast_path():
    with pytest.raises(ValueError, match="^either size or scale_factor should be defined$"):
        impl.Upsampling()
    with pytest.raises(TypeError, match=r"^size must be an int or a pair of ints, got \(1,\)$"):
        impl.Upsampling(size=(1,))
    with pytest.raises(TypeError, match="^scale_factor must be a number or a pair of numbers, got True$"):
        impl.Upsampling(scale_factor=True)
    with pytest.raises(ValueError, match=r"^scale_factor must be positive and finite, got \(2, inf\)$"):
        impl.Upsampling(scale_factor=(2, float("inf")))
    with pytest.raises(
        RuntimeError, match=r"^Upsampling: input \(4, 4\) and output \(0, 0\) sizes must be greater than 0$"
    ):
        impl.Upsampling(scale_factor=0.1)(torch.zeros(1, 1, 4, 4))
    with pytest.raises(TypeError, match="^Upsampling: input must be a floating-point"):
        impl.Upsampling(scale_factor=2)(torch.zeros(1, 1, 2, 2, dtype=torch.int64))
    # whole-number factors take the repeat path (a view and one copy), others the index gather
    up = impl.Upsampling(scale_factor=(2, 3))
    up(torch.zeros(1, 1, 4, 5))
    assert up._saved[3] == (2, 3)
    up = impl.Upsampling(scale_factor=1.5)
    up(torch.zeros(1, 1, 4, 4))
    assert up._saved[3] == (None, None)


def test_mse_messages():
    loss = impl.MSELoss()
    with pytest.raises(TypeError, match="^MSELoss: input must be a floating-point tensor"):
        loss(torch.zeros(2, dtype=torch.int64), torch.zeros(2))
    with pytest.raises(TypeError, match="^MSELoss: target must be a floating-point tensor"):
        loss(torch.zeros(2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="^MSELoss: input must be a torch.Tensor, got list"):
        loss([0.0], torch.zeros(1))
    none = impl.MSELoss("none")
    none(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(
        RuntimeError, match=r"^MSELoss\(reduction='none'\).backward needs grad_output of the input's shape$"
    ):
        none.backward()
    with pytest.raises(RuntimeError, match=r"^MSELoss.backward: grad_output must have shape \(2, 3\), got \(3,\)$"):
        none.backward(torch.zeros(3))
    loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match=r"^MSELoss.backward: grad_output must have shape \(\), got \(1,\)$"):
        loss.backward(torch.zeros(1))


def test_optimizer_argument_messages_and_zero_lr():
    with pytest.raises(ValueError, match="^optimizer got an empty parameter list$"):
        impl.SGD([])
    with pytest.raises(TypeError, match=r"^params\[0\] must be a \(parameter, gradient\) pair"):
        impl.SGD([[torch.zeros(1), torch.zeros(1)]])
    with pytest.raises(ValueError, match=r"^params\[0\]: gradient shape \(3,\) != parameter shape \(2,\)$"):
        impl.SGD([(torch.zeros(2), torch.zeros(3))])
    p = torch.ones(2)
    impl.SGD([(p, torch.ones(2))], lr=0.0).step()  # torch allows lr=0 too
    assert torch.equal(p, torch.ones(2))


def test_nearest_indices_match_aten_under_a_float64_default_dtype():
    """ATen computes the source index in float32 whatever the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for mode in ("nearest", "nearest-exact"):
            for size in (7, 13, 29, 37):
                x = torch.arange(size, dtype=torch.float32).view(1, 1, 1, size)
                for factor in (0.7, 1 / 3, 2.5, 3.3):
                    ours = impl.Upsampling(scale_factor=(1, factor), mode=mode)(x)
                    theirs = torch.nn.functional.interpolate(x, scale_factor=(1, factor), mode=mode)
                    assert torch.equal(ours, theirs), (mode, size, factor)
    finally:
        torch.set_default_dtype(previous)


def test_conv_transpose_details():
    assert impl.ConvTranspose2d(2, 3, 3, dtype=torch.float64).weight.dtype == torch.float64
    assert impl.Conv2d(2, 3, 3, dtype=torch.float64).bias.dtype == torch.float64
    with pytest.raises(ValueError, match=r"^padding must be >= 0 in every dimension, got \(-1, -1\)$"):
        impl.ConvTranspose2d(2, 3, 3, padding=-1)
    with pytest.raises(TypeError, match="^output_padding must be an int or a pair of ints"):
        impl.ConvTranspose2d(2, 3, 3, output_padding=(1,))
    mod = impl.ConvTranspose2d(2, 3, 3, stride=2)
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: output_size must have 2 or 4 elements, got \(1, 2, 3\)$"):
        mod(torch.zeros(1, 2, 4, 4), output_size=(1, 2, 3))
    with pytest.raises(
        ValueError, match=r"valid sizes range from \(9, 9\) to \(10, 10\) \(for an input of \(4, 4\)\)$"
    ):
        mod(torch.zeros(1, 2, 4, 4), output_size=(20, 20))
    with pytest.raises(
        RuntimeError, match=r"^ConvTranspose2d: input of size \(1, 1\) gives an empty output \(-1, -1\)$"
    ):
        impl.ConvTranspose2d(2, 3, 1, padding=1)(torch.zeros(1, 2, 1, 1))


def test_concat_refuses_branches_of_different_sizes():
    net = unet(depth=2, width=2)
    with pytest.raises(RuntimeError, match=r"^Concat: the branch outputs must match except along dim -3"):
        net(torch.zeros(1, 3, 6, 8))


def test_concat_refuses_a_dim_past_the_outputs_rank():
    """Like torch.cat, dim must lie in [-rank, rank): the message gives the first branch's shape."""
    concat = impl.Concat(impl.Identity(), impl.Conv2d(2, 1, 1), dim=4)
    message = r"^Concat: dim 4 is out of range for branch outputs of shape \(1, 2, 3, 3\)$"
    with pytest.raises(impl.ShapeError, match=message):
        concat(torch.zeros(1, 2, 3, 3))


# --- survivors of the second mutation run ----------------------------------------------------


@pytest.mark.parametrize("name", ["Concat", "Add"])
def test_a_container_of_one_branch_is_that_branch(name):
    x = torch.rand(2, 3, 4, 4)
    one = getattr(impl, name)(impl.Identity())
    assert torch.equal(one(x), x) and torch.equal(one.backward(x), x)


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), "0.5", True, None])
def test_shift_refuses_an_offset_that_is_not_a_finite_number(offset):
    with pytest.raises(TypeError, match=f"^Shift: offset must be a finite number, got {re.escape(repr(offset))}$"):
        impl.Shift(offset)


@pytest.mark.parametrize("block", [impl.Add(impl.Identity()), impl.Shift(1.0)], ids=["Add", "Shift"])
def test_backward_before_forward_is_refused(block):
    with pytest.raises(RuntimeError, match=f"^{type(block).__name__}.backward called before forward$"):
        block.backward(torch.zeros(1))


def test_sequential_names_the_type_it_refused():
    with pytest.raises(TypeError, match=r"Sequential: argument 1 must be a Module, got int"):
        impl.Sequential(impl.ReLU(), 3)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: impl.Conv2d(1, 1, 3, padding=-1), r"^padding\b"),
        (lambda: impl.MaxPool2d(2)(torch.rand(3, 3)), r"^MaxPool2d: "),
        (lambda: impl.MSELoss()(torch.ones(2, dtype=torch.int64), torch.ones(2)), r"MSELoss: input\b"),
    ],
)
def test_messages_start_with_the_exact_name(make, match):
    with pytest.raises((TypeError, ValueError)) as info:
        make()
    assert __import__("re").search(match, str(info.value)), str(info.value)


@pytest.mark.parametrize("mode,reach", [("reflect", -1), ("circular", 0)])
@pytest.mark.parametrize("axis", [0, 1])
def test_padding_modes_reach_as_far_as_torchs(mode, reach, axis):
    """reflect pads at most size - 1, circular at most size, on either axis: at the limit as torch,
    one further refused, as torch refuses it."""
    x, padding = torch.randn(1, 1, 4, 5), [0, 0]
    padding[axis] = x.shape[2 + axis] + reach
    conv = impl.Conv2d(1, 1, 1, padding=tuple(padding), padding_mode=mode)
    ref = torch.nn.Conv2d(1, 1, 1, padding=tuple(padding), padding_mode=mode)
    ref.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x), ref(x).detach())
    padding[axis] += 1
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(1, 1, 1, padding=tuple(padding), padding_mode=mode)(x)
    with pytest.raises(impl.ShapeError, match=f"padding_mode='{mode}' needs padding"):
        impl.Conv2d(1, 1, 1, padding=tuple(padding), padding_mode=mode)(x)


def test_reflect_padding_as_large_as_the_input_is_refused():
    conv = impl.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match="reflect"):
        conv(torch.rand(1, 1, 3, 5))


def test_kernel_larger_than_the_padded_input_by_one_is_refused():
    conv = impl.Conv2d(1, 1, 4, padding=1)  # padded 3 x 3 < kernel 4
    with pytest.raises(impl.ShapeError, match=r"size \(1, 1\) \(padding \(1, 1\)\) is smaller than the dilated kernel"):
        conv(torch.rand(1, 1, 1, 1))
    assert conv(torch.rand(1, 1, 2, 2)).shape == (1, 1, 1, 1)  # padded 4 x 4: exactly one window


def test_backward_messages_name_the_layer_and_shapes():
    conv = impl.Conv2d(1, 2, 3)
    conv(torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"^Conv2d\.backward: grad_output must have the output's shape"):
        conv.backward(torch.rand(2, 2, 2, 2))
    pool = impl.MaxPool2d(2)
    pool(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 1, 2, 2\), got \(2, 1, 3, 3\)"):
        pool.backward(torch.rand(2, 1, 3, 3))


def test_to_forgets_the_saved_forward():
    conv = impl.Conv2d(1, 1, 3)
    conv(torch.rand(1, 1, 4, 4))
    conv.to(dtype=torch.float64)
    with pytest.raises(RuntimeError, match="Conv2d.backward called before forward"):
        conv.backward(torch.rand(1, 1, 2, 2, dtype=torch.float64))


def test_upsampling_index_arithmetic_stays_float32_under_a_float64_default():
    """ATen rounds the scale to float32 whatever the default dtype: nearest-exact 2 -> 41 maps
    output 20 to input 0 ((20 + 0.5) * float32(2 / 41) < 1), not 1 (with the float64 scale)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        x = torch.arange(2.0).view(1, 1, 1, 2)
        out = impl.Upsampling(size=(1, 41), mode="nearest-exact")(x)
        expected = torch.nn.functional.interpolate(x, size=(1, 41), mode="nearest-exact")
    finally:
        torch.set_default_dtype(previous)
    assert torch.equal(out, expected) and out[0, 0, 0, 20] == 0


BAD = "expected a finite number >= 0"


@pytest.mark.parametrize(
    "name,kw,error,message",
    [
        ("SGD", dict(lr=-1), ValueError, f"Invalid learning rate: lr=-1, {BAD}"),
        ("SGD", dict(momentum=-1), ValueError, f"Invalid momentum value: momentum=-1, {BAD}"),
        ("SGD", dict(dampening=float("nan")), ValueError, f"Invalid dampening value: dampening=nan, {BAD}"),
        ("SGD", dict(weight_decay=-2), ValueError, f"Invalid weight_decay value: weight_decay=-2, {BAD}"),
        ("SGD", dict(nesterov="yes"), TypeError, "nesterov must be True or False, got 'yes'"),
        ("SGD", dict(maximize=1), TypeError, "maximize must be True or False, got 1"),
        ("Adam", dict(eps=-1), ValueError, f"Invalid epsilon value: eps=-1, {BAD}"),
        ("Adam", dict(betas=(1.0, 0.9)), ValueError, f"Invalid beta parameter at index 0: betas[0]=1.0, {BAD} and < 1"),
        (
            "Adam",
            dict(betas=(0.9, -0.1)),
            ValueError,
            f"Invalid beta parameter at index 1: betas[1]=-0.1, {BAD} and < 1",
        ),
        ("Adam", dict(betas=(0.9,)), ValueError, "Invalid betas: expected a pair (beta1, beta2), got (0.9,)"),
        ("Adam", dict(weight_decay=-1), ValueError, f"Invalid weight_decay value: weight_decay=-1, {BAD}"),
        ("Adam", dict(amsgrad=None), TypeError, "amsgrad must be True or False, got None"),
        ("Adam", dict(maximize="no"), TypeError, "maximize must be True or False, got 'no'"),
    ],
)
def test_optimizer_option_messages_exactly(name, kw, error, message):
    with pytest.raises(error) as info:
        getattr(impl, name)(impl.Conv2d(1, 1, 1).param(), **kw)
    assert str(info.value) == message
    with pytest.raises(TypeError, match=r"^params must be an iterable of \(parameter, gradient\) pairs .*got 3$"):
        getattr(impl, name)(3)
