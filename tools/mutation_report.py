"""Write reports/mutation.md from a finished ``mutmut run`` (the ``tox -e mutation`` env).

Counts mutants by status, lists every survivor with its diff, and marks the ones listed in
EQUIVALENT (mutants that cannot change behaviour) with the reason. The score is
killed / (all - equivalent - skipped); the target is at least 95%.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from collections import Counter

from mutmut.stats import status_by_exit_code

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Survivors that cannot change behaviour, recognised by (key pattern, pattern of the mutated line),
# each with the reason. Every survivor report lists its diff, so each claim can be checked.
EQUIVALENT: list[tuple[str, str, str]] = [
    (
        r"pool\.xǁMaxPool2dǁforward",
        r"hp = max|wp = max",
        "only enlarges the -inf padded frame: windows never read the extra rows or columns",
    ),
    (
        r"functional\.x_pad",
        r"shape\[\+2:\]",
        "Conv2d pads 4-D tensors only, where [2:] and [-2:] are the same two dimensions",
    ),
    (
        r"functional\.x_nearest_index",
        r"scale >= 0|in_size \+ 1",
        "scale is validated positive, and the source index never reaches in_size: "
        "floor((out - 1) * in / out) < in for every size below 2**24",
    ),
    (
        r"functional\.x_pad__",
        r"shape\[:\+2\]",
        "Conv2d pads 4-D tensors only, where [:2] and [:-2] are the same two dimensions",
    ),
    (
        r"_gemm\.x_(_shift_columns|gather|_patches)__",
        r"None,$|^\+\s*\)$|1\), \)$|1\), None$",
        "as_strided's storage_offset defaults to the input's own offset, which is what was passed",
    ),
    (
        r"_gemm\.x__flipped_fits__",
        r"full = ",
        "the flipped input gradient is planned only when `natural == size`; a wrong `full` in the "
        "test breaks that equality (or is the same value), so another exact strategy runs instead",
    ),
    (
        r"_gemm\.x_conv2d_weight_grad__",
        r"n > 1",
        "chooses between two exact weight-gradient strategies (a batch of 1 takes the gather path)",
    ),
    (
        r"conv\.xǁConv2dǁ__init__",
        r"_engine_padding = ",
        "the engine's fused zero padding is a speed path: without it the input is padded explicitly "
        "with the same result",
    ),
    (
        r"functional\.x_nearest_index",
        r"if exact and out_size == 2 \* in_size|2 / in_size",
        "a fast path: at factor 2 nearest-exact's floor((i + 0.5) / 2) equals nearest's floor(i / 2), "
        "and without it the general path computes the same index",
    ),
    (
        r"functional\.x_nearest_index",
        r"i\.to\(None\)|ratio32\.to\(None\)",
        "exact conversions: the indices are integers below 2**24 and a float32 ratio is exact in float64",
    ),
    (
        r"optim\.xǁOptimizerǁload_state_dict",
        r"self\.params\[int\(i\)\]\[1\]",
        "a parameter's gradient has the parameter's dtype and device",
    ),
    (
        r"optim\.xǁOptimizerǁstate_dict",
        r"isinstance\(v, Tensor\)\) or True",
        "every optimizer state value (step, exp_avg, momentum_buffer, ...) is a tensor",
    ),
    (
        r"pool\.xǁMaxPool2dǁ_tiles__",
        r"whole = None|ho \* kh < h|wo \* kw < w|kh / kw > 1|kh \* kw > 2",
        "only turns the fast path off for some windows that tile: the general path gives the same values "
        "and indices (the windows one step from tiling are tested: tests/test_maxpool2d.py)",
    ),
    (
        r"pool\.xǁMaxPool2dǁforward__",
        r"found = None$",
        "None is the fast path's own answer for a window holding NaN: the general path then gives the "
        "same values and indices",
    ),
    (
        r"_gemm\.x__frame__",
        r"data\[lead - body :\] = 0|data\[lead \+ body :\] = 1",
        "the frame's tail past lead + body is read only by outputs past the last valid one (the last valid "
        "output plus the largest tap offset is lead + body - 1), and those are cropped",
    ),
    (
        r"_gemm\.x__frame__",
        r"ph >= dh \* \(kh - 1\)|pw >= dw \* \(kw - 1\)|ph > dh \* \(kh - 2\)|pw > dw \* \(kw - 2\)",
        "sends padding at the kernel's reach to the stride-phase frame, which computes any padding",
    ),
    (
        r"_winograd\.x__matrices__",
        r"g\.view\(a, 3, 1\) \* g\.view\(a, 1, 1, 3\)",
        "broadcasting prepends the dropped leading 1: (a, 3, 1) against (a, 1, 1, 3) is (1, a, 3, 1) against it",
    ),
    (
        r"_gemm\.x__winograd_fits__",
        r"_flipped_fits\(s, None\)",
        "the flipped-fits test reads only the shape, not the direction",
    ),
    (
        r"_gemm\.x_conv2d_weight_grad__",
        r"size = None|size = \(x\.shape\[3\], x\.shape\[3\]\)|groups, None, \(ho, wo\)",
        "the weight gradient's strategies and tests never read the shape's input size (the output "
        "positions are the gradient's)",
    ),
    (
        r"_gemm\.x__phase_frame__",
        r"3 \* padding",
        "a larger phase frame only adds zero rows or columns past the padding, which no valid output reads",
    ),
    (
        r"functional\.x_repeat2d__",
        r"^\+\s*if ",
        "chooses between two copies with the same values (the channels-last one keeps a channels-last "
        "input's layout, faster for it); the output's memory layout is not part of the contract",
    ),
    (
        r"functional\.x_repeat2d_backward__",
        r"\(out is grad\) or True",
        "copies an input gradient that is already a new tensor: the same values",
    ),
    (
        r"activation\.xǁReLUǁ_derivative__",
        r"\.to\(None\)$",
        "a bool mask times a floating gradient gives the same values and dtype as the float mask",
    ),
    (
        r"_gemm\.x__(gather|scatter|tap)_conv__",
        r"(out|y)\[(:, )?m:\] = 1",
        "the rows past the last valid pixel are never read (the output is cropped to the valid ones)",
    ),
    (
        r"_gemm\.x_strategies__",
        r'TESTS\["grouped or empty"\]\(s, None\)',
        "the grouped-or-empty test reads only the shape, not the direction",
    ),
    (
        r"_gemm\.x__phases__",
        r"padded_last\(x, padding, (None)?\)",
        "at stride 1 the phase frame is the padded size, which is padded_last's default",
    ),
    (
        r"functional\.x_gather2d|upsample\.xǁUpsamplingǁ(forward|backward)",
        r"\(\+2, rows|shape\[:\+2\]|shape\[\+2:\]",
        "gathers 4-D tensors only (Conv2d's padding and Upsampling), where dims 2 and -2 are the same",
    ),
    (
        r"loss\.xǁMSELossǁforward",
        r'check_float_tensor\(input, "MSELoss", \)',
        "the argument name the check reports defaults to 'input'",
    ),
    (
        r"_exact\.x_conv2d__|_winograd\.x__input_tiles__",
        r"None,$|^\+\s*\)\.reshape|\), None\)\)$|1\), \)\)$",
        "as_strided's storage_offset defaults to the input's own offset, which is what was passed",
    ),
    (
        r"_exact\.x_conv_transpose2d__",
        r"part\.shape\[3:\]",
        "skips a shortcut: the general branch (the part copied onto a zero canvas) gives the same values",
    ),
    (
        r"(_exact|functional)\.x_conv_transpose2d__",
        r"bias\.view\(-1, 1, 1\)",
        "a (C, 1, 1) bias broadcasts over (N, C, H, W) as a (1, C, 1, 1) one does",
    ),
    (
        r"_exact\.x__plain_product__",
        r"x\.shape\[1\] == 0:$",
        "an empty batch fails the batch-1 tests that follow anyway",
    ),
    (
        r"_exact\.x_strides_like_channels_last",
        r"low = 1$",
        "the first stride compared is the channels', already known not to be 0: it is below 1 only if it is 0",
    ),
    (
        r"_winograd\.xǁ_Workspaceǁ__init__",
        r"a = lay\.m, lay\.m \+ 3",
        "only enlarges the scratch buffers, of which take() uses the leading part",
    ),
    (
        r"container\.xǁ(Identity|Shift|Add)ǁforward",
        r"_saved = False",
        "backward only checks that forward ran (_saved is not None): False marks it as well as True",
    ),
]


DEVICE_ONLY = (
    "only the device argument changed: on this CPU-only machine the tensor is made on the CPU either way "
    "(tests/test_cuda.py runs these lines where a GPU exists)"
)


def _without_device(line: str) -> str:
    line = re.sub(r"\bdevice=[\w.]+,\s*", "", line[1:])
    line = re.sub(r",?\s*device=[\w.]+", "", line)
    return re.sub(r",\s*\)", ")", line).strip()


def _positional_device(line: str) -> str:
    """The line with a positional device argument (``x.device``, ``device``) or None as ``D``."""
    return re.sub(r"\b(?:[\w.]+\.device|device|None)\b(?!=)", "D", line[1:]).strip()


def equivalent(key: str, change: str) -> str | None:
    """The reason a survivor is equivalent, or None."""
    lines = change.splitlines()
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    if len(removed) == len(added) == 1 and "device" in removed[0]:
        if _without_device(removed[0]) == _without_device(added[0]):
            return DEVICE_ONLY
        if _positional_device(removed[0]) == _positional_device(added[0]):
            return DEVICE_ONLY
    mutated = "\n".join(added)
    for key_pattern, line_pattern, reason in EQUIVALENT:
        if re.search(key_pattern, key) and re.search(line_pattern, mutated):
            return reason
    return None


def results() -> dict[str, str]:
    found = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[key] = status_by_exit_code[code]
    return found


def diff(key: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", key], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def main() -> int:
    status = results()
    counts = Counter(status.values())
    survivors = [k for k, s in status.items() if s == "survived"]
    diffs = {k: diff(k) for k in survivors}
    reasons = {k: equivalent(k, diffs[k]) for k in survivors}
    equivalents = [k for k in survivors if reasons[k]]
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    unchecked = counts.get("not checked", 0)
    considered = killed + len(survivors) - len(equivalents)  # checked, non-equivalent
    score = 100.0 * killed / considered if considered else 0.0
    lines = [
        "# Mutation testing",
        "",
        "Generated by `tox -e mutation` (mutmut over the blocks and optimizers in `impl/`, the",
        "application layer excluded; configuration in `pyproject.toml` `[tool.mutmut]`).",
        "",
        f"- mutants generated: {len(status)}",
        *(f"- {name}: {n}" for name, n in sorted(counts.items())),
        f"- equivalent survivors (cannot change behaviour): {len(equivalents)}",
        f"- **score: {score:.1f}%** of the checked non-equivalent mutants killed (target: at least 95%)",
        *([f"- **the run was stopped before the end: {unchecked} mutants were not checked**"] if unchecked else []),
        "",
        "## Surviving mutants",
        "",
    ]
    if not survivors:
        lines.append("None.")
    for key in sorted(survivors, key=lambda k: (reasons[k] is not None, k)):
        reason = reasons[key]
        lines += [f"### `{key}`" + (" (equivalent)" if reason else ""), ""]
        if reason:
            lines += [f"Equivalent: {reason}.", ""]
        lines += ["```diff", diffs[key], "```", ""]
    out = ROOT / "reports" / "mutation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    print("\n".join(lines[:12]))
    return 0 if score >= 95.0 and not unchecked else 1


if __name__ == "__main__":
    sys.exit(main())
