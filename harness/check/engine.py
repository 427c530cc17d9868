"""The layer checks of ``n2n check``: each block against torch over landmark and drawn
configurations, every comparison one row of the results matrix; then, for each kind of failure
of each quantity, the smallest configuration that still fails that way, the nearest one that
passes (the feature the bug needs), whether the course network's configurations show it, and a
diagnosis that holds on several draws; then the contract. The loss, the optimizers and the
composites are :mod:`.composites`; cells and the exit status are :mod:`.conclude`."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..parity import error_and_tolerance
from .conclude import Finding
from .diagnose import compare, diagnose
from .features import course_versions, features, has, on_course
from .figures import pattern
from .matrix import CRASH, FAIL, GRID, INVALID, NOT_RUN, PASS, PROBE, RAISED, TIMEOUT, UNSUPPORTED, Config, Matrix, Row
from .specs import SPECS, Spec, describe

LAYER_QUANTITIES = ("output", "input gradient", "gradient of weight", "gradient of bias")
COLUMN_OF = {"output": "forward", "input gradient": "backward", "gradient of weight": "parameters"}
COLUMN_OF |= {"gradient of bias": "parameters"}
LAYOUT_CANDIDATES = ("flipped", "transposed", "transposed+flipped", "flat")
DTYPE_WORDS = ("dtype", "scalar type", "double", "float")
GROUPS_PER_KIND = 3  # findings per kind of failure of one quantity, at most
DRAWS = 3  # a "passes at" or a diagnosis must hold on this many draws


def layer_data(
    spec: Spec, c: Config, dtype: torch.dtype, seed: int, salt: int = 0
) -> tuple[dict, Tensor, Tensor, dict]:
    """The parameters, input and upstream gradient of one check (seeded by the configuration),
    and torch's answers."""
    gen = torch.Generator().manual_seed(seed * 1000003 + zlib.crc32(describe(c).encode()) + salt)
    params = spec.params(c, gen, dtype)
    x = spec.input(c, gen, dtype)
    ref = spec.reference(c, params, x, None)
    g = torch.randn(ref["output"].shape, generator=gen, dtype=dtype)
    return params, x, g, spec.reference(c, params, x, g)


@dataclass
class BlockState:
    """What probing learned of one block: the dtype it computes in, whether it has a bias at
    all, and the layout its weight is stored in (None: decided by shape)."""

    dtype: torch.dtype = torch.float64
    bias_free: bool = False
    layout: str | None = None
    layout_probed: bool = False

    def adjust(self, c: Config) -> Config:
        return {**c, "bias": False} if self.bias_free and c.get("bias") else c


