"""Fused recurrent cells and attention, each as one op.

* :class:`LSTMCell`: ``gates = gx + h @ w_hh`` (``gx`` is the input projection with the
  biases, computed for every time step in one matmul by ``nn.LSTM``), then the element-wise
  gate math in one kernel (``lstm_cell``); its backward pass is the fused op
  :class:`LSTMCellBackward` (kernel ``lstm_cell_backward``), whose own gradient is written
  with Tensor ops, so gradients can be differentiated again.
* :class:`LSTMLayer`: a whole LSTM layer over a sequence in one op (kernels ``lstm_layer``
  and ``lstm_layer_backward``): every step's hidden state and the final state. A plain
  backward runs the fused backward kernel; a backward that records a graph
  (``create_graph=True``) writes the gradient as the per-step composition of
  :class:`LSTMCell` and :class:`LSTMCellBackward` ops, so it can be differentiated again,
  to any order.
* :class:`RNNCell`: ``act(gx + h @ w_hh)`` with its gradient in three Tensor ops;
  :class:`RNNLayer` a whole Elman layer in one op (kernels ``rnn_layer`` and
  ``rnn_layer_backward``), its gradient composed per step when a graph is recorded.
* :class:`Attention`: ``softmax(q k^T * scale + causal mask) (* dropout mask) @ v`` in one
  kernel (``attention_forward``; composed: ``attention_softmax`` and batched products),
  its backward pass the fused op :class:`AttentionBackward` (``attention_backward``),
  whose own gradient is written with Tensor ops; :class:`AttentionProbs` hands out the
  probabilities it computed as a differentiable tensor without recomputing them.

Every kernel is optional: :mod:`needle.backend_ndarray.fused` composes NDArray operations
where a backend lacks it.
"""

from __future__ import annotations

import math
from typing import Any

from ..autograd import (
    Tensor,
    TensorOp,
    TensorTuple,
    TensorTupleOp,
    enable_grad,
    is_grad_enabled,
)
from ..backend_ndarray import NDArray
from ..backend_ndarray import fused as _fused
from ._helpers import check_same_device, check_tensor
from .joining import split, stack
from .reduction import summation
from .shape import broadcast_to, reshape, transpose
from .tuples import make_tuple
from .unary import sigmoid, tanh


# --- LSTM cell ----------------------------------------------------------------------------
def _gate_parts(x: Tensor, h: int) -> tuple[Tensor, ...]:
    """The four (n, h) blocks of an (n, 4h) tensor, in gate order i, f, g, o."""
    parts = split(reshape(x, (x.shape[0], 4, h)), 1)
    return parts[0], parts[1], parts[2], parts[3]


class LSTMCell(TensorTupleOp):
    """``(h', c')`` of one LSTM step from ``gx`` (n, 4h), ``h``, ``c`` (n, h) and ``w_hh``
    (h, 4h), with ``gates = gx + h @ w_hh`` in the order input, forget, cell, output:
    ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``, ``h' = sigmoid(o) tanh(c')``."""

    def __init__(self) -> None:
        self.gates: NDArray | None = None

    def compute(self, gx: NDArray, h: NDArray, c: NDArray, w_hh: NDArray) -> tuple[NDArray, ...]:  # type: ignore[override]
        self.gates = gx + h @ w_hh
        return _fused.lstm_cell_forward(self.gates, c)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple[Tensor, ...]:  # type: ignore[override]
        gx, h, c, w = node.inputs
        t = LSTMCellBackward(self.gates)(gx, h, c, w, out_grad[0], out_grad[1])
        d_gates = t[0]
        return d_gates, d_gates @ transpose(w), t[1], transpose(h) @ d_gates


