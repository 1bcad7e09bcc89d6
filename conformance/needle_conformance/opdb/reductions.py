"""Records of reductions: summation, max, mean, logsumexp, argmax, softmax, logsoftmax."""

from __future__ import annotations

import numpy as np

from ._core import ErrorInput, OpInfo, SampleInput, T


def reduction_samples(kind: str = "normal", empty: bool = True) -> list[SampleInput]:
    """All axes, one axis, several axes, negative axis, keepdims, 0-d and empty inputs."""
    out = [
        SampleInput((T((3, 4), kind),), desc="all_axes"),
        SampleInput((T((3, 4), kind),), {"axes": 1}, desc="axis1"),
        SampleInput(
            (T((2, 3, 4), kind, "transposed"),), {"axes": (0, 2)}, desc="axes02_transposed"
        ),
        SampleInput(
            (T((2, 3, 4), kind, "stepped"),),
            {"axes": -1, "keepdims": True},
            desc="neg_axis_keepdims_stepped",
        ),
        SampleInput(
            (T((3, 5), kind, "sliced"),),
            {"axes": (0, 1), "keepdims": True},
            desc="keepdims_all_sliced",
        ),
        # a broadcast view repeats values: ties, where max has no derivative
        SampleInput(
            (T((4, 3), kind, "broadcast"),),
            {"axes": 0},
            desc="broadcast_view",
            grad=kind != "distinct",
        ),
        SampleInput((T((), kind),), desc="0d"),
        SampleInput((T((0, 3), kind),), {"axes": 1}, desc="empty_kept"),
    ]
    if empty:
        out.append(SampleInput((T((0, 3), kind),), {"axes": 0}, desc="empty_reduced"))
    return out


def axes_errors(name: str, zero_size: bool = False) -> list[ErrorInput]:
    out = [
        ErrorInput(
            SampleInput((T((3, 4)),), {"axes": 2}, desc="axis_out_of_range"),
            ValueError,
            r"out of range",
        ),
        ErrorInput(
            SampleInput((T((3, 4)),), {"axes": (1, 1)}, desc="repeated_axis"),
            ValueError,
            r"repeated",
        ),
    ]
    if zero_size:
        out.append(
            ErrorInput(
                SampleInput((T((0, 3)),), {"axes": 0}, desc="zero_size"), ValueError, r"zero-size"
            )
        )
    return out


def _sum(x, axes=None, keepdims=False):
    return np.sum(x, axis=axes, keepdims=keepdims)


def _max(x, axes=None, keepdims=False):
    return np.max(x, axis=axes, keepdims=keepdims)


def _mean(x, axes=None, keepdims=False):
    return np.mean(x, axis=axes, keepdims=keepdims)


def _logsumexp(x, axes=None, keepdims=False):
    with np.errstate(all="ignore"):
        if x.size == 0:
            return np.log(np.sum(np.exp(x), axis=axes, keepdims=keepdims))
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes) if axes is not None else out.reshape(())


def _logsumexp_samples() -> list[SampleInput]:
    return [
        *reduction_samples("normal"),
        SampleInput((T((3, 4), "large"),), {"axes": 1}, desc="large_values_stable"),
        SampleInput((T((2, 5), "large", "transposed"),), desc="large_all_axes"),
        # views whose buffer is larger than the view: the fused kernel must see the view
        SampleInput((T((2, 5), layout="leading"),), {"axes": 1}, desc="last_axis_leading"),
        SampleInput((T((2, 5), layout="split"),), {"axes": -1}, desc="last_axis_split"),
        SampleInput((T((3, 4), layout="stepped"),), {"axes": 1}, desc="last_axis_stepped"),
        SampleInput((T((4, 3), layout="transposed"),), {"axes": 1}, desc="last_axis_transposed"),
        SampleInput(
            (T((3, 4), layout="broadcast"),), {"axes": 1}, desc="last_axis_broadcast", grad=False
        ),
    ]


def _argmax(x, axis=None, keepdims=False):
    return np.argmax(x, axis=axis, keepdims=keepdims).astype(np.float64)


def _argmax_samples() -> list[SampleInput]:
    k = "ints"  # many ties: the first maximum wins
    return [
        SampleInput((T((3, 4), k),), desc="flat"),
        SampleInput((T((3, 4), k),), {"axis": 1}, desc="axis1"),
        SampleInput(
            (T((2, 3, 4), k, "transposed"),),
            {"axis": 0, "keepdims": True},
            desc="axis0_keepdims_transposed",
        ),
        SampleInput((T((4, 5), k, "stepped"),), {"axis": -1}, desc="neg_axis_stepped"),
        SampleInput((T((), k),), desc="0d"),
    ]


def _argmax_errors() -> list[ErrorInput]:
    return [
        ErrorInput(SampleInput((T((0, 3)),), desc="empty"), ValueError, r"empty"),
        ErrorInput(
            SampleInput((T((3, 4)),), {"axis": 2}, desc="axis_out_of_range"),
            ValueError,
            r"out of range",
        ),
    ]


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _logsoftmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _last_axis_samples() -> list[SampleInput]:
    return [
        SampleInput((T((3, 5)),), desc="2d"),
        SampleInput((T((4, 3), layout="transposed"),), desc="transposed"),
        SampleInput((T((2, 3, 4), layout="stepped"),), desc="3d_stepped"),
        SampleInput((T((3, 4), "large", "sliced"),), desc="large_values_stable"),
        SampleInput((T((5,)),), desc="1d"),
        SampleInput((T((0, 4)),), desc="empty_rows"),
        SampleInput((T((2, 6), layout="leading"),), desc="leading_slice"),
        SampleInput((T((2, 6), layout="split"),), desc="split_part"),
        SampleInput((T((3, 4), layout="broadcast"),), desc="broadcast", grad=False),
    ]


def _last_axis_errors(name: str):
    def errors() -> list[ErrorInput]:
        return [ErrorInput(SampleInput((T(()),), desc="0d"), ValueError, r"at least 1 dim")]

    return errors


_F32_SUM = {"float32": (1e-4, 1e-5)}

RECORDS = [
    OpInfo(
        "summation", _sum, reduction_samples, lambda: axes_errors("summation"), tolerances=_F32_SUM
    ),
    OpInfo(
        "max",
        _max,
        lambda: reduction_samples("distinct", empty=False),
        lambda: axes_errors("max", zero_size=True),
    ),
    OpInfo(
        "mean",
        _mean,
        lambda: reduction_samples(empty=False),
        lambda: axes_errors("mean", zero_size=True),
        tolerances=_F32_SUM,
    ),
    OpInfo(
        "logsumexp",
        _logsumexp,
        _logsumexp_samples,
        lambda: axes_errors("logsumexp"),
        tolerances=_F32_SUM,
    ),
    OpInfo("argmax", _argmax, _argmax_samples, _argmax_errors, differentiable=False),
    OpInfo(
        "softmax", _softmax, _last_axis_samples, _last_axis_errors("softmax"), tolerances=_F32_SUM
    ),
    OpInfo(
        "logsoftmax",
        _logsoftmax,
        _last_axis_samples,
        _last_axis_errors("logsoftmax"),
        tolerances=_F32_SUM,
    ),
]
