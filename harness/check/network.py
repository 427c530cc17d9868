"""Sequential and the course network from the target's blocks: Sequential against torch on a
short chain, then a few SGD steps of the course network, its loss and every parameter after each
step compared with torch's (a step 20x too large shows in the parameters long before the loss)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .composites import FORMS, Composite
from .conclude import Finding
from .diagnose import compare, diagnose
from .matrix import FAIL, NOT_RUN, PASS, Config, Row
from .specs import SPECS

SEQUENTIAL_CHAIN = [
    ("Conv2d", {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}),
    ("ReLU", {}),
    ("Conv2d", {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1}),
    ("Sigmoid", {}),
]
WIDTH = 4
TRAIN_LR = 0.5
STEP_TOLERANCE = 0.05  # of the largest parameter change torch made in that step


TRANSPOSED = ({"kernel_size": 3, "padding": 1, "output_padding": 1}, {"kernel_size": 4, "padding": 1})
"""The transposed convolutions that double a size at stride 2: the first where the block takes
an output_padding, else the second (many students' blocks have none)."""


def course_chain(up: str, transposed: dict[str, int] = TRANSPOSED[0]) -> list[tuple[str, dict[str, Any]]]:
    """The course network at width 4, with nearest upsampling or transposed convolutions."""
    conv = lambda i, o, **kw: ("Conv2d", dict(in_channels=i, out_channels=o, kernel_size=3, **kw))  # noqa: E731

    def upsample(i: int, o: int) -> list[tuple[str, dict[str, Any]]]:
        if up == "Upsampling":
            return [("Upsampling", {"scale_factor": 2}), conv(i, o, padding=1)]
        return [("ConvTranspose2d", dict(in_channels=i, out_channels=o, stride=2, **transposed))]

    chain = [conv(3, WIDTH, stride=2, padding=1), ("ReLU", {}), conv(WIDTH, WIDTH, stride=2, padding=1), ("ReLU", {})]
    return chain + upsample(WIDTH, WIDTH) + [("ReLU", {})] + upsample(WIDTH, 3) + [("Sigmoid", {})]


class NetworkChecks(Composite):
    def _layers(self, chain: list, gen: torch.Generator, x: Tensor, scale: float = 1.0) -> tuple[list, list, list]:
        """Requests for the target's blocks, torch's leaves and the uses (block, configuration)."""
        blocks, layers, uses = [], [], []
        size, channels = tuple(x.shape[-2:]), x.shape[1]
        for name, kw in chain:
            spec = SPECS[name]
            c = {**spec.base, **kw, "batch": x.shape[0], "size": size}
            c = self._state(name).adjust({**c, "channels": channels} if "channels" in spec.base else c)
            channels = c.get("out_channels", channels)
            params = {k: v * scale for k, v in spec.params(c, gen, self.dtype).items()}
            request = {"block": name, "kwargs": spec.kwargs(c), "defaults": spec.defaults, "params": params}
            blocks.append({**request, "layout": self._state(name).layout})
            layers.append((spec, c, {k: v.clone().requires_grad_(True) for k, v in params.items()}))
            uses.append((name, c))
            size = tuple(spec.torch_fn(c, params, torch.zeros(1, _channels(c), *size, dtype=self.dtype)).shape[-2:])
        return blocks, layers, uses

    def check_sequential(self) -> None:
        gen = torch.Generator().manual_seed(self.seed + 11)
        x = torch.randn(2, 2, 6, 7, generator=gen, dtype=self.dtype)
        blocks, layers, uses = self._layers(SEQUENTIAL_CHAIN, gen, x)
        c: Config = {"batch": 2, "size": (6, 7), "chain": " -> ".join(b for b, _ in SEQUENTIAL_CHAIN)}
        self._param_list(c, self.child.ask({"op": "sequential_params", "blocks": blocks, "dtype": self.dtype}))
        if self._blocked("Sequential", "composition", uses):
            return
        xr = x.clone().requires_grad_(True)
        out = xr
        for spec, lc, p in layers:
            out = spec.torch_fn(lc, p, out)
        g = torch.randn(out.shape, generator=gen, dtype=self.dtype)
        out.backward(g)
        reply = self.child.ask({"op": "sequential", "blocks": blocks, "input": x, "grad": g, "dtype": self.dtype})
        self.notes.update(reply.get("notes", []))
        if "output" not in reply:
            self._abnormal("Sequential", "composition", "composition", c, reply)
            return
        checks = [("output", reply["output"], out.detach()), ("input gradient", reply["input_grad"], xr.grad)]
        for i, (_, _, p) in enumerate(layers):
            checks += [(f"gradient of {i}.{k}", reply["grads"][i].get(k), _grad(v)) for k, v in p.items()]
        reinit = any(
            not torch.equal(reply["params"][i].get(k, v), v.detach())
            for i, (_, _, p) in enumerate(layers)
            for k, v in p.items()
        )
        self._composite_result(
            "Sequential", "composition", c, checks, "re-initialises its children's weights" if reinit else None
        )

    def _param_list(self, c: Config, reply: dict[str, Any]) -> None:
        """Sequential's parameter method, what the course's optimizer is built from: it must answer,
        and the same list each time it is asked."""
        counts, e = reply.get("param_counts", []), reply.get("param_error")
        if e is not None:
            message, label, where = f"param() raised {e['type']}: {e['message']}", "error", e["where"]
        elif len(counts) == 2 and counts[0] != counts[1]:
            message = f"param() lists {counts[0]:g} entries, then {counts[1]:g} asked again"
            label, where = "param() grows", ""
        else:
            return
        self.matrix.add(Row("Sequential", "contract", "contract", c, FAIL, message=message, diagnosis=label))
        # (whether the course network's training reads it depends on how its optimizer is built: unsaid)
        self.add(Finding("Sequential", "contract", _describe(c), message, label, "any", where=where))

    def _composite_result(self, block: str, column: str, c: Config, checks: list, label: str | None) -> None:
        for what, actual, expected in checks:
            problem = compare(actual, expected, 200)
            if problem:
                label = label or diagnose(actual, expected, c, what, {})
                self.matrix.add(Row(block, column, column, c, FAIL, message=f"{what}: {problem}"))
                # the course network's training never reads the input gradient of its whole model
                course = not (what == "input gradient" and actual is None)
                message = f"{what}: {problem}"
                self.add(Finding(block, "composition", _describe(c), message, label, "any", course=course))
                return
        self.matrix.add(Row(block, column, column, c, PASS))

    def check_training(self) -> None:
        up = next((b for b in ("Upsampling", "ConvTranspose2d") if b in self.blocks), None)
        c: Config = {"batch": 2, "size": (8, 8), "steps": 3, "width": WIDTH, "upsampling": up}
        gen = torch.Generator().manual_seed(self.seed + 13)
        batches = [tuple(torch.rand(2, 3, 8, 8, generator=gen, dtype=self.dtype) for _ in range(2)) for _ in range(3)]
        takes_output_padding = any(
            r.config.get("output_padding") and r.outcome in (PASS, FAIL) for r in self.matrix.of("ConvTranspose2d")
        )
        transposed = TRANSPOSED[0] if takes_output_padding or up != "ConvTranspose2d" else TRANSPOSED[1]
        chain = course_chain(up or "Upsampling", transposed)
        blocks, layers, uses = self._layers(chain, gen, batches[0][0], 0.3)
        blame = self._blame([(b, c) for b in ("MSE", "Sequential", "SGD")] + uses)
        expected_losses, expected_params = _torch_training(layers, batches)
        request = {"op": "train", "blocks": blocks, "batches": batches, "lr": TRAIN_LR, "dtype": self.dtype}
        if self.form is None and "Conv2d" in self.blocks:
            self.probe_form()
        forms = [self.form] if self.form is not None else list(range(FORMS))
        reply = self.child.ask({**request, "forms": forms, "order": self.order})
        self.notes.update(reply.get("notes", []))
        trained = "losses" in reply
        problem = trained and _training_problem(reply, expected_losses, expected_params, [p for _, _, p in layers])
        if blame and (problem or not trained):  # explained by a block already found wrong where it is used
            self.matrix.add(Row("course network", "training", "training", c, NOT_RUN, message=f"blocked: {blame[0]}"))
            self.notes.add(f"course network: training not checked, since {blame[0]}")
            return
        if not trained:
            self._abnormal("course network", "training", "composition", c, reply)
            return
        outcome = FAIL if problem else PASS
        self.matrix.add(Row("course network", "training", "composition", c, outcome, message=problem or ""))
        if problem:
            self.add(Finding("course network", "composition", _describe(c), problem, None, "any", course=True))


def _torch_training(layers: list, batches: list) -> tuple[list[float], list[list[dict[str, Tensor]]]]:
    opt = torch.optim.SGD([t for _, _, p in layers for t in p.values()], lr=TRAIN_LR)
    losses, params = [], []
    for x, y in batches:
        opt.zero_grad()
        out = x
        for spec, c, p in layers:
            out = spec.torch_fn(c, p, out)
        loss = torch.nn.functional.mse_loss(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        params.append([{k: v.detach().clone() for k, v in p.items()} for _, _, p in layers])
    return losses, params


def _training_problem(reply: dict[str, Any], losses: list[float], params: list, initial: list) -> str | None:
    """The first step whose loss or parameters are off torch's: NaN, a short list, or a
    parameter further from torch's than a small share of the step torch took."""
    got = reply["losses"]
    if len(got) < len(losses):
        return f"{len(got)} losses recorded for {len(losses)} steps"
    before = [{k: v.detach() for k, v in p.items()} for p in initial]
    for i, (value, want) in enumerate(zip(got, losses)):
        if not math.isfinite(value) or abs(value - want) > 1e-4 * max(1.0, abs(want)):
            return f"loss at step {i + 1} is {value:.6g}, torch's {want:.6g}"
        for j, layer in enumerate(params[i]):
            for k, t in layer.items():
                actual = reply["params"][i][j].get(k) if len(reply.get("params", [])) > i else None
                step = (t - before[j][k]).abs().max().item()
                tol = STEP_TOLERANCE * step + 100 * torch.finfo(t.dtype).eps * max(1.0, t.abs().max().item())
                if actual is not None and actual.shape == t.shape and not bool(actual.isfinite().all()):
                    return f"layer {j} {k} after step {i + 1} holds NaN or inf"
                if actual is None or actual.shape != t.shape or not bool(((actual.to(t.dtype) - t).abs() <= tol).all()):
                    return (
                        f"layer {j} {k} after step {i + 1} is off torch's by more than {STEP_TOLERANCE:g} of the step"
                    )
        before = params[i]
    return None


def _channels(c: Config) -> int:
    return int(c.get("in_channels") or c.get("channels") or 3)


def _grad(t: Tensor) -> Tensor:
    return t.grad if t.grad is not None else torch.zeros_like(t)


def _describe(c: Config) -> str:
    head = f"batch {c['batch']}, image {c['size'][0]}x{c['size'][1]}"
    rest = ", ".join(f"{k}={v}" for k, v in c.items() if k not in ("batch", "size"))
    return f"{head}, {rest}"
