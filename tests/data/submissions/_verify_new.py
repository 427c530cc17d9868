"""Verify the hand-written student submissions (the ones whose expected.json entry has a "correct"
list) against torch.nn.functional + autograd in float64, without harness/check.

    python _verify_new.py              # every such submission, one verdict line each
    python _verify_new.py NAME -v      # one submission, every measured row printed

Each submission runs in a fresh subprocess (``--one NAME``), driven by its own driver below (or by
its adapter.py), and prints one JSON line ``@@ROWS [...]``: one row per block, quantity and
configuration, with the max abs error against torch (a float), or a string ("unsupported: ...",
"error: ...", "shape ..."), and for some rows the errors against the wrong formulas a diagnosis
names ("alts"). The parent derives, from the rows alone, whether the expected.json entry holds:

- every expected finding fails somewhere; every failing row of its (block, quantity) carries the
  feature of one of that quantity's findings ("any" covers all); a finding with a feature also
  passes at some configuration without it; "course" is true exactly when one of its failing rows
  is a course configuration; a diagnosis with a formula here matches the failing rows;
- every block in "correct" has passing rows and no failing row, except that a composite
  (Sequential, SGD, Adam, course network) may fail where a block it uses has a finding whose
  feature its configuration has;
- no failing row outside the findings' (block, quantity); the unsupported list and the exit
  status agree with the rows and the entry.

Course configurations (the "course" flag): convolutions with kernel 2-3, stride 1-2, padding 0-1,
dilation 1, bias on, output_padding 0, square images; other blocks on square images, MaxPool2d with
the same kernel/stride/padding ranges; SGD without momentum (the course network trains with plain
SGD); Adam never (it is not in the course network); special inputs (exact zeros, |x| >= 100) count
as course inputs, being values rather than configurations. Features beyond the checker's list:
"input = 0", "|input| >= 100", "momentum > 0".
"""

import importlib
import inspect
import json
import os
import random
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 1e-9
sys.path.insert(0, HERE)

# ------------------------------------------------------------------ configurations
# N, cin, cout, H, W, k, s, p, d, bias, output_padding (transposed only)
_CONV = {
    "a": (2, 3, 2, 6, 6, 3, 1, 1, 1, True, 0),  # course base
    "b": (1, 2, 3, 6, 6, 2, 2, 0, 1, True, 0),  # batch 1, kernel 2, stride 2
    "c": (3, 2, 2, 8, 8, 3, 2, 1, 1, True, 0),  # stride 2, padding 1
    "d": (2, 1, 1, 5, 5, 3, 1, 0, 1, True, 0),  # one channel in and out
    "e": (2, 3, 1, 6, 6, 3, 1, 1, 1, True, 0),  # one output channel
    "f": (2, 2, 2, 6, 6, 3, 2, 0, 1, True, 0),  # stride does not divide (6 - 3) % 2
    "g": (1, 2, 2, 6, 6, 2, 1, 1, 1, True, 0),  # padding = kernel - 1
    "h": (1, 1, 1, 4, 4, 2, 1, 0, 1, True, 0),  # batch 1, one channel
    "i": (2, 2, 3, 7, 5, 3, 2, 1, 1, True, 0),  # non-square
    "j": (2, 2, 3, 8, 8, 3, 1, 1, 2, True, 0),  # dilation 2
    "k": (2, 2, 2, 7, 7, 3, 1, 2, 1, True, 0),  # padding 2 (= kernel - 1)
    "l": (2, 2, 3, 6, 6, 3, 1, 1, 1, False, 0),  # bias off
    "m": (2, 2, 3, 5, 5, 3, 2, 1, 1, True, 1),  # output_padding 1 (transposed only)
    "n": (1, 2, 2, 5, 7, 3, 1, 1, 1, True, 0),  # non-square, stride 1
    "o": (2, 2, 3, 6, 6, 1, 1, 0, 1, True, 0),  # kernel 1
    "q": (2, 2, 3, 9, 9, 3, 3, 0, 1, True, 0),  # stride 3
    "r": (2, 2, 3, 7, 9, (2, 3), 1, 0, 1, True, 0),  # a kernel pair
    "s": (2, 2, 3, 6, 6, (1, 3), 2, 1, 1, True, 0),  # a kernel pair, stride 2, padding 1
    "t": (2, 2, 3, 4, 4, 3, 1, 0, 2, True, 1),  # output_padding >= stride (allowed by dilation 2)
    "u": (2, 2, 3, 7, 9, 3, 1, 2, 2, True, 0),  # dilation 2, padding 2
}
CONV_KEYS = ("N", "cin", "cout", "H", "W", "k", "s", "p", "d", "bias", "op")


def kpair(k):
    return tuple(k) if isinstance(k, (tuple, list)) else (k, k)