class LSTMCellBackward(TensorTupleOp):
    """``(d_gates, d_c)`` of :class:`LSTMCell` from its inputs ``(gx, h, c, w_hh)`` and the
    adjoints ``(dh, dc)`` of ``(h', c')``; ``gates`` are the forward pass's (an NDArray, or
    None to recompute them). ``d_gates`` is also the adjoint of ``gx``."""

    def __init__(self, gates: NDArray | None = None) -> None:
        self.gates = gates

    def compute(  # type: ignore[override]
        self, gx: NDArray, h: NDArray, c: NDArray, w: NDArray, dh: NDArray, dc: NDArray
    ) -> tuple[NDArray, ...]:
        gates = self.gates if self.gates is not None else gx + h @ w
        return _fused.lstm_cell_backward(gates, c, dh, dc)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple[Tensor, ...]:  # type: ignore[override]
        # S = <A, d_gates> + <Cp, d_c> is <dh, H> + <dc, C> with (H, C) the forward-mode
        # derivative of (h', c') along (A, Cp); below, its derivatives in closed form.
        gx, h, c, w, dh, dc = node.inputs
        a_g, a_c = out_grad[0], out_grad[1]
        hs = c.shape[1]
        zi, zf, zg, zo = _gate_parts(gx + h @ w, hs)
        ai, af, ag, ao = _gate_parts(a_g, hs)
        i, f, g, o = sigmoid(zi), sigmoid(zf), tanh(zg), sigmoid(zo)
        si, sf, sg, so = i * (1.0 - i), f * (1.0 - f), 1.0 - g * g, o * (1.0 - o)
        t = tanh(f * c + i * g)
        st = 1.0 - t * t
        k = dh * o * st + dc
        cj = sf * af * c + f * a_c + si * ai * g + i * sg * ag  # forward-mode dc'
        hj = so * ao * t + o * st * cj  # forward-mode dh'
        e = st * (dh * ao * so - 2.0 * t * dh * o * cj)  # dS/dc' through t
        d_i = k * (si * (1.0 - 2.0 * i) * ai * g + si * sg * ag) + e * si * g
        d_f = k * (sf * (1.0 - 2.0 * f) * af * c + sf * a_c) + e * sf * c
        d_g = k * (si * ai * sg - 2.0 * i * g * sg * ag) + e * i * sg
        d_o = dh * ao * so * (1.0 - 2.0 * o) * t + cj * dh * so * st
        d_c = k * sf * af + e * f
        d_a = reshape(stack([d_i, d_f, d_g, d_o], 1), (c.shape[0], 4 * hs))
        return d_a, d_a @ transpose(w), d_c, transpose(h) @ d_a, hj, cj


# --- LSTM layer ---------------------------------------------------------------------------
class LSTMLayer(TensorTupleOp):
    """``(hs, h_n, c_n)`` of an LSTM layer over a sequence: inputs ``gx`` (t, n, 4h) (the
    input projection of every step with both biases), the state ``h0``, ``c0`` (n, h) and
    ``w_hh`` (h, 4h); step s is :class:`LSTMCell` on ``(gx[s], h_{s-1}, c_{s-1}, w_hh)``.
    ``hs`` (t, n, h) holds every step's hidden state, ``(h_n, c_n)`` the final state."""

    def __init__(self) -> None:
        self.saved: tuple[NDArray, NDArray, NDArray] | None = None  # hs, cs, gates

    def compute(self, gx: NDArray, h0: NDArray, c0: NDArray, w_hh: NDArray) -> tuple[NDArray, ...]:  # type: ignore[override]
        hs, cs, gates = _fused.lstm_layer_forward(gx, w_hh, h0, c0)
        self.saved = (hs, cs, gates)
        last = hs.shape[0] - 1
        return hs, hs[last], cs[last]

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple[Tensor, ...]:  # type: ignore[override]
        gx, h0, c0, w = node.inputs
        if is_grad_enabled() or self.saved is None:  # recording a graph: composed, any order
            return _lstm_layer_gradient(gx, h0, c0, w, out_grad[0], out_grad[1], out_grad[2])
        hs, cs, gates = self.saved
        dhs, dh_n, dc_n = out_grad.realize_cached_data()
        dgx, dw, dh0, dc0 = _fused.lstm_layer_backward(
            w.realize_cached_data(), h0.realize_cached_data(), c0.realize_cached_data(),
            hs, cs, gates, dhs, dh_n, dc_n,
        )  # fmt: skip
        return tuple(Tensor.make_const(a) for a in (dgx, dh0, dc0, dw))


