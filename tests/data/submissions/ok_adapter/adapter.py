"""n2n check adapter for this submission: parameters live in block.tensors /
block.grads ({"W": ..., "b": ...}); constructors use their own argument names."""

NAMES = {"weight": "W", "bias": "b"}
CONV_KW = {
    "in_channels": "c_in",
    "out_channels": "c_out",
    "kernel_size": "k",
    "stride": "stride",
    "padding": "pad",
    "dilation": "dil",
    "output_padding": "out_pad",
    "bias": "use_bias",
}


def build(name, kwargs, namespace):
    cls = namespace[name]
    if name == "Sequential":
        return cls(*kwargs.get("modules", ()))
    if name in ("Conv2d", "TransposeConv2d", "ConvTranspose2d"):
        kwargs = {CONV_KW[k]: v for k, v in kwargs.items()}
    return cls(**kwargs)


def _leaves(block):
    return block.layers() if hasattr(block, "layers") else [block]


def _named(block, store):
    leaves = _leaves(block)
    seq = hasattr(block, "layers")
    out = {}
    for i, l in enumerate(leaves):
        d = getattr(l, store)
        for tn, n in NAMES.items():
            if n in d:
                out[f"{i}.{tn}" if seq else tn] = d[n]
    return out


def get_params(block):
    return _named(block, "tensors")


def get_grads(block):
    return _named(block, "grads")


def set_params(block, values):
    cur = get_params(block)
    for k, v in values.items():
        cur[k].copy_(v)


def zero_grad(block):
    for g in get_grads(block).values():
        g.zero_()


def forward(block, *inputs):
    return block.forward(*inputs)


def backward(block, grad):
    return block.backward() if grad is None else block.backward(grad)


def make_optimizer(name, blocks, kwargs, namespace):
    if name not in namespace:
        raise NotImplementedError(name)
    return namespace[name](blocks, **kwargs)


def step(optimizer):
    optimizer.step()
