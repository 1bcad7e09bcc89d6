"""Records of the fused layers: batch norm, layer norm, softmax cross-entropy."""

from __future__ import annotations

import numpy as np

from ._core import ErrorInput, OpInfo, SampleInput, T

S, E = SampleInput, ErrorInput
EPS = 1e-5


# --- batch norm, layer norm (issue 12, item 3) ----------------------------------------
def _batch_norm_ref(x, w, b, eps=EPS):
    return (x - x.mean(0)) / np.sqrt(x.var(0) + eps) * w + b


def _batch_norm_eval_ref(x, w, b, mean, var, eps=EPS):
    return (x - mean) / np.sqrt(var + eps) * w + b


def _layer_norm_ref(x, w, b, eps=EPS):
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _norm_samples():
    return [
        S((T((6, 3)), T((3,)), T((3,))), desc="2d"),
        S((T((5, 4), layout="transposed"), T((4,), layout="stepped"), T((4,))), desc="transposed"),
        S((T((4, 3), layout="stepped"), T((3,), layout="sliced"), T((3,))), desc="stepped"),
        S((T((3, 5), layout="leading"), T((5,)), T((5,), layout="split")), desc="leading"),
        S((T((4, 2), layout="split"), T((2,)), T((2,))), {"eps": 0.1}, desc="split_eps"),
        S((T((1, 3)), T((3,)), T((3,))), desc="one_row", grad=False),  # var 0: no curvature
    ]


def _norm_errors(name):
    return [
        E(S((T((4, 3)), T((2,)), T((3,))), desc="weight_shape"), ValueError, rf"{name}: weight"),
        E(S((T((3,)), T((3,)), T((3,))), desc="1d"), ValueError, r"2-D"),
    ]


def _batch_norm_eval_samples():
    return [
        S((T((6, 3)), T((3,)), T((3,)), T((3,)), T((3,), "positive")), desc="2d"),
        S(
            (T((4, 3), layout="transposed"), T((3,)), T((3,)), T((3,)), T((3,), "positive")),
            desc="transposed",
        ),
    ]


# --- softmax cross-entropy --------------------------------------------------------------
def _xent_ref(z, labels):
    m = z.max(1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
    return np.asarray((lse - z[np.arange(len(z)), labels.astype(np.int64)]).mean())


def _xent_samples():
    lab = {"kind": "labels", "grad": False}
    return [
        S((T((6, 5)), T((6,), **lab)), desc="2d"),
        S((T((4, 7), "large"), T((4,), **lab)), desc="large_logits"),
        S((T((5, 6), layout="transposed"), T((5,), layout="stepped", **lab)), desc="transposed"),
        S((T((3, 5), layout="leading"), T((3,), layout="split", **lab)), desc="leading"),
    ]


def _xent_errors():
    lab = {"kind": "labels", "grad": False}
    return [
        E(S((T((4, 5)), T((3,), **lab)), desc="label_count"), ValueError, r"labels of shape"),
        E(S((T((5,)), T((5,), **lab)), desc="1d_logits"), ValueError, r"\(n, k\)"),
        E(S((T((4, 3)), T((4,), "ints", grad=False)), desc="bad_labels"), IndexError, r""),
    ]


RECORDS: list[OpInfo] = [
    OpInfo(
        "batch_norm",
        _batch_norm_ref,
        _norm_samples,
        lambda: _norm_errors("batch_norm"),
        grad_tolerance=(1e-5, 1e-6),
    ),
    OpInfo(
        "layer_norm",
        _layer_norm_ref,
        _norm_samples,
        lambda: _norm_errors("layer_norm"),
        grad_tolerance=(1e-5, 1e-6),
    ),
    OpInfo("batch_norm_eval", _batch_norm_eval_ref, _batch_norm_eval_samples),
    OpInfo("softmax_cross_entropy", _xent_ref, _xent_samples, _xent_errors),
]
