"""``n2n check TARGET --repro DIR``: one standalone Python file per layer finding, needing torch
only. It holds the finding's smallest configuration with its weights, input and upstream
gradient written out, torch's answer, and the target's block driven exactly as the checker drove
it (the constructor call, where each parameter and gradient lives, the layout, backward's form),
then prints the largest error, where it is and the tolerance; exit 1 while the bug is there, 0
once it is fixed. ``python FILE OTHER_ROOT`` points it at another copy of the submission."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from impl.app.checkpoint import atomic_write

from ..parity import tolerance
from .conclude import Finding
from .engine import LAYER_QUANTITIES, layer_data
from .specs import SPECS

# torch's forward for each block kind, written as the reproducer computes it
TORCH_CALLS = {
    "Conv2d": "F.conv2d(xr, p['weight'], p.get('bias'), {stride}, {padding}, {dilation})",
    "ConvTranspose2d": "F.conv_transpose2d(xr, p['weight'], p.get('bias'), {stride}, {padding}, {output_padding}, 1, "
    "{dilation})",
    "Upsampling": "F.interpolate(xr, scale_factor={scale_factor}, mode='nearest')",
    "MaxPool2d": "F.max_pool2d(xr, {kernel_size}, {stride}, {padding})",
    "ReLU": "F.relu(xr)",
    "LeakyReLU": "F.leaky_relu(xr, {negative_slope})",
    "Sigmoid": "torch.sigmoid(xr)",
    "Tanh": "torch.tanh(xr)",
}
DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "output_padding": 0, "negative_slope": 0.01}


def _tensor(t: Tensor) -> str:
    return f"torch.tensor({t.tolist()!r}, dtype=torch.{str(t.dtype).removeprefix('torch.')})"


def _to_target(layout: str, stored: list[int]) -> str:
    if layout == "flat":
        return f".reshape({tuple(stored)})"
    return (".transpose(0, 1)" if "transposed" in layout else "") + (".flip(-1, -2)" if "flipped" in layout else "")


def _to_torch(layout: str, shape: tuple[int, ...]) -> str:
    if layout == "flat":
        return f".reshape({shape})"
    return _to_target(layout, [])


def _drive(finding: Finding, recipe: dict[str, Any], params: dict[str, Tensor]) -> list[str]:
    """The lines that build the target's block and run it, as the checker did."""
    lines = [f"own_package({recipe['module'].split('.')[0]!r})", f"from {recipe['module']} import {recipe['class']}"]
    lines.append(f"block = {recipe['call']}")
    lines += [
        f"zero(lambda: {w['grad']})  # the checker zeroes gradient buffers first"
        for w in recipe["params"].values()
        if w["grad"]
    ]
    for name, where in recipe["params"].items():
        if name in params and where["value"]:
            layout = recipe["layout"] if name == "weight" else "torch"
            lines.append(f"{where['value']}.data = {name}{_to_target(layout, where['stored'])}.clone()")
    lines.append("output = block.forward(x.clone())")
    call = "block.backward(x, grad_output.clone())" if recipe["stateless"] else "block.backward(grad_output.clone())"
    lines += [f"grad_input = input_gradient({call}, x)", "actual = {'output': output, 'input gradient': grad_input}"]
    for name, where in recipe["params"].items():
        if where["grad"]:
            layout = recipe["layout"] if name == "weight" else "torch"
            lines.append(
                f"actual['gradient of {name}'] = {where['grad']}{_to_torch(layout, tuple(params[name].shape))}"
            )
    return lines


