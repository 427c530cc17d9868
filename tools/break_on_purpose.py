"""Hand-picked gradient bugs ("break it on purpose"): each is applied to a copy of the
repository and the suite must go red. ``python tools/break_on_purpose.py`` runs all of them
(about a minute each on 2 cores); ``python tools/break_on_purpose.py NAME`` runs one; with
``--check``, ``n2n check`` judges the broken copy instead of the suite.
Complements the mutmut run (``tox -e mutation``) with the bugs people actually write.
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTANTS = {
    "conv: stride dropped in input gradient": (
        "impl/conv.py",
        "g, self.weight, None, self.stride, padding, self.dilation, self.groups, padded.shape[2:]",
        "g, self.weight, None, (1, 1), padding, self.dilation, self.groups, padded.shape[2:]",
    ),
    "conv: bias gradient as a mean": (
        "impl/functional.py",
        "grad_out.sum(dim=(2, 3)).sum(0)",
        "grad_out.mean(dim=(2, 3)).mean(0)",
    ),
    "conv: kernel not flipped for the stride-1 input gradient": (
        "impl/_gemm.py",
        "conv2d(grad, weight.flip(2, 3).transpose(0, 1), None,",
        "conv2d(grad, weight.transpose(0, 1), None,",
    ),
    "conv: padding off by one in input gradient": (
        "impl/conv.py",
        "padding = self._engine_padding or (0, 0)\n        self._grads",
        "padding = tuple(p + 1 for p in (self._engine_padding or (0, 0)))\n        self._grads",
    ),
    "conv: stride dropped in the col2im scatter": (
        "impl/_gemm.py",
        "rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])",
        "rows = slice(i * dilation[0], i * dilation[0] + (ho - 1) + 1, 1)",
    ),
    "conv: dilation dropped in weight gradient": (
        "impl/conv.py",
        "padded, g, self.weight.shape, self.stride, padding, self.dilation, self.groups",
        "padded, g, self.weight.shape, self.stride, padding, (1, 1), self.groups",
    ),
    "conv: reflect pad index off by one": (
        "impl/functional.py",
        "return (size - 1) - ((size - 1) - i.abs()).abs()",
        "return (size - 1) - ((size - 1) - (i.abs() + (i < 0).long())).abs()",
    ),
    "conv: 'same' extra padding on the top": (
        "impl/conv.py",
        "totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2",
        "totals[0] - totals[0] // 2, totals[0] // 2, totals[1] - totals[1] // 2, totals[1] // 2",
    ),
    "transpose: output_padding ignored": (
        "impl/conv.py",
        "size = tuple(m + op for m, op in zip(self._min_size(x), output_padding))",
        "size = tuple(m + 0 * op for m, op in zip(self._min_size(x), output_padding))",
    ),
    "transpose: input gradient not cropped to x": (
        "impl/conv.py",
        "gx = gx[:, :, : x.shape[2], : x.shape[3]]",
        "gx = gx",
    ),
    "transpose: output_size off by one": (
        "impl/conv.py",
        "return (sizes[0] - low[0], sizes[1] - low[1])",
        "return (sizes[0] - low[0], sizes[1] - low[1] + 1)",
    ),
    "upsampling: backward copies instead of summing": (
        "impl/functional.py",
        "g.new_zeros(*shape).index_add_(-2, rows, g)",
        "g.new_zeros(*shape).index_copy_(-2, rows, g)",
    ),
    "upsampling: repeat backward takes one pixel per block": (
        "impl/functional.py",
        "    out = parts[0] + parts[1]\n",
        "    out = parts[0].clone()\n",
    ),
    "upsampling: nearest-exact without +0.5": (
        "impl/functional.py",
        "(i.to(torch.float64) + 0.5)",
        "(i.to(torch.float64) + 0.0)",
    ),
    "maxpool: gradient to the last maximum": ("impl/pool.py", ".max(dim=-1)", ".flip(-1).max(dim=-1)"),
    "relu: gradient passes where the output is 0": (
        "impl/activation.py",
        "return out.ne(0).to(out.dtype)",
        "return out.ge(0).to(out.dtype)",
    ),
    "sigmoid: derivative s(1+s)": (
        "impl/activation.py",
        "return s.addcmul(s, s, value=-1)",
        "return s.addcmul(s, s, value=1)",
    ),
    "tanh: derivative 1 - t": ("impl/activation.py", "return 1 - t * t", "return 1 - t"),
    "mse: mean gradient without 1/n": ("impl/loss.py", "scale = 2.0 / diff.numel() if", "scale = 2.0 if"),
    "sgd: dampening on first step": (
        "impl/optim.py",
        'buf = state["momentum_buffer"] = grad.clone()',
        'buf = state["momentum_buffer"] = grad * (1 - self.dampening)',
    ),
    "sgd: sign flipped": ("impl/optim.py", "p.add_(grad, alpha=-self.lr)", "p.add_(grad, alpha=self.lr)"),
    "adam: no bias correction of the second moment": (
        "impl/optim.py",
        "bias_correction2_sqrt = (1 - beta2**step) ** 0.5",
        "bias_correction2_sqrt = 1.0",
    ),
    "adam: amsgrad max ignored": ("impl/optim.py", "exp_avg_sq = max_sq\n", "pass\n"),
    "module: backward does not accumulate": (
        "impl/conv.py",
        'self._grads["weight"] += F.conv2d_weight_grad(\n            padded',
        'self._grads["weight"][...] = F.conv2d_weight_grad(\n            padded',
    ),
    "concat/add: gradient of a later branch dropped": (
        "impl/container.py",
        "_sum([m.backward(g) for m, g in zip(self.branches, grads)])",
        "_sum([m.backward(g) for m, g in zip(self.branches[:1], grads)])",
    ),
    "concat/add: a sum keeps only its last term": ("impl/container.py", "total = total + t", "total = t"),
    "shift: offset subtracted": (
        "impl/container.py",
        'check_float_tensor(x, "Shift") + self.offset',
        'check_float_tensor(x, "Shift") - self.offset',
    ),
    "rule: impl uses torch.zeros": (
        "impl/_gemm.py",
        "xp = x.new_zeros(c, n, hp, wp)",
        "xp = torch.zeros(c, n, hp, wp, dtype=x.dtype)",
    ),
    "conv: stride phases of rows and columns swapped": (
        "impl/_gemm.py",
        "taps.append((a * stride[1] + b, p * wq + q))",
        "taps.append((b * stride[0] + a, p * wq + q))",
    ),
    "conv: shared-padding frame without its left padding": (
        "impl/_gemm.py",
        "    lead = ph * wf + pw\n",
        "    lead = ph * wf\n",
    ),
    "conv: weight gradient keeps only the last row block": (
        "impl/_gemm.py",
        "g[rows], beta=min(b, 1))",
        "g[rows], beta=0)",
    ),
    # Bugs that fire only at the product's widths and sizes (tests/test_product_shapes.py and the
    # "product shapes" registry family catch them; the small-width cases do not reach them).
    "conv: forward drops the bias above 64 input channels": (
        "impl/_gemm.py",
        "    out = _out_size((h, w), kernel, stride, padding, dilation)\n",
        "    out = _out_size((h, w), kernel, stride, padding, dilation)\n    bias = bias if c <= 64 else None\n",
    ),
    "conv: per-tap loops stop at the real row-block boundary": (
        "impl/_gemm.py",
        "for s in range(0, rows, BLOCK_ROWS)]",
        "for s in range(0, min(rows, 8192), BLOCK_ROWS)]",
    ),
    "conv: scatter reads tap t's outputs at row t (right for one output channel only)": (
        "impl/_gemm.py",
        "head += y[t * out_c : (t + 1) * out_c, offs[t] : offs[t] + m]",
        "head += y[t : t + out_c, offs[t] : offs[t] + m]",
    ),
    "maxpool: offset of the first maximum counted in taps, not pixels": (
        "impl/pool.py",
        "alpha=offsets[t + 1] - offsets[t])",
        "alpha=1)",
    ),
}


def run(name: str, check: bool = False) -> bool:
    """Apply one bug to a copy of the repository and run the block tests (``check``: every check
    of ``n2n check`` on the copy's Miniproject_2 instead); True when red."""
    path, old, new = MUTANTS[name]
    with tempfile.TemporaryDirectory() as tmp:
        dst = pathlib.Path(tmp) / "repo"
        ignore = shutil.ignore_patterns(".git", ".venv", ".tox", "runs", "mutants", "__pycache__", ".hypothesis")
        shutil.copytree(ROOT, dst, ignore=ignore)
        f = dst / path
        text = f.read_text()
        assert text.count(old) == 1, f"{name}: the code to break is no longer in {path}"
        f.write_text(text.replace(old, new))
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "tests",
            "--ignore=tests/test_end_to_end.py",
            "--ignore-glob=tests/test_app_*",
            "--ignore-glob=tests/test_model_*",
        ]
        if check:
            cmd = [sys.executable, "-m", "n2n", "check", str(dst)]
        r = subprocess.run(cmd, cwd=ROOT if check else dst, capture_output=True, text=True)
    failed = [line for line in r.stdout.splitlines() if line.startswith(("FAILED", "- "))][:1]
    print(f"{'RED  ' if r.returncode else 'GREEN'} {name}: {failed[0][:150] if failed else r.stdout.splitlines()[-1]}")
    return r.returncode != 0


if __name__ == "__main__":
    check = "--check" in sys.argv  # the bugs as n2n check sees them, on the copy's Miniproject_2
    names = [a for a in sys.argv[1:] if a != "--check"] or list(MUTANTS)
    sys.exit(0 if all([run(n, check) for n in names]) else 1)
