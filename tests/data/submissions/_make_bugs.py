"""Make the bug_* and special submissions from ok_handout (textual edits): one line each of
difference, so they are generated rather than kept as copies. The tests write them into a
scratch folder once per session (tests/test_check.py); by hand:

python _make_bugs.py [DEST]  # (over)writes DEST/<name>/Miniproject_2/{__init__,model}.py (DEST: here)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "ok_handout", "Miniproject_2", "model.py")

BUGS = {
    "bug_conv_grads_div_batch": [
        (
            "self.grad_weight += (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape)\n        if self.bias is not None:\n            self.grad_bias += g.sum((0, 2))",
            "self.grad_weight += (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape) / N\n        if self.bias is not None:\n            self.grad_bias += g.sum((0, 2)) / N",
        ),
    ],
    "bug_conv_bias_mean": [
        ("            self.grad_bias += g.sum((0, 2))", "            self.grad_bias += g.mean((0, 2))"),
    ],
    "bug_conv_kernel_reshaped": [
        (
            "wt = self.weight.transpose(0, 1)  # (Cin, Cout, kh, kw)",
            "wt = self.weight.reshape(C, self.cout, kh, kw)  # (Cin, Cout, kh, kw)",
        ),
    ],
    "bug_conv_stride_backward": [
        (
            "Hp, Wp = H + 2 * self.p[0], W + 2 * self.p[1]\n        dxp",
            "Ho, Wo = grad.shape[2], grad.shape[3]\n"
            "        Hp = (Ho - 1) * self.s[0] + self.d[0] * (kh - 1) + 1\n"
            "        Wp = (Wo - 1) * self.s[1] + self.d[1] * (kw - 1) + 1\n"
            "        H, W = Hp - 2 * self.p[0], Wp - 2 * self.p[1]\n        dxp",
        ),
    ],
    "bug_conv_padding_hardcoded": [
        (
            "        ph, pw = self.p\n        return dxp",
            "        ph, pw = (kh - 1) // 2, (kw - 1) // 2\n        return dxp",
        ),
    ],
    "bug_conv_dilation_ignored": [
        (
            "        self.p, self.d = _pair(padding), _pair(dilation)\n        bound = 1 / math.sqrt(in_channels",
            "        self.p, self.d = _pair(padding), (1, 1)\n        bound = 1 / math.sqrt(in_channels",
        ),
    ],
    "bug_conv_nonsquare": [
        ("        return dxp[:, :, ph : ph + H, pw : pw + W]", "        return dxp[:, :, ph : ph + H, pw : pw + H]"),
    ],
    "bug_conv_squeeze": [
        ("        return out.view(N, self.cout, Ho, Wo)", "        return out.view(N, self.cout, Ho, Wo).squeeze(0)"),
    ],
    "bug_relu_mask_upstream": [
        ("        return grad * (self.x > 0)", "        return grad * (grad > 0)"),
    ],
    "bug_relu_returns_mask": [
        ("        return grad * (self.x > 0)", "        return (self.x > 0).to(grad.dtype)"),
    ],
    "bug_sigmoid_at_upstream": [
        (
            "        return grad * self.s * (1 - self.s)",
            "        s = 1 / (1 + (-grad).exp())\n        return grad * s * (1 - s)",
        ),
    ],
    "bug_mse_batch_only": [
        ("        return 2 * self.diff / self.diff.numel()", "        return 2 * self.diff / self.diff.shape[0]"),
    ],
    "bug_mse_chw_only": [
        ("        return 2 * self.diff / self.diff.numel()", "        return 2 * self.diff / self.diff[0].numel()"),
    ],
    "bug_transpose_wgrad_batch": [
        (
            "        self.grad_weight += (x @ gcols.transpose(1, 2)).sum(0).view(self.weight.shape)",
            "        self.grad_weight += (x[0] @ gcols[0].t()).view(self.weight.shape)",
        ),
    ],
    "bug_sequential_backward_none": [
        ("            grad = m.backward(grad)\n        return grad", "            grad = m.backward(grad)"),
    ],
    "bug_empty_grad_buffers": [
        (
            "        self.weight = empty(out_channels, in_channels, *self.k).uniform_(-bound, bound)\n"
            "        self.grad_weight = empty(self.weight.shape).zero_()\n"
            "        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None\n"
            "        self.grad_bias = empty(out_channels).zero_() if bias else None",
            "        self.weight = empty(out_channels, in_channels, *self.k).uniform_(-bound, bound)\n"
            "        self.grad_weight = empty(self.weight.shape)\n"
            "        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None\n"
            "        self.grad_bias = empty(out_channels) if bias else None",
        ),
    ],
    "bug_sgd_no_lr": [
        (
            "        for p, g in self.params:\n            p -= self.lr * g",
            "        for p, g in self.params:\n            p -= g",
        ),
    ],
    "bug_conv_no_accumulate": [
        (
            "self.grad_weight += (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape)\n        if self.bias is not None:\n            self.grad_bias += g.sum((0, 2))",
            "self.grad_weight[:] = (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape)\n        if self.bias is not None:\n            self.grad_bias[:] = g.sum((0, 2))",
        ),
    ],
}

IMPORTS_END = "import math\n"
SPECIAL = {
    "hang_forward": [
        (
            "class ReLU(Module):\n    def forward(self, x):\n",
            "class ReLU(Module):\n    def forward(self, x):\n        while True:\n            pass\n",
        ),
    ],
    "crash_import": [
        (IMPORTS_END, IMPORTS_END + '\nraise RuntimeError("broken on purpose")\n'),
    ],
    "crash_exit": [
        (IMPORTS_END, IMPORTS_END + "import os\n"),
        ("        xp = pad(x, (self.p[1]", "        os._exit(3)\n        xp = pad(x, (self.p[1]"),
    ],
    "side_effects": [
        (
            IMPORTS_END,
            IMPORTS_END + "import torch\n\n"
            "torch.set_grad_enabled(False)\n"
            "torch.set_default_dtype(torch.float64)\n"
            "torch.manual_seed(123)\n"
            "for _ in range(20):\n"
            '    print("hello " * 100)\n',
        ),
    ],
    "noisy_prints": [
        ("        xp = pad(x, (self.p[1]", '        print("Conv2d input", x.shape)\n        xp = pad(x, (self.p[1]'),
        (
            "        self.x = x\n        N, C, H, W = x.shape\n        Ho =",
            '        self.x = x\n        print("TransposeConv2d input", x.shape)\n        N, C, H, W = x.shape\n        Ho =',
        ),
        (
            "        return x.repeat_interleave(self.f",
            '        print("upsampling", x.shape)\n        return x.repeat_interleave(self.f',
        ),
        (
            "        self.x = x\n        return x * (x > 0)",
            '        self.x = x\n        print("relu", x.shape)\n        return x * (x > 0)',
        ),
        (
            "        self.s = 1 / (1 + (-x).exp())",
            '        print("sigmoid", x.shape)\n        self.s = 1 / (1 + (-x).exp())',
        ),
        (
            "        self.diff = prediction - target",
            '        print("loss", prediction.shape, target.shape)\n        self.diff = prediction - target',
        ),
        (
            "        for m in self.modules:\n            x = m.forward(x)",
            '        print("Sequential input", x.shape)\n        for m in self.modules:\n            x = m.forward(x)',
        ),
    ],
}


NAMES = list(BUGS) + list(SPECIAL)


def write(dest):
    """Write every generated submission under ``dest``."""
    src = open(SRC).read()
    for name, edits in list(BUGS.items()) + list(SPECIAL.items()):
        s = src
        for old, new in edits:
            assert s.count(old) == 1, (name, old)
            s = s.replace(old, new)
        d = os.path.join(dest, name, "Miniproject_2")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "__init__.py"), "w").close()
        with open(os.path.join(d, "model.py"), "w") as f:
            f.write(s)


def main():
    write(sys.argv[1] if len(sys.argv) > 1 else HERE)
    print("wrote %d bug and %d special submissions" % (len(BUGS), len(SPECIAL)))


if __name__ == "__main__":
    main()