def _conv_valid(c):
    (kh, kw), s, p, d, op = kpair(c["k"]), c["s"], c["p"], c["d"], c["op"]
    conv = all(n + 2 * p - d * (k - 1) - 1 >= 0 for n, k in ((c["H"], kh), (c["W"], kw)))
    tconv = all((n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1 for n, k in ((c["H"], kh), (c["W"], kw)))
    return conv and tconv and op < max(s, d)


def _random_convs(n, seed):
    """configurations drawn like the checker draws them (kernel pairs, stride 3, padding 2, ...)"""
    rng, out = random.Random(seed), {}
    while len(out) < n:
        c = dict(N=rng.randint(1, 3), cin=rng.randint(1, 4), cout=rng.randint(1, 4), H=rng.randint(3, 9))
        c.update(W=rng.randint(3, 9), k=rng.choice([1, 2, 3, (1, 3), (3, 2)]), s=rng.randint(1, 3))
        c.update(p=rng.randint(0, 2), d=rng.randint(1, 2), bias=rng.random() < 0.8, op=0)
        if max(c["s"], c["d"]) > 1 and rng.random() < 0.3:
            c["op"] = rng.randint(1, max(c["s"], c["d"]) - 1)
        if _conv_valid(c):
            out["r%02d" % len(out)] = dict(c, name="r%02d" % len(out))
    return out


CONV = {n: dict(zip(CONV_KEYS, v), name=n) for n, v in _CONV.items()}
CONV.update(_random_convs(24, 2024))
ELEM = {"e1": (2, 3, 6, 6), "e2": (1, 2, 5, 7), "e3": (3, 1, 4, 4), "e4": (2, 3, 1, 1), "e5": (1, 4, 2, 3)}
UPS = {
    "u1": (2, 3, 4, 4, 2),
    "u2": (1, 2, 3, 5, 2),
    "u3": (2, 1, 3, 3, 3),
    "u4": (1, 2, 2, 3, 3),
    "u5": (2, 1, 1, 1, 2),
}
# N, C, H, W, k, stride, padding, all-negative input
POOL = {
    "m1": (2, 3, 6, 6, 2, 2, 0, False),
    "m2": (2, 2, 7, 7, 3, 2, 1, False),
    "m3": (1, 2, 6, 6, 3, 2, 1, True),
    "m4": (2, 2, 5, 7, 2, 2, 0, False),
    "m5": (2, 2, 6, 6, 3, 1, 0, False),
    "m6": (1, 2, 6, 6, 2, 1, 1, True),
    "m7": (2, 2, 7, 9, 2, 2, 0, "ties"),  # ties inside a window: torch sends the gradient to the first
    "m8": (2, 2, 7, 7, 3, 2, 1, "ties"),  # overlapping windows with ties
    "m9": (1, 1, 2, 2, 2, 2, 0, False),
}
MSES = {"l1": (2, 3, 4, 4), "l2": (1, 1, 3, 3), "l3": (4, 2, 5, 5), "l4": (3, 2, 1, 1)}
LEAVES = ("Conv2d", "ConvTranspose2d", "Upsampling", "MaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "MSE")
ALIASES = {
    "ConvTranspose2d": ("ConvTranspose2d", "TransposeConv2d", "ConvTranspose", "TransposedConv2d"),
    "Upsampling": ("Upsampling", "NearestUpsampling", "NNUpsampling", "NNUpsample", "Upsample"),
    "SGD": ("SGD", "Optimizer"),
}
TORCH_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "output_padding": 0, "bias": True}


class Unsupported(Exception):
    pass


# ------------------------------------------------------------------ drivers
class Driver:
    """The handout contract: torch argument names, param() -> [(p, g), ...] pairs, weight/bias
    attributes in torch's layout, backward(grad) returns the input gradient, MSE.forward(pred,
    target) and MSE.backward(), SGD(pairs, lr, momentum).step() / zero_grad(), Sequential(*blocks).
    A submission's driver overrides what it does differently."""

    names = {}  # block -> class name in the module
    argnames = {}  # torch argument name -> the submission's
    weight, bias = "weight", "bias"
    gweight = gbias = None  # attribute names of the gradients; None: found in param() pairs
    no_bias = ()  # blocks without any bias
    trains_alone = False  # the optimizer runs the whole step, with the submission's own loss

    def __init__(self, mod, folder):
        self.mod, self.folder, self.ns = mod, folder, vars(mod)

    # blocks
    def cls(self, block):
        for n in (self.names.get(block),) + ALIASES.get(block, (block,)):
            if n and n in self.ns:
                return self.ns[n]
        return None

    def build(self, block, kw):
        cls = self.cls(block)
        if cls is None:
            raise Unsupported(block)
        sig = inspect.signature(cls).parameters
        args = {}
        for k, v in kw.items():
            name = self.argnames.get(k, k)
            if name not in sig:
                if k in TORCH_DEFAULTS and v == TORCH_DEFAULTS[k]:
                    continue
                if k == "bias" and not v and not self.has_bias(block):
                    continue
                raise Unsupported("%s %s" % (block, k))
            if isinstance(sig[name].default, tuple) and isinstance(v, int):
                v = (v, v)
            args[name] = v
        return cls(**args)

    def has_bias(self, block):
        return block not in self.no_bias

    def _pairs(self, b):
        return b.param()

    def _find(self, b, t):
        for p, g in self._pairs(b):
            if p is t:
                return g
        raise KeyError("no gradient paired with the parameter")

    def params(self, b):
        """(weight, bias) in torch's layout (copies are fine for reading)."""
        return getattr(b, self.weight), getattr(b, self.bias, None)

    def set_params(self, b, w, bias):
        getattr(b, self.weight).copy_(w)
        if bias is not None:
            getattr(b, self.bias).copy_(bias)

    def grads(self, b):
        w, bias = getattr(b, self.weight), getattr(b, self.bias, None)
        if self.gweight:
            return getattr(b, self.gweight), getattr(b, self.gbias, None) if bias is not None else None
        return self._find(b, w), self._find(b, bias) if bias is not None else None

    def forward(self, b, x):
        return b.forward(x)

    def backward(self, b, x, g):
        r = b.backward(g)
        return r[0] if isinstance(r, tuple) else r

    def zero_grad(self, b):
        for g in self.grads(b):
            if g is not None:
                g.zero_()

    # loss
    def loss(self):
        return self.build("MSE", {})

    def loss_forward(self, l, pred, target):
        return l.forward(pred, target)

    def loss_backward(self, l, pred, target):
        r = l.backward()
        return r[0] if isinstance(r, tuple) else r

    # composites
    def sequential(self, blocks):
        return self.cls("Sequential")(*blocks)

    def opt_kw(self, name, kw):
        """the optimizer class and the keyword arguments it takes (Unsupported for one it lacks)"""
        cls = self.cls(name)
        if cls is None:
            raise Unsupported(name)
        sig = inspect.signature(cls).parameters
        for k in kw:
            if self.argnames.get(k, k) not in sig:
                raise Unsupported("%s %s" % (name, k))
        return cls, {self.argnames.get(k, k): v for k, v in kw.items()}

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq.param(), **kw)

    def step(self, opt, seq):
        opt.step()

    def zero_all(self, opt, seq, blocks):
        opt.zero_grad()

    def train_step(self, opt, seq, loss, convs, x, t, grads_of, own_loss=True):
        """one training step; the loss value and how much the step changed the gradients.
        Without own_loss the loss gradient is torch's, so that an optimizer is judged alone."""
        self.zero_all(opt, seq, convs)
        pred = self.forward(seq, x)
        if own_loss:
            value = float(self.loss_forward(loss, pred, t))
            self.backward(seq, x, self.loss_backward(loss, pred, t))
        else:
            value = float(((pred - t) ** 2).mean())
            self.backward(seq, x, 2 * (pred - t) / pred.numel())
        before = [g.clone() for b in convs for g in grads_of(b)]
        self.step(opt, seq)
        after = [g for b in convs for g in grads_of(b)]
        return value, max([0.0] + [float((a - b).abs().max()) for a, b in zip(after, before)])


def _f(v):
    return v if isinstance(v, float) else float("inf")


