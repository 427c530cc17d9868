"""The child process of ``n2n check``: imports the target and runs its blocks on the checker's
inputs, returning raw results. No comparison happens here: torch's reference is computed in the
checker's own process, which the target's code never touches (so an import that changes torch's
defaults or seeds cannot falsify it). Run as ``python -m harness.check.worker LIMITS`` (its
resource limits, ``name=value,...``: :func:`.isolation.limits`), set before the target loads.

A block is the target's when its class's own code comes from the target's files (by source
file: ``__module__`` is the class's own word and proves nothing)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from torch import Tensor

from . import isolation, protocol
from .adapter import Adapter, Unsupported
from .recorder import Recorder, target_file

ALIASES = {
    "Conv2d": ("Conv2d", "Conv2D", "Convolution2d"),
    "ConvTranspose2d": ("TransposeConv2d", "ConvTranspose2d", "TransposedConv2d", "ConvTranspose2D"),
    "Upsampling": ("NearestUpsampling", "Upsampling", "Upsample", "NNUpsampling"),
    "ReLU": ("ReLU", "Relu"),
    "LeakyReLU": ("LeakyReLU", "LeakyRelu"),
    "Sigmoid": ("Sigmoid",),
    "Tanh": ("Tanh",),
    "MaxPool2d": ("MaxPool2d", "MaxPool2D", "MaxPooling2d"),
    "MSE": ("MSE", "MSELoss", "LossMSE"),
    "Sequential": ("Sequential",),
    "SGD": ("SGD",),
    "Adam": ("Adam",),
}


def _load(target: dict[str, str]) -> tuple[ModuleType, Path]:
    root = Path(target["root"])
    sys.path.insert(0, str(root))
    if target["kind"] == "file":
        spec = importlib.util.spec_from_file_location("_n2n_checked", target["path"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_n2n_checked"] = module
        spec.loader.exec_module(module)
        return module, root
    return importlib.import_module(target["module"]), root


def _discover(module: ModuleType, root: Path) -> dict[str, type]:
    """Blocks by the course's and torch's names: the module's own first, then the modules of
    its package that it imported (blocks often live in ``others/``); a class counts only when
    its code is the target's (:func:`_code_files`)."""
    modules = [module] + [m for m in list(sys.modules.values()) if m is not module and _ours(m, root)]
    found: dict[str, type] = {}
    for canonical, names in ALIASES.items():
        for m in modules:
            classes = [getattr(m, n, None) for n in names]
            cls = next((c for c in classes if isinstance(c, type) and _defined_by_target(c, root)), None)
            if cls is not None:
                found[canonical] = cls
                break
    return found


def _code_files(cls: type) -> dict[str, str]:
    """{file: class name} of the first class in ``cls``'s MRO with code of its own (its methods'
    code objects say where they were compiled and under which class name)."""
    for klass in cls.__mro__[:-1]:
        found = {}
        for value in vars(klass).values():
            value = getattr(value, "__func__", value)  # static and class methods
            value = value.fget if isinstance(value, property) else value
            code = getattr(value, "__code__", None)
            if isinstance(code, CodeType):
                found[code.co_filename] = code.co_qualname.rsplit(".", 1)[0]
        if found:
            return found
    return {}


def _defined_by_target(cls: type, root: Path) -> bool:
    """By its code's files; a class with no code at all (``class ReLU: pass``) by its module's."""
    files = _code_files(cls) or {str(getattr(sys.modules.get(cls.__module__), "__file__", None) or ""): ""}
    return any(target_file(f, root) for f in files)


def _ours(module: ModuleType | None, root: Path) -> bool:
    """Whether a module is the target's own code (under its folder, not an installed package)."""
    return target_file(str(getattr(module, "__file__", None) or ""), root)


def _where(error: BaseException, root: Path) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if target_file(f.filename, root)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _error(e: BaseException, root: Path) -> dict[str, str]:
    return {"type": type(e).__name__, "message": " ".join(str(e).split())[:300], "where": _where(e, root)}


def _tensor(value: Any, what: str) -> Tensor:
    """A copy the target keeps no reference to, as a plain tensor (the checker judges its kind)."""
    if isinstance(value, Tensor):
        value = value.detach()
        return (value if type(value) is Tensor else value.as_subclass(Tensor)).clone()
    raise TypeError(f"{what} returned {type(value).__name__}, not a tensor")


def _grads(adapter: Adapter, block: Any) -> dict[str, Any]:
    return {k: (None if g is None else _tensor(g, k)) for k, g in adapter.get_grads(block).items()}


