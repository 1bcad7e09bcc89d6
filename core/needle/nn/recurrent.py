"""Recurrent layers: RNNCell, RNN, LSTMCell, LSTM (sequence-first, as in the course).

Each step is one fused op (:func:`needle.ops.rnn_cell`, :func:`needle.ops.lstm_cell`):
``act(gx + h @ W_hh)`` or the LSTM gate math in one kernel, where ``gx`` is the input
projection with both biases. ``RNN`` and ``LSTM`` compute ``gx`` for every time step in
one matmul over the whole sequence before the recurrence, then run each layer's whole
recurrence as one op (:func:`needle.ops.rnn_layer`, :func:`needle.ops.lstm_layer`).
"""

from __future__ import annotations

import math
from typing import Any

from .. import init, ops
from ..autograd import Tensor
from .module import Module, Parameter


def _uniform(k: float, *shape: int, device: Any, dtype: str) -> Parameter:
    return Parameter(init.rand(*shape, low=-k, high=k, device=device, dtype=dtype))


def _zeros_or(h: Tensor | None, batch: int, hidden: int, like: Tensor) -> Tensor:
    """``h``, or zeros ``(batch, hidden)`` on ``like``'s device and dtype when it is None."""
    if h is not None:
        return h
    return init.zeros(batch, hidden, device=like.device, dtype=like.dtype)