# ------------------------------------------------------------------ checks (child)
class Child:
    def __init__(self, name):
        import torch

        self.torch, self.F = torch, torch.nn.functional
        self.name = name
        folder = os.path.join(HERE, name)
        sys.path.insert(0, folder)
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)  # small tensors: threads only add overhead, and runs go two at a time
        mod = importlib.import_module("Miniproject_2.model")
        adapter = os.path.exists(os.path.join(folder, "adapter.py"))
        self.drv = (Adapted if adapter else DRIVERS.get(name, Driver))(mod, folder)
        self.rows = []
        self.unsupported = set()

    # helpers
    def err(self, a, b):
        torch = self.torch
        if a is None:
            return "none returned"
        if isinstance(a, (float, int)):
            a = torch.tensor(float(a))
        if not torch.is_tensor(a):
            return "not a tensor: %s" % type(a).__name__
        if tuple(a.shape) != tuple(b.shape):
            return "shape %s != %s" % (tuple(a.shape), tuple(b.shape))
        if a.numel() == 0:
            return 0.0
        e = float((a.double() - b.double()).abs().max())
        return e if e == e else "nan"

    def row(self, block, quantity, cfg, err, alts=None, uses=None):
        r = {"block": block, "quantity": quantity, "cfg": cfg, "err": err}
        if alts:
            r["alts"] = alts
        if uses:
            r["uses"] = uses
        self.rows.append(r)

    def guard(self, block, quantity, cfg, fn, uses=None):
        try:
            fn()
        except Unsupported as e:
            self.unsupported.add(str(e))
        except Exception as e:  # the submission's error is the measurement
            self.row(block, quantity, cfg, "error: %s: %s" % (type(e).__name__, str(e)[:150]), uses=uses)

    def factor_alts(self, got, ref, factors):
        """errors of got against ref times each named factor"""
        torch = self.torch
        if not torch.is_tensor(got) and not isinstance(got, float):
            return {}
        got = torch.as_tensor(got).double()
        if got.shape != ref.shape:
            return {}
        return {k: self.err(got, ref * f) for k, f in factors.items()}

    # convolutions --------------------------------------------------------------
    def conv_ref(self, block, c, x, w, b):
        F = self.F
        if block == "Conv2d":
            return F.conv2d(x, w, b, c["s"], c["p"], c["d"])
        return F.conv_transpose2d(x, w, b, c["s"], c["p"], c["op"], 1, c["d"])

    def conv_kw(self, block, c):
        kw = dict(in_channels=c["cin"], out_channels=c["cout"], kernel_size=c["k"], stride=c["s"], padding=c["p"])
        kw.update(dilation=c["d"], bias=c["bias"])
        if block == "ConvTranspose2d":
            kw["output_padding"] = c["op"]
        return kw

    def conv_tensors(self, block, c, gen):
        torch = self.torch
        w_shape = (c["cout"], c["cin"]) if block == "Conv2d" else (c["cin"], c["cout"])
        x = torch.randn(c["N"], c["cin"], c["H"], c["W"], generator=gen)
        w = torch.randn(*w_shape, *kpair(c["k"]), generator=gen)
        b = torch.randn(c["cout"], generator=gen) if c["bias"] else None
        return x, w, b

    def conv_block(self, block, c):
        """the submission's block; a block that refuses a kernel pair or an output_padding >=
        stride when it is built does not support it (torch's handout refuses the latter too)"""
        try:
            return self.drv.build(block, self.conv_kw(block, c))
        except (TypeError, ValueError, NotImplementedError):
            refusals = []  # (what it refuses, the same configuration without it)
            if isinstance(c["k"], tuple):
                refusals.append(("kernel pair", dict(c, k=c["k"][0])))
            if block == "ConvTranspose2d" and c["op"] >= c["s"]:
                refusals.append(("output_padding >= stride", dict(c, op=0)))
            if block == "ConvTranspose2d" and c["p"] > c["d"] * (max(kpair(c["k"])) - 1):
                refusals.append(("padding > dilation * (kernel_size - 1)", dict(c, p=0)))
            if not refusals:
                raise
            for what, other in refusals:  # the one whose removal makes the block build
                try:
                    self.drv.build(block, self.conv_kw(block, other))
                except (TypeError, ValueError, NotImplementedError):
                    continue
                raise Unsupported("%s %s" % (block, what)) from None
            raise Unsupported("%s %s" % (block, refusals[0][0])) from None

    def conv_check(self, block, name):
        torch = self.torch
        c = dict(CONV[name])
        if block == "Conv2d" and c["op"]:
            if name in ("m", "t"):  # the transposed convolution's landmarks
                return
            c["op"] = 0
        if not self.drv.has_bias(block):
            c["bias"] = False
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        x, w, bias = self.conv_tensors(block, c, gen)
        blk = self.conv_block(block, c)
        self.drv.set_params(blk, w, bias)
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        br = bias.clone().requires_grad_() if bias is not None else None
        out = self.conv_ref(block, c, xr, wr, br)
        gout = torch.randn(out.shape, generator=gen)
        out.backward(gout)
        got = self.drv.forward(blk, x.clone())
        alts = {}
        if block == "Conv2d" and torch.is_tensor(got) and got.shape == out.shape:
            # a bias that was never meant to be there: the difference is one constant per channel
            diff = (got - out.detach()).transpose(0, 1).reshape(c["cout"], -1)
            alts["argument ignored: bias"] = float((diff - diff[:, :1]).abs().max())
        if block == "ConvTranspose2d" and c["op"]:
            alts["argument ignored: output_padding"] = self.err(
                got, self.F.conv_transpose2d(x, w, bias, c["s"], c["p"], 0, 1, c["d"])
            )
        self.row(block, "output", c, self.err(got, out), alts)
        gx = self.drv.backward(blk, x, gout.clone())
        self.row(block, "input gradient", c, self.err(gx, xr.grad), self.gx_alts(block, c, w, gout, gx))
        gw, gb = self.drv.grads(blk)
        alts = self.factor_alts(gw, wr.grad, {"divided by the batch size": 1 / c["N"]})
        self.row(block, "gradient of weight", c, self.err(gw, wr.grad), alts)
        if bias is not None:
            alts = self.factor_alts(gb, br.grad, {"divided by the batch size": 1 / c["N"]})
            self.row(block, "gradient of bias", c, self.err(gb, br.grad), alts)

    def gx_alts(self, block, c, w, g, gx):
        """the input gradient by the wrong formulas some diagnoses name"""
        torch, F = self.torch, self.F
        if block != "Conv2d":
            return {}
        N, C, H, W, k, s, p, d = (c[n] for n in ("N", "cin", "H", "W", "k", "s", "p", "d"))
        alts = {}
        gcols = g.reshape(N, c["cout"], -1)
        viewed = w.reshape(-1, c["cout"]) @ gcols
        full = F.fold(viewed, (H + 2 * p, W + 2 * p), k, dilation=d, stride=s)
        alts["kernel viewed as (in*k*k, out) instead of transposed"] = self.err(gx, full[:, :, p : p + H, p : p + W])
        # stride ignored: the output gradient scattered at stride 1 into the padded input's frame
        st = F.conv_transpose2d(g, w, None, 1, 0, 0, 1, d)
        frame = torch.zeros(N, C, max(H + 2 * p, st.shape[2]), max(W + 2 * p, st.shape[3]))
        frame[:, :, : st.shape[2], : st.shape[3]] = st
        alts["argument ignored: stride"] = self.err(gx, frame[:, :, p : p + H, p : p + W])
        return alts

    def second(self, blk, fresh, x, g):
        """a block already used at one image size, then at another, against a fresh block of the
        same submission at that size (so only what the first call left behind is measured)"""
        try:
            out, gx = self.drv.forward(fresh, x.clone()), self.drv.backward(fresh, x.clone(), g.clone())
            e1 = self.err(self.drv.forward(blk, x.clone()), out)
            e2 = self.err(self.drv.backward(blk, x.clone(), g.clone()), gx)
        except Exception as e:  # the submission's error is the measurement
            return "error: %s: %s" % (type(e).__name__, str(e)[:150])
        return max(_f(e1), _f(e2)) if isinstance(e1, float) and isinstance(e2, float) else "%s / %s" % (e1, e2)

    def conv_contracts(self, block):
        """accumulation, gradients initialised, input untouched, a second forward at another size"""
        torch = self.torch
        c = dict(CONV["a"])
        if not self.drv.has_bias(block):
            c["bias"] = False
        gen = torch.Generator().manual_seed(7)
        x, w, bias = self.conv_tensors(block, c, gen)
        blk = self.conv_block(block, c)
        init = [g for g in self.drv.grads(blk) if g is not None]
        self.row(block, "contract", dict(c, probe="initialised"), max(float(g.abs().max()) for g in init))
        self.drv.set_params(blk, w, bias)
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        br = bias.clone().requires_grad_() if bias is not None else None
        out = self.conv_ref(block, c, xr, wr, br)
        gout = torch.randn(out.shape, generator=gen)
        out.backward(gout)
        x0 = x.clone()
        firsts = []
        for _ in range(2):
            self.drv.forward(blk, x)
            self.drv.backward(blk, x, gout.clone())
            firsts = firsts or [g.clone() for g in self.drv.grads(blk) if g is not None]
        self.row(block, "contract", dict(c, probe="input modified"), self.err(x, x0))
        # two backward passes give twice the first one's gradients, whatever their values
        seconds = [g for g in self.drv.grads(blk) if g is not None]
        e = max(_f(self.err(b, 2 * a)) for a, b in zip(firsts, seconds))
        once = max(_f(self.err(b, a)) for a, b in zip(firsts, seconds))
        self.row(block, "contract", dict(c, probe="accumulate"), e, {"not accumulated": once})
        # the same block at another image size
        x2 = torch.randn(c["N"], c["cin"], 9, 9, generator=gen)
        g2 = torch.randn(self.conv_ref(block, c, x2, w, bias).shape, generator=gen)
        fresh = self.conv_block(block, c)
        self.drv.set_params(fresh, w, bias)
        self.row(block, "contract", dict(c, probe="second size"), self.second(blk, fresh, x2, g2))

    # elementwise blocks, upsampling, pooling ------------------------------------------
    def simple(self, block, kw, ref, x, cfg, contracts=False):
        torch = self.torch
        blk = self.drv.build(block, kw)
        xr = x.clone().requires_grad_()
        out = ref(xr)
        gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
        out.backward(gout)
        x0 = x.clone()
        got = self.drv.forward(blk, x)
        alts = {}
        self.row(block, "output", cfg, self.err(got, out))
        gx = self.drv.backward(blk, x, gout.clone())
        if block in ("Sigmoid", "Tanh"):
            fn = torch.sigmoid if block == "Sigmoid" else torch.tanh
            gg = gout.clone().requires_grad_()
            fn(gg).sum().backward()
            alts["derivative of the upstream gradient, not multiplied by it"] = self.err(gx, gg.grad)
            xx = x.clone().requires_grad_()
            fn(xx).sum().backward()
            alts["derivative not multiplied by the upstream gradient"] = self.err(gx, xx.grad)
        self.row(block, "input gradient", cfg, self.err(gx, xr.grad), alts)
        if contracts:
            self.row(block, "contract", dict(cfg, probe="input modified"), self.err(x, x0))
            # second call at another size on the same block
            x2 = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(5))
            g2 = torch.randn(ref(x2).shape, generator=torch.Generator().manual_seed(6))
            fresh = self.drv.build(block, kw)
            self.row(block, "contract", dict(cfg, probe="second size"), self.second(blk, fresh, x2, g2))

    def elementwise(self):
        torch, F = self.torch, self.F
        acts = {
            "ReLU": ({}, torch.relu),
            "LeakyReLU": ({"negative_slope": 0.1}, lambda x: F.leaky_relu(x, 0.1)),
            "Sigmoid": ({}, torch.sigmoid),
            "Tanh": ({}, torch.tanh),
        }
        for block, (kw, ref) in acts.items():
            if self.drv.cls(block) is None:
                self.unsupported.add(block)
                continue
            for n, shape in ELEM.items():
                x = torch.randn(*shape, generator=torch.Generator().manual_seed(11))
                cfg = dict(name=n, N=shape[0], cin=shape[1], H=shape[2], W=shape[3])
                self.guard(block, "output", cfg, lambda: self.simple(block, kw, ref, x, cfg, n == "e1"))
            x = torch.randn(*ELEM["e1"], generator=torch.Generator().manual_seed(12))
            cfg = dict(name="e1", N=2, cin=3, H=6, W=6)
            if block in ("ReLU", "LeakyReLU"):
                x[:, :, ::2] = 0.0
                cfg["special"] = "input = 0"
            else:
                x = x.sign() * (100 + 700 * x.abs().clamp(max=1))
                cfg["special"] = "|input| >= 100"
            self.guard(block, "output", cfg, lambda: self.simple(block, kw, ref, x, cfg))

    def upsampling(self):
        torch, F = self.torch, self.F
        for n, (N, C, H, W, f) in UPS.items():
            x = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(13))
            cfg = dict(name=n, N=N, cin=C, H=H, W=W, scale=f)

            def ref(x, f=f):
                return F.interpolate(x, scale_factor=f, mode="nearest")

            self.guard(
                "Upsampling",
                "output",
                cfg,
                lambda: self.simple("Upsampling", {"scale_factor": f}, ref, x, cfg, n == "u1"),
            )

    def maxpool(self):
        torch, F = self.torch, self.F
        for n, (N, C, H, W, k, s, p, neg) in POOL.items():
            x = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(17))
            if neg == "ties":
                x = (x * 1.5).round()
            elif neg:
                x = -x.abs() - 0.1
            cfg = dict(name=n, N=N, cin=C, H=H, W=W, k=k, s=s, p=p)

            def ref(x, k=k, s=s, p=p):
                return F.max_pool2d(x, k, s, p)

            kw = dict(kernel_size=k, stride=s, padding=p)
            self.guard("MaxPool2d", "output", cfg, lambda: self.simple("MaxPool2d", kw, ref, x, cfg, n == "m1"))

    def mse(self):
        torch, F = self.torch, self.F
        for n, shape in MSES.items():
            gen = torch.Generator().manual_seed(19)
            p, t = torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)
            cfg = dict(name=n, N=shape[0], cin=shape[1], H=shape[2], W=shape[3])

            def run(p=p, t=t, cfg=cfg, shape=shape):
                pr = p.clone().requires_grad_()
                ref = F.mse_loss(pr, t)
                ref.backward()
                loss = self.drv.loss()
                v = self.drv.loss_forward(loss, p.clone(), t.clone())
                if torch.is_tensor(v):
                    v = v.reshape(())
                elif isinstance(v, (int, float)):
                    v = torch.tensor(float(v))
                facts = {"not divided by the element count": p.numel(), "sign": -1}
                self.row("MSE", "loss value", cfg, self.err(v, ref.detach()), self.factor_alts(v, ref.detach(), facts))
                g = self.drv.loss_backward(loss, p, t)
                self.row("MSE", "loss gradient", cfg, self.err(g, pr.grad), self.factor_alts(g, pr.grad, facts))

            self.guard("MSE", "loss value", cfg, run)

    # composites -------------------------------------------------------------------------
    def chain(self, kind):
        """(block, kwargs) of each layer; the leaf configurations for the composite's uses"""
        c = lambda i, o, k, s, p: ("Conv2d", dict(in_channels=i, out_channels=o, kernel_size=k, stride=s, padding=p))
        if kind == "S1":
            return [
                c(2, 4, 3, 2, 1),
                ("ReLU", {}),
                ("Upsampling", {"scale_factor": 2}),
                c(4, 3, 3, 1, 1),
                ("Sigmoid", {}),
            ]
        if kind == "S2":
            t = ("ConvTranspose2d", dict(in_channels=3, out_channels=3, kernel_size=2, stride=2, padding=0))
            return [c(2, 3, 2, 2, 0), ("ReLU", {}), t, ("Sigmoid", {})]
        if kind == "S3":
            return [c(2, 3, 3, 1, 1), ("ReLU", {}), c(3, 3, 3, 1, 1)]
        if kind == "S4":  # one output channel per convolution
            return [
                c(2, 1, 3, 1, 1),
                ("ReLU", {}),
                ("Upsampling", {"scale_factor": 2}),
                c(1, 1, 3, 2, 1),
                ("Sigmoid", {}),
            ]
        w = 4  # the course network
        return [
            c(3, w, 3, 2, 1),
            ("ReLU", {}),
            c(w, w, 3, 2, 1),
            ("ReLU", {}),
            ("Upsampling", {"scale_factor": 2}),
            c(w, w, 3, 1, 1),
            ("ReLU", {}),
            ("Upsampling", {"scale_factor": 2}),
            c(w, 3, 3, 1, 1),
            ("Sigmoid", {}),
        ]

    def uses(self, chain, extra):
        out = []
        for name, kw in chain:
            cfg = {"H": 8, "W": 8, "N": 2}
            if "Conv" in name:
                cfg.update(k=kw["kernel_size"], s=kw["stride"], p=kw["padding"], d=1, op=0, bias=True)
                cfg.update(cin=kw["in_channels"], cout=kw["out_channels"])
                if not self.drv.has_bias(name):
                    cfg["bias"] = False
            out.append([name, cfg])
        return out + [[b, {"N": 2, "H": 8, "W": 8}] for b in extra]

    def build_chain(self, chain, weights_after=False, scale=1.0):
        """the submission's blocks with torch's weights loaded, its Sequential of them, and torch's
        modules; the weights are loaded before the Sequential is built, or after (weights_after)"""
        torch = self.torch
        torch.manual_seed(23)
        blocks, tmods = [], []
        for name, kw in chain:
            if "Conv" in name:
                kw = dict(kw, bias=self.drv.has_bias(name))
                tm = (torch.nn.Conv2d if name == "Conv2d" else torch.nn.ConvTranspose2d)(**kw)
                with torch.no_grad():
                    for t in tm.parameters():
                        t.mul_(scale)
                b = self.drv.build(name, kw)
            else:
                b = self.drv.build(name, kw)
                tm = {
                    "ReLU": torch.nn.ReLU(),
                    "Sigmoid": torch.nn.Sigmoid(),
                    "Upsampling": torch.nn.Upsample(scale_factor=2, mode="nearest"),
                }[name]
            blocks.append(b)
            tmods.append(tm)

        def load():
            for b, tm in zip(blocks, tmods):
                if isinstance(tm, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    self.drv.set_params(b, tm.weight.detach(), tm.bias.detach() if tm.bias is not None else None)

        if not weights_after:
            load()
        seq = self.drv.sequential(blocks)
        if weights_after:
            load()
        return blocks, seq, torch.nn.Sequential(*tmods)

    def sequential(self, kind):
        torch, F = self.torch, self.F
        chain = self.chain(kind)
        cfg = {"name": kind, "N": 2, "H": 8, "W": 8}
        blocks, seq, tseq = self.build_chain(chain)
        x = torch.randn(2, chain[0][1]["in_channels"], 8, 8)
        t = torch.rand(tseq(x).shape)
        xr = x.clone().requires_grad_()
        F.mse_loss(tseq(xr), t).backward()
        # the loss gradient comes from torch: Sequential is judged on its own
        pred = self.drv.forward(seq, x)
        pr = tseq(x).detach().requires_grad_()
        F.mse_loss(pr, t).backward()
        e_out = self.err(pred, pr.detach())
        gx = self.drv.backward(seq, x, pr.grad.clone())
        e_gx = self.err(gx, xr.grad)
        mine = [g for (n, _), b in zip(chain, blocks) if "Conv" in n for g in self._grads(b)]
        theirs = [p.grad for p in tseq.parameters()]
        e_g = max((_f(self.err(a, b)) for a, b in zip(mine, theirs)), default=0.0)
        if len(mine) != len(theirs):
            e_g = "count %d != %d" % (len(mine), len(theirs))
        e = max(_f(e_out), _f(e_gx), _f(e_g))
        self.row(
            "Sequential",
            "composition",
            cfg,
            e if e != float("inf") else "%s / %s / %s" % (e_out, e_gx, e_g),
            uses=self.uses(chain, []),
        )

    def _grads(self, b):
        return [g for g in self.drv.grads(b) if g is not None]

    def _params(self, b):
        return [p for p in self.drv.params(b) if p is not None]

    def optim_given(self, name, kw):
        """three steps of the submission's optimizer on gradients written straight into its
        gradient tensors (no forward or backward: the optimizer alone) against torch.optim"""
        torch = self.torch
        chain = self.chain("S3")
        cfg = dict(name="%s given %s" % (name, kw), **kw)
        blocks, seq, tseq = self.build_chain(chain, weights_after=True)
        opt = self.drv.optimizer(name, seq, blocks, dict(kw))
        theirs = list(tseq.parameters())
        topt = getattr(torch.optim, name)(theirs, **kw)
        convs = [b for (n, _), b in zip(chain, blocks) if "Conv" in n]
        gen = torch.Generator().manual_seed(41)
        modified = 0.0
        for _ in range(3):
            given = [torch.randn(p.shape, generator=gen) for p in theirs]
            for g, t in zip([g for b in convs for g in self._grads(b)], given):
                g.copy_(t)
            self.drv.step(opt, seq)
            after = [g for b in convs for g in self._grads(b)]
            modified = max([modified] + [_f(self.err(a, b)) for a, b in zip(after, given)])
            for p, t in zip(theirs, given):
                p.grad = t.clone()
            topt.step()
        mine = [p for b in convs for p in self._params(b)]
        e = max(_f(self.err(a, b.detach())) for a, b in zip(mine, theirs))
        self.row(name, "optimizer step", cfg, e)
        self.row(name, "contract", dict(cfg, probe="gradient modified"), modified)

    def optim(self, name, kw):
        """three training steps of the submission's optimizer on the S3 chain (its Sequential,
        Conv2d and ReLU; torch's loss gradient) against torch.optim"""
        torch, F = self.torch, self.F
        chain = self.chain("S3")
        cfg = dict(name="%s S3 %s" % (name, kw), **kw)
        # the weights go in after the Sequential is built: the optimizer is judged, not that order
        blocks, seq, tseq = self.build_chain(chain, weights_after=True)
        loss = self.drv.loss()
        opt = self.drv.optimizer(name, seq, blocks, dict(kw))
        topt = getattr(torch.optim, name)(tseq.parameters(), **kw)
        gen = torch.Generator().manual_seed(29)
        convs = [b for (n, _), b in zip(chain, blocks) if "Conv" in n]
        for _ in range(3):
            x = torch.randn(2, 2, 8, 8, generator=gen)
            t = torch.rand(tseq(x).shape, generator=gen)
            self.drv.train_step(opt, seq, loss, convs, x, t, self._grads, own_loss=False)
            topt.zero_grad()
            F.mse_loss(tseq(x), t).backward()
            topt.step()
        mine = [p for b in convs for p in self._params(b)]
        theirs = [p.detach() for p in tseq.parameters()]
        e = max(_f(self.err(a, b)) for a, b in zip(mine, theirs))
        self.row(name, "optimizer step", cfg, e, uses=self.optim_uses())

    def optim_uses(self):
        return self.uses(self.chain("S3"), ["Sequential"] + (["MSE"] if self.drv.trains_alone else []))

    def course_network(self):
        torch, F = self.torch, self.F
        chain = self.chain("course")
        blocks, seq, tseq = self.build_chain(chain, scale=0.3)  # the engine's scale: weights times 0.3
        loss = self.drv.loss()
        convs = [b for (n, _), b in zip(chain, blocks) if "Conv" in n]
        opt = self.drv.optimizer("SGD", seq, blocks, {"lr": 0.5})
        topt = torch.optim.SGD(tseq.parameters(), lr=0.5)
        gen = torch.Generator().manual_seed(31)
        e = 0.0
        for _ in range(3):
            x, t = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
            v, _ = self.drv.train_step(opt, seq, loss, convs, x, t, self._grads)
            topt.zero_grad()
            ref = F.mse_loss(tseq(x), t)
            ref.backward()
            topt.step()
            e = max(e, abs(v - ref.item()))
        mine = [p for b in convs for p in self._params(b)]
        e = max([e] + [_f(self.err(a, b.detach())) for a, b in zip(mine, tseq.parameters())])
        self.row(
            "course network", "composition", {"name": "course"}, e, uses=self.uses(chain, ["Sequential", "MSE", "SGD"])
        )

    def run(self):
        for block in ("Conv2d", "ConvTranspose2d"):
            if self.drv.cls(block) is None:
                self.unsupported.add(block)
                continue
            for n in CONV:
                self.guard(block, "output", CONV[n], lambda: self.conv_check(block, n))
            self.guard(block, "contract", dict(CONV["a"], probe="all"), lambda: self.conv_contracts(block))
        self.elementwise()
        if self.drv.cls("Upsampling") is None:
            self.unsupported.add("Upsampling")
        else:
            self.upsampling()
        if self.drv.cls("MaxPool2d") is None:
            self.unsupported.add("MaxPool2d")
        else:
            self.maxpool()
        self.mse()
        for kind in ("S1", "S2", "S3", "S4"):
            if kind == "S2" and self.drv.cls("ConvTranspose2d") is None:
                continue
            cfg = {"name": kind, "N": 2, "H": 8, "W": 8}
            uses = self.uses(self.chain(kind), [])
            self.guard("Sequential", "composition", cfg, lambda: self.sequential(kind), uses)
        for name, kws in (
            ("SGD", ({"lr": 0.05}, {"lr": 1.0}, {"lr": 0.05, "momentum": 0.9})),
            ("Adam", ({"lr": 0.01},)),
        ):
            if self.drv.cls(name) is None:
                self.unsupported.add(name)
                continue
            for kw in kws:
                cfg = dict(name=name, **kw)
                if not self.drv.trains_alone:
                    self.guard(name, "optimizer step", cfg, lambda: self.optim_given(name, kw))
                self.guard(name, "optimizer step", cfg, lambda: self.optim(name, kw), self.optim_uses())
        uses = self.uses(self.chain("course"), ["Sequential", "MSE", "SGD"])
        self.guard("course network", "composition", {"name": "course"}, self.course_network, uses)
        return {"rows": self.rows, "unsupported": sorted(self.unsupported)}


# ------------------------------------------------------------------ judging (parent)
def features(block, cfg):
    f = {"any"}
    g = cfg.get
    if g("N", 1) > 1:
        f.add("batch > 1")
    if g("H") is not None and g("H") != g("W"):
        f.add("non-square image")
    if max(g("cin", 1), g("cout", 1)) > 1:
        f.add("channels > 1")
    if g("special"):
        f.add(g("special"))
    if g("momentum", 0):
        f.add("momentum > 0")
    if "k" in cfg and "d" in cfg:  # convolutions
        (kh, kw), s, p, d = kpair(cfg["k"]), cfg["s"], cfg["p"], cfg["d"]
        f |= {n for n, on in (("stride > 1", s > 1), ("padding > 0", p > 0), ("dilation > 1", d > 1)) if on}
        if cfg["cin"] != cfg["cout"]:
            f.add("in_channels != out_channels")
        if not cfg["bias"]:
            f.add("bias")
        if cfg.get("op"):
            f.add("output_padding > 0")
        if p == d * (kh - 1) == d * (kw - 1):
            f.add("padding = kernel - 1")
        if block == "Conv2d" and any((n + 2 * p - d * (k - 1) - 1) % s for n, k in ((cfg["H"], kh), (cfg["W"], kw))):
            f.add("stride does not divide")
    elif "k" in cfg:  # pooling
        if cfg["s"] > 1:
            f.add("stride > 1")
        if cfg["p"] > 0:
            f.add("padding > 0")
    return f


def course(block, cfg):
    if block == "Adam":
        return False
    if block == "SGD":
        return not cfg.get("momentum")
    if cfg.get("H") is not None and cfg["H"] != cfg["W"]:
        return False
    if "k" in cfg:
        ok = cfg["k"] in (2, 3) and cfg["s"] in (1, 2) and cfg["p"] in (0, 1)
        if "d" in cfg:
            ok = ok and cfg["d"] == 1 and cfg["bias"] and not cfg.get("op")
        return ok
    return True


def failed(row):
    return not (isinstance(row["err"], float) and row["err"] < TOL)


COMPOSITES = ("Sequential", "SGD", "Adam", "course network")


def judge(name, entry, result, verbose=False):
    rows, problems = result["rows"], []
    if verbose:
        for r in rows:
            cfg = r["cfg"]
            tag = (
                cfg.get("name", "")
                + ("/" + cfg["probe"] if "probe" in cfg else "")
                + ("/" + cfg["special"] if "special" in cfg else "")
            )
            alts = {k: v for k, v in r.get("alts", {}).items() if isinstance(v, float) and v < TOL and failed(r)}
            print(
                "   %-16s %-20s %-26s %s%s"
                % (r["block"], r["quantity"], tag, r["err"], "  alts ok: %s" % list(alts) if alts else "")
            )
    findings = entry["findings"]
    by_q = {}
    for f in findings:
        by_q.setdefault((f["block"], f["quantity"]), []).append(f)
    for (block, q), fs in by_q.items():
        group = [r for r in rows if r["block"] == block and r["quantity"] == q]
        fails = [r for r in group if failed(r)]
        if not fails:
            problems.append("%s %s: no failing row" % (block, q))
            continue
        for r in fails:
            feats = features(block, r["cfg"])
            if not any(f["feature"] in feats for f in fs):
                problems.append(
                    "%s %s fails at %s without the features %s"
                    % (block, q, r["cfg"].get("name"), [f["feature"] for f in fs])
                )
        for f in fs:
            mine = [r for r in fails if f["feature"] in features(block, r["cfg"])]
            if not mine:
                problems.append("%s %s: nothing fails with %s" % (block, q, f["feature"]))
                continue
            if f["feature"] != "any" and not any(
                not failed(r) and f["feature"] not in features(block, r["cfg"]) for r in group
            ):
                problems.append("%s %s: no passing row without %s" % (block, q, f["feature"]))
            on_course = any(course(block, r["cfg"]) for r in mine)
            if on_course != f["course"]:
                problems.append("%s %s %s: course is %s" % (block, q, f["feature"], on_course))
            diag = f.get("diagnosis")
            if diag == "wrong shape" and not all(str(r["err"]).startswith("shape") for r in mine):
                problems.append("%s %s: not all failures are a wrong shape" % (block, q))
            if diag and any(diag in r.get("alts", {}) for r in group):
                bad = [
                    r["cfg"].get("name")
                    for r in mine
                    if not (isinstance(r.get("alts", {}).get(diag), float) and r["alts"][diag] < TOL)
                ]
                if bad:
                    problems.append("%s %s: diagnosis %r does not hold at %s" % (block, q, diag, bad))
    explained = lambda r: (
        any(
            f["block"] == b and f["quantity"] != "contract" and f["feature"] in features(b, cfg)
            for b, cfg in r.get("uses", [])
            for f in findings
        )
        or any(f["block"] in dict(r.get("uses", [])) and f["block"] in COMPOSITES for f in findings)
    )
    for r in rows:
        if failed(r) and (r["block"], r["quantity"]) not in by_q:
            if r["block"] in COMPOSITES and explained(r):
                continue
            problems.append(
                "unexpected failure: %s %s at %s: %s" % (r["block"], r["quantity"], r["cfg"].get("name"), r["err"])
            )
    for block in entry["correct"]:
        if any(f["block"] == block for f in findings):
            problems.append("%s is both correct and in the findings" % block)
        if not any(r["block"] == block and not failed(r) for r in rows):
            problems.append("%s: no passing row" % block)
    if sorted(entry.get("unsupported", [])) != result["unsupported"]:
        problems.append("unsupported %s, measured %s" % (sorted(entry.get("unsupported", [])), result["unsupported"]))
    want_exit = 1 if findings else (3 if entry.get("not_checkable") and not entry.get("adapter") else 0)
    if entry["exit"] != want_exit:
        problems.append("exit %s, the findings say %s" % (entry["exit"], want_exit))
    nfail = sum(failed(r) for r in rows)
    return problems, "%d rows, %d failing, %d findings" % (len(rows), nfail, len(findings))


def run_one(name, timeout=120):
    p = subprocess.run(
        [sys.executable, __file__, "--one", name], capture_output=True, text=True, timeout=timeout, cwd=HERE
    )
    lines = [l for l in p.stdout.splitlines() if l.startswith("@@ROWS ")]
    if p.returncode != 0 or not lines:
        return None, "exit %d: %s" % (p.returncode, p.stderr.strip()[-600:])
    return json.loads(lines[-1][7:]), None


def main(argv):
    if argv[:1] == ["--one"]:
        print("@@ROWS " + json.dumps(Child(argv[1]).run()))
        return 0
    expected = json.load(open(os.path.join(HERE, "expected.json")))
    names = [a for a in argv if not a.startswith("-")] or [n for n, e in expected.items() if "correct" in e]
    allok = True
    t0 = time.time()
    with ThreadPoolExecutor(2) as pool:  # one subprocess per submission, two at a time
        results = pool.map(run_one, names)
    for name, (result, error) in zip(names, results):
        if result is None:
            print("%-28s FAIL  %s" % (name, error))
            allok = False
            continue
        problems, summary = judge(name, expected[name], result, "-v" in argv)
        print("%-28s %s  %s" % (name, "FAIL" if problems else "PASS", summary))
        for p in problems:
            print("    " + p)
        allok &= not problems
    print("%d submissions in %.0f s" % (len(names), time.time() - t0))
    return 0 if allok else 1


# ------------------------------------------------------------------ one driver per submission
class FlatParams(Driver):
    """unfold_flat_params: W kept as (out, in*k*k) (ConvTranspose2d: (in, out*k*k)), gradients dW/db,
    param() flat [W, b, dW, db]; "Upsampling" is a learned one, the nearest one is NNUpsampling;
    SGD(model, lr) / Adam(model, lr) walk model.layers."""

    names = {"Upsampling": "NNUpsampling"}

    def params(self, b):
        return b.W.view(b.W.shape[0], -1, b.k, b.k), (b.b if b.use_bias else None)

    def set_params(self, b, w, bias):
        b.W.copy_(w.reshape(b.W.shape))
        if bias is not None:
            b.b.copy_(bias)

    def grads(self, b):
        return b.dW.view(b.W.shape[0], -1, b.k, b.k), (b.db if b.use_bias else None)

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq, **kw)


