"""Recurrent layers: RNNCell, RNN, LSTMCell, LSTM (sequence-first, as in the course)."""

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


def _add_bias(x: Tensor, b: Tensor) -> Tensor:
    return x + b.reshape((1, b.shape[0])).broadcast_to(x.shape)


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
        out = x @ self.W_ih
        # h = None is zeros, as in the course: W_hh still takes part (its gradient is zeros)
        out = out + _zeros_or(h, x.shape[0], self.hidden_size, x) @ self.W_hh
        if self.bias_ih is not None:
            out = _add_bias(_add_bias(out, self.bias_ih), self.bias_hh)  # type: ignore[arg-type]
        return ops.tanh(out) if self.nonlinearity == "tanh" else ops.relu(out)


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
        inputs = list(ops.split(x, 0))
        hs: list[Tensor | None] = (
            list(ops.split(h0, 0)) if h0 is not None else [None] * self.num_layers
        )
        finals: list[Tensor] = []
        for cell, h in zip(self.rnn_cells, hs):
            outputs = []
            for x_t in inputs:
                h = cell(x_t, h)
                outputs.append(h)
            finals.append(h)  # type: ignore[arg-type]
            inputs = outputs
        return ops.stack(inputs, 0), ops.stack(finals, 0)


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
        gates = self.input_gates(x)
        h0 = _zeros_or(None if h is None else h[0], x.shape[0], self.hidden_size, x)
        gates = gates + h0 @ self.W_hh
        return self.step(gates, None if h is None else h[1])

    def input_gates(self, x: Tensor) -> Tensor:
        """``x @ W_ih + b_ih + b_hh`` for ``x`` of shape (..., input_size)."""
        gates = x @ self.W_ih
        if self.bias_ih is not None:
            b = (self.bias_ih + self.bias_hh).reshape((1,) * (x.ndim - 1) + (4 * self.hidden_size,))
            gates = gates + b.broadcast_to(gates.shape)
        return gates

    def step(self, gates: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """The new ``(h, c)`` from pre-activation ``gates`` (bs, 4 * hidden) and cell ``c``."""
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
            # the input projection of every time step in one matmul
            outputs = []
            for gates in ops.split(cell.input_gates(seq), 0):
                h_prev = _zeros_or(
                    None if state is None else state[0], gates.shape[0], cell.hidden_size, gates
                )
                gates = gates + h_prev @ cell.W_hh
                state = cell.step(gates, None if state is None else state[1])
                outputs.append(state[0])
            hs.append(state[0])
            cs.append(state[1])
            seq = ops.stack(outputs, 0)
        return seq, (ops.stack(hs, 0), ops.stack(cs, 0))