def _lstm_layer_gradient(
    gx: Tensor, h0: Tensor, c0: Tensor, w: Tensor, dhs: Tensor, dh_n: Tensor, dc_n: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(dgx, dh0, dc0, dw_hh)`` of :class:`LSTMLayer` as the per-step composition: the
    forward states again through :class:`LSTMCell`, then :class:`LSTMCellBackward` step by
    step in reverse (every op here has a gradient, so the result can be differentiated)."""
    xs = split(gx, 0)
    h_prev, c_prev = [h0], [c0]
    for s in range(gx.shape[0] - 1):
        y = LSTMCell()(xs[s], h_prev[-1], c_prev[-1], w)
        h_prev.append(y[0])
        c_prev.append(y[1])
    dys = split(dhs, 0)
    dh, dc, dw = dh_n, dc_n, None
    dgx: list[Tensor] = []
    for s in reversed(range(gx.shape[0])):
        r = LSTMCellBackward()(xs[s], h_prev[s], c_prev[s], w, dys[s] + dh, dc)
        d_z, dc = r[0], r[1]
        dgx.append(d_z)
        dh = d_z @ transpose(w)
        term = transpose(h_prev[s]) @ d_z
        dw = term if dw is None else dw + term
    return stack(dgx[::-1], 0), dh, dc, dw  # type: ignore[return-value]


# --- RNN cell -----------------------------------------------------------------------------
def _check_nonlinearity(op: str, nonlinearity: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{op}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def _act_grad(d: Tensor, y: Tensor, nonlinearity: str) -> Tensor:
    """``d`` times the derivative of the activation at the output ``y`` (for relu, 1 where
    ``y`` is positive: a constant)."""
    if nonlinearity == "tanh":
        return d * (1.0 - y * y)
    return d * Tensor.make_const(y.realize_cached_data() > 0.0)


class RNNCell(TensorOp):
    """``act(gx + h @ w_hh)`` with ``act`` tanh or relu: inputs ``gx`` (n, h) (the input
    projection with the biases), ``h`` (n, h), ``w_hh`` (h, h)."""

    def __init__(self, nonlinearity: str = "tanh") -> None:
        self.nonlinearity = _check_nonlinearity("RNNCell", nonlinearity)

    def compute(self, gx: NDArray, h: NDArray, w_hh: NDArray) -> NDArray:  # type: ignore[override]
        pre = gx + h @ w_hh
        return pre.tanh() if self.nonlinearity == "tanh" else pre.maximum(0.0)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, h, w = node.inputs
        d_pre = _act_grad(out_grad, node, self.nonlinearity)
        return d_pre, d_pre @ transpose(w), transpose(h) @ d_pre


class RNNLayer(TensorOp):
    """Every step's hidden state ``hs`` (t, n, h) of an Elman layer: inputs ``gx`` (t, n, h)
    (the input projection of every step with both biases), ``h0`` (n, h) and ``w_hh``
    (h, h); step s is :class:`RNNCell` on ``(gx[s], hs[s-1], w_hh)``, ``hs[-1] = h0``."""

    def __init__(self, nonlinearity: str = "tanh") -> None:
        self.nonlinearity = _check_nonlinearity("RNNLayer", nonlinearity)

    def compute(self, gx: NDArray, h0: NDArray, w_hh: NDArray) -> NDArray:  # type: ignore[override]
        return _fused.rnn_layer_forward(gx, w_hh, h0, self.nonlinearity)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gx, h0, w = node.inputs
        if not is_grad_enabled():  # a plain backward: the fused kernel
            g_x, g_w, g_h0 = _fused.rnn_layer_backward(
                w.realize_cached_data(), h0.realize_cached_data(), node.realize_cached_data(),
                out_grad.realize_cached_data(), self.nonlinearity,
            )  # fmt: skip
            return Tensor.make_const(g_x), Tensor.make_const(g_h0), Tensor.make_const(g_w)
        # recording a graph: the per-step composition (RNNCell's own gradient formulas)
        xs, dys = split(gx, 0), split(out_grad, 0)
        hs = [h0]
        for s in range(gx.shape[0]):
            hs.append(RNNCell(self.nonlinearity)(xs[s], hs[-1], w))
        dh: Tensor | None = None
        dw: Tensor | None = None
        dgx: list[Tensor] = []
        for s in reversed(range(gx.shape[0])):
            d = dys[s] if dh is None else dys[s] + dh
            d_pre = _act_grad(d, hs[s + 1], self.nonlinearity)
            dgx.append(d_pre)
            dh = d_pre @ transpose(w)
            term = transpose(hs[s]) @ d_pre
            dw = term if dw is None else dw + term
        return stack(dgx[::-1], 0), dh, dw  # type: ignore[return-value]


# --- attention ----------------------------------------------------------------------------
def _swap_last(x: Any) -> Any:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return x.permute(tuple(axes)) if isinstance(x, NDArray) else transpose(x)


class Attention(TensorOp):
    """``softmax(q k^T * scale + causal mask) @ v`` over ``(..., t, d)`` inputs; with a
    fourth input ``mask`` (a constant of the probabilities' shape, e.g. a dropout mask
    scaled by 1/(1-p)) the probabilities are multiplied by it before ``@ v``. After the
    forward pass :attr:`probs` holds the probabilities (before the mask). Forward and
    backward are one kernel each where the backend has them (``attention_forward``,
    ``attention_backward``), reading (B, H, t, d) heads split from a (B, t, H * d)
    projection in place."""

    def __init__(self, scale: float, causal: bool) -> None:
        self.scale, self.causal = float(scale), bool(causal)
        self.probs: NDArray | None = None

    def compute(self, q: NDArray, k: NDArray, v: NDArray, *mask: NDArray) -> NDArray:  # type: ignore[override]
        out, self.probs = _fused.attention_forward(
            q, k, v, mask[0] if mask else None, self.scale, self.causal
        )
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, *mask = node.inputs
        grads = AttentionBackward(self)(q, k, v, out_grad, *mask)
        return (grads[0], grads[1], grads[2], *([None] if mask else []))


class AttentionBackward(TensorTupleOp):
    """``(dq, dk, dv)`` of an :class:`Attention` op from its inputs ``(q, k, v)``, the
    adjoint ``d_out`` of its output and its ``mask`` if it had one, using the probabilities
    the forward pass kept (recomputed if it has none). Its own gradient differentiates the
    same quantities written with Tensor ops (:func:`_attention_grads`), so gradients can
    be differentiated again."""

    def __init__(self, attention: Attention) -> None:
        self.attention = attention

    def compute(  # type: ignore[override]
        self, q: NDArray, k: NDArray, v: NDArray, d_out: NDArray, *mask: NDArray
    ) -> tuple[NDArray, ...]:
        att = self.attention
        m = mask[0] if mask else None
        probs = att.probs
        if probs is None:
            probs = _fused.attention_forward(q, k, v, None, att.scale, att.causal)[1]
        return _fused.attention_backward(q, k, v, probs, m, d_out, att.scale, att.causal)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q, k, v, d_out, *mask = node.inputs
        with enable_grad():  # the local graph below is needed even inside no_grad
            grads = _attention_grads(self.attention, q, k, v, d_out, mask[0] if mask else None)
            adjoints = _vjp(grads, [out_grad[0], out_grad[1], out_grad[2]], [q, k, v, d_out])
        return (*adjoints, *([None] if mask else []))


def _attention_grads(
    att: Attention, q: Tensor, k: Tensor, v: Tensor, d_out: Tensor, mask: Tensor | None
) -> list[Tensor]:
    """``[dq, dk, dv]`` of ``att`` written with differentiable Tensor ops."""
    p = AttentionProbs(att)(q, k)
    weights = p * mask if mask is not None else p
    d_v = _swap_last(weights) @ d_out
    d_p = d_out @ _swap_last(v)
    if mask is not None:
        d_p = d_p * mask
    d_q, d_k = _scores_grad(p, d_p, q, k, att.scale)
    return [d_q, d_k, d_v]


def _vjp(outputs: list[Tensor], adjoints: list[Tensor], inputs: list[Tensor]) -> list[Any]:
    """Adjoints of ``inputs`` given those of ``outputs`` (functions of the inputs), as
    Tensor expressions (so differentiable again): reverse mode over the part of the graph
    between them (nodes above the inputs are not visited). None where none flows."""
    stop = {id(x) for x in inputs}
    order: list[Any] = []
    seen: set[int] = set()
    stack = [(root, 0) for root in reversed(outputs)]  # iterative post-order
    while stack:
        node, i = stack.pop()
        if i == 0 and id(node) in seen:
            continue
        seen.add(id(node))
        kids = () if id(node) in stop else node.inputs
        if i < len(kids):
            stack += [(node, i + 1), (kids[i], 0)]
        else:
            order.append(node)
    grads: dict[int, Any] = {}

    def add(x: Any, g: Any) -> None:
        grads[id(x)] = g if id(x) not in grads else grads[id(x)] + g

    for out, adj in zip(outputs, adjoints):
        add(out, adj)
    for node in reversed(order):
        g = None if id(node) in stop else grads.pop(id(node), None)
        if g is not None and node.op is not None and node.requires_grad:
            for inp, gi in zip(node.inputs, node.op.gradient_as_tuple(g, node)):
                if gi is not None and inp.requires_grad:
                    add(inp, gi)
    return [grads.get(id(x)) for x in inputs]


def _scores_grad(
    p: Tensor, d_p: Tensor, q: Tensor, k: Tensor, scale: float
) -> tuple[Tensor, Tensor]:
    """Adjoints of q and k given the adjoint ``d_p`` of ``p = softmax(q k^T * scale + m)``."""
    row = summation(d_p * p, (p.ndim - 1,), keepdims=True)
    d_s = p * (d_p - broadcast_to(row, p.shape)) * scale
    return d_s @ k, _swap_last(d_s) @ q


class AttentionProbs(TensorOp):
    """The probabilities an :class:`Attention` op computed, as a tensor of ``(q, k)``
    (read from the op, not recomputed; recomputed if the op has none)."""

    def __init__(self, attention: Attention) -> None:
        self.attention = attention

    def compute(self, q: NDArray, k: NDArray) -> NDArray:  # type: ignore[override]
        att = self.attention
        if att.probs is not None:
            return att.probs
        return _fused.attention_softmax(q @ _swap_last(k), att.scale, att.causal)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        q, k = node.inputs
        return _scores_grad(node, out_grad, q, k, self.attention.scale)


# --- functional wrappers ------------------------------------------------------------------
def lstm_cell(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor) -> TensorTuple:
    """One LSTM step: ``(h', c')`` (a TensorTuple) from the input projection ``gx`` (n, 4h)
    (biases included), the state ``h``, ``c`` (n, h) and the recurrent weight ``w_hh``."""
    for x in (gx, h, c, w_hh):
        check_tensor("lstm_cell", x)
    check_same_device("lstm_cell", gx, h, c, w_hh)
    n, hs = c.shape if c.ndim == 2 else (0, -1)
    if c.ndim != 2 or gx.shape != (n, 4 * hs) or h.shape != (n, hs) or w_hh.shape != (hs, 4 * hs):
        raise ValueError(
            "lstm_cell: expected gx (n, 4h), h and c (n, h), w_hh (h, 4h), got "
            f"{gx.shape}, {h.shape}, {c.shape}, {w_hh.shape}"
        )
    if len({x.dtype for x in (gx, h, c, w_hh)}) != 1:
        raise TypeError(f"lstm_cell: dtypes differ, {[x.dtype for x in (gx, h, c, w_hh)]}")
    return LSTMCell()(gx, h, c, w_hh)


def lstm_layer(gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor) -> TensorTuple:
    """An LSTM layer over a sequence: ``(hs, h_n, c_n)`` (a TensorTuple) from the input
    projection ``gx`` (t, n, 4h) of every step (biases included), the state ``h0``, ``c0``
    (n, h) and the recurrent weight ``w_hh`` (h, 4h); ``hs`` (t, n, h) is every step's
    hidden state, ``(h_n, c_n)`` the state after the last step (t >= 1)."""
    for x in (gx, h0, c0, w_hh):
        check_tensor("lstm_layer", x)
    check_same_device("lstm_layer", gx, h0, c0, w_hh)
    n, hs = c0.shape if c0.ndim == 2 else (0, -1)
    t = gx.shape[0] if gx.ndim == 3 else 0
    if (
        c0.ndim != 2
        or gx.ndim != 3
        or gx.shape[1:] != (n, 4 * hs)
        or h0.shape != (n, hs)
        or w_hh.shape != (hs, 4 * hs)
    ):
        raise ValueError(
            "lstm_layer: expected gx (t, n, 4h), h0 and c0 (n, h), w_hh (h, 4h), got "
            f"{gx.shape}, {h0.shape}, {c0.shape}, {w_hh.shape}"
        )
    if t < 1:
        raise ValueError(f"lstm_layer: need at least one time step, got gx of shape {gx.shape}")
    if len({x.dtype for x in (gx, h0, c0, w_hh)}) != 1:
        raise TypeError(f"lstm_layer: dtypes differ, {[x.dtype for x in (gx, h0, c0, w_hh)]}")
    return LSTMLayer()(gx, h0, c0, w_hh)


def rnn_cell(gx: Tensor, h: Tensor, w_hh: Tensor, nonlinearity: str = "tanh") -> Tensor:
    """One Elman step ``act(gx + h @ w_hh)`` (``gx`` the input projection with biases)."""
    for x in (gx, h, w_hh):
        check_tensor("rnn_cell", x)
    check_same_device("rnn_cell", gx, h, w_hh)
    if h.ndim != 2 or gx.shape != h.shape or w_hh.shape != (h.shape[1], h.shape[1]):
        raise ValueError(
            f"rnn_cell: expected gx and h (n, h), w_hh (h, h), got {gx.shape}, {h.shape}, "
            f"{w_hh.shape}"
        )
    if len({x.dtype for x in (gx, h, w_hh)}) != 1:
        raise TypeError(f"rnn_cell: dtypes differ, {gx.dtype}, {h.dtype}, {w_hh.dtype}")
    return RNNCell(nonlinearity)(gx, h, w_hh)


def rnn_layer(gx: Tensor, h0: Tensor, w_hh: Tensor, nonlinearity: str = "tanh") -> Tensor:
    """An Elman layer over a sequence: every step's hidden state ``hs`` (t, n, h), with
    ``hs[s] = act(gx[s] + hs[s-1] @ w_hh)``, ``hs[-1] = h0`` (n, h), from the input
    projection ``gx`` (t, n, h) of every step (biases included); t >= 1."""
    for x in (gx, h0, w_hh):
        check_tensor("rnn_layer", x)
    check_same_device("rnn_layer", gx, h0, w_hh)
    if gx.ndim != 3 or h0.ndim != 2 or gx.shape[1:] != h0.shape or w_hh.shape != (h0.shape[1],) * 2:
        raise ValueError(
            f"rnn_layer: expected gx (t, n, h), h0 (n, h), w_hh (h, h), got {gx.shape}, "
            f"{h0.shape}, {w_hh.shape}"
        )
    if gx.shape[0] < 1:
        raise ValueError(f"rnn_layer: need at least one time step, got gx of shape {gx.shape}")
    if len({gx.dtype, h0.dtype, w_hh.dtype}) != 1:
        raise TypeError(f"rnn_layer: dtypes differ, {gx.dtype}, {h0.dtype}, {w_hh.dtype}")
    return RNNLayer(nonlinearity)(gx, h0, w_hh)


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    mask: Tensor | None = None,
) -> TensorTuple:
    """Scaled dot-product attention over ``(..., t_q, d)``, ``(..., t_k, d)``, ``(..., t_k,
    d_v)`` inputs: ``(softmax(q k^T * scale + causal mask) [* mask] @ v, probs)`` as a
    TensorTuple.

    ``scale`` defaults to ``1 / sqrt(d)``; ``causal`` masks key j > i + t_k - t_q (adds
    -1e9, as a constant mask would); ``mask`` (no gradient) multiplies the probabilities
    before ``@ v`` (a dropout mask scaled by 1/(1-p)). ``probs`` are the probabilities
    before ``mask``, differentiable.
    """
    return make_tuple(*attention_parts(q, k, v, causal=causal, scale=scale, mask=mask))


def attention_parts(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`attention` as two separate tensors ``(out, probs)`` rather than a
    TensorTuple: a gradient through ``out`` alone then never runs the (zero) gradient of
    ``probs``, as one through an element of a tuple does."""
    for x in (q, k, v):
        check_tensor("attention", x)
    check_same_device("attention", q, k, v)
    if q.ndim < 2 or q.ndim != k.ndim or k.ndim != v.ndim:
        raise ValueError(f"attention: q, k, v must have the same rank >= 2, got {q.shape}, "
                         f"{k.shape}, {v.shape}")  # fmt: skip
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-1] != v.shape[:-1] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: shapes do not fit (..., t_q, d), (..., t_k, d), (..., t_k, d_v): "
            f"{q.shape}, {k.shape}, {v.shape}"
        )
    if k.shape[-2] < 1:
        raise ValueError(f"attention: need at least one key, got k of shape {k.shape}")
    if len({q.dtype, k.dtype, v.dtype}) != 1:
        raise TypeError(f"attention: dtypes differ, {q.dtype}, {k.dtype}, {v.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    op = Attention(scale, causal)
    if mask is None:
        out = op(q, k, v)
    else:
        check_tensor("attention", mask)
        check_same_device("attention", q, mask)
        want = (*q.shape[:-1], k.shape[-2])
        if mask.shape != want or mask.dtype != q.dtype:
            raise ValueError(
                f"attention: mask must be {want} {q.dtype}, got {mask.shape} {mask.dtype}"
            )
        out = op(q, k, v, mask.detach())
    return out, AttentionProbs(op)(q, k)


__all__ = [
    "Attention",
    "AttentionBackward",
    "AttentionProbs",
    "LSTMCell",
    "LSTMCellBackward",
    "LSTMLayer",
    "RNNCell",
    "RNNLayer",
    "attention",
    "attention_parts",
    "lstm_cell",
    "lstm_layer",
    "rnn_cell",
    "rnn_layer",
]