class Wrappers(Driver):
    """einsum_wrappers: param() -> Parameter objects with .value and .grad; SGD(params, lr, momentum)
    and Adam take those objects; the nearest upsampling is called Upsample."""

    def params(self, b):
        return b.weight.value, (b.bias.value if b.bias is not None else None)

    def set_params(self, b, w, bias):
        b.weight.value.copy_(w)
        if bias is not None:
            b.bias.value.copy_(bias)

    def grads(self, b):
        return b.weight.grad, (b.bias.grad if b.bias is not None else None)


class BlocksOptimizer(Driver):
    """as_strided_blocks: gradients in grad_weight/grad_bias, param() lists only the tensors,
    SGD(list_of_layers, lr, momentum); ConvTranspose2d has no bias at all."""

    gweight, gbias = "grad_weight", "grad_bias"
    no_bias = ("ConvTranspose2d",)

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(blocks, **kw)


class PerFile(Driver):
    """per_file_in_out: Conv2d(input_channel, output_channel, ...) with its kernel stored as
    (in, out, k, k); gradients in weight_grad/bias_grad; convolutions' backward returns
    (dX, dW, db); param() -> (params, grads); the only optimizer is Optimizer(model, lr)."""

    argnames = {"in_channels": "input_channel", "out_channels": "output_channel"}
    gweight, gbias = "weight_grad", "bias_grad"

    def _t(self, b, w):
        return w.transpose(0, 1) if type(b).__name__ == "Conv2d" else w

    def params(self, b):
        return self._t(b, b.weight), b.bias

    def set_params(self, b, w, bias):
        Driver.set_params(self, b, self._t(b, w), bias)

    def grads(self, b):
        return self._t(b, b.weight_grad), b.bias_grad

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq, **kw)


