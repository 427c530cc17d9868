"""The checks of ``n2n check``: each block against torch over landmark and drawn configurations,
then for each wrong quantity the smallest configuration that still fails, the nearest one that
passes (the feature the bug needs) and a diagnosis; the contract, the loss, the optimizers,
composition and a few training steps of the course network."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..parity import error_and_tolerance
from .child import Child
from .diagnose import compare, diagnose
from .specs import SPECS, Config, Spec, describe
from .steps import losses_problem, params_problem

LAYER_QUANTITIES = ("output", "input gradient", "gradient of weight", "gradient of bias")
COLUMNS = ("forward", "backward", "parameters", "contract")
COLUMN_OF = {"output": "forward", "input gradient": "backward", "gradient of weight": "parameters"}
COLUMN_OF |= {"gradient of bias": "parameters", "contract": "contract"}


@dataclass
class Finding:
    block: str
    quantity: str
    config: str
    message: str
    diagnosis: str | None = None
    feature: str | None = None
    passes_at: str | None = None
    error: float | None = None
    tolerance: float | None = None
    where: str = ""

    def line(self) -> str:
        parts = [f"{self.block}: {self.quantity} wrong" if self.error is not None else f"{self.block}: {self.quantity}"]
        parts.append(f"at {self.config}")
        if self.error is not None:
            parts.append(f"max error {self.error:.3g} > tolerance {self.tolerance:.3g}")
        else:
            parts.append(self.message)
        if self.passes_at:
            parts.append(f"passes at {self.passes_at}")
        if self.diagnosis:
            parts.append(f"diagnosis: {self.diagnosis}")
        if self.where:
            parts.append(f"({self.where})")
        return "; ".join(parts)


@dataclass
class Report:
    target: str
    dtype: str = "float64"
    table: dict[str, dict[str, str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)
    prints: str = ""
    isolation: str = ""  # how the target's code was kept apart (harness.check.isolation)

    def mark(self, block: str, column: str, status: str) -> None:
        row = self.table.setdefault(block, {})
        order = ["pass", "unsupported", "blocked", "FAIL", "error", "crash", "timeout"]
        if order.index(status) >= order.index(row.get(column, "pass")):
            row[column] = status

    @property
    def ok(self) -> bool:
        return not self.findings

    def wrong_blocks(self, names: list[str], kinds: tuple[str, ...] | None = None) -> list[str]:
        """Which of ``names`` have findings (of the given diagnoses only, when ``kinds`` is set)."""
        return [
            n for n in names if any(f.block == n and (kinds is None or f.diagnosis in kinds) for f in self.findings)
        ]

    def blocked(self, block: str, column: str, uses: list[str], kinds: tuple[str, ...] | None = None) -> bool:
        """Mark a composite check as not run when a block it uses is already wrong."""
        wrong = self.wrong_blocks(uses, kinds)
        if wrong:
            self.mark(block, column, "blocked")
            self.notes.add(f"{block}: {column} not checked, since {', '.join(wrong)} already failed")
        return bool(wrong)


class Checker:
    """Runs every check of every block the target has, through one child process."""

    def __init__(self, child: Child, blocks: list[str], seed: int, quick: bool) -> None:
        self.child, self.blocks, self.seed, self.quick = child, blocks, seed, quick
        self.dtype = torch.float64
        self.report = Report(target="")

    # one configuration ---------------------------------------------------------------------
    def _data(self, spec: Spec, c: Config, salt: int = 0) -> tuple[dict[str, Tensor], Tensor, Tensor, dict]:
        gen = torch.Generator().manual_seed(self.seed * 1000003 + zlib.crc32(describe(c).encode()) + salt)
        params = spec.params(c, gen, self.dtype)
        x = spec.input(c, gen, self.dtype)
        ref = spec.reference(c, params, x, None)
        g = torch.randn(ref["output"].shape, generator=gen, dtype=self.dtype)
        return params, x, g, spec.reference(c, params, x, g)

    def run(
        self, spec: Spec, c: Config, twice: bool = False, salt: int = 0
    ) -> tuple[dict[str, Any], dict[str, Tensor], Any]:
        params, x, g, ref = self._data(spec, c, salt)
        request = {"op": "layer", "block": spec.name, "kwargs": spec.kwargs(c), "defaults": spec.defaults}
        reply = self.child.ask({**request, "params": params, "input": x, "grad": g, "twice": twice})
        return reply, ref, (params, x, g)

    def wrong(self, spec: Spec, c: Config, reply: dict[str, Any], ref: dict[str, Tensor]) -> dict[str, str]:
        """{quantity: what is wrong} for one reply."""
        found = {}
        k = max(ref["output"].numel(), 1) * 9
        for q in LAYER_QUANTITIES:
            if q not in ref:
                continue
            if q != "output" and "backward_error" in reply:
                found[q] = "backward raised"
                continue
            actual = reply.get("output") if q == "output" else reply.get("input_grad")
            if q.startswith("gradient of "):
                actual = reply.get("grads", {}).get(q.removeprefix("gradient of "))
            problem = compare(actual, ref[q], k)
            if problem:
                found[q] = problem
        return found

    def fails(self, spec: Spec, c: Config, quantity: str, salt: int = 0) -> bool:
        reply, ref, _ = self.run(spec, c, salt=salt)
        if "output" not in reply:
            return "error" in reply or "invalid" in reply  # a failure too (not a refusal, not a crash)
        return quantity in self.wrong(spec, c, reply, ref)

    # a block ---------------------------------------------------------------------------------
    def choose_dtype(self, spec: Spec) -> bool:
        """float64 when the block keeps it in every result, else float32 (scaled tolerances).
        False when the block hangs or kills its process (reported; its checks are skipped)."""
        self.dtype = torch.float64
        reply, _, _ = self.run(spec, spec.base)
        if "timeout" in reply or "crash" in reply or "invalid" in reply:
            return not self._abnormal(spec.name, spec.base, reply)
        results = [reply.get("output"), reply.get("input_grad"), *reply.get("grads", {}).values()]
        broken = "error" in reply or "backward_error" in reply
        if broken or any(isinstance(t, Tensor) and t.dtype != torch.float64 for t in results):
            self.dtype = torch.float32
            self.report.notes.add(f"{spec.name}: does not compute in float64: compared in float32")
        return True

    def check_layer(self, name: str) -> None:
        spec = SPECS[name]
        if not self.choose_dtype(spec):
            return
        failing: dict[str, Config] = {}
        raised: Config | None = None  # a wrong number says more than an exception: kept apart
        for c in spec.configs(2 if self.quick else 12, self.seed):
            reply, ref, _ = self.run(spec, c)
            if "error" in reply:  # torch answers, the target raises: a wrong answer too
                raised = raised or c
                continue
            if self._abnormal(name, c, reply):
                if "unsupported" not in reply:
                    return
                continue
            self._notes(reply)
            if self._uninitialised(spec, c, reply):
                return
            for q in self.wrong(spec, c, reply, ref):
                failing.setdefault(q, c)
            self.report.mark(name, "forward", "pass")
        if raised is not None and "output" not in failing:
            failing["output"] = raised
        for q, c in failing.items():
            self._finding(spec, q, c, self._shrink(spec, c, q))
        columns = ["forward", "backward"] + (["parameters"] if spec.weight_shape else [])
        for column in columns if name in self.report.table else []:
            self.report.mark(name, column, "pass")
        if not failing:
            self._contract(spec)

    def _uninitialised(self, spec: Spec, c: Config, reply: dict[str, Any]) -> bool:
        """Gradient buffers that hold something before any backward (``torch.empty``)."""
        dirty = [k for k, g in reply.get("grads_initial", {}).items() if g is not None and bool(g.ne(0).any())]
        for k in dirty:
            message = f"the gradient of {k} is not zero before the first backward"
            self.report.findings.append(
                Finding(spec.name, f"gradient of {k}", describe(c), message, "not initialised", "any")
            )
            self.report.mark(spec.name, "parameters", "FAIL")
        return bool(dirty)

    def _abnormal(self, name: str, c: Config, reply: dict[str, Any]) -> bool:
        if "unsupported" in reply:
            self.report.mark(name, "forward", "unsupported")
            self.report.notes.add(f"{name}: unsupported at {describe(c)}: {reply['unsupported']}")
            return True
        for kind, status in (("timeout", "timeout"), ("crash", "crash"), ("error", "error"), ("invalid", "FAIL")):
            if kind in reply:
                self.report.mark(name, "forward", status)
                self.report.findings.append(_abnormal_finding(name, "output", c, kind, reply[kind]))
                return True
        return False

    def _notes(self, reply: dict[str, Any]) -> None:
        self.report.notes.update(reply.get("notes", []))

    def _shrink(self, spec: Spec, c: Config, quantity: str) -> Config:
        """Greedy: each argument toward its smallest value while the quantity stays wrong."""
        for key, values in spec.shrink.items():  # (every configuration has the base's keys)
            simpler = values[: values.index(c[key])] if c[key] in values else values
            for value in simpler:  # simplest first; never toward a larger value
                candidate = {**c, key: value}
                if spec.valid(candidate) and self.fails(spec, candidate, quantity):
                    c = candidate
                    break
        return c

    def _nearest_passing(self, spec: Spec, c: Config, quantity: str) -> tuple[str, str] | None:
        for feature, change in _features(c):
            candidate = {**c, **change}
            # passing on three draws: on tiny inputs a wrong mask can agree with the right one by chance
            if spec.valid(candidate) and not any(self.fails(spec, candidate, quantity, salt) for salt in range(3)):
                return feature, ", ".join(f"{k}={v}" for k, v in change.items())
        return None

    def _finding(self, spec: Spec, quantity: str, first: Config, c: Config) -> None:
        """One finding at the shrunk ``c``; the diagnosis is read at ``first``, the configuration
        that failed first (a landmark: batch 2, odd sizes, so no two factors coincide)."""
        reply, ref, _ = self.run(spec, c)
        nearest = self._nearest_passing(spec, c, quantity)
        feature, passes_at = nearest or ("any", None)
        if "output" not in reply:  # (refusing now what it answered before: a flaky target is wrong too)
            kind = next(k for k in ("error", "timeout", "crash", "unsupported", "invalid") if k in reply)
            self.report.mark(spec.name, "forward", "FAIL" if kind == "invalid" else kind)
            finding = _abnormal_finding(spec.name, quantity, c, kind, reply[kind])
            finding.feature, finding.passes_at = feature, passes_at
            self.report.findings.append(finding)
            return
        if quantity != "output" and "backward_error" in reply:
            self.report.mark(spec.name, COLUMN_OF[quantity], "error")
            finding = _abnormal_finding(spec.name, quantity, c, "error", reply["backward_error"])
            finding.feature, finding.passes_at = feature, passes_at
            finding.message = finding.message.replace("raised", "backward raised", 1)
            self.report.findings.append(finding)
            return
        self.report.mark(spec.name, COLUMN_OF[quantity], "FAIL")
        label = self._diagnosis(spec, quantity, first) or self._diagnosis(spec, quantity, c)
        actual = _quantity(reply, quantity)
        err = tol = None
        if actual is not None and actual.shape == ref[quantity].shape:
            err, tol = error_and_tolerance(actual.to(ref[quantity].dtype), ref[quantity], ref["output"].numel() * 9)
        message = compare(actual, ref[quantity], 1) or ""
        self.report.findings.append(
            Finding(spec.name, quantity, describe(c), message, label, feature, passes_at, err, tol)
        )

    def _diagnosis(self, spec: Spec, quantity: str, c: Config) -> str | None:
        reply, ref, (params, x, g) = self.run(spec, c)
        if "output" not in reply:
            return None
        alternatives = {}
        for bug, fn in spec.alternatives.items():
            try:
                alt = spec.reference(c, params, x, None if quantity == "output" else g, fn).get(quantity)
            except RuntimeError:  # the bug's configuration is not one torch accepts
                continue
            if alt is not None and compare(alt, ref[quantity], 1) is not None:
                alternatives[bug] = alt
        initial = reply.get("grads_initial", {}).get(quantity.removeprefix("gradient of "))
        actual = _quantity(reply, quantity)
        return diagnose(actual, ref[quantity], c, quantity, alternatives, initial, tuple(ref["output"].shape))

    def _contract(self, spec: Spec) -> None:
        """Accumulation, zero_grad, the input left alone, a backward before any forward."""
        c = spec.base
        reply, ref, (params, x, g) = self.run(spec, c, twice=True)
        problems = []
        if "input_after" not in reply:  # (refused, or backward raised this time: reported elsewhere)
            return
        for name, grad in reply.get("grads", {}).items():
            twice = reply.get("grads_twice", {}).get(name)
            if grad is not None and twice is not None and compare(twice, 2 * grad, 1000) is not None:
                label = "not accumulated" if compare(twice, grad, 1000) is None else "second backward wrong"
                problems.append((f"gradient of {name}: a second backward does not add to it", label))
            zeroed = reply.get("grads_zeroed", {}).get(name)
            if zeroed is not None and bool(zeroed.ne(0).any()):
                problems.append((f"gradient of {name}: zero_grad leaves it non-zero", "zero_grad"))
        if not torch.equal(reply["input_after"], x):
            problems.append(("forward or backward modified its input", "input modified"))
        if reply.get("input_grad") is None:
            problems.append(("backward returns nothing", "no input gradient returned"))
        first = (
            {}
            if spec.name == "Upsampling"
            else self.child.ask(
                {
                    "op": "backward_first",
                    "block": spec.name,
                    "kwargs": spec.kwargs(c),
                    "defaults": spec.defaults,
                    "params": params,
                    "grad": g,
                }
            )
        )
        if first.get("raised") is False:  # (Upsampling's backward needs nothing from a forward)
            problems.append(
                ("backward before any forward returns a result instead of raising", "backward before forward")
            )
        seen = set()
        for message, label in problems:
            if label not in seen:
                seen.add(label)
                self.report.findings.append(Finding(spec.name, "contract", describe(c), message, label, "any"))
        self.report.mark(spec.name, "contract", "FAIL" if problems else "pass")


def _grad(t: Tensor) -> Tensor:
    return t.grad if t.grad is not None else torch.zeros_like(t)


def _quantity(reply: dict[str, Any], quantity: str) -> Tensor | None:
    if quantity == "output":
        return reply.get("output")
    if quantity == "input gradient":
        return reply.get("input_grad")
    return reply.get("grads", {}).get(quantity.removeprefix("gradient of "))


def _abnormal_finding(block: str, quantity: str, c: Config, kind: str, detail: Any) -> Finding:
    """A raised exception, a hang or a dead process, as a finding."""
    if kind == "error":
        message, where = f"raised {detail['type']}: {detail['message']}", detail["where"]
    elif kind == "timeout":
        message, where = f"no answer within {detail:g} s", ""
    else:
        message, where = str(detail), ""
    return Finding(block, quantity, describe(c), message, kind, "any", where=where)


def _features(c: Config) -> list[tuple[str, Config]]:
    """(feature, change): one change of the failing configuration each, most specific first."""
    h, w = c["size"]
    out: list[tuple[str, Config]] = []
    if c.get("batch", 1) > 1:
        out.append(("batch > 1", {"batch": 1}))
    else:
        out.append(("batch 1", {"batch": 2}))
    if "in_channels" in c and c["in_channels"] != c["out_channels"]:
        out.append(("in_channels != out_channels", {"out_channels": c["in_channels"]}))
    if max(c.get("in_channels", 1), c.get("out_channels", 1), c.get("channels", 1)) > 1:
        out.append(("channels > 1", {k: 1 for k in ("in_channels", "out_channels", "channels") if k in c}))
    s, p, d = c.get("stride", 1), c.get("padding", 0), c.get("dilation", 1)
    if s > 1 and "kernel_size" in c and "out_channels" in c:
        k = c["kernel_size"] if isinstance(c["kernel_size"], int) else c["kernel_size"][0]
        reach = h + 2 * p - d * (k - 1) - 1
        if reach % s:
            out.append(("stride does not divide", {"size": (h - reach % s, w - (w + 2 * p - d * (k - 1) - 1) % s)}))
        out.append(("stride > 1", {"stride": 1}))
    if p > 0:
        out.append(("padding > 0", {"padding": 0}))
    if d > 1:
        out.append(("dilation > 1", {"dilation": 1}))
    if h != w:
        out.append(("non-square image", {"size": (max(h, w), max(h, w))}))
    return out


def _torch_optimizer(name: str, tensors: list[Tensor], kwargs: dict[str, Any]) -> Any:
    return (torch.optim.SGD if name == "SGD" else torch.optim.Adam)(tensors, **kwargs)


OPTIMIZER_CASES: dict[str, tuple[dict[str, Any], ...]] = {
    "SGD": (
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"lr": 0.1, "weight_decay": 0.01},
    ),
    "Adam": (
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.9)},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "weight_decay": 0.01},
    ),
}
OPTIMIZER_DEFAULTS = {
    "SGD": {"lr": None, "momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False},
    "Adam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False},
}
LOSS_SHAPES: tuple[tuple[int, ...], ...] = ((2, 3, 4, 5), (1, 3, 4, 5), (3, 1, 2, 2))


class Composite(Checker):
    """The checks of the loss, the optimizers, Sequential and the course network."""

    def check_loss(self) -> None:
        failing = []
        for shape in LOSS_SHAPES:
            gen = torch.Generator().manual_seed(self.seed + len(shape) + shape[0])
            pred, target = (torch.randn(shape, generator=gen, dtype=self.dtype) for _ in range(2))
            pr = pred.clone().requires_grad_(True)
            value = torch.nn.functional.mse_loss(pr, target)
            (grad,) = torch.autograd.grad(value, pr)
            reply = self.child.ask({"op": "loss", "prediction": pred, "target": target})
            c: Config = {"batch": shape[0], "size": shape[2:], "channels": shape[1]}
            if self._abnormal("MSE", c, reply):
                return
            self._notes(reply)
            for q, actual, expected in (
                ("loss value", reply["value"], value.detach()),
                ("loss gradient", reply["grad"], grad),
            ):
                actual = (
                    actual.reshape(()) if q == "loss value" and actual is not None and actual.numel() == 1 else actual
                )
                problem = compare(actual, expected, pred.numel())
                self.report.mark("MSE", "forward" if q == "loss value" else "backward", "FAIL" if problem else "pass")
                if problem:
                    failing.append((q, c, actual, expected, problem))
        failed = {describe(f[1]) for f in failing}
        reported = set()
        for q, c, actual, expected, problem in failing:
            if q in reported:
                continue
            reported.add(q)
            label = diagnose(actual, expected, c, q, {}, output_shape=tuple(expected.shape) if expected.dim() else None)
            batch_one = next((d for d in self._loss_configs() if d["batch"] == 1 and describe(d) not in failed), None)
            feature, near = ("batch > 1", describe(batch_one)) if batch_one and c["batch"] > 1 else ("any", None)
            self.report.findings.append(Finding("MSE", q, describe(c), problem, label, feature, near))

    def _loss_configs(self) -> list[Config]:
        return [{"batch": s[0], "size": s[2:], "channels": s[1]} for s in LOSS_SHAPES]

    def check_optimizer(self, name: str) -> None:
        if self.report.blocked(name, "step", ["Conv2d"], ("error", "crash", "timeout")):
            return
        spec = SPECS["Conv2d"]
        c = {**spec.base, "batch": 1, "size": (5, 5)}
        params, x, g, _ = self._data(spec, c)
        block = {"block": "Conv2d", "kwargs": spec.kwargs(c), "defaults": spec.defaults, "params": params}
        block |= {"probe": x, "probe_grad": g}
        gen = torch.Generator().manual_seed(self.seed + 7)
        steps = [
            [{k: torch.randn(v.shape, generator=gen, dtype=self.dtype) for k, v in params.items()}] for _ in range(3)
        ]
        for kwargs in OPTIMIZER_CASES[name][: 2 if self.quick else None]:
            request = {"op": "optimizer", "name": name, "kwargs": kwargs, "defaults": OPTIMIZER_DEFAULTS[name]}
            reply = self.child.ask({**request, "blocks": [block], "grads": steps})
            case = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            if self._abnormal(name, {"batch": 1, "size": (5, 5), "optimizer": case}, reply):
                self.report.table[name]["step"] = self.report.table[name].pop("forward")
                if "unsupported" in reply:
                    continue
                return
            self._notes(reply)
            expected = self._torch_steps(name, params, steps, kwargs)
            self._compare_steps(name, case, reply["params"], expected, params, steps, kwargs)

    def _torch_steps(self, name: str, params: dict[str, Tensor], steps: list, kwargs: dict[str, Any]) -> list:
        tensors = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        opt = _torch_optimizer(name, list(tensors.values()), kwargs)
        history = []
        for (grads,) in steps:
            for k, t in tensors.items():
                t.grad = grads[k].clone()
            opt.step()
            history.append({k: t.detach().clone() for k, t in tensors.items()})
        return history

    def _compare_steps(self, name: str, case: str, actual: list, expected: list, params, steps, kwargs) -> None:
        for i, (got, want) in enumerate(zip(actual, expected)):
            for k in want:
                problem = compare(got[0].get(k), want[k], 100)
                if problem:
                    label = None
                    for arg, value in (
                        ("lr", 1.0),
                        ("momentum", 0),
                        ("dampening", 0),
                        ("weight_decay", 0),
                        ("amsgrad", False),
                    ):
                        if (
                            arg in kwargs
                            and compare(
                                got[0].get(k), self._torch_steps(name, params, steps, {**kwargs, arg: value})[i][k], 100
                            )
                            is None
                        ):
                            label = f"argument ignored: {arg}"
                    where = f"step {i + 1} with {case}"
                    self.report.findings.append(Finding(name, "optimizer step", where, f"{k}: {problem}", label, "any"))
                    self.report.mark(name, "step", "FAIL")
                    return
        self.report.mark(name, "step", "pass")

    def check_sequential(self) -> None:
        chain = [("Conv2d", {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}), ("ReLU", {})]
        chain += [("Conv2d", {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1})]
        chain += [("Sigmoid", {})]
        if any(b not in self.blocks for b, _ in chain):
            self.report.mark("Sequential", "composition", "unsupported")
            return
        if self.report.blocked("Sequential", "composition", sorted({b for b, _ in chain})):
            return
        gen = torch.Generator().manual_seed(self.seed + 11)
        x = torch.randn(2, 2, 6, 7, generator=gen, dtype=self.dtype)
        blocks, layers = [], []
        for name, kw in chain:
            spec = SPECS[name]
            c = {**spec.base, **kw}
            params = spec.params(c, gen, self.dtype)
            blocks.append({"block": name, "kwargs": spec.kwargs(c), "defaults": spec.defaults, "params": params})
            layers.append((spec, c, params))
        xr = x.clone().requires_grad_(True)
        out, leaves = xr, []
        for spec, c, params in layers:
            pr = {k: v.clone().requires_grad_(True) for k, v in params.items()}
            leaves.append(pr)
            out = spec.torch_fn(c, pr, out)
        g = torch.randn(out.shape, generator=gen, dtype=self.dtype)
        out.backward(g)
        reply = self.child.ask({"op": "sequential", "blocks": blocks, "input": x, "grad": g})
        c = {"batch": 2, "size": (6, 7), "chain": " -> ".join(b for b, _ in chain)}
        if self._abnormal("Sequential", c, reply):
            self.report.table["Sequential"]["composition"] = self.report.table["Sequential"].pop("forward")
            return
        assert xr.grad is not None
        checks = [("output", reply["output"], out.detach()), ("input gradient", reply["input_grad"], xr.grad)]
        for i, pr in enumerate(leaves):
            checks += [(f"gradient of {i}.{k}", reply["grads"][i].get(k), _grad(v)) for k, v in pr.items()]
        for what, actual, expected in checks:
            problem = compare(actual, expected, 200)
            if problem:
                label = diagnose(actual, expected, c, what, {})
                self.report.findings.append(
                    Finding("Sequential", "composition", describe(c), f"{what}: {problem}", label, "any")
                )
                self.report.mark("Sequential", "composition", "FAIL")
                return
        self.report.mark("Sequential", "composition", "pass")

    def check_training(self) -> None:
        up = "Upsampling" if "Upsampling" in self.blocks else None
        needed = {"Conv2d", "ReLU", "Sigmoid", "Sequential", "MSE", "SGD"}
        if up is None or not needed <= set(self.blocks):
            self.report.mark("course network", "training", "unsupported")
            return
        if self.report.blocked("course network", "training", sorted(needed | {"Upsampling"})):
            return
        width = 4
        chain = [("Conv2d", dict(in_channels=3, out_channels=width, kernel_size=3, stride=2, padding=1)), ("ReLU", {})]
        chain += [
            ("Conv2d", dict(in_channels=width, out_channels=width, kernel_size=3, stride=2, padding=1)),
            ("ReLU", {}),
        ]
        chain += [
            ("Upsampling", {"scale_factor": 2}),
            ("Conv2d", dict(in_channels=width, out_channels=width, kernel_size=3, padding=1)),
        ]
        chain += [("ReLU", {}), ("Upsampling", {"scale_factor": 2})]
        chain += [("Conv2d", dict(in_channels=width, out_channels=3, kernel_size=3, padding=1)), ("Sigmoid", {})]
        gen = torch.Generator().manual_seed(self.seed + 13)
        blocks, layers = [], []
        for name, kw in chain:
            spec = SPECS[name]
            c = {**spec.base, **kw}
            params = {k: v * 0.3 for k, v in spec.params(c, gen, self.dtype).items()}
            blocks.append({"block": name, "kwargs": spec.kwargs(c), "defaults": spec.defaults, "params": params})
            layers.append((spec, c, {k: v.clone().requires_grad_(True) for k, v in params.items()}))
        batches = [
            (
                torch.rand(2, 3, 8, 8, generator=gen, dtype=self.dtype),
                torch.rand(2, 3, 8, 8, generator=gen, dtype=self.dtype),
            )
            for _ in range(3)
        ]
        start = [{k: t.detach().clone() for k, t in p.items()} for _, _, p in layers]
        opt = torch.optim.SGD([t for _, _, p in layers for t in p.values()], lr=0.5)
        expected, trajectory = [], []
        for x, y in batches:
            opt.zero_grad()
            out = x
            for spec, c, p in layers:
                out = spec.torch_fn(c, p, out)
            loss = torch.nn.functional.mse_loss(out, y)
            loss.backward()
            opt.step()
            expected.append(loss.item())
            trajectory.append([{k: t.detach().clone() for k, t in p.items()} for _, _, p in layers])
        request = {"op": "train", "blocks": blocks, "batches": batches, "lr": 0.5}
        reply = self.child.ask({**request, "defaults": OPTIMIZER_DEFAULTS["SGD"]})
        c = {"batch": 2, "size": (8, 8), "steps": 3, "width": width}
        if self._abnormal("course network", c, reply):
            self.report.table["course network"]["training"] = self.report.table["course network"].pop("forward")
            return
        problem = losses_problem(reply["losses"], len(batches)) or params_problem(reply["params"], trajectory, start)
        scale = 1 if self.dtype == torch.float64 else 1e4
        for i, (got, want) in enumerate(zip(reply["losses"], expected)):
            if problem is None and abs(got - want) > 1e-6 * max(1.0, abs(want)) * scale:
                problem = f"loss at step {i + 1} is {got:.6g}, torch's {want:.6g}"
        if problem is not None:
            self.report.findings.append(Finding("course network", "composition", describe(c), problem, None, "any"))
            self.report.mark("course network", "training", "FAIL")
            return
        self.report.mark("course network", "training", "pass")


LAYERS = ("Conv2d", "ConvTranspose2d", "Upsampling", "MaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh")


def run_checks(child: Child, blocks: list[str], seed: int, quick: bool, only: set[str] | None) -> Report:
    """Every check of the blocks the target has (``only``: a subset, by canonical name)."""
    checker = Composite(child, blocks, seed, quick)
    report = checker.report
    overall: torch.dtype | None = None  # the first layer's: float64 unless it cannot
    wanted = [b for b in (*LAYERS, "MSE", "SGD", "Adam", "Sequential", "course network") if only is None or b in only]
    for name in wanted:
        checker.dtype = overall or torch.float64
        if name in LAYERS and name in blocks:
            checker.check_layer(name)
            overall = overall or checker.dtype
        elif name == "MSE" and name in blocks:
            checker.check_loss()
        elif name in ("SGD", "Adam") and name in blocks and "Conv2d" in blocks:
            checker.check_optimizer(name)
        elif name == "Sequential" and name in blocks:
            checker.check_sequential()
        elif name == "course network":
            if not quick:
                checker.check_training()
        else:
            report.mark(name, "forward", "unsupported")
    report.dtype = str(overall or torch.float64).removeprefix("torch.")
    return report
