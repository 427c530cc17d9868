"""What the child does with the target's blocks, one request at a time: a layer's forward and
backward (twice, with zero_grad, after a forward at another size), a backward before any forward,
the loss, Sequential, optimizer steps in one of the parameter forms, and training the course
network. Replies hold raw results, cloned; nothing is compared here."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .adapter import Adapter, Unsupported, _positional
from .paths import path
from .recorder import Recorder, target_file


def whose(error: BaseException, root: Path) -> str:
    """'target' when the target's own code is on the traceback, else 'checker' (its probing)."""
    frames = traceback.extract_tb(error.__traceback__)
    return "target" if any(_in(f.filename, root) for f in frames) else "checker"


def _in(filename: str, root: Path) -> bool:
    return target_file(filename, root)


def describe_error(e: BaseException, root: Path) -> dict[str, Any]:
    frames = traceback.extract_tb(e.__traceback__)
    theirs = [f for f in frames if _in(f.filename, root)]
    where = f"{theirs[-1].filename}:{theirs[-1].lineno}" if theirs else ""
    message = " ".join(str(e).split())[:300]
    # the target's own raise or assert: a configuration it refuses on purpose, not a crash
    refusal = (
        isinstance(e, (ValueError, NotImplementedError, AssertionError))
        and bool(frames)
        and _in(frames[-1].filename, root)
        and (frames[-1].line or "").startswith(("raise", "assert"))
    )
    return {"type": type(e).__name__, "message": message, "where": where, "whose": whose(e, root), "refusal": refusal}


def tensor(value: Any, what: str) -> Tensor:
    """A clone of what the target returned (a Python number becomes a 0-d tensor)."""
    if isinstance(value, Tensor):  # a copy the target keeps no reference to, as a plain tensor
        value = value.detach()
        return (value if type(value) is Tensor else value.as_subclass(Tensor)).clone()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    raise TypeError(f"{what} returned {type(value).__name__}, not a tensor")


def _literal(value: Any) -> str:
    return f"torch.zeros({value.shape[0]})" if isinstance(value, Tensor) else repr(value)


def none_or_tensor(value: Any, what: str) -> Tensor | None:
    return None if value is None else tensor(value, what)