class Adapted(Driver):
    """A submission with an adapter.py beside Miniproject_2: every step goes through it."""

    def __init__(self, mod, folder):
        Driver.__init__(self, mod, folder)
        self.ad = importlib.import_module("adapter")
        blocks = LEAVES + ("Sequential", "SGD", "Adam")
        self.space = {b: self.cls(b) for b in blocks if self.cls(b) is not None}

    def build(self, block, kw):
        if block not in self.space:
            raise Unsupported(block)
        sig = inspect.signature(self.space[block]).parameters
        for k, v in kw.items():
            if k not in sig and not (k in TORCH_DEFAULTS and v == TORCH_DEFAULTS[k]):
                raise Unsupported("%s %s" % (block, k))
        return self.ad.build(block, {k: v for k, v in kw.items() if k in sig}, self.space)

    def params(self, b):
        p = self.ad.get_params(b)
        return p["weight"], p.get("bias")

    def set_params(self, b, w, bias):
        self.ad.set_params(b, {"weight": w, "bias": bias} if bias is not None else {"weight": w})

    def grads(self, b):
        g = self.ad.get_grads(b)
        return g["weight"], g.get("bias")

    def forward(self, b, x):
        return self.ad.forward(b, x)

    def backward(self, b, x, g):
        return self.ad.backward(b, g)

    def zero_grad(self, b):
        self.ad.zero_grad(b)

    def loss_forward(self, l, pred, target):
        return self.ad.forward(l, pred, target)

    def loss_backward(self, l, pred, target):
        return self.ad.backward(l, None)

    def sequential(self, blocks):
        return self.ad.build("Sequential", {"modules": blocks}, self.space)

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return self.ad.make_optimizer(name, blocks, kw, self.space)

    def step(self, opt, seq):
        self.ad.step(opt)

    def zero_all(self, opt, seq, blocks):
        for b in blocks:
            self.ad.zero_grad(b)


