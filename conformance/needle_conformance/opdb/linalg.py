"""Records of matmul, conv and one_hot."""

from __future__ import annotations

import numpy as np

from ._core import ErrorInput, OpInfo, SampleInput, T

S, E = SampleInput, ErrorInput


def _matmul_samples():
    return [
        S((T((3, 4)), T((4, 5))), desc="2d"),
        S((T((4, 3), layout="transposed"), T((3, 5), layout="transposed")), desc="transposed"),
        S((T((3, 4), layout="stepped"), T((4, 2), layout="sliced")), desc="stepped_sliced"),
        S((T((2, 3, 4)), T((2, 4, 5))), desc="batched"),
        S((T((2, 1, 3, 4)), T((3, 4, 2), layout="transposed")), desc="broadcast_batch"),
        S((T((3, 4)), T((2, 4, 5))), desc="2d_with_3d"),
        S((T((3, 0)), T((0, 2))), desc="empty_inner"),
        S((T((0, 4)), T((4, 2))), desc="empty_rows"),
    ]


def _matmul_errors():
    return [
        E(S((T((3, 4)), T((5, 2))), desc="not_aligned"), ValueError, r"not aligned"),
        E(S((T((4,)), T((4, 2))), desc="1d"), ValueError, r"2-D"),
        # float32 with float64 is no error: it promotes to float64 (docs/course.md)
    ]


def conv_reference(x, w, stride=1, padding=0):
    """NHWC input, (K, K, C_in, C_out) weights: cross-correlation, as in the course."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * (ho - 1) + 1, stride)
            cols = slice(j, j + stride * (wo - 1) + 1, stride)
            patch = x[:, rows, cols]
            out += patch @ w[i, j]
    return out


def _conv_samples():
    return [
        S((T((2, 5, 5, 3)), T((3, 3, 3, 4))), desc="k3_s1_p0"),
        S((T((1, 6, 6, 2)), T((3, 3, 2, 3))), {"stride": 2, "padding": 1}, desc="k3_s2_p1"),
        S(
            (T((2, 4, 4, 2), layout="stepped"), T((1, 1, 2, 3), layout="transposed")),
            desc="k1_stepped_transposed",
        ),
        S((T((1, 4, 5, 1)), T((2, 2, 1, 2))), {"padding": 2}, desc="k2_p2_rect"),
        S((T((2, 5, 5, 2), layout="leading"), T((3, 3, 2, 3), layout="split")), desc="k3_views"),
        S((T((1, 5, 5, 2), layout="split"), T((3, 3, 2, 2), layout="leading")), desc="k3_split_x"),
        S(
            (T((2, 4, 4, 2), layout="broadcast"), T((3, 3, 2, 2))),
            {"padding": 1},
            desc="k3_broadcast_x",
            grad=False,
        ),
    ]


def _conv_errors():
    return [
        E(S((T((1, 5, 5, 3)), T((3, 3, 2, 4))), desc="channel_mismatch"), ValueError, r"channels"),
        E(
            S((T((1, 5, 5, 2)), T((3, 3, 2, 4))), {"stride": 0}, desc="stride0"),
            ValueError,
            r"stride",
        ),
        E(S((T((5, 5, 2)), T((3, 3, 2, 4))), desc="3d_input"), ValueError, r"NHWC"),
        E(
            S((T((1, 2, 2, 1)), T((3, 3, 1, 1))), desc="kernel_too_big"),
            ValueError,
            r"does not fit",
        ),
    ]


def _one_hot_ref(n, labels):
    return np.eye(n)[np.asarray(labels, dtype=np.int64)]


def _one_hot_samples():
    lab = {"kind": "labels", "grad": False}
    return [
        S((5, T((4,), **lab)), desc="1d"),
        S((5, T((2, 3), layout="transposed", **lab)), desc="2d_transposed"),
        S((6, T((3,), layout="stepped", **lab)), desc="stepped"),
        S((5, T((0,), **lab)), desc="empty"),
    ]


def _one_hot_errors():
    lab = {"kind": "labels", "grad": False}
    return [
        E(S((2, T((30,), **lab)), desc="label_too_large"), IndexError, r"\[0, 2\)"),
        E(S((-1, T((3,), **lab)), desc="negative_n"), ValueError, r"non-negative"),
    ]


RECORDS = [
    OpInfo(
        "matmul", np.matmul, _matmul_samples, _matmul_errors, tolerances={"float32": (1e-4, 1e-5)}
    ),
    OpInfo(
        "conv", conv_reference, _conv_samples, _conv_errors, tolerances={"float32": (1e-4, 1e-5)}
    ),
    OpInfo("one_hot", _one_hot_ref, _one_hot_samples, _one_hot_errors, differentiable=False),
]