class Session:
    """The target's blocks and one request handler per scenario."""

    def __init__(self, namespace: dict[str, type], adapter: Adapter, root: Path) -> None:
        self.ns, self.adapter, self.root = namespace, adapter, root
        self.file = ""  # the target's module file, for the load reply
        self.skipped: dict[str, str] = {}  # blocks found but not checkable: why
        self.recorder: Recorder | None = None  # the course rule's, when it is checked

    def _answer(self, block: Any, value: Any, what: str) -> Tensor | None:
        """``value`` copied; a tensor that carries autograd is a violation of the course rule."""
        if self.recorder is not None and isinstance(value, Tensor) and value.requires_grad:
            self.recorder.add(f"{type(block).__name__}.{what}", "returns a tensor that requires grad (autograd)", "")
        return none_or_tensor(value, what)

    def _grads(self, block: Any) -> dict[str, Tensor | None]:
        return {k: none_or_tensor(g, k) for k, g in self.adapter.get_grads(block).items()}

    def block(self, spec: dict[str, Any]) -> Any:
        a = self.adapter
        a.layout = spec.get("layout")  # the weight layout the checker's probe settled, for this kind
        try:
            block = a.build(spec["block"], spec["kwargs"], spec["defaults"])
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001 (a refused configuration, not a wrong answer)
            raise Unsupported(f"the constructor refused {spec['kwargs']}: {type(e).__name__}: {e}") from e
        if spec.get("params"):
            a.set_params(block, spec["params"])
        return block

    def layer(self, r: dict[str, Any]) -> dict[str, Any]:
        """Forward, backward (twice, then zero_grad, when asked), the input before and after.
        Gradient buffers that hold something before any backward are reported, then zeroed."""
        a, out = self.adapter, dict[str, Any]()
        block = self.block(r)
        out["params"], out["bias_arg"], out["layout"] = sorted(a.get_params(block)), a.bias_arg, a.used_layout
        out["grads_initial"] = self._grads(block) if r.get("params") else {}
        a.clear_grads(block)
        if r.get("warmup") is not None:  # a forward at another size first: nothing may stick
            a.forward(block, r["warmup"].clone())
        x = r["input"].clone()
        out["output"] = tensor(self._answer(block, a.forward(block, x), "forward"), "forward")
        if r.get("grad") is None:
            return out
        try:  # a backward that raises still leaves the forward's output to compare
            out["input_grad"] = self._answer(block, a.backward(block, r["grad"].clone()), "backward")
        except Exception as e:  # noqa: BLE001 (the target's error is the answer)
            out["backward_error"] = describe_error(e, self.root)
            return out
        out["grads"] = self._grads(block)
        out["input_after"] = x
        if r.get("twice"):
            a.backward(block, r["grad"].clone())
            out["grads_twice"] = self._grads(block)
            a.zero_grad(block)
            out["grads_zeroed"] = self._grads(block)
        return out

    def recipe(self, r: dict[str, Any]) -> dict[str, Any]:
        """How the checker drives this block, as expressions a reproducer writes out: the
        constructor call, where each parameter and gradient lives, and its layout."""
        a = self.adapter
        block = self.block(r)
        out: dict[str, Any] = {"adapter": a.user is not None and bool(a._user("build"))}
        if a.last_call is not None and not out["adapter"]:
            cls, args, kwargs = a.last_call
            shown = [_literal(v) for v in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
            out |= {"module": cls.__module__, "class": cls.__name__, "call": f"{cls.__name__}({', '.join(shown)})"}
        if "x" in r:  # a forward and backward first, so that gradients created lazily exist
            try:
                a.forward(block, r["x"].clone())
                a.backward(block, r["grad"].clone())
            except Exception:  # noqa: BLE001 (the finding may be this very exception)
                pass
        grads = a.get_grads(block)
        named = a._named(block)
        out["params"] = {
            k: {"value": path(block, p), "grad": path(block, grads.get(k) if g is None else g), "stored": list(p.shape)}
            for k, (p, g) in named.items()
        }
        out["layout"] = getattr(block, "_n2n_layout", None) or a.used_layout
        wanted = [p for p in _positional(block.backward) if p.default is p.empty] if hasattr(block, "backward") else []
        out["stateless"] = len(wanted) >= 2
        return out

    def backward_first(self, r: dict[str, Any]) -> dict[str, Any]:
        """A backward before any forward: torch raises; a silent result is a contract finding."""
        block = self.block(r)
        try:
            self.adapter.backward(block, r["grad"].clone())
        except Exception:  # noqa: BLE001 (any error is the expected answer)
            return {"raised": True}
        return {"raised": False}

    def loss(self, r: dict[str, Any]) -> dict[str, Any]:
        a = self.adapter
        block = a.build("MSE", {}, {})
        swapped = a.loss_swapped(block) if r.get("order") is None else r["order"] == "target first"
        args = (r["target"], r["prediction"]) if swapped else (r["prediction"], r["target"])
        value = tensor(a.forward(block, *[t.clone() for t in args]), "forward")
        try:
            grad = none_or_tensor(a.backward(block, None), "backward")
        except Unsupported as e:  # (a tape's backward): the value is still compared
            return {"value": value, "grad": None, "grad_unsupported": str(e), "swapped": swapped}
        return {"value": value, "grad": grad, "swapped": swapped}

    def sequential(self, r: dict[str, Any]) -> dict[str, Any]:
        a = self.adapter
        blocks = [self.block(spec) for spec in r["blocks"]]
        seq = self.ns["Sequential"](*blocks)
        after = [{k: tensor(v, k) for k, v in a.get_params(b).items()} for b in blocks]
        output = tensor(a.forward(seq, r["input"].clone()), "forward")
        grad = none_or_tensor(a.backward(seq, r["grad"].clone()), "backward")
        return {"output": output, "input_grad": grad, "grads": [self._grads(b) for b in blocks], "params": after}

    def sequential_params(self, r: dict[str, Any]) -> dict[str, Any]:
        """How many entries Sequential's parameter method lists, asked twice (what an optimizer
        is built from: the same list each time), or the error it raised; no forward needed."""
        seq = self.ns["Sequential"](*[self.block(spec) for spec in r["blocks"]])
        try:
            return {"param_counts": [float(len(self.adapter.pair_list(seq))) for _ in range(2)]}
        except Exception as e:  # noqa: BLE001 (the target's error is the answer)
            return {"param_error": describe_error(e, self.root)}

    def optimizer(self, r: dict[str, Any]) -> dict[str, Any]:
        """Steps with the checker's gradients, copied into the target's gradient tensors, with
        the parameters given in form ``r['form']``; which phase raised is said."""
        a = self.adapter
        blocks = [self.block(spec) for spec in r["blocks"]]
        try:
            opt = a.make_optimizer(r["name"], blocks, r["kwargs"], r["defaults"], r["form"])
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001 (this form is not the target's)
            return {"phase": "construct", "error": describe_error(e, self.root)}
        model = None
        if "Sequential" in self.ns and (r["form"] == 4 or a.step_wants_model(opt)):
            model = self.ns["Sequential"](*blocks)
        try:
            return {**self._steps(blocks, opt, r, model)}
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001 (the target's step raised)
            return {"phase": "step", "error": describe_error(e, self.root)}

    def _steps(self, blocks: list[Any], opt: Any, r: dict[str, Any], model: Any) -> dict[str, Any]:
        a, history, changed = self.adapter, [], False
        for step_grads in r["grads"]:
            written = []
            for block, spec, grads in zip(blocks, r["blocks"], step_grads):
                a.clear_grads(block)  # the checker's zeroing: the step is what is tested, not zero_grad
                a.forward(block, spec["probe"].clone())
                a.backward(block, spec["probe_grad"].clone())  # makes the gradient tensors exist
                current = a.get_grads(block)
                for name, g in grads.items():
                    target = current.get(name)
                    if target is None:
                        raise Unsupported(f"no gradient tensor for {name} to write into")
                    target.copy_(g)
                    written.append((target, g))
            a.step(opt, blocks, model, r["kwargs"].get("lr", 0.0))
            changed = changed or any(not torch.equal(t, g) for t, g in written if t.shape == g.shape)
            history.append([{k: tensor(v, k) for k, v in a.get_params(b).items()} for b in blocks])
        return {"params": history, "grads_changed": changed}

    def _first_optimizer(self, blocks: list[Any], lr: float, forms: list[int]) -> Any:
        """SGD in the first parameter form it can be built from (the one its check matched, when known)."""
        for i, form in enumerate(forms):
            try:
                return self.adapter.make_optimizer("SGD", blocks, {"lr": lr}, {"lr": None}, form)
            except Exception:  # noqa: BLE001 (not this form: the next one)
                if i == len(forms) - 1:
                    raise
        raise Unsupported("no optimizer form to try")

    def train(self, r: dict[str, Any]) -> dict[str, Any]:
        """The course network from the target's blocks, trained with its optimizer (built in the
        probed form) on the checker's batches: the loss and the parameters after every step."""
        a = self.adapter
        blocks = [self.block(spec) for spec in r["blocks"]]
        model, loss = self.ns["Sequential"](*blocks), a.build("MSE", {}, {})
        swapped = r.get("order") == "target first" or (r.get("order") is None and a.loss_swapped(loss))
        opt = self._first_optimizer(blocks, r["lr"], r["forms"])
        losses, params = [], []
        for x, y in r["batches"]:
            for b in blocks:
                a.zero_grad(b)
            pred = self._answer(model, a.forward(model, x.clone()), "forward")
            value = a.forward(loss, *((y, pred) if swapped else (pred, y)))
            losses.append(float(value))
            a.backward(model, a.backward(loss, None))
            a.step(opt, blocks, model, r["lr"])
            params.append([{k: tensor(v, k) for k, v in a.get_params(b).items()} for b in blocks])
        return {"losses": losses, "params": params}