class LossFirst(Driver):
    """pixel_loops_lists: bias=None|tensor (an initial value, never absent); gradients in
    dweight/dbias; MSE.forward(y_true, y_pred) returns a float; SGD over per-layer lists."""

    gweight, gbias = "dweight", "dbias"

    def build(self, block, kw):
        if "bias" in kw:
            if not kw["bias"]:
                raise Unsupported("%s bias=False" % block)
            kw = {k: v for k, v in kw.items() if k != "bias"}
        return Driver.build(self, block, kw)

    def loss_forward(self, l, pred, target):
        return l.forward(target, pred)


class _Identity:
    def backward(self, g):
        return g


class BoundLoss(Driver):
    """bound_loss_trainer: Conv2d(nb_channels_in, nb_channels_out, ...), gradients in
    gradWeight/gradBias; MSE(model) whose backward() backpropagates through the model (driven
    here bound to an identity); SGD(model, criterion, lr).step(input, target) is a whole
    training step (a trainer posing as an optimizer)."""

    argnames = {"in_channels": "nb_channels_in", "out_channels": "nb_channels_out"}
    gweight, gbias = "gradWeight", "gradBias"

    def loss(self):
        return self.cls("MSE")(_Identity())

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq, self.cls("MSE")(seq), **kw)

    trains_alone = True

    def train_step(self, opt, seq, loss, convs, x, t, grads_of, own_loss=True):
        return float(opt.step(x, t)), None