class Session:
    """The target's blocks and one request handler per scenario."""

    def __init__(self, namespace: dict[str, type], adapter: Adapter, root: Path) -> None:
        self.ns, self.adapter, self.root = namespace, adapter, root
        self.file = ""  # the target's module file, for the load reply
        self.recorder: Recorder | None = None  # the course rule's, when it is checked

    def _answer(self, block: Any, value: Any, what: str) -> Tensor:
        """``value`` copied; a tensor that carries autograd is a violation of the course rule."""
        if self.recorder is not None and isinstance(value, Tensor) and value.requires_grad:
            caller = f"{type(block).__name__}.{what}"
            self.recorder.add(caller, "returns a tensor that requires grad (autograd)", "")
        return _tensor(value, what)

    def _block(self, spec: dict[str, Any]) -> Any:
        a = self.adapter
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
        """Forward, backward twice (accumulation), the input before and after."""
        a, out = self.adapter, dict[str, Any]()
        block = self._block(r)
        x = r["input"].clone()
        out["grads_initial"] = _grads(a, block) if r.get("params") else {}
        out["output"] = self._answer(block, a.forward(block, x), "forward")
        try:  # a backward that raises still leaves the forward's output to compare
            grad = a.backward(block, r["grad"].clone())
            out["input_grad"] = None if grad is None else self._answer(block, grad, "backward")
        except Exception as e:  # noqa: BLE001 (the target's error is the answer)
            out["backward_error"] = _error(e, self.root)
            return out
        out["grads"] = _grads(a, block)
        out["input_after"] = x
        if r.get("twice"):
            a.backward(block, r["grad"].clone())
            out["grads_twice"] = _grads(a, block)
            a.zero_grad(block)
            out["grads_zeroed"] = _grads(a, block)
        return out

    def backward_first(self, r: dict[str, Any]) -> dict[str, Any]:
        """A backward before any forward: torch raises; a silent result is a contract finding."""
        block = self._block(r)
        try:
            self.adapter.backward(block, r["grad"].clone())
        except Exception:  # noqa: BLE001 (any error is the expected answer)
            return {"raised": True}
        return {"raised": False}

    def loss(self, r: dict[str, Any]) -> dict[str, Any]:
        a = self.adapter
        block = a.build("MSE", {}, {})
        args = (r["target"], r["prediction"]) if a.loss_swapped(block) else (r["prediction"], r["target"])
        value = _tensor(a.forward(block, *[t.clone() for t in args]), "forward")
        return {"value": value, "grad": _none_or_tensor(a.backward(block, None), "backward")}

    def sequential(self, r: dict[str, Any]) -> dict[str, Any]:
        a = self.adapter
        blocks = [self._block(spec) for spec in r["blocks"]]
        seq = self.ns["Sequential"](*blocks)
        output = _tensor(a.forward(seq, r["input"].clone()), "forward")
        grad = _none_or_tensor(a.backward(seq, r["grad"].clone()), "backward")
        return {"output": output, "input_grad": grad, "grads": [_grads(a, b) for b in blocks]}

    def optimizer(self, r: dict[str, Any]) -> dict[str, Any]:
        """Steps with the checker's gradients, copied into the target's gradient tensors."""
        return _in_some_form(lambda form: self._optimizer_steps(r, form))

    def _optimizer_steps(self, r: dict[str, Any], form: int) -> dict[str, Any]:
        blocks = [self._block(spec) for spec in r["blocks"]]
        opt = self.adapter.make_optimizer(r["name"], blocks, r["kwargs"], r["defaults"], form)
        return {"params": self._steps(blocks, opt, r)}

    def _steps(self, blocks: list[Any], opt: Any, r: dict[str, Any]) -> list[list[dict[str, Tensor]]]:
        a, history = self.adapter, []
        for step_grads in r["grads"]:
            for block, spec, grads in zip(blocks, r["blocks"], step_grads):
                a.zero_grad(block)
                a.forward(block, spec["probe"].clone())
                a.backward(block, spec["probe_grad"].clone())  # makes the gradient tensors exist
                current = a.get_grads(block)
                for name, g in grads.items():
                    target = current[name]
                    if target is None:
                        raise Unsupported(f"no gradient tensor for {name} to write into")
                    target.copy_(g)
            a.step(opt)
            history.append([{k: _tensor(v, k) for k, v in a.get_params(b).items()} for b in blocks])
        return history

    def train(self, r: dict[str, Any]) -> dict[str, Any]:
        """The course network from the target's blocks, trained with its SGD (given its
        parameters as the optimizer check gives them) on the checker's batches."""
        return _in_some_form(lambda form: self._train(r, form))

    def _train(self, r: dict[str, Any], form: int) -> dict[str, Any]:
        a = self.adapter
        blocks = [self._block(spec) for spec in r["blocks"]]
        model, loss = self.ns["Sequential"](*blocks), a.build("MSE", {}, {})
        swapped = a.loss_swapped(loss)
        opt = a.make_optimizer("SGD", blocks, {"lr": r["lr"]}, r["defaults"], form)
        losses, history = [], []
        for x, y in r["batches"]:
            for b in blocks:
                a.zero_grad(b)
            pred = self._answer(model, a.forward(model, x.clone()), "forward")
            value = a.forward(loss, *((y, pred) if swapped else (pred, y)))
            losses.append(float(value))
            a.backward(model, a.backward(loss, None))
            a.step(opt)
            history.append([{k: _tensor(v, k) for k, v in a.get_params(b).items()} for b in blocks])
        return {"losses": losses, "params": history}


