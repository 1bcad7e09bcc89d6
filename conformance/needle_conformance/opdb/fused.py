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


# --- sequence layers: embedding rows, LSTM and RNN cells, attention -----------------------
def _take_rows_ref(w, ids):
    return w[ids.astype(np.int64)]


def _scatter_add_rows_ref(g, ids, n_rows):
    out = np.zeros((n_rows, g.shape[-1]))
    np.add.at(out, ids.reshape(-1).astype(np.int64), g.reshape(-1, g.shape[-1]))
    return out


def _rows_samples():
    ids = {"kind": "labels", "grad": False}
    return [
        S((T((6, 3)), T((4,), **ids)), desc="1d_ids"),
        S((T((5, 4), layout="transposed"), T((2, 3), layout="stepped", **ids)), desc="transposed"),
        S((T((7, 2), layout="leading"), T((3, 2), layout="split", **ids)), desc="leading"),
    ]


def _scatter_samples():
    ids = {"kind": "labels", "grad": False}
    return [
        S((T((4, 3)), T((4,), **ids), 6), desc="1d_ids"),
        S(
            (T((2, 3, 4), layout="transposed"), T((2, 3), layout="stepped", **ids), 5),
            desc="2d_ids",
        ),
    ]


def _rows_errors(name):
    ids = {"grad": False}
    if name == "take_rows":
        bad = S((T((1, 2)), T((6,), "ints", **ids)), desc="bad_ids")  # ids in -2..2
    else:
        bad = S((T((6, 2)), T((6,), "ints", **ids), 1), desc="bad_ids")
    return [E(bad, IndexError, rf"{name}")]


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_cell_ref(gx, h, c, w):
    z = gx + h @ w
    n = c.shape[1]
    i, f, o = _sig(z[:, :n]), _sig(z[:, n : 2 * n]), _sig(z[:, 3 * n :])
    c_new = f * c + i * np.tanh(z[:, 2 * n : 3 * n])
    return [o * np.tanh(c_new), c_new]


def _lstm_samples():
    return [
        S((T((3, 8)), T((3, 2)), T((3, 2)), T((2, 8))), desc="2d"),
        S(
            (
                T((2, 12), layout="leading"),
                T((2, 3), layout="stepped"),
                T((2, 3), layout="split"),
                T((3, 12), layout="transposed"),
            ),
            desc="views",
        ),
    ]


def _lstm_layer_ref(gx, h0, c0, w):
    h, c, hs = h0, c0, []
    for x in gx:
        h, c = _lstm_cell_ref(x, h, c, w)
        hs.append(h)
    return [np.stack(hs), h, c]


def _lstm_layer_samples():
    return [
        S((T((3, 2, 8)), T((2, 2)), T((2, 2)), T((2, 8))), desc="3_steps"),
        S((T((1, 1, 4)), T((1, 1)), T((1, 1)), T((1, 4))), desc="1_step"),
        S(
            (
                T((2, 2, 12), layout="transposed"),
                T((2, 3), layout="stepped"),
                T((2, 3), layout="split"),
                T((3, 12), layout="transposed"),
            ),
            desc="views",
        ),
    ]


def _lstm_layer_errors():
    return [
        E(
            S((T((0, 2, 8)), T((2, 2)), T((2, 2)), T((2, 8))), desc="no_steps"),
            ValueError,
            r"lstm_layer",
        ),
        E(
            S((T((3, 2, 8)), T((2, 2)), T((2, 2)), T((2, 6))), desc="w_shape"),
            ValueError,
            r"lstm_layer",
        ),
    ]


def _rnn_cell_ref(gx, h, w, nonlinearity="tanh"):
    pre = gx + h @ w
    return np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)


def _rnn_samples():
    return [
        S((T((3, 4)), T((3, 4)), T((4, 4))), desc="tanh"),
        S(
            (T((2, 3), layout="stepped"), T((2, 3)), T((3, 3), layout="transposed")),
            {"nonlinearity": "relu"},
            desc="relu_views",
        ),
    ]


def _rnn_layer_ref(gx, h0, w, nonlinearity="tanh"):
    h, hs = h0, []
    for x in gx:
        h = _rnn_cell_ref(x, h, w, nonlinearity)
        hs.append(h)
    return np.stack(hs)


def _rnn_layer_samples():
    return [
        S((T((3, 2, 4)), T((2, 4)), T((4, 4))), desc="tanh"),
        S(
            (T((2, 3, 3), layout="transposed"), T((3, 3), layout="stepped"), T((3, 3))),
            {"nonlinearity": "relu"},
            desc="relu_views",
        ),
    ]


def _attention_ref(q, k, v, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        t_q, t_k = s.shape[-2:]
        s = s + np.triu(np.ones((t_q, t_k)), k=1 + t_k - t_q) * -1e9
    e = np.exp(s - s.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return [p @ v, p]


def _attention_samples():
    return [
        S((T((2, 3, 4)), T((2, 5, 4)), T((2, 5, 3))), desc="cross"),
        S((T((2, 4, 3)), T((2, 4, 3)), T((2, 4, 2))), {"causal": True}, desc="causal"),
        S(
            (
                T((1, 2, 3, 2), layout="transposed"),
                T((1, 2, 3, 2), layout="stepped"),
                T((1, 2, 3, 2), layout="leading"),
            ),
            {"causal": True},
            desc="causal_views",
        ),
    ]


def _attention_errors():
    return [
        E(S((T((2, 3, 4)), T((2, 3, 5)), T((2, 3, 4))), desc="width"), ValueError, r"attention"),
    ]


RECORDS += [
    OpInfo("take_rows", _take_rows_ref, _rows_samples, lambda: _rows_errors("take_rows")),
    OpInfo(
        "scatter_add_rows",
        _scatter_add_rows_ref,
        _scatter_samples,
        lambda: _rows_errors("scatter_add_rows"),
    ),
    OpInfo("lstm_cell", _lstm_cell_ref, _lstm_samples),
    OpInfo("lstm_layer", _lstm_layer_ref, _lstm_layer_samples, _lstm_layer_errors),
    OpInfo("rnn_cell", _rnn_cell_ref, _rnn_samples),
    OpInfo("rnn_layer", _rnn_layer_ref, _rnn_layer_samples),
    OpInfo("attention", _attention_ref, _attention_samples, _attention_errors),
]
