"""The EE-559 rule, enforced on the source: impl/ uses only the allowed torch names.

Allowed from torch: empty, cat, arange (creation), Tensor, dtypes, device, get_default_dtype and
Size (typing and conversion); from torch.nn.functional: fold, unfold. Any Tensor method is fine.
The application layer (impl/app/, if present) may use other libraries but never torch.nn,
torch.autograd or torch.optim.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED_TORCH = {
    "empty",
    "cat",
    "arange",
    "Tensor",
    "device",
    "dtype",
    "Size",
    "get_default_dtype",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int64",
    "bool",
    "uint8",
}
ALLOWED_FUNCTIONAL = {"fold", "unfold"}
FORBIDDEN_APP = ("torch.nn", "torch.autograd", "torch.optim")


def violations(source: str, app: bool) -> list[str]:
    """Every torch import or ``torch.<name>`` use outside the allowed set, with its line."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bad = alias.name.startswith(FORBIDDEN_APP) if app else alias.name.startswith("torch.")
                if bad:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
            names = {a.name for a in node.names}
            if app:
                bad = node.module.startswith(FORBIDDEN_APP) or (
                    node.module == "torch" and names & {"nn", "autograd", "optim"}
                )
            elif node.module == "torch":
                bad = not names <= ALLOWED_TORCH
            else:
                bad = not (node.module == "torch.nn.functional" and names <= ALLOWED_FUNCTIONAL)
            if bad:
                found.append(f"line {node.lineno}: from {node.module} import {sorted(names)}")
        elif (
            not app
            and isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "torch"
        ):
            if node.attr not in ALLOWED_TORCH:
                found.append(f"line {node.lineno}: torch.{node.attr}")
        elif app and isinstance(node, ast.Attribute) and ast.unparse(node).startswith(FORBIDDEN_APP):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def impl_files(app: bool):
    return [
        p for p in sorted((ROOT / "impl").rglob("*.py")) if ("app" in p.relative_to(ROOT / "impl").parts[:-1]) == app
    ]


@pytest.mark.parametrize("path", impl_files(app=False), ids=lambda p: str(p.relative_to(ROOT)))
def test_blocks_use_only_allowed_torch(path):
    assert violations(path.read_text(), app=False) == []


@pytest.mark.parametrize("path", impl_files(app=True) or [None], ids=str)
def test_application_layer_never_uses_torch_nn_autograd_optim(path):
    if path is not None:
        assert violations(path.read_text(), app=True) == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch.nn",
        "from torch import nn",
        "from torch.nn import Conv2d",
        "from torch.nn.functional import conv2d",
        "import torch\ny = torch.zeros(3)",
        "import torch\ntorch.nn.functional.relu(x)",
        "from torch.autograd import grad",
        "from torch import zeros",
        "import torch.nn.functional as F",
    ],
)
def test_rule_catches_forbidden_uses(source):
    assert violations(source, app=False)


@pytest.mark.parametrize(
    "source",
    ["import torch.optim", "from torch import nn", "x = torch.nn.MSELoss()", "from torch.autograd import Function"],
)
def test_app_rule_catches_forbidden_uses(source):
    assert violations(source, app=True)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nx = torch.empty(3).uniform_()",
        "from torch.nn.functional import fold, unfold",
        "from torch import Tensor",
        "import torch\nx.to(torch.float64)",
    ],
)
def test_rule_allows_the_allowed(source):
    assert violations(source, app=False) == []
