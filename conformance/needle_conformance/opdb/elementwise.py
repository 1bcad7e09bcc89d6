"""Records of element-wise ops: arithmetic, unary functions, comparisons, where."""

from __future__ import annotations

import numpy as np

from ._core import ErrorInput, OpInfo, SampleInput, T


def binary_samples(
    ka: str = "normal", kb: str = "normal", scalar: float | None = None, grad: bool = True
) -> list[SampleInput]:
    """Same shape, non-contiguous, broadcast, 0-d and empty pairs (and a number as b)."""

    def s(a: T, b: object, desc: str) -> SampleInput:
        return SampleInput((a, b), desc=desc, grad=grad)

    out = [
        s(T((3, 4), ka), T((3, 4), kb), "same_shape"),
        s(T((2, 3, 4), ka, "transposed"), T((2, 3, 4), kb, "transposed"), "transposed"),
        s(T((3, 4), ka, "stepped"), T((3, 4), kb, "sliced"), "stepped_sliced"),
        s(T((3, 1), ka), T((4,), kb), "broadcast_both"),
        s(T((3, 4), ka, "broadcast"), T((3, 4), kb), "broadcast_view"),
        s(T((), ka), T((), kb), "0d"),
        s(T((), ka), T((2, 3), kb, "stepped"), "0d_with_2d"),
        s(T((0, 3), ka), T((0, 3), kb), "empty"),
    ]
    if scalar is not None:
        out.append(s(T((3, 4), ka, "transposed"), scalar, "number"))
    return out


def binary_errors(name: str, pattern_type: str = "Tensor or a number") -> list[ErrorInput]:
    return [
        ErrorInput(
            SampleInput((T((3, 4)), T((2, 4))), desc="no_broadcast"), ValueError, r"broadcast"
        ),
        ErrorInput(SampleInput((T((3,)), "x"), desc="not_a_tensor"), TypeError, pattern_type),
        # float32 with float64 is no error: it promotes to float64 (docs/course.md)
    ]


def unary_samples(kind: str = "normal", grad: bool = True) -> list[SampleInput]:
    return [
        SampleInput((T((3, 4), kind),), desc="contiguous", grad=grad),
        SampleInput((T((3, 4), kind, "transposed"),), desc="transposed", grad=grad),
        SampleInput((T((2, 3, 2), kind, "stepped"),), desc="stepped", grad=grad),
        SampleInput((T((4, 5), kind, "sliced"),), desc="sliced", grad=grad),
        SampleInput((T((3, 4), kind, "broadcast"),), desc="broadcast_view", grad=grad),
        SampleInput((T((), kind),), desc="0d", grad=grad),
        SampleInput((T((), kind, "stepped"),), desc="0d_offset", grad=grad),
        SampleInput((T((0, 4), kind),), desc="empty", grad=grad),
    ]


def unary_errors(name: str) -> list[ErrorInput]:
    return [
        ErrorInput(
            SampleInput(([1.0, 2.0],), desc="list_not_tensor"), TypeError, rf"{name}.*Tensor"
        )
    ]


def _binary(name: str, ref, ka="normal", kb="normal", scalar=1.5, **kw) -> OpInfo:
    return OpInfo(
        name, ref, lambda: binary_samples(ka, kb, scalar), lambda: binary_errors(name), **kw
    )


def _unary(name: str, ref, kind="normal", **kw) -> OpInfo:
    return OpInfo(name, ref, lambda: unary_samples(kind), lambda: unary_errors(name), **kw)


def _scalar(name: str, ref, kind: str, scalars: tuple[float, ...]) -> OpInfo:
    def samples() -> list[SampleInput]:
        out = []
        for i, c in enumerate(scalars):
            layout = ("contiguous", "transposed", "stepped", "broadcast")[i % 4]
            out.append(SampleInput((T((3, 4), kind, layout), c), desc=f"{layout}_{c:g}"))
        out += [
            SampleInput((T((), kind), scalars[0]), desc="0d"),
            SampleInput((T((0, 2), kind), scalars[0]), desc="empty"),
        ]
        return out

    return OpInfo(name, ref, samples)


def _compare(name: str, fn) -> OpInfo:
    def ref(a, b):
        return fn(a, b).astype(np.float64)

    def samples() -> list[SampleInput]:
        return binary_samples("ints", "ints", scalar=0.0, grad=False)

    return OpInfo(name, ref, samples, lambda: binary_errors(name), differentiable=False)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _where_samples() -> list[SampleInput]:
    c = {"kind": "mask", "grad": False}
    return [
        SampleInput((T((3, 4), **c), T((3, 4)), T((3, 4))), desc="same_shape"),
        SampleInput((T((3, 1), **c), T((3, 4), layout="transposed"), T((4,))), desc="broadcast"),
        SampleInput(
            (T((3, 4), layout="stepped", **c), T((3, 4), layout="sliced"), 0.0), desc="number_b"
        ),
        SampleInput((T((), **c), T((2, 2)), T(())), desc="0d_cond"),
        SampleInput((T((0, 2), **c), T((0, 2)), T((0, 2))), desc="empty"),
        SampleInput(
            (
                T((2, 4), layout="leading", **c),
                T((2, 4), layout="split"),
                T((2, 4), layout="leading"),
            ),
            desc="leading_and_split_views",
        ),
    ]


def _where_errors() -> list[ErrorInput]:
    return [
        ErrorInput(
            SampleInput((T((3, 4), "mask"), T((2, 4)), T((3, 4))), desc="no_broadcast"),
            ValueError,
            r"broadcast",
        ),
        ErrorInput(
            SampleInput(
                (
                    T((3,), "mask", dtype="float32"),
                    T((3,), dtype="float64"),
                    T((3,), dtype="float64"),
                ),
                desc="dtype_mismatch",
            ),
            TypeError,
            r"dtype",
        ),
    ]


def _where_ref(c, a, b):
    return np.where(np.asarray(c) != 0, a, b)


RECORDS = [
    _binary("add", np.add),
    _binary("subtract", np.subtract),
    _binary("multiply", np.multiply),
    _binary("divide", np.divide, kb="nonzero", scalar=-2.5),
    _binary("power", np.power, ka="positive", scalar=1.7),
    _binary("maximum", np.maximum, scalar=0.3),
    _scalar("add_scalar", np.add, "normal", (1.5, -3.0)),
    _scalar("mul_scalar", np.multiply, "normal", (2.5, -0.5, 0.0)),
    _scalar("divide_scalar", np.divide, "normal", (4.0, -0.25)),
    _scalar("power_scalar", np.power, "positive", (2.0, 0.5, -1.5, 3.0)),
    _scalar("rpower_scalar", lambda x, c: np.power(c, x), "normal", (2.5, 0.5)),
    _unary("negate", np.negative),
    _unary("exp", np.exp),
    _unary("log", np.log, "positive"),
    _unary("sqrt", np.sqrt, "positive"),
    _unary("relu", lambda x: np.maximum(x, 0.0), "nonzero"),
    _unary("abs", np.abs, "nonzero"),
    _unary("tanh", np.tanh),
    _unary("sigmoid", _sigmoid),
    _unary("sin", np.sin),
    _unary("cos", np.cos),
    _compare("eq", np.equal),
    _compare("ne", np.not_equal),
    _compare("lt", np.less),
    _compare("le", np.less_equal),
    _compare("gt", np.greater),
    _compare("ge", np.greater_equal),
    OpInfo("where", _where_ref, _where_samples, _where_errors),
]
