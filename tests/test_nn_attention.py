"""Attention and the Transformer against NumPy."""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import nn


def np_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    if causal:
        t = q.shape[-2]
        scores = np.where(np.triu(np.ones((t, t)), 1) > 0, -np.inf, scores)
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return (p / p.sum(-1, keepdims=True)) @ v


def test_multihead_attention_matches_numpy(rng: np.random.Generator) -> None:
    q, k, v = (rng.standard_normal((2, 3, 5, 4)).astype(np.float32) for _ in range(3))
    for causal in (False, True):
        out, probs = nn.MultiHeadAttention(causal=causal)(
            ndl.Tensor(q), ndl.Tensor(k), ndl.Tensor(v)
        )
        np.testing.assert_allclose(out.numpy(), np_attention(q, k, v, causal), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)


def test_attention_layer_matches_numpy(rng: np.random.Generator) -> None:
    layer = nn.AttentionLayer(6, num_head=2, dim_head=3, causal=True)
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    xn = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)

    def heads(a: np.ndarray) -> np.ndarray:
        return a.reshape(2, 4, 2, 3).transpose(0, 2, 1, 3)

    q = heads(xn @ layer.q_projection.weight.numpy())
    k = heads(xn @ layer.k_projection.weight.numpy())
    v = heads(xn @ layer.v_projection.weight.numpy())
    merged = np_attention(q, k, v, True).transpose(0, 2, 1, 3).reshape(2, 4, 6)
    expected = merged @ layer.out_projection.weight.numpy()
    np.testing.assert_allclose(layer(ndl.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_transformer_is_causal(rng: np.random.Generator) -> None:
    ndl.manual_seed(0)
    model = nn.Transformer(8, 16, 2, num_head=2, dim_head=4, sequence_len=10)
    x = rng.standard_normal((5, 2, 8)).astype(np.float32)
    out, h = model(ndl.Tensor(x))
    assert out.shape == (5, 2, 8) and h.shape == (5, 2, 8)
    x2 = x.copy()
    x2[3:] += 10.0  # changing later steps must not change earlier outputs
    out2, _ = model(ndl.Tensor(x2))
    np.testing.assert_allclose(out.numpy()[:3], out2.numpy()[:3], rtol=1e-4, atol=1e-5)
    assert not np.allclose(out.numpy()[3:], out2.numpy()[3:])