class Checker:
    """Runs every check of every block the target has, through one child process."""

    def __init__(self, child: Any, blocks: list[str], seed: int, quick: bool) -> None:
        self.child, self.blocks, self.seed, self.quick = child, blocks, seed, quick
        self.matrix = Matrix()
        self.findings: list[Finding] = []
        self.notes: set[str] = set()
        self.state: dict[str, BlockState] = {}
        self.pictures: list[tuple[Finding, Tensor, Tensor, float]] = []  # numeric findings' tensors
        self.dtype = torch.float64  # the comparison's dtype for blocks not yet probed
        self.adapted = False  # an adapter file drives backward: "before any forward" is its own matter

    def add(self, finding: Finding) -> None:
        """A finding, once: the same promise broken at several configurations is one finding."""
        same = (finding.block, finding.quantity, finding.diagnosis)
        if finding.diagnosis is None or all((f.block, f.quantity, f.diagnosis) != same for f in self.findings):
            self.findings.append(finding)

    # one configuration ---------------------------------------------------------------------
    def data(self, spec: Spec, c: Config, dtype: torch.dtype, salt: int = 0) -> tuple[dict, Tensor, Tensor, dict]:
        return layer_data(spec, c, dtype, self.seed, salt)

    def _state(self, name: str) -> BlockState:
        return self.state.setdefault(name, BlockState())

    def run(self, spec: Spec, c: Config, salt: int = 0, **extra: Any) -> tuple[dict[str, Any], dict, tuple]:
        """The target's reply and torch's answer at ``c``; a block that does not keep float64 is
        asked again in float32, and is compared in float32 from then on."""
        st = self._state(spec.name)
        reply, ref, data = self._ask(spec, c, st.dtype, salt, extra)
        if st.dtype == torch.float64 and _not_float64(reply):
            single = self._ask(spec, c, torch.float32, salt, extra)
            if "output" in single[0]:
                st.dtype = torch.float32
                self.notes.add(f"{spec.name}: does not compute in float64: compared in float32")
                return single
        return reply, ref, data

    def _ask(self, spec: Spec, c: Config, dtype: torch.dtype, salt: int, extra: dict) -> tuple[dict, dict, tuple]:
        params, x, g, ref = self.data(spec, c, dtype, salt)
        request: dict[str, Any] = {"op": "layer", "block": spec.name, "kwargs": spec.kwargs(c)}
        request |= {
            "defaults": spec.defaults,
            "params": params,
            "input": x,
            "grad": g,
            "dtype": dtype,
            "layout": self._state(spec.name).layout,
        }
        return self.child.ask({**request, **extra}), ref, (params, x, g)

    def rows(self, spec: Spec, c: Config, reply: dict[str, Any], ref: dict[str, Tensor], purpose: str) -> list[Row]:
        """One row per quantity torch has at ``c``."""
        dtype = str(self._state(spec.name).dtype).removeprefix("torch.")
        quantities = [q for q in LAYER_QUANTITIES if q in ref]
        row = lambda q, outcome, **kw: Row(spec.name, COLUMN_OF[q], q, c, outcome, dtype, purpose=purpose, **kw)  # noqa: E731
        if "unsupported" in reply:
            return [row(q, UNSUPPORTED, message=str(reply["unsupported"])) for q in quantities]
        if "output" not in reply:
            first = _abnormal_row(reply, row)
            return [first] + [row(q, NOT_RUN, message="the forward did not finish") for q in quantities[1:]]
        if not c.get("bias", True) and "bias" in reply.get("params", []):
            if reply.get("bias_arg", "flag") == "flag":
                return [row(q, NOT_RUN, message="bias=False is ignored (a contract finding)") for q in quantities]
            kind = "an initial tensor" if reply.get("bias_arg") == "tensor" else "not an argument"
            why = f"its bias is {kind}: it cannot be turned off"
            return [row(q, UNSUPPORTED, message=why) for q in quantities]
        out = [_compared(row("output", PASS), reply.get("output"), ref["output"], ref)]
        for q in quantities[1:]:
            if "backward_error" in reply:
                e = reply["backward_error"]
                out.append(_raised(row(q, RAISED), e, "backward raised"))
            else:
                out.append(_compared(row(q, PASS), _quantity(reply, q), ref[q], ref))
        return out

    def kind(self, spec: Spec, c: Config, quantity: str, salt: int = 0) -> str:
        """How ``quantity`` fares at ``c``: 'pass', 'fail', 'raised <Type>', ..., or 'absent'."""
        reply, ref, _ = self.run(spec, c, salt)
        return next((r.kind for r in self.rows(spec, c, reply, ref, PROBE) if r.quantity == quantity), "absent")

    # a block ---------------------------------------------------------------------------------
    def check_layer(self, name: str) -> None:
        spec = SPECS[name]
        st = self._state(name)
        configs = spec.configs(2 if self.quick else 12, self.seed)
        dirty: set[str] = set()
        for n, c in enumerate(configs):
            c = st.adjust(c)
            reply, ref, _ = self.run(spec, c)
            if {"timeout", "crash", "invalid"} & set(reply):  # each more would cost a limit or a restart
                self._abandon(spec, c, reply, ref, configs[n + 1 :])
                break
            if self._bias_free(spec, c, reply):
                c = st.adjust(c)
                reply, ref, _ = self.run(spec, c)
            if not st.layout_probed and self._wrong_layout(spec, c, reply, ref):
                reply, ref, _ = self.run(spec, c)
            self.notes.update(reply.get("notes", []))
            for row in self.rows(spec, c, reply, ref, GRID):
                self.matrix.add(row)
            self._bias_ignored(spec, c, reply)
            dirty |= self._uninitialised(spec, c, reply, dirty)
        self.analyse(spec)
        self.contract(spec)

    def _abandon(self, spec: Spec, c: Config, reply: dict[str, Any], ref: dict, rest: list[Config]) -> None:
        """A hang or a death at ``c``: its rows, and the configurations left, not run."""
        for row in self.rows(spec, c, reply, ref, GRID):
            self.matrix.add(row)
        did = "hung" if "timeout" in reply else "died" if "crash" in reply else "gave a reply that is no answer"
        why = f"not run: the block {did} at {describe(c)}"
        for other in rest:
            self.matrix.add(Row(spec.name, "forward", "output", other, NOT_RUN, message=why))

    def _bias_free(self, spec: Spec, c: Config, reply: dict[str, Any]) -> bool:
        """A block with neither a bias argument nor a bias: its whole grid runs with bias=False."""
        if c.get("bias") and "no parameter 'bias'" in str(reply.get("unsupported", "")):
            self._state(spec.name).bias_free = True
            self.notes.add(f"{spec.name}: has no bias: checked with bias=False")
            return True
        return False

    def _wrong_layout(self, spec: Spec, c: Config, reply: dict[str, Any], ref: dict[str, Tensor]) -> bool:
        """A weight stored in another layout: the candidate whose forward matches torch's is kept."""
        if spec.weight_shape is None or c.get("in_channels") == c.get("out_channels") or "output" not in reply:
            return False
        st = self._state(spec.name)
        st.layout_probed = True
        if compare(reply["output"], ref["output"], 9 * ref["output"].numel()) is None:
            if reply.get("layout", "torch") != "torch":  # by shape here; in == out could not tell later
                st.layout = reply["layout"]
            return False
        for layout in LAYOUT_CANDIDATES:
            self._state(spec.name).layout = layout
            again, ref2, _ = self.run(spec, c)
            if "output" in again and compare(again["output"], ref2["output"], 9 * ref2["output"].numel()) is None:
                self.notes.add(f"{spec.name}: weight stored in the {layout} layout (its forward matches only so)")
                return True
        self._state(spec.name).layout = None
        return False

    def _bias_ignored(self, spec: Spec, c: Config, reply: dict[str, Any]) -> None:
        if c.get("bias", True) or "bias" not in reply.get("params", []) or reply.get("bias_arg", "flag") != "flag":
            return
        if any(f.block == spec.name and f.diagnosis == "argument ignored: bias" for f in self.findings):
            return
        message = "built with bias=False, the block still has a bias"
        self.matrix.add(
            Row(spec.name, "contract", "contract", c, FAIL, message=message, diagnosis="argument ignored: bias")
        )
        finding = Finding(spec.name, "contract", describe(c), message, "argument ignored: bias", "bias")
        finding.course = False  # the course network keeps its biases
        self.findings.append(finding)

    def _uninitialised(self, spec: Spec, c: Config, reply: dict[str, Any], seen: set[str]) -> set[str]:
        """Gradient buffers that hold something before any backward (``torch.empty``): a finding;
        the worker zeroes them, so the checks go on."""
        dirty = {k for k, g in reply.get("grads_initial", {}).items() if g is not None and bool(g.ne(0).any())}
        for k in sorted(dirty - seen):
            message = f"the gradient of {k} is not zero before the first backward"
            q = f"gradient of {k}"
            self.matrix.add(Row(spec.name, "parameters", q, c, FAIL, message=message, diagnosis="not initialised"))
            self.findings.append(Finding(spec.name, q, describe(c), message, "not initialised", "any", course=True))
        return dirty

    # from failing rows to findings ----------------------------------------------------------
    def analyse(self, spec: Spec) -> None:
        """Failures grouped by quantity and kind, then by the feature they need: each group one
        finding, so a crash at bias=False never hides a wrong gradient at stride 2."""
        for q in LAYER_QUANTITIES:
            kinds: dict[str, list[Row]] = {}
            for r in self.matrix.failing(spec.name, q):
                kinds.setdefault(r.kind, []).append(r)
            for kind, group in kinds.items():
                self._groups(spec, q, kind, group)

    def _groups(self, spec: Spec, q: str, kind: str, rows: list[Row]) -> None:
        remaining, found = list(rows), dict[str, Finding]()
        for _ in range(GROUPS_PER_KIND):
            if not remaining:
                return
            first = remaining[0]
            if kind in (TIMEOUT, CRASH, INVALID):  # each probe: a limit or a restart; said where it happened
                finding = Finding(
                    spec.name, q, describe(first.config), first.message, kind, "any", count=len(remaining)
                )
                finding.course = on_course(first.config) or None
                self.findings.append(finding)
                return
            shrunk = self._shrink(spec, first.config, q, kind)
            feature, passes_at = self._nearest_passing(spec, shrunk, q, remaining)
            explained = [r for r in remaining if r is first or has(feature, r.config)]
            remaining = [r for r in remaining if r not in explained]
            if feature in found:  # the same cause reached from another configuration
                found[feature].count += len(explained)
            else:
                found[feature] = self._finding(spec, q, kind, first.config, shrunk, feature, passes_at, len(explained))
            if feature == "any":
                return

    def _shrink(self, spec: Spec, c: Config, q: str, kind: str) -> Config:
        """Greedy: each argument toward its smallest value while ``q`` fails the same way."""
        st = self._state(spec.name)
        for key, values in spec.shrink.items():
            if key not in c:
                continue
            simpler = values[: values.index(c[key])] if c[key] in values else values
            for value in simpler:  # simplest first; never toward a larger value
                candidate = st.adjust({**c, key: value})
                if spec.valid(candidate) and self.kind(spec, candidate, q) == kind:
                    c = candidate
                    break
        return c

    def _nearest_passing(self, spec: Spec, c: Config, q: str, rows: list[Row]) -> tuple[str, str | None]:
        """The feature whose removal makes ``c`` pass; of several, the one most of the failing
        ``rows`` have (the most specific first on a tie)."""
        st = self._state(spec.name)
        passing = []
        for feature, change in features(c):
            candidate = st.adjust({**c, **change})
            # passing on several draws: on tiny inputs a wrong mask can agree with the right one by chance
            if spec.valid(candidate) and all(self.kind(spec, candidate, q, s) == PASS for s in range(DRAWS)):
                passing.append((feature, ", ".join(f"{k}={v}" for k, v in change.items())))
        if not passing:
            return "any", None
        return max(passing, key=lambda p: sum(has(p[0], r.config) for r in rows))

    def _affects_course(self, spec: Spec, c: Config, q: str, kind: str) -> bool:
        if on_course(c):
            return True
        for nearest in course_versions(c):
            nearest = self._state(spec.name).adjust(nearest)
            if spec.valid(nearest) and self.kind(spec, nearest, q) == kind:
                return True
        return False

    def _finding(
        self, spec: Spec, q: str, kind: str, first: Config, c: Config, feature: str, passes_at: str | None, count: int
    ) -> Finding:
        reply, ref, _ = self.run(spec, c)
        row = next((r for r in self.rows(spec, c, reply, ref, PROBE) if r.quantity == q), None)
        if row is None or row.outcome == PASS:  # flaky: the rerun passes or refuses (a finding still)
            row = Row(spec.name, COLUMN_OF[q], q, c, UNSUPPORTED, message=str(reply.get("unsupported", "passed")))
            kind = UNSUPPORTED
        course = self._affects_course(spec, c, q, kind)
        finding = Finding(spec.name, q, describe(c), row.message, None, feature, passes_at, where=row.where)
        finding.course, finding.count = course, count
        st = self._state(spec.name)
        finding.setup = {
            "config": c,
            "dtype": str(st.dtype).removeprefix("torch."),
            "seed": self.seed,
            "layout": st.layout,
        }
        if row.outcome == FAIL:
            finding.error, finding.tolerance = row.error, row.tolerance
            self._picture(spec, q, first, finding)
            finding.diagnosis = self._steady_diagnosis(spec, q, first) or self._steady_diagnosis(spec, q, c)
        else:
            finding.diagnosis = {RAISED: "error", TIMEOUT: "timeout", CRASH: "crash"}.get(row.outcome, row.outcome)
        self.findings.append(finding)
        return finding

    def _picture(self, spec: Spec, q: str, c: Config, finding: Finding) -> None:
        """The error at the first failing landmark (batch 2, odd sizes: patterns show there), in
        words now and as pictures when a Markdown report is written."""
        reply, ref, _ = self.run(spec, c)
        actual, expected = _quantity(reply, q), ref[q]
        if actual is None or actual.shape != expected.shape or not actual.is_floating_point():
            return
        k = max(ref["output"].numel(), 1) * 9
        _, tol = error_and_tolerance(actual.to(expected.dtype), expected, k)
        finding.pattern, finding.pictured_at = pattern(actual, expected, tol), describe(c)
        self.pictures.append((finding, actual, expected, tol))

    def _steady_diagnosis(self, spec: Spec, q: str, c: Config) -> str | None:
        labels = {self._diagnosis(spec, q, c, salt) for salt in range(DRAWS)}
        return labels.pop() if len(labels) == 1 else None

    def _diagnosis(self, spec: Spec, q: str, c: Config, salt: int = 0) -> str | None:
        reply, ref, (params, x, g) = self.run(spec, c, salt)
        if "output" not in reply or (q != "output" and "backward_error" in reply):
            return None
        alternatives = {}
        for bug, fn in spec.alternatives.items():
            try:
                alt = spec.reference(c, params, x, None if q == "output" else g, fn).get(q)
            except RuntimeError:  # the bug's configuration is not one torch accepts
                continue
            if alt is not None and compare(alt, ref[q], 1) is not None:
                alternatives[bug] = alt
        actual = _quantity(reply, q)
        return diagnose(actual, ref[q], c, q, alternatives, None, tuple(ref["output"].shape))

    # the contract ---------------------------------------------------------------------------
    def contract(self, spec: Spec) -> None:
        """Accumulation, zero_grad, the input left alone, a second forward at another size, a
        backward before any forward: none needs right numbers, so they run whatever failed."""
        compared = [
            r.config
            for column in ("backward", "forward")
            for r in self.matrix.of(spec.name, column)
            if r.outcome in (PASS, FAIL)
        ]  # where the backward ran, if anywhere: accumulation needs it
        c = compared[0] if compared else None
        if c is None:  # nothing ran: the forward's cells say why
            return
        reply, ref, (params, x, g) = self.run(spec, c, twice=True)
        problems = _contract_problems(reply, x) if "output" in reply else []
        problems += self._second_forward(spec, c, reply)
        if spec.name != "Upsampling" and not self.adapted and self._backward_first_answers(spec, c, params, g):
            problems.append(
                ("backward before any forward returns a result instead of raising", "backward before forward")
            )
        for message, label in problems:
            self.matrix.add(Row(spec.name, "contract", "contract", c, FAIL, message=message, diagnosis=label))
            self.add(Finding(spec.name, "contract", describe(c), message, label, "any", course=True))
        if not problems:
            self.matrix.add(Row(spec.name, "contract", "contract", c, PASS))

    def _second_forward(self, spec: Spec, c: Config, reply: dict[str, Any]) -> list[tuple[str, str]]:
        if "output" not in reply:
            return []
        h, w = c["size"]
        other = spec.input(
            {**c, "size": (h + 2, w + 2)}, torch.Generator().manual_seed(self.seed + 5), self._state(spec.name).dtype
        )
        again, _, _ = self.run(spec, c, warmup=other)
        if "error" in again and again["error"].get("whose") == "target":
            e = again["error"]
            return [(f"after a forward at another image size, it raised {e['type']}: {e['message']}", "second forward")]
        fresh = [reply.get("output"), reply.get("input_grad"), *reply.get("grads", {}).values()]
        after = [again.get("output"), again.get("input_grad"), *again.get("grads", {}).values()]
        if all(a is None or b is None or (a.shape == b.shape and torch.equal(a, b)) for a, b in zip(fresh, after)):
            return []
        return [("after a forward at another image size, results differ from a fresh block's", "second forward")]

    def _backward_first_answers(self, spec: Spec, c: Config, params: dict, g: Tensor) -> bool:
        request = {"op": "backward_first", "block": spec.name, "kwargs": spec.kwargs(c), "defaults": spec.defaults}
        reply = self.child.ask(
            {
                **request,
                "params": params,
                "grad": g,
                "dtype": self._state(spec.name).dtype,
                "layout": self._state(spec.name).layout,
            }
        )
        return reply.get("raised") is False