def _input_projection(x: Tensor, w_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    """``x @ W_ih + b_ih + b_hh`` for ``x`` of shape (..., input_size), as one 2-D product
    over every leading position (a (T, bs, in) @ (in, out) product would broadcast W_ih to
    a batch of T matrices, and its gradient would sum T products)."""
    lead, width = x.shape[:-1], w_ih.shape[1]
    flat = x if x.ndim == 2 else x.reshape((math.prod(lead), x.shape[-1]))
    out = flat @ w_ih
    if b_ih is not None:
        out = out + (b_ih + b_hh).reshape((1, width)).broadcast_to(out.shape)
    return out if x.ndim == 2 else out.reshape((*lead, width))


class RNNCell(Module):
    """One Elman step: ``h' = act(x @ W_ih + b_ih + h @ W_hh + b_hh)``.

    Args:
        input_size, hidden_size: feature sizes of ``x`` and ``h``.
        bias: whether to add ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Every weight is U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        k = 1.0 / math.sqrt(hidden_size)
        self.W_ih = _uniform(k, input_size, hidden_size, device=device, dtype=dtype)
        self.W_hh = _uniform(k, hidden_size, hidden_size, device=device, dtype=dtype)
        self.bias_ih = _uniform(k, hidden_size, device=device, dtype=dtype) if bias else None
        self.bias_hh = _uniform(k, hidden_size, device=device, dtype=dtype) if bias else None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x``: (bs, input_size); ``h``: (bs, hidden_size) or None for zeros."""
        return self.step(self.input_gates(x), h)

    def input_gates(self, x: Tensor) -> Tensor:
        """``x @ W_ih + b_ih + b_hh`` for ``x`` of shape (..., input_size)."""
        return _input_projection(x, self.W_ih, self.bias_ih, self.bias_hh)

    def step(self, gx: Tensor, h: Tensor | None) -> Tensor:
        """``act(gx + h @ W_hh)`` in one fused op, for the input projection ``gx``."""
        # h = None is zeros, as in the course: W_hh still takes part (its gradient is zeros)
        h = _zeros_or(h, gx.shape[0], self.hidden_size, gx)
        return ops.rnn_cell(gx, h, self.W_hh, self.nonlinearity)


class RNN(Module):
    """A stack of ``num_layers`` :class:`RNNCell` over a sequence ``(T, bs, input_size)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.rnn_cells = [
            RNNCell(
                input_size if i == 0 else hidden_size,
                hidden_size,
                bias,
                nonlinearity,
                device=device,
                dtype=dtype,
            )
            for i in range(num_layers)
        ]

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Returns ``output`` (T, bs, hidden) of the last layer and ``h_n`` (layers, bs, hidden)."""
        hs: list[Tensor | None] = (
            list(ops.split(h0, 0)) if h0 is not None else [None] * self.num_layers
        )
        finals: list[Tensor] = []
        seq = x
        for cell, h in zip(self.rnn_cells, hs):
            gx = cell.input_gates(seq)  # every step's projection in one matmul
            # h None is zeros, as in the course: W_hh still takes part (zero gradient when
            # the sequence has one step)
            h0 = _zeros_or(h, gx.shape[1], self.hidden_size, gx)
            seq = ops.rnn_layer(gx, h0, cell.W_hh, cell.nonlinearity)  # the whole recurrence
            finals.append(seq[gx.shape[0] - 1])
        return seq, ops.stack(finals, 0)


class LSTMCell(Module):
    """One LSTM step with gates in the order input, forget, cell, output.

    ``i, f, g, o = split(x @ W_ih + b_ih + h @ W_hh + b_hh)``;
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``; ``h' = sigmoid(o) * tanh(c')``.
    Every weight is U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1.0 / math.sqrt(hidden_size)
        self.W_ih = _uniform(k, input_size, 4 * hidden_size, device=device, dtype=dtype)
        self.W_hh = _uniform(k, hidden_size, 4 * hidden_size, device=device, dtype=dtype)
        self.bias_ih = _uniform(k, 4 * hidden_size, device=device, dtype=dtype) if bias else None
        self.bias_hh = _uniform(k, 4 * hidden_size, device=device, dtype=dtype) if bias else None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def forward(self, x: Tensor, h: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``x``: (bs, input_size); ``h``: (h0, c0), each (bs, hidden), or None for zeros."""
        return self.recur(self.input_gates(x), h)

    def input_gates(self, x: Tensor) -> Tensor:
        """``x @ W_ih + b_ih + b_hh`` for ``x`` of shape (..., input_size)."""
        return _input_projection(x, self.W_ih, self.bias_ih, self.bias_hh)

    def recur(self, gx: Tensor, h: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """The new ``(h, c)`` from the input projection ``gx`` (bs, 4 * hidden) and the
        state ``h`` = (h0, c0) (None for zeros): one fused op, gates ``gx + h0 @ W_hh``."""
        n = gx.shape[0]
        # h = None is zeros, as in the course: W_hh still takes part (its gradient is zeros)
        h0 = _zeros_or(None if h is None else h[0], n, self.hidden_size, gx)
        c0 = _zeros_or(None if h is None else h[1], n, self.hidden_size, gx)
        out = ops.lstm_cell(gx, h0, c0, self.W_hh)
        return out[0], out[1]

    def step(self, gates: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """The new ``(h, c)`` from pre-activation ``gates`` (bs, 4 * hidden) and cell ``c``,
        composed from basic ops (the reference for the fused :meth:`recur`)."""
        i, f, g, o = ops.split(gates.reshape((gates.shape[0], 4, self.hidden_size)), 1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c = i * g if c is None else f * c + i * g
        return o * ops.tanh(c), c


class LSTM(Module):
    """A stack of ``num_layers`` :class:`LSTMCell` over a sequence ``(T, bs, input_size)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm_cells = [
            LSTMCell(
                input_size if i == 0 else hidden_size, hidden_size, bias, device=device, dtype=dtype
            )
            for i in range(num_layers)
        ]

    def forward(
        self, x: Tensor, h: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Returns ``output`` (T, bs, hidden) and ``(h_n, c_n)``, each (layers, bs, hidden)."""
        states: list[Any] = [None] * self.num_layers
        if h is not None:
            states = list(zip(ops.split(h[0], 0), ops.split(h[1], 0)))
        hs, cs = [], []
        seq = x
        for cell, state in zip(self.lstm_cells, states):
            gx = cell.input_gates(seq)  # the input projection of every time step in one matmul
            n = gx.shape[1]
            # state None is zeros, as in the course: W_hh still takes part (zero gradient
            # when the sequence has one step)
            h0 = _zeros_or(None if state is None else state[0], n, self.hidden_size, gx)
            c0 = _zeros_or(None if state is None else state[1], n, self.hidden_size, gx)
            out = ops.lstm_layer(gx, h0, c0, cell.W_hh)  # the whole recurrence in one op
            seq = out[0]
            hs.append(out[1])
            cs.append(out[2])
        return seq, (ops.stack(hs, 0), ops.stack(cs, 0))
