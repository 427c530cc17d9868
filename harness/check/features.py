"""The features of a configuration a bug can need ("stride > 1", "batch > 1", ...): each with the
test whether a configuration has it and the one change that takes it away (for "passes at"), and
whether a configuration is one the course network uses."""

from __future__ import annotations

from collections.abc import Callable

from .matrix import Config


def _k(c: Config) -> int:
    k = c.get("kernel_size", 1)
    return k if isinstance(k, int) else max(k)


def _reach(c: Config, axis: int) -> int:
    size = c["size"][axis]
    return size + 2 * c.get("padding", 0) - c.get("dilation", 1) * (_k(c) - 1) - 1


def _channels(c: Config) -> int:
    return max(c.get("in_channels", 1), c.get("out_channels", 1), c.get("channels", 1))


def _square(c: Config) -> Config:
    side = max(c["size"])
    return {"size": (side, side)}


def _divisible(c: Config) -> Config:
    s = c["stride"]
    return {"size": (c["size"][0] - _reach(c, 0) % s, c["size"][1] - _reach(c, 1) % s)}


# (feature, has it, the change that removes it); most specific first
FEATURES: list[tuple[str, Callable[[Config], bool], Callable[[Config], Config]]] = [
    ("batch > 1", lambda c: c.get("batch", 1) > 1, lambda c: {"batch": 1}),
    ("batch 1", lambda c: c.get("batch", 1) == 1, lambda c: {"batch": 2}),
    (
        "in_channels != out_channels",
        lambda c: "in_channels" in c and c["in_channels"] != c["out_channels"],
        lambda c: {"out_channels": c["in_channels"]},
    ),
    (
        "channels > 1",
        lambda c: _channels(c) > 1,
        lambda c: {k: 1 for k in ("in_channels", "out_channels", "channels") if k in c},
    ),
    (
        "stride does not divide",
        lambda c: c.get("stride", 1) > 1 and "out_channels" in c and any(_reach(c, a) % c["stride"] for a in (0, 1)),
        _divisible,
    ),
    ("stride > 1", lambda c: c.get("stride", 1) > 1 and "kernel_size" in c, lambda c: {"stride": 1}),
    ("output_padding > 0", lambda c: c.get("output_padding", 0) > 0, lambda c: {"output_padding": 0}),
    (
        "padding = kernel - 1",  # a transposed convolution's zero frame d(k-1) - p vanishes there
        lambda c: "out_channels" in c and c.get("padding", 0) == c.get("dilation", 1) * (_k(c) - 1),
        lambda c: {"padding": c["padding"] - 1} if c.get("padding", 0) else {"kernel_size": _k(c) + 1},
    ),
    ("padding > 0", lambda c: c.get("padding", 0) > 0, lambda c: {"padding": 0}),
    ("dilation > 1", lambda c: c.get("dilation", 1) > 1, lambda c: {"dilation": 1}),
    ("non-square image", lambda c: c["size"][0] != c["size"][1], _square),
    ("bias", lambda c: c.get("bias") is True and "out_channels" in c, lambda c: {"bias": False}),
    ("bias=False", lambda c: c.get("bias") is False and "out_channels" in c, lambda c: {"bias": True}),
    # the input's own features last: a padding bug that ties also show is a padding bug
    ("zeros or ties in the input", lambda c: bool(c.get("ties")), lambda c: {"ties": False}),
    ("|input| >= 100", lambda c: bool(c.get("large")), lambda c: {"large": False}),
    ("all-negative input", lambda c: bool(c.get("negative")), lambda c: {"negative": False}),
]


def optimizer_feature(failing: dict, passing: list[dict]) -> str:
    """The optimizer argument a failing case adds to the simplest passing one ("momentum > 0")."""
    if not passing:
        return "any"
    extra = [k for k in failing if all(p.get(k) != failing[k] for p in passing)]
    if not extra:
        return "any"
    k, v = extra[-1], failing[extra[-1]]
    return f"{k}={v}" if isinstance(v, (bool, tuple)) else f"{k} > 0"


def features(c: Config) -> list[tuple[str, Config]]:
    """(feature, change) for every feature ``c`` has, most specific first."""
    return [(name, change(c)) for name, has, change in FEATURES if has(c)]


def has(feature: str, c: Config) -> bool:
    """Whether ``c`` has ``feature`` ("any" is had by every configuration)."""
    return feature == "any" or any(name == feature and test(c) for name, test, _ in FEATURES)


def on_course(c: Config) -> bool:
    """Whether the course network uses a configuration like ``c``: kernel 2-3, stride 1-2,
    padding 0-1, dilation 1, bias on, square images, scale 2, any batch and width."""
    k = c.get("kernel_size", 2)
    return (
        (k in (2, 3) or "out_channels" not in c)
        and c.get("stride", 1) in (1, 2)
        and c.get("padding", 0) in (0, 1)
        and c.get("dilation", 1) == 1
        and c.get("bias", True) is True
        and c.get("output_padding", 0) in (0, 1)
        and c.get("scale_factor", 2) == 2
        and c["size"][0] == c["size"][1]
        and not c.get("large")
    )


def course_versions(c: Config) -> list[Config]:
    """Configurations of ``c``'s kind that the course network's range holds (kernel 2-3, stride
    1-2, padding 0-1, bias on, a square image of 8): its own layers' first, then the nearest to
    ``c``, then the rest of the range."""
    if "out_channels" not in c:
        return [course_version(c)]
    base = {**c, "size": (8, 8), "kernel_size": 3, "padding": 1, "dilation": 1, "bias": True}
    if "output_padding" in c:
        own = [{**base, "stride": 2, "output_padding": 1}]
    else:
        own = [{**base, "stride": 2}, {**base, "stride": 1}]
    rest = [
        {
            **base,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            **({"output_padding": s - 1} if "output_padding" in c else {}),
        }
        for k in (2, 3)
        for s in (1, 2)
        for p in (0, 1)
    ]
    return own + [course_version(c)] + rest


def course_version(c: Config) -> Config:
    """The configuration nearest ``c`` that the course network uses."""
    out = {**c, **_square(c)}
    for key, allowed, fallback in (
        ("stride", (1, 2), 2),
        ("padding", (0, 1), 1),
        ("dilation", (1,), 1),
        ("bias", (True,), True),
        ("output_padding", (0, 1), 1),
        ("scale_factor", (2,), 2),
    ):
        if key in out and out[key] not in allowed:
            out[key] = fallback
    if "out_channels" in out and out.get("kernel_size") not in (2, 3):
        out["kernel_size"] = 3
    out.pop("large", None)
    return out