def _contract_problems(reply: dict[str, Any], x: Tensor) -> list[tuple[str, str]]:
    problems = []
    for name, grad in reply.get("grads", {}).items():
        twice = reply.get("grads_twice", {}).get(name)
        if grad is not None and twice is not None and compare(twice, 2 * grad, 1000) is not None:
            label = "not accumulated" if compare(twice, grad, 1000) is None else "second backward wrong"
            problems.append((f"gradient of {name}: a second backward does not add to it", label))
        zeroed = reply.get("grads_zeroed", {}).get(name)
        if zeroed is not None and bool(zeroed.ne(0).any()):
            problems.append((f"gradient of {name}: zero_grad leaves it non-zero", "zero_grad"))
    if "input_after" in reply and not torch.equal(reply["input_after"], x):
        problems.append(("forward or backward modified its input", "input modified"))
    if "grads" in reply and reply.get("input_grad") is None:
        problems.append(("backward returns nothing", "no input gradient returned"))
    seen: set[str] = set()
    return [p for p in problems if not (p[1] in seen or seen.add(p[1]))]  # type: ignore[func-returns-value]


def _not_float64(reply: dict[str, Any]) -> bool:
    """Results not all float64, or an error that names a dtype (mixing the checker caused)."""
    if "output" in reply:
        results = [reply.get("output"), reply.get("input_grad"), *reply.get("grads", {}).values()]
        return any(isinstance(t, Tensor) and t.dtype != torch.float64 for t in results)
    message = str(reply.get("error", {}).get("message", "")).lower()
    return any(word in message for word in DTYPE_WORDS)