TEMPLATE = '''"""Reproducer of an n2n check finding (written by n2n check --repro):
{line}

Run: python {name} [TARGET_ROOT]   exit 1 while the bug is there, 0 once it is fixed.
Needs torch only. Below: the inputs, torch's answer, then the block driven as n2n check drove it."""

import importlib.machinery
import importlib.util
import sys

import torch
import torch.nn.functional as F

ROOT = sys.argv[1] if len(sys.argv) > 1 else {root!r}
sys.path.insert(0, ROOT)


def own_package(name):
    """ROOT's package first: a folder without __init__.py loses to any installed package of the
    same name (n2n itself ships a Miniproject_2)."""
    spec = importlib.machinery.PathFinder.find_spec(name, [ROOT])
    if spec is not None:
        sys.modules[name] = importlib.util.module_from_spec(spec)
        if spec.loader is not None:
            spec.loader.exec_module(sys.modules[name])

torch.set_default_dtype(torch.{dtype})  # the target's buffers from torch.empty follow
QUANTITY = {quantity!r}
TOLERANCE = {tolerance!r}


def zero(buffer):
    """Zero a gradient buffer if it exists before the first backward."""
    try:
        buffer().zero_()
    except (AttributeError, IndexError, KeyError, TypeError):
        pass


def input_gradient(returned, x):
    """backward may return the gradient, a 1-tuple, or a tuple holding it (shaped like x)."""
    if isinstance(returned, (tuple, list)):
        return next((t for t in returned if isinstance(t, torch.Tensor) and t.shape == x.shape), None)
    return returned


{inputs}

# torch's answer
xr = x.clone().requires_grad_(True)
p = {{k: v.clone().requires_grad_(True) for k, v in params.items()}}
torch_output = {torch_call}
torch_output.backward(grad_output)
expected = {{"output": torch_output.detach(), "input gradient": xr.grad}}
expected.update({{f"gradient of {{k}}": v.grad for k, v in p.items()}})

# the target's block, driven as the checker drove it
{drive}

a, e = actual.get(QUANTITY), expected[QUANTITY]
if a is None or a.shape != e.shape:
    print(f"{{QUANTITY}}: got {{None if a is None else tuple(a.shape)}}, torch's shape is {{tuple(e.shape)}}")
    sys.exit(1)
error = (a.to(e.dtype) - e).abs().nan_to_num(float("inf"))
worst = torch.unravel_index(error.argmax(), error.shape) if error.numel() else ()
where = tuple(int(i) for i in worst)
largest = error.max().item() if error.numel() else 0.0
target, torchs = (a[where].item(), e[where].item()) if error.numel() else (None, None)
print(f"{{QUANTITY}}: largest error {{largest:.3g}} at index {{where}} (target {{target}}, torch {{torchs}}); "
      f"tolerance {{TOLERANCE:.3g}}")
sys.exit(1 if largest > TOLERANCE else 0)
'''


def _inputs(params: dict[str, Tensor], x: Tensor, g: Tensor) -> str:
    lines = [f"{name} = {_tensor(t)}" for name, t in params.items()]
    lines += [
        f"params = {{{', '.join(f'{n!r}: {n}' for n in params)}}}",
        f"x = {_tensor(x)}",
        f"grad_output = {_tensor(g)}",
    ]
    return "\n".join(lines)


def reproducer(finding: Finding, recipe: dict[str, Any], root: str, name: str) -> str | None:
    """The reproducer's text, or None for a finding it cannot replay (not a layer's number)."""
    if finding.setup is None or finding.quantity not in LAYER_QUANTITIES or finding.block not in TORCH_CALLS:
        return None
    spec, c = SPECS[finding.block], finding.setup["config"]
    dtype = getattr(torch, finding.setup["dtype"])
    params, x, g, ref = layer_data(spec, c, dtype, finding.setup["seed"])
    k = max(ref["output"].numel(), 1) * 9
    scale = max(1.0, ref[finding.quantity].abs().max().item()) if ref[finding.quantity].numel() else 1.0
    arguments = {**DEFAULTS, **c, "stride": c.get("stride", c.get("kernel_size"))}
    torch_call = TORCH_CALLS[finding.block].format(**arguments)
    return TEMPLATE.format(
        line=finding.line(),
        name=name,
        root=root,
        dtype=finding.setup["dtype"],
        quantity=finding.quantity,
        tolerance=tolerance(dtype, k) * scale,
        inputs=_inputs(params, x, g),
        torch_call=torch_call,
        drive="\n".join(_drive(finding, recipe, params)),
    )


def file_name(finding: Finding, n: int) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{finding.block}_{finding.quantity}").strip("_") + f"_{n}.py"


def recipe_request(finding: Finding) -> dict[str, Any]:
    """What the child needs to say how it drives the finding's block."""
    assert finding.setup is not None
    spec, c = SPECS[finding.block], finding.setup["config"]
    params, x, g, _ = layer_data(spec, c, getattr(torch, finding.setup["dtype"]), finding.setup["seed"])
    request = {"op": "recipe", "block": spec.name, "kwargs": spec.kwargs(c), "defaults": spec.defaults}
    return request | {"params": params, "x": x, "grad": g, "layout": finding.setup.get("layout"), "dtype": x.dtype}


def _write(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda f: f.write(data))


def write(findings: list[Finding], ask: Any, root: str, directory: Path) -> list[Path]:
    """A reproducer per layer finding (``ask(request) -> recipe``), written atomically."""
    written = []
    for n, finding in enumerate(findings, 1):
        name = file_name(finding, n)
        replayable = finding.setup is not None and finding.quantity in LAYER_QUANTITIES
        recipe = ask(recipe_request(finding)) if replayable else {}
        if "call" not in recipe:
            continue
        text = reproducer(finding, recipe, root, name)
        if text is not None:
            path = directory / name
            _write(path, text)
            written.append(path)
    return written