class ShortNames(Driver):
    """loops_relu_momentum: the handout contract with the tensors in w/b (gradients from param())."""

    weight, bias = "w", "b"


class UpsamplingIsTconv(Driver):
    """upsampling_is_tconv: the transposed convolution is the class named Upsampling (learned
    upsampling), the nearest one NearestUpsampling; pair defaults stride=(1, 1), padding=(0, 0)."""

    names = {"ConvTranspose2d": "Upsampling", "Upsampling": "NearestUpsampling"}


class CapitalW(Driver):
    """zero_insertion_crop: the handout contract with the tensors in W/b."""

    weight, bias = "W", "b"


class Stateless(Driver):
    """stateless_inplace: backward(input, grad) everywhere (Sequential recomputes its inner inputs),
    MSE.backward(prediction, target); parameterless param() is (None, None)."""

    def backward(self, b, x, g):
        return b.backward(x, g)

    def loss_backward(self, l, pred, target):
        return l.backward(pred, target)


class StepModel(Driver):
    """attrs_kernel_view: Conv2d(ch_in, ch_out, ...), tensors w/b with gradients dL_dw/dL_db;
    SGD(lr, momentum) stepped with step(model) and zeroed with zero_grad(model)."""

    weight, bias, gweight, gbias = "w", "b", "dL_dw", "dL_db"
    argnames = {"in_channels": "ch_in", "out_channels": "ch_out"}

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(**kw)

    def step(self, opt, seq):
        opt.step(seq)

    def zero_all(self, opt, seq, blocks):
        opt.zero_grad(seq)