def _in_some_form(run: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``run(form)`` for the optimizer's parameter forms in turn (:data:`.adapter.OPTIMIZER_FORMS`)
    until one works; the last one's error is the answer."""
    for form in range(2):
        try:
            return run(form)
        except Unsupported:
            raise
        except Exception:  # noqa: BLE001 (the next parameter form is tried)
            continue
    return run(2)


def _none_or_tensor(value: Any, what: str) -> Tensor | None:
    return None if value is None else _tensor(value, what)


def main() -> None:
    isolation.apply_limits({k: int(v) for k, v in (item.split("=") for item in sys.argv[1].split(",") if item)})
    sys.dont_write_bytecode = True
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # the target's prints go to the captured stderr, never into the replies
    sys.stdout = sys.stderr
    session: Session | None = None
    while True:
        try:
            request = protocol.decode_request(protocol.read_frame(requests))
        except EOFError:
            return
        session, reply = handle(request, session)
        protocol.write_frame(replies, _encoded(reply))


def _encoded(reply: dict[str, Any]) -> bytes:
    try:
        return protocol.encode_reply(reply)
    except Exception as e:  # noqa: BLE001 (something the target returned cannot be sent: its error)
        message = f"the reply cannot be sent: {type(e).__name__}: {e}"
        return protocol.encode_reply({"error": {"type": "UnsendableReply", "message": message[:300], "where": ""}})


def handle(request: dict[str, Any], session: Session | None) -> tuple[Session | None, dict[str, Any]]:
    """One request: ``load`` makes the session, any other op runs on it. Whatever the target
    raises becomes the reply (the worker itself never dies of it); the course rule's records
    since the last reply go with it."""
    root = session.root if session is not None else Path(request.get("target", {}).get("root", "."))
    recorder = session.recorder if session is not None else _recorder(request, root)
    reply: dict[str, Any]
    try:
        if request["op"] == "load":
            session = _session(request, recorder)
            reply = {"blocks": sorted(session.ns), "file": session.file, "files": _files(session)}
            reply["classes"] = dict(recorder.blocks) if recorder is not None else {}
        else:
            assert session is not None, "a request before load"
            reply = getattr(session, request["op"])(request)
            reply["notes"] = sorted(session.adapter.notes)
    except Unsupported as e:
        reply = {"unsupported": str(e)}
    except Exception as e:  # noqa: BLE001 (the target's error is the answer)
        reply = {"error": _error(e, root)}
    if recorder is not None:
        reply["rule"] = recorder.take()
    return session, reply


def _recorder(request: dict[str, Any], root: Path) -> Recorder | None:
    """The course rule's recorder, installed before the target is imported (so that its
    ``from torch.nn.functional import ...`` binds the recording functions)."""
    if request.get("op") != "load" or not request.get("rule"):
        return None
    recorder = Recorder(lambda f: target_file(f, root), lambda f: os.path.relpath(f, root))
    recorder.install()
    return recorder


def _files(session: Session) -> list[str]:
    """The target's files that were loaded: what the course rule's source scan reads."""
    modules = [str(getattr(m, "__file__", None) or "") for m in list(sys.modules.values())]
    classes = [f for cls in session.ns.values() for f in _code_files(cls)]
    return sorted({f for f in modules + classes if target_file(f, session.root) and f.endswith(".py")})


def _session(request: dict[str, Any], recorder: Recorder | None = None) -> Session:
    module, root = _load(request["target"])
    user = _load_adapter(request.get("adapter"))
    namespace = _discover(module, root)
    if user is not None and hasattr(user, "blocks"):
        namespace.update(user.blocks(module))
    session = Session(namespace, Adapter(namespace, user), root)
    session.file = str(getattr(module, "__file__", ""))
    session.recorder = recorder
    if recorder is not None:
        recorder.blocks.update({name: block for block, cls in namespace.items() for name in _code_files(cls).values()})
    return session


def _load_adapter(path: str | None) -> ModuleType | None:
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("_n2n_adapter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
