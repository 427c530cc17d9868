"""The child process of ``n2n check``: imports the target and runs its blocks on the checker's
inputs, returning raw results. No comparison happens here: torch's reference is computed in the
checker's own process, which the target's code never touches (so an import that changes torch's
defaults or seeds cannot falsify it). Run as ``python -m harness.check.worker LIMITS`` (its
resource limits, ``name=value,...``: :func:`.isolation.limits`), set before the target loads.

A block is the target's when its class's own code comes from the target's files (by source
file: ``__module__`` is the class's own word and proves nothing)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import torch

from . import isolation, protocol
from .adapter import Adapter, Unsupported, _canonical
from .recorder import Recorder, target_file
from .scenarios import Session, describe_error

# the names students give each block, compared case-insensitively, most specific first
ALIASES = {
    "Conv2d": ("Conv2d", "Convolution2d", "Convolution", "Conv"),
    "ConvTranspose2d": ("TransposeConv2d", "ConvTranspose2d", "TransposedConv2d", "TransposeConvolution2d")
    + ("TransposedConvolution", "ConvTranspose", "Deconv2d", "Deconvolution"),
    "Upsampling": ("NearestUpsampling", "Upsampling", "NNUpsampling", "NNUpsample", "Upsample")
    + ("NearestUpsample", "UpsamplingNearest2d", "Upsampling2d", "UpsampleNN", "UpsamplingNN")
    + ("NearestNeighborUpsampling", "NearestNeighbourUpsampling", "UpsampleNearest"),
    "ReLU": ("ReLU",),
    "LeakyReLU": ("LeakyReLU",),
    "Sigmoid": ("Sigmoid",),
    "Tanh": ("Tanh",),
    "MaxPool2d": ("MaxPool2d", "MaxPooling2d", "MaxPool", "MaxPooling"),
    "MSE": ("MSE", "MSELoss", "LossMSE", "MeanSquaredError", "MSELossFunction"),
    "Sequential": ("Sequential",),
    "SGD": ("SGD", "Optimizer", "SGDOptimizer"),
    "Adam": ("Adam", "AdamOptimizer"),
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
    _own_package(target["module"].split(".")[0], root)
    return importlib.import_module(target["module"]), root


def _own_package(name: str, root: Path) -> None:
    """The target's top-level package from its own folder, bound before anything else can be: a
    folder without ``__init__.py`` is a namespace package, which any regular package of the same
    name elsewhere on the path wins over (n2n itself ships a ``Miniproject_2``)."""
    spec = importlib.machinery.PathFinder.find_spec(name, [str(root)])
    if spec is None:  # a module name the target's folder does not hold
        return
    for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:  # another folder's
        del sys.modules[stale]
    module = importlib.util.module_from_spec(spec)  # a namespace package has no loader to run
    sys.modules[name] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)


def _discover(module: ModuleType, root: Path) -> tuple[dict[str, type], list[str], dict[str, str]]:
    """Blocks by the course's and torch's names, in any case: the module's own first, then the
    modules of its package that it imported (blocks often live in ``others/``); notes; and the
    blocks found but not checkable, with why. An upsampling that needs channels is a learned one
    (or wants a setting no probe can guess), not nearest: said, and not checked as nearest."""
    modules = [module] + [m for m in list(sys.modules.values()) if m is not module and _ours(m, root)]
    classes = [{k.lower(): v for k, v in vars(m).items() if _theirs(v, root)} for m in modules]
    found: dict[str, type] = {}
    notes, skipped = [], {}
    for canonical, names in ALIASES.items():
        candidates = [by_name[n.lower()] for n in names for by_name in classes if n.lower() in by_name]
        if canonical == "Upsampling":
            learned = [c for c in candidates if _channel_args(c)]
            candidates = [c for c in candidates if c not in learned]
            needs = [f"{c.__name__} needs {', '.join(_channel_args(c))}" for c in learned[:1]]
            why = [f"{n}: not checked as nearest upsampling" for n in needs]
            if candidates:
                notes += why
            elif why:
                skipped[canonical] = why[0] + " (an adapter's build settles it)"
        if candidates:
            found[canonical] = candidates[0]
    return found, notes, skipped


def _channel_args(cls: type) -> list[str]:
    """The required constructor arguments that make an upsampling more than nearest (a learned
    one, or one built for a channel count), by name; none when the signature cannot be read."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return [n for n in required if _canonical(n) in ("in_channels", "out_channels", "kernel_size")]


def _theirs(cls: Any, root: Path) -> bool:
    """By its code's files; a class with no code at all (``class ReLU: pass``) by its module's."""
    if not isinstance(cls, type):
        return False
    files = _code_files(cls) or {str(getattr(sys.modules.get(cls.__module__), "__file__", None) or ""): ""}
    return any(target_file(f, root) for f in files)


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


def _ours(module: ModuleType | None, root: Path) -> bool:
    """Whether a module is the target's own code (under its folder, not an installed package)."""
    return target_file(str(getattr(module, "__file__", None) or ""), root)


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
        error = {"type": "UnsendableReply", "message": message[:300], "where": "", "whose": "target", "refusal": False}
        return protocol.encode_reply({"error": error})


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
            reply |= {"notes": sorted(session.adapter.notes), "skipped": session.skipped}
            reply["classes"] = dict(recorder.blocks) if recorder is not None else {}
        else:
            assert session is not None, "a request before load"
            reply = _with_dtype(getattr(session, request["op"]), request)
            reply["notes"] = sorted(session.adapter.notes)
    except Unsupported as e:
        reply = {"unsupported": str(e)}
    except Exception as e:  # noqa: BLE001 (the target's error is the answer)
        reply = {"error": describe_error(e, root)}
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


def _with_dtype(op: Any, request: dict[str, Any]) -> dict[str, Any]:
    """``op(request)`` with torch's default dtype the comparison's (the target's ``torch.empty``
    buffers follow it), restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(request.get("dtype", torch.float64))
    try:
        return op(request)
    finally:
        torch.set_default_dtype(before)


def _session(request: dict[str, Any], recorder: Recorder | None = None) -> Session:
    module, root = _load(request["target"])
    user = _load_adapter(request.get("adapter"))
    namespace, notes, skipped = _discover(module, root)
    if user is not None and hasattr(user, "blocks"):
        namespace.update(user.blocks(module))
    session = Session(namespace, Adapter(namespace, user), root)
    session.adapter.notes.update(notes)
    session.skipped = {k: v for k, v in skipped.items() if k not in namespace}
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