def _abnormal_row(reply: dict[str, Any], row: Any) -> Row:
    if "invalid" in reply:  # a reply that is no answer (a sparse output, a forged field): wrong
        return row("output", FAIL, whose="target", message=str(reply["invalid"]), invalid=True)
    if "timeout" in reply:
        return row("output", TIMEOUT, whose="target", message=f"no answer within {reply['timeout']:g} s")
    if "crash" in reply:
        return row("output", CRASH, whose="target", message=str(reply["crash"]))
    if "error" in reply:
        return _raised(row("output", RAISED), reply["error"], "raised")
    return row("output", NOT_RUN, whose="checker", message="an empty reply")


def _raised(row: Row, e: dict[str, str], verb: str) -> Row:
    """An exception: the target's, or the checker's probing (then not the target's fault)."""
    row.whose = e.get("whose", "target")
    row.where = e.get("where", "")
    if e.get("refusal"):
        row.outcome = UNSUPPORTED
        row.message = f"refused: {e['type']}: {e['message']}"
    elif row.whose == "checker":
        row.outcome = NOT_RUN
        said = e["message"] if e["type"] == "Unsupported" else f"{e['type']}: {e['message']}"
        settles = "" if "adapter" in said else " (an adapter file settles this)"
        row.message = f"the checker could not drive it: {said}{settles}"
    else:
        row.message = f"{verb} {e['type']}: {e['message']}"
    return row


def _compared(row: Row, actual: Tensor | None, expected: Tensor, ref: dict[str, Tensor]) -> Row:
    k = max(ref["output"].numel(), 1) * 9
    problem = compare(actual, expected, k)
    if problem is None:
        return row
    row.outcome, row.message = FAIL, problem
    if (
        isinstance(actual, Tensor)
        and actual.shape == expected.shape
        and actual.is_floating_point()
        and bool(actual.isfinite().all())  # a NaN is said in the message, not as an error of inf
    ):
        row.error, row.tolerance = error_and_tolerance(actual.to(expected.dtype), expected, k)
    return row


def _quantity(reply: dict[str, Any], quantity: str) -> Tensor | None:
    if quantity == "output":
        return reply.get("output")
    if quantity == "input gradient":
        return reply.get("input_grad")
    return reply.get("grads", {}).get(quantity.removeprefix("gradient of "))
