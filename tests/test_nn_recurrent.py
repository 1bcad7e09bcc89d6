"""RNN and LSTM cells and stacks against NumPy equations."""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import nn


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def np_lstm_cell(
    cell: nn.LSTMCell, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    gates = (
        x @ cell.W_ih.numpy() + cell.bias_ih.numpy() + h @ cell.W_hh.numpy() + cell.bias_hh.numpy()
    )
    i, f, g, o = np.split(gates, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c2), c2


def test_rnn_cell_matches_numpy(rng: np.random.Generator) -> None:
    cell = nn.RNNCell(3, 4)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 4)).astype(np.float32)
    expected = np.tanh(
        x @ cell.W_ih.numpy() + cell.bias_ih.numpy() + h @ cell.W_hh.numpy() + cell.bias_hh.numpy()
    )
    np.testing.assert_allclose(
        cell(ndl.Tensor(x), ndl.Tensor(h)).numpy(), expected, rtol=1e-5, atol=1e-6
    )
    bound = 1 / np.sqrt(4)
    assert np.abs(cell.W_hh.numpy()).max() <= bound


def test_lstm_cell_matches_numpy(rng: np.random.Generator) -> None:
    cell = nn.LSTMCell(3, 5)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 5)).astype(np.float32)
    c = rng.standard_normal((2, 5)).astype(np.float32)
    h2, c2 = cell(ndl.Tensor(x), (ndl.Tensor(h), ndl.Tensor(c)))
    eh, ec = np_lstm_cell(cell, x, h, c)
    np.testing.assert_allclose(h2.numpy(), eh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c2.numpy(), ec, rtol=1e-5, atol=1e-6)
    h0, _ = cell(ndl.Tensor(x))
    eh0, _ = np_lstm_cell(cell, x, np.zeros((2, 5)), np.zeros((2, 5)))
    np.testing.assert_allclose(h0.numpy(), eh0, rtol=1e-5, atol=1e-6)


def test_two_layer_lstm_matches_numpy(rng: np.random.Generator) -> None:
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    out, (hn, cn) = lstm(ndl.Tensor(x))
    assert out.shape == (5, 2, 4) and hn.shape == (2, 2, 4) and cn.shape == (2, 2, 4)
    inputs = list(x)
    for layer, cell in enumerate(lstm.lstm_cells):
        h, c = np.zeros((2, 4)), np.zeros((2, 4))
        outs = []
        for x_t in inputs:
            h, c = np_lstm_cell(cell, x_t, h, c)
            outs.append(h)
        np.testing.assert_allclose(hn.numpy()[layer], h, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(cn.numpy()[layer], c, rtol=1e-4, atol=1e-5)
        inputs = outs
    np.testing.assert_allclose(out.numpy(), np.stack(inputs), rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())


def test_rnn_with_initial_state(rng: np.random.Generator) -> None:
    rnn = nn.RNN(2, 3, num_layers=1, nonlinearity="relu")
    x = rng.standard_normal((4, 2, 2)).astype(np.float32)
    h0 = rng.standard_normal((1, 2, 3)).astype(np.float32)
    out, hn = rnn(ndl.Tensor(x), ndl.Tensor(h0))
    cell = rnn.rnn_cells[0]
    h = h0[0]
    for x_t in x:
        h = np.maximum(
            x_t @ cell.W_ih.numpy()
            + cell.bias_ih.numpy()
            + h @ cell.W_hh.numpy()
            + cell.bias_hh.numpy(),
            0,
        )
    np.testing.assert_allclose(hn.numpy()[0], h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.numpy()[-1], h, rtol=1e-4, atol=1e-5)