class DataWrappers(Driver):
    """strided_wrappers_stride: param() -> Param objects with .data and .grad."""

    def params(self, b):
        return b.weight.data, (b.bias.data if b.bias is not None else None)

    def set_params(self, b, w, bias):
        b.weight.data.copy_(w)
        if bias is not None:
            b.bias.data.copy_(bias)

    def grads(self, b):
        return b.weight.grad, (b.bias.grad if b.bias is not None else None)


class TensorsWithGrad(Driver):
    """tensors_grad_inplace: parameters() -> tensors carrying .grad, SGD(parameters, lr)."""

    def grads(self, b):
        return b.weight.grad, (b.bias.grad if b.bias is not None else None)

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq.parameters(), **kw)


class ModelOptimizer(Driver):
    """The handout contract, with the optimizer built from the model: SGD(model, lr)."""

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq, **kw)


class ModelUpdate(Driver):
    """einsum_mse_sum: the handout contract, with SGD(model, lr) stepped by update()."""

    def optimizer(self, name, seq, blocks, kw):
        cls, kw = self.opt_kw(name, kw)
        return cls(seq, **kw)

    def step(self, opt, seq):
        opt.update()


DRIVERS = {
    "unfold_flat_params": FlatParams,
    "einsum_wrappers": Wrappers,
    "as_strided_blocks": BlocksOptimizer,
    "per_file_in_out": PerFile,
    "pixel_loops_lists": LossFirst,
    "bound_loss_trainer": BoundLoss,
    "loops_relu_momentum": ShortNames,
    "einsum_mse_sum": ModelUpdate,
    "per_file_pool_reinit": ModelOptimizer,
    "stateless_inplace": Stateless,
    "attrs_kernel_view": StepModel,
    "strided_wrappers_stride": DataWrappers,
    "tensors_grad_inplace": TensorsWithGrad,
    "zero_insertion_crop": CapitalW,
    "upsampling_is_tconv": UpsamplingIsTconv,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
