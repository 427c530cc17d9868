"""The checks beyond one layer: the loss, the optimizers (in every parameter form the target may
take), Sequential, and a few training steps of the course network built from the target's
blocks. Each runs at its own configurations and is blocked only when a block it uses fails at
exactly those; every torch reference the checker builds is guarded (an argument torch refuses
is the checker's problem, never a traceback)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .adapter import OPTIMIZER_FORMS
from .conclude import Finding
from .diagnose import compare, diagnose
from .engine import Checker
from .features import optimizer_feature
from .matrix import COMPOSITE, FAIL, NOT_RUN, PASS, RAISED, WRONG, Config, Row
from .specs import SPECS, describe

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
IGNORED = (("lr", 1.0), ("momentum", 0), ("dampening", 0), ("weight_decay", 0), ("amsgrad", False), ("nesterov", False))
FORMS = len(OPTIMIZER_FORMS)
LOSS_SHAPES: tuple[tuple[int, ...], ...] = ((2, 3, 4, 5), (1, 3, 4, 5), (3, 1, 2, 2))
SIGN_OR_ORDER = "sign, or the arguments are in (target, prediction) order"


def torch_steps(name: str, params: dict[str, Tensor], steps: list, kwargs: dict[str, Any]) -> list[dict[str, Tensor]]:
    """torch.optim's parameters after each step with the given gradients (raises ValueError for
    arguments torch refuses, such as nesterov without momentum)."""
    tensors = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = (torch.optim.SGD if name == "SGD" else torch.optim.Adam)(list(tensors.values()), **kwargs)
    history = []
    for (grads,) in steps:
        for k, t in tensors.items():
            t.grad = grads[k].clone()
        opt.step()
        history.append({k: t.detach().clone() for k, t in tensors.items()})
    return history


class Composite(Checker):
    """The loss, the optimizers, Sequential and the course network."""

    form: int | None = None  # the optimizer parameter form that matched torch
    passing: list[dict[str, Any]] = []  # the optimizer cases that passed (for the feature a failure needs)
    order: str | None = None  # the loss's argument order, when the names did not settle it

    # the loss --------------------------------------------------------------------------------
    def check_loss(self) -> None:
        failing: dict[str, list[tuple[Config, Tensor | None, Tensor]]] = {}
        for shape in LOSS_SHAPES:
            c: Config = {"batch": shape[0], "size": shape[2:], "channels": shape[1]}
            for q, actual, expected in self._loss_case(shape, c):
                problem = None if actual is None and expected is None else compare(actual, expected, math.prod(shape))
                column = "forward" if q == "loss value" else "backward"
                self.matrix.add(Row("MSE", column, q, c, FAIL if problem else PASS, message=problem or ""))
                if problem:
                    failing.setdefault(q, []).append((c, actual, expected))
        for q, cases in failing.items():
            c, actual, expected = cases[0]
            label = diagnose(actual, expected, c, q, {}, output_shape=(c["batch"], c["channels"], *c["size"]))
            label = SIGN_OR_ORDER if label == "sign" and q == "loss gradient" else label
            passing = [d for d in self._loss_configs() if d["batch"] == 1 and all(d != f[0] for f in cases)]
            feature, near = ("batch > 1", describe(passing[0])) if passing and c["batch"] > 1 else ("any", None)
            message = compare(actual, expected, 1) or ""
            self.add(Finding("MSE", q, describe(c), message, label, feature, near, course=True))

    def _loss_case(self, shape: tuple[int, ...], c: Config) -> list[tuple[str, Tensor | None, Any]]:
        gen = torch.Generator().manual_seed(self.seed + len(shape) + shape[0])
        pred, target = (torch.randn(shape, generator=gen, dtype=self.dtype) for _ in range(2))
        pr = pred.clone().requires_grad_(True)
        value = torch.nn.functional.mse_loss(pr, target)
        (grad,) = torch.autograd.grad(value, pr)
        reply = self.child.ask({"op": "loss", "prediction": pred, "target": target, "dtype": self.dtype})
        self.notes.update(reply.get("notes", []))
        if "value" not in reply:
            self._abnormal("MSE", "forward", "loss value", c, reply)
            return []
        actual = reply["value"]
        actual = actual.reshape(()) if actual is not None and actual.numel() == 1 else actual
        actual = actual.to(self.dtype) if actual is not None and actual.is_floating_point() else actual
        if "grad_unsupported" in reply:  # the value compared; the gradient not, and not the target's fault
            why = f"the checker could not drive it: {reply['grad_unsupported']}"
            self.matrix.add(Row("MSE", "backward", "loss gradient", c, NOT_RUN, whose="checker", message=why))
            return [("loss value", actual, value.detach())]
        return [("loss value", actual, value.detach()), ("loss gradient", reply["grad"], grad)]

    def _loss_configs(self) -> list[Config]:
        return [{"batch": s[0], "size": s[2:], "channels": s[1]} for s in LOSS_SHAPES]

    # optimizers ------------------------------------------------------------------------------
    def _optimizer_setup(self) -> tuple[Config, dict[str, Any], dict[str, Tensor], list]:
        """The configuration, the Conv2d block request, its parameters and three steps' gradients."""
        spec = SPECS["Conv2d"]
        c = self._state("Conv2d").adjust({**spec.base, "batch": 1, "size": (5, 5)})
        params, x, g, _ = self.data(spec, c, self._state("Conv2d").dtype)
        block: dict[str, Any] = {"block": "Conv2d", "kwargs": spec.kwargs(c), "defaults": spec.defaults}
        block["params"] = params
        block |= {"probe": x, "probe_grad": g, "layout": self._state("Conv2d").layout}
        gen = torch.Generator().manual_seed(self.seed + 7)
        steps = [[{k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}] for _ in range(3)]
        return c, block, params, steps

    def probe_form(self) -> None:
        """The parameter form the target's SGD takes, found quietly (plain lr steps against torch's)
        for a check that needs it when SGD's own check did not run."""
        c, block, params, steps = self._optimizer_setup()
        expected = torch_steps("SGD", params, steps, {"lr": 0.1})
        request = {"op": "optimizer", "name": "SGD", "kwargs": {"lr": 0.1}, "defaults": OPTIMIZER_DEFAULTS["SGD"]}
        request |= {"blocks": [block], "grads": steps, "dtype": params["weight"].dtype}
        for form in range(FORMS):
            reply = self.child.ask({**request, "form": form})
            if "params" in reply and self._steps_problem(reply["params"], expected) is None:
                self.form = form
                return

    def check_optimizer(self, name: str) -> None:
        c, block, params, steps = self._optimizer_setup()
        if self._blocked(name, "step", [("Conv2d", c)]):
            return
        self.passing = []
        for kwargs in OPTIMIZER_CASES[name][: 2 if self.quick else None]:
            case = {**c, "optimizer": ", ".join(f"{k}={v}" for k, v in kwargs.items())}
            try:
                expected = torch_steps(name, params, steps, kwargs)
            except (ValueError, RuntimeError) as e:  # torch refuses the case: the checker's, not the target's
                self.matrix.add(Row(name, "step", "optimizer step", case, NOT_RUN, whose="checker", message=str(e)))
                continue
            request = {"op": "optimizer", "name": name, "kwargs": kwargs, "defaults": OPTIMIZER_DEFAULTS[name]}
            request |= {"blocks": [block], "grads": steps, "dtype": params["weight"].dtype}
            self._optimizer_case(name, case, request, expected, (params, steps, kwargs))

    def _optimizer_case(self, name: str, case: Config, request: dict, expected: list, inputs: tuple) -> None:
        """Every parameter form, the one that matched before first; a form that runs but gives
        wrong numbers is followed by the others before anything is reported."""
        order = ([self.form] if self.form is not None else []) + [f for f in range(FORMS) if f != self.form]
        replies = []
        for form in order:
            reply = {**self.child.ask({**request, "form": form}), "form": form}
            self.notes.update(reply.get("notes", []))
            replies.append(reply)
            if "params" in reply and self._steps_problem(reply["params"], expected) is None:
                self._form_note(name, form)
                self.form = form
                self.passing.append(inputs[2])
                self.matrix.add(Row(name, "step", "optimizer step", case, PASS))
                if reply.get("grads_changed"):
                    self._contract(name, case, "the step changes the gradients it was given", "gradients changed")
                return
        self._optimizer_finding(name, case, replies, expected, inputs)

    def _form_note(self, name: str, form: int) -> None:
        """How the optimizer reported on was given its parameters (pairs, the first form, go unsaid)."""
        if form:
            self.notes.add(f"{name} is built from {OPTIMIZER_FORMS[form]}")

    def _optimizer_finding(self, name: str, case: Config, replies: list, expected: list, inputs: tuple) -> None:
        invalid = next((r for r in replies if "invalid" in r), None)
        if invalid is not None:
            self._abnormal(name, "step", "optimizer step", case, invalid)
            return
        ran = [r for r in replies if "params" in r]
        self._form_note(name, (ran or replies)[0]["form"])
        if ran and ran[0].get("form") == 4 and self._blocked(name, "step", [("Sequential", case)]):
            return  # built from the model only, and the model's Sequential is wrong
        stepped = [r for r in replies if r.get("phase") == "step" and r["error"].get("whose") == "target"]
        if ran:
            where, problem = self._steps_problem(ran[0]["params"], expected) or ("", "")
            label = self._ignored(name, ran[0]["params"], inputs)
            self.matrix.add(Row(name, "step", "optimizer step", case, FAIL, message=problem))
            feature = optimizer_feature(inputs[2], self.passing)
            course = name == "SGD" and feature in ("any", "lr > 0")  # the course trains with plain SGD
            self.add(
                Finding(
                    name, "optimizer step", f"{where} with {case['optimizer']}", problem, label, feature, course=course
                )
            )
            return
        if stepped:
            e = stepped[0]["error"]
            row = self.matrix.add(Row(name, "step", "optimizer step", case, RAISED, whose="target", where=e["where"]))
            row.message = f"step raised {e['type']}: {e['message']}"
            self.add(
                Finding(
                    name, "optimizer step", describe(case), row.message, "error", "any", where=e["where"], course=True
                )
            )
            return
        first = replies[0]
        why = first.get("unsupported") or (
            f"{first['error']['type']}: {first['error']['message']}" if "error" in first else str(first)
        )
        message = f"no parameter form builds it (first: {why}); an adapter's make_optimizer settles it"
        self.matrix.add(Row(name, "step", "optimizer step", case, NOT_RUN, whose="checker", message=message))

    def _steps_problem(self, actual: list, expected: list) -> tuple[str, str] | None:
        if len(actual) < len(expected):
            return f"step {len(actual) + 1}", "fewer steps recorded than taken"
        for i, want in enumerate(expected):
            for k, t in want.items():
                problem = compare(actual[i][0].get(k), t, 100)
                if problem:
                    return f"step {i + 1}", f"{k}: {problem}"
        return None

    def _ignored(self, name: str, actual: list, inputs: tuple) -> str | None:
        params, steps, kwargs = inputs
        for arg, value in IGNORED:
            if arg not in kwargs or kwargs[arg] == value:
                continue
            try:
                alternative = torch_steps(name, params, steps, {**kwargs, arg: value})
            except (ValueError, RuntimeError):  # e.g. nesterov without momentum: not a bug torch can show
                continue
            if self._steps_problem(actual, alternative) is None:
                return f"argument ignored: {arg}"
        return None

    def _contract(self, block: str, c: Config, message: str, label: str) -> None:
        self.matrix.add(Row(block, "contract", "contract", c, FAIL, message=message, diagnosis=label))
        self.add(Finding(block, "contract", describe(c), message, label, "any", course=True))

    # composites ------------------------------------------------------------------------------
    def _abnormal(self, block: str, column: str, quantity: str, c: Config, reply: dict[str, Any]) -> None:
        """A reply without results: a row, and a finding unless the checker is to blame."""
        row = self.matrix.add(abnormal_row(block, column, quantity, c, reply))
        if row.outcome in (RAISED, "timeout", "crash", FAIL):
            label = {RAISED: "error", FAIL: "invalid reply"}.get(row.outcome, row.outcome)
            self.add(Finding(block, quantity, describe(c), row.message, label, "any", where=row.where, course=True))

    def _blocked(self, block: str, column: str, uses: list[tuple[str, Config]]) -> bool:
        """Each block a composite uses, checked at exactly the configuration it uses there; a
        failure there blocks the composite (the block's own finding says why)."""
        blame = self._blame(uses)
        if blame is None:
            return False
        why, c = blame
        self.matrix.add(Row(block, column, column, c, NOT_RUN, message=f"blocked: {why}"))
        self.notes.add(f"{block}: {column} not checked, since {why}")
        return True

    def _blame(self, uses: list[tuple[str, Config]]) -> tuple[str, Config] | None:
        """The first block of ``uses`` that is wrong where the composite uses it, said in words,
        with that configuration: the loss, Sequential and SGD by their own findings that reach
        the course network, a layer by running it at exactly that configuration."""
        for name, c in uses:
            if name not in SPECS:
                wrong_findings = [f for f in self.findings if f.block == name and f.quantity != "contract"]
                wrong_findings = [f for f in wrong_findings if f.course is not False]
                if wrong_findings:
                    return f"{name} is wrong ({wrong_findings[0].quantity})", c or {}
                continue
            spec = SPECS[name]
            c = self._state(name).adjust(c)
            reply, ref, _ = self.run(spec, c)
            rows = self.rows(spec, c, reply, ref, COMPOSITE)
            wrong = [r for r in rows if r.outcome in WRONG or (r.outcome == NOT_RUN and r.whose == "checker")]
            if wrong:
                verb = "cannot be driven" if wrong[0].outcome == NOT_RUN else "fails"
                return f"{name} {verb} at {describe(c)} ({wrong[0].quantity})", c
        return None


def abnormal_row(block: str, column: str, quantity: str, c: Config, reply: dict[str, Any]) -> Row:
    if "invalid" in reply:  # a reply that is no answer (a sparse output, a forged field): wrong
        return Row(block, column, quantity, c, FAIL, whose="target", message=str(reply["invalid"]))
    for kind in ("timeout", "crash", "unsupported"):
        if kind in reply:
            detail = reply[kind]
            message = f"no answer within {detail:g} s" if kind == "timeout" else str(detail)
            return Row(
                block, column, quantity, c, kind, whose="target" if kind != "unsupported" else "", message=message
            )
    e = reply.get("error", {"type": "?", "message": str(reply), "where": "", "whose": "checker"})
    whose = e.get("whose", "target")
    outcome = "raised" if whose == "target" else "not run"
    return Row(
        block,
        column,
        quantity,
        c,
        outcome,
        whose=whose,
        where=e["where"],
        message=f"raised {e['type']}: {e['message']}",
    )
