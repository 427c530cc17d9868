"""Make the hostile submissions from ok_handout: each one a correct submission with one twist a
student (or a grader's adversary) might try against the checker: hang or break the reply pipe,
leave processes behind, signal or write into n2n, fool a check with NaN or a wrong step, send
replies the checker cannot use, print escape codes or 100 MB, read the environment, write
outside the scratch folder, or break the course rule. The expected outcomes are in
tests/test_check_hostile.py and tests/test_check_isolation.py. By hand:

python _make_hostile.py [DEST]  # (over)writes DEST/<name>/Miniproject_2/{__init__,model}.py (DEST: here)

Every process a twist starts carries MARKER on its command line, so a test can tell that none
is left.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "ok_handout", "Miniproject_2", "model.py")
MARKER = "n2n-hostile-marker"

IMPORTS_END = "import math\n"
RELU_FORWARD = "class ReLU(Module):\n    def forward(self, x):\n"
RELU_RETURN = "        self.x = x\n        return x * (x > 0)\n"
HELPERS = IMPORTS_END + (
    "import io, os, signal, struct, subprocess, sys, time\n"
    "import torch\n\n\n"
    "def _reply_fd():\n"
    "    # the worker's reply pipe: the one write-only pipe above the standard descriptors\n"
    "    import fcntl, stat\n"
    "    for fd in range(3, 256):\n"
    "        try:\n"
    "            if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:\n"
    "                return fd\n"
    "        except OSError:\n"
    "            pass\n\n\n"
    "def _sleeper(**kwargs):\n"
    "    # marked, with this file's path: a test finds its own leftovers by both\n"
    f"    argv = [sys.executable, '-c', 'import time; time.sleep(120)', {MARKER!r}, os.path.abspath(__file__)]\n"
    "    return subprocess.Popen(argv, **kwargs)\n"
)


def _in_relu(*lines):
    """Lines run at the start of ReLU.forward."""
    return [(IMPORTS_END, HELPERS), (RELU_FORWARD, RELU_FORWARD + "".join(f"        {line}\n" for line in lines))]


def _relu_returns(expression):
    return [(IMPORTS_END, HELPERS), (RELU_RETURN, f"        self.x = x\n        return {expression}\n")]


def _at_import(*lines):
    return [(IMPORTS_END, HELPERS + "\n" + "".join(f"{line}\n" for line in lines))]


HOSTILE = {
    # the reply pipe
    "half_frame_then_sleep": _in_relu("os.write(_reply_fd(), struct.pack('<Q', 1000) + b'abc')", "time.sleep(600)"),
    "half_frame_then_exit": _in_relu("os.write(_reply_fd(), struct.pack('<Q', 1000) + b'abc')", "os._exit(0)"),
    "swapped_reply_pipe": _in_relu("os.dup2(os.open(os.devnull, os.O_WRONLY), _reply_fd())"),
    "closed_reply_pipe": _in_relu("os.close(_reply_fd())", "time.sleep(600)"),
    "forged_reply": _in_relu(
        "b = io.BytesIO()",
        "torch.save({'output': 'forged', 'notes': []}, b)",
        "os.write(_reply_fd(), struct.pack('<Q', len(b.getvalue())) + b.getvalue())",
    ),
    # processes left behind, signals and writes to n2n
    "setsid_grandchild": _at_import("_sleeper(start_new_session=True)"),
    "crash_leaving_children": _in_relu(
        "_sleeper()", "_sleeper(start_new_session=True)", "os.kill(os.getpid(), signal.SIGSEGV)"
    ),
    "stop_parent": _in_relu("os.kill(os.getppid(), signal.SIGSTOP)"),
    "interrupt_parent": _in_relu("os.kill(os.getppid(), signal.SIGINT)", "time.sleep(0.2)"),
    "write_parent_stdout": _in_relu(
        "try:",
        "    with open('/proc/%d/fd/1' % os.getppid(), 'w') as out:",
        "        out.write('FORGED every check passes\\n')",
        "except OSError:",
        "    pass",
    ),
    # replies the checker cannot use
    "meta_output": _relu_returns("(x * (x > 0)).to('meta')"),
    "sparse_output": _relu_returns("(x * (x > 0)).to_sparse()"),
    "quantized_output": _relu_returns("torch.quantize_per_tensor(x.float(), 0.1, 0, torch.qint8)"),
    # text that would fool a person
    "escape_codes": _in_relu("raise RuntimeError('\\x1b[2J\\x1b[H\\x1b[32mevery check passes\\x1b[0m')"),
    "prints_100mb": _at_import(
        "for _ in range(100):", "    sys.stdout.write('x' * (1 << 20) + '\\n')", "print('the end')"
    ),
    "prints_environment": _at_import("print(sorted(os.environ.items()))"),
    "writes_outside": _at_import(
        "import pwd, tempfile",
        "from pathlib import Path",
        "import hashlib",
        "tag = hashlib.sha1(str(Path(__file__).resolve().parents[2]).encode()).hexdigest()[:12]  # whose test",
        "try:",
        "    print('read:', (Path(pwd.getpwuid(os.getuid()).pw_dir) / ('n2n-secret-' + tag)).read_text())",
        "except OSError:",
        "    pass",
        "for path in (Path(__file__).parent / 'pwned-own-folder', Path.home() / 'pwned-home',",
        "             Path(tempfile.gettempdir()) / 'pwned-tmp', Path('pwned-cwd'),",
        "             Path(pwd.getpwuid(os.getuid()).pw_dir) / ('n2n-pwned-' + tag), Path('/tmp') / ('n2n-pwned-' + tag)):",
        "    try:",
        "        path.write_text('pwned')",
        "    except OSError:",
        "        pass",
    ),
    # fooling the checks
    "nan_losses": [
        (
            "            p -= self.lr * g\n\n    def zero_grad",
            "            p -= self.lr * g * float('nan')\n\n    def zero_grad",
        )
    ],
    "sgd_step_20x": [
        ("            p -= self.lr * g\n\n    def zero_grad", "            p -= 20 * self.lr * g\n\n    def zero_grad")
    ],
    "module_says_torch_nn": [
        ("class ReLU(Module):\n", "class ReLU(Module):\n    __module__ = 'torch.nn.modules.activation'\n\n"),
        ("        return grad * (self.x > 0)", "        return grad * (grad > 0)"),
    ],
    # the course rule
    "calls_conv2d": [
        (IMPORTS_END, IMPORTS_END + "import torch\n"),
        (
            "        return out.view(N, self.cout, Ho, Wo)",
            "        out = torch.nn.functional.conv2d(x, self.weight, self.bias, self.s, self.p, self.d)\n"
            "        return out.view(N, self.cout, Ho, Wo)",
        ),
    ],
    "uses_torch_nn_module": _relu_returns("torch.nn.ReLU()(x).requires_grad_()"),
    "uses_autograd": [
        (
            RELU_RETURN,
            "        self.x = x.detach().requires_grad_()\n        self.y = self.x * (self.x > 0)\n        return self.y.detach()\n",
        ),
        (
            "        return grad * (self.x > 0)",
            "        import torch\n        return torch.autograd.grad(self.y, self.x, grad)[0]",
        ),
    ],
}
NAMES = list(HOSTILE)


def outside_paths(dest):
    """Where writes_outside (written under ``dest``) tries to write outside its scratch folder
    (having tried to read :func:`secret_path`), besides its own folder: the real home and /tmp,
    under a name of this ``dest``'s own."""
    home, tag = _home_and_tag(dest)
    return [os.path.join(home, "n2n-pwned-" + tag), os.path.join("/tmp", "n2n-pwned-" + tag)]


def secret_path(dest):
    """The file in the real home that writes_outside (written under ``dest``) tries to read."""
    home, tag = _home_and_tag(dest)
    return os.path.join(home, "n2n-secret-" + tag)


def _home_and_tag(dest):
    import hashlib
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir, hashlib.sha1(os.path.realpath(dest).encode()).hexdigest()[:12]


def write(dest):
    """Write every hostile submission under ``dest``."""
    src = open(SRC).read()
    for name, edits in HOSTILE.items():
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
    print("wrote %d hostile submissions" % len(HOSTILE))


if __name__ == "__main__":
    main()
