"""Embedding rows, the fused LSTM and RNN cells and fused attention (issue 12, item 3).

Each op is checked against NumPy formulas (float64), its gradient against central finite
differences (the LSTM's backward op too: gradients of gradients), and forward and
gradient against the same layer composed from basic Tensor ops. Every test runs with
the backend's optional kernels and with them hidden ("-composed": the composition in
``needle.backend_ndarray.fused``).
"""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients, device_for, fused_test_backends
from needle import nn, ops
from needle.backend_ndarray import fused
from train_steps import softmax_step

_CPP = "cpp" in {d.name for d in ndl.all_devices()}
BACKENDS = fused_test_backends()


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch):
    return device_for(request.param, monkeypatch)


def T(a, device, requires_grad=True, dtype="float64"):
    return ndl.Tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=requires_grad)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_lstm(gates, c):
    h = c.shape[1]
    i, f, o = _sig(gates[:, :h]), _sig(gates[:, h : 2 * h]), _sig(gates[:, 3 * h :])
    g = np.tanh(gates[:, 2 * h : 3 * h])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def np_attention(q, k, v, causal, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        t_q, t_k = s.shape[-2:]
        s = s + np.triu(np.ones((t_q, t_k)), k=1 + t_k - t_q) * -1e9
    e = np.exp(s - s.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return (p if mask is None else p * mask) @ v, p


# --- embedding rows ------------------------------------------------------------------------
@pytest.mark.parametrize("ids_shape", [(6,), (3, 2), (2, 1, 3), (0,)])
def test_take_rows_forward_and_gradient(device, ids_shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 4))
    ids = rng.integers(0, 5, ids_shape).astype(np.float64)
    out = ops.take_rows(T(w, device), T(ids, device, False))
    assert out.shape == (*ids_shape, 4)
    np.testing.assert_array_equal(out.numpy(), w[ids.astype(int)])
    if ids.size:
        check_gradients(lambda w: ops.take_rows(w, T(ids, device, False)), w, device=device)


def test_scatter_add_rows_sums_repeated_ids(device):
    rng = np.random.default_rng(1)
    g = rng.standard_normal((7, 3))
    ids = np.array([2.0, 0.0, 2.0, 4.0, 2.0, 0.0, 1.0])
    out = ops.scatter_add_rows(T(g, device), T(ids, device, False), 6)
    want = np.zeros((6, 3))
    for r, i in enumerate(ids.astype(int)):  # in position order, as the contract says
        want[i] += g[r]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    check_gradients(lambda g: ops.scatter_add_rows(g, T(ids, device, False), 6), g, device=device)


def test_take_rows_non_contiguous_and_float32(device):
    rng = np.random.default_rng(2)
    wt = rng.standard_normal((4, 6)).astype(np.float32)  # the table is wt.T, a strided view
    w = ops.transpose(T(wt, device, dtype="float32"))
    ids_full = np.array([[1.0, 5.0, 0.0], [5.0, 5.0, 2.0]])
    ids = T(ids_full, device, False, "float32")[:, 1:]
    out = ops.take_rows(w, ids)
    np.testing.assert_array_equal(out.numpy(), wt.T[ids_full[:, 1:].astype(int)])
    out.sum().backward()


@pytest.mark.parametrize("bad", [5.0, -1.0, 1.5, float("nan")])
def test_bad_ids_raise_index_error(device, bad):
    w = T(np.ones((5, 2)), device)
    with pytest.raises(IndexError, match=r"take_rows.*position 1"):
        ops.take_rows(w, T([0.0, bad], device, False))
    with pytest.raises(IndexError, match="scatter_add_rows"):
        ops.scatter_add_rows(T(np.ones((2, 2)), device), T([0.0, bad], device, False), 5)


def test_rows_argument_errors(device):
    with pytest.raises(ValueError, match="2-D"):
        ops.take_rows(T(np.ones(5), device), T([0.0], device, False))
    with pytest.raises(ValueError, match="do not match"):
        ops.scatter_add_rows(T(np.ones((3, 2)), device), T([0.0], device, False), 4)


def test_host_fallback_past_the_one_hot_limit(monkeypatch):
    dev = ndl.device("numpy")
    monkeypatch.setattr(dev, "has_kernel", lambda kernel: False)
    monkeypatch.setattr(fused, "_ONE_HOT_LIMIT", 0)
    rng = np.random.default_rng(3)
    w, ids = rng.standard_normal((5, 3)), np.array([4.0, 1.0, 4.0])
    np.testing.assert_array_equal(
        ops.take_rows(T(w, dev), T(ids, dev, False)).numpy(), w[[4, 1, 4]]
    )
    check_gradients(lambda w: ops.take_rows(w, T(ids, dev, False)), w, device=dev)
    with pytest.raises(IndexError, match="take_rows"):
        ops.take_rows(T(w, dev), T([7.0], dev, False))


def test_embedding_module_keeps_its_api(device):
    np.random.seed(0)
    emb = nn.Embedding(10, 4, device=device, dtype="float64")
    ids = np.array([[1, 9], [0, 1], [3, 3]])
    for x in (ndl.Tensor(ids, device=device), ids):  # a tensor, or anything Tensor takes
        emb.weight.grad = None
        out = emb(x)
        np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[ids])
        out.sum().backward()
        counts = np.bincount(ids.ravel(), minlength=10)
        np.testing.assert_array_equal(emb.weight.grad.numpy(), np.repeat(counts[:, None], 4, 1))
    assert list(emb.state_dict()) == ["weight"]


# --- LSTM and RNN cells --------------------------------------------------------------------
def _lstm_data(seed, n=3, h=4):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((n, 4 * h)),
        rng.standard_normal((n, h)),
        rng.standard_normal((n, h)),
        rng.standard_normal((h, 4 * h)) * 0.5,
    ]


def test_lstm_cell_forward(device):
    gx, h, c, w = _lstm_data(4)
    h2, c2 = ops.lstm_cell(*(T(a, device) for a in (gx, h, c, w)))
    want_h, want_c = np_lstm(gx + h @ w, c)
    np.testing.assert_allclose(h2.numpy(), want_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c2.numpy(), want_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("which", [0, 1])
def test_lstm_cell_gradient(device, which):
    def f(gx, h, c, w):
        return ops.lstm_cell(gx, h, c, w)[which]

    check_gradients(f, *_lstm_data(5), device=device)


def test_lstm_cell_backward_gradient(device):
    """The backward op's own gradient (second derivatives), all six inputs."""
    rng = np.random.default_rng(6)
    n, h = 2, 3
    data = [*_lstm_data(6, n, h), rng.standard_normal((n, h)), rng.standard_normal((n, h))]

    def f(gx, hh, c, w, dh, dc):
        t = ops.LSTMCellBackward()(gx, hh, c, w, dh, dc)
        return ops.concatenate([ops.reshape(t[0], (n * 4 * h,)), ops.reshape(t[1], (n * h,))], 0)

    check_gradients(f, *data, device=device, rtol=1e-5, atol=1e-6)


def test_lstm_cell_matches_composed(device):
    gx, h, c, w = (T(a, device) for a in _lstm_data(7))
    gx2, h2, c2, w2 = (T(a.numpy(), device) for a in (gx, h, c, w))
    cell = nn.LSTMCell(3, 4, device=device, dtype="float64")
    y = ops.lstm_cell(gx, h, c, w)
    z = cell.step(gx2 + h2 @ w2, c2)  # the composed reference
    for a, b in zip(y, z):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    (y[0] * y[1]).sum().backward()
    (z[0] * z[1]).sum().backward()
    for a, b in zip((gx, h, c, w), (gx2, h2, c2, w2)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_double_backward_matches_composed(device):
    gx, h, c, w = (T(a, device) for a in _lstm_data(8))
    copies = [T(a.numpy(), device) for a in (gx, h, c, w)]
    cell = nn.LSTMCell(3, 4, device=device, dtype="float64")
    results = []
    for (a, b, cc, ww), fused_op in (((gx, h, c, w), True), (copies, False)):
        if fused_op:
            y = ops.lstm_cell(a, b, cc, ww)
        else:
            y = cell.step(a + b @ ww, cc)
        (y[0] * y[1]).sum().backward(create_graph=True)
        (a.grad * a.grad).sum().backward()  # d/dinputs of |d loss / d gx|^2 (accumulates)
        results.append([t.grad.numpy() for t in (b, cc, ww)])
    for x, y in zip(*results):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_rnn_cell(device, act):
    rng = np.random.default_rng(9)
    gx, h, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    out = ops.rnn_cell(T(gx, device), T(h, device), T(w, device), act)
    pre = gx + h @ w
    np.testing.assert_allclose(
        out.numpy(), np.tanh(pre) if act == "tanh" else np.maximum(pre, 0), rtol=1e-12
    )
    check_gradients(lambda a, b, c: ops.rnn_cell(a, b, c, act), gx, h, w, device=device)


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_sequence_modules_match_numpy(device, kind):
    np.random.seed(1)
    seq, bs, n_in, hid, layers = 5, 3, 4, 6, 2
    x = np.random.standard_normal((seq, bs, n_in))
    mod = (nn.LSTM if kind == "lstm" else nn.RNN)(n_in, hid, layers, device=device, dtype="float64")
    out, state = mod(T(x, device))
    cells = mod.lstm_cells if kind == "lstm" else mod.rnn_cells
    inp = x
    for cell in cells:
        wi, wh = cell.W_ih.numpy(), cell.W_hh.numpy()
        b = cell.bias_ih.numpy() + cell.bias_hh.numpy()
        h, c, outs = np.zeros((bs, hid)), np.zeros((bs, hid)), []
        for t in range(seq):
            pre = inp[t] @ wi + b + h @ wh
            h, c = np_lstm(pre, c) if kind == "lstm" else (np.tanh(pre), c)
            outs.append(h)
        inp = np.stack(outs)
    np.testing.assert_allclose(out.numpy(), inp, rtol=1e-10, atol=1e-12)
    (out.sum() + (state[0] if kind == "lstm" else state).sum()).backward()
    assert cells[0].W_hh.grad is not None and cells[0].bias_ih.grad is not None


# --- attention -------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t_q, t_k", [(4, 4), (2, 5)])
def test_attention_forward(device, causal, t_q, t_k):
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal((2, 3, t, 4)) for t in (t_q, t_k, t_k))
    out, probs = ops.attention(T(q, device), T(k, device), T(v, device), causal=causal)
    want, p = np_attention(q, k, v, causal)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs.numpy(), p, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_gradient(device, with_mask):
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    mask = T((rng.random((2, 3, 3)) < 0.7) / 0.7, device, False) if with_mask else None

    def f(q, k, v):
        return ops.attention(q, k, v, causal=True, mask=mask)[0]

    def g(q, k, v):  # the probabilities are differentiable too
        return ops.attention(q, k, v, causal=True, mask=mask)[1]

    check_gradients(f, q, k, v, device=device)
    check_gradients(g, q, k, v, device=device)


def test_attention_matches_composed_and_double_backward(device):
    rng = np.random.default_rng(12)
    data = [rng.standard_normal((2, 2, 5, 3)) for _ in range(3)]
    a = [T(x, device) for x in data]
    b = [T(x, device) for x in data]
    out, _ = ops.attention(*a, causal=True)
    mha = nn.attention.causal_mask(5, 5, b[0])
    probs = ops.softmax(b[0] @ ops.transpose(b[1]) / math.sqrt(3) + mha.broadcast_to((2, 2, 5, 5)))
    ref = probs @ b[2]
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    for y, xs in ((out, a), (ref, b)):
        (y * y).sum().backward(create_graph=True)
        (xs[0].grad * xs[1].grad).sum().backward()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-8, atol=1e-10)


def _heads(x, h):
    """(B, T, h * d) -> (B, h, T, d): the view nn.AttentionLayer hands the attention."""
    b, t, hd = x.shape
    return x.reshape((b, t, h, hd // h)).permute((0, 2, 1, 3))


def _composed_attention(q, k, v, causal, mask=None):
    """Scaled dot-product attention from plain Tensor ops (no fused op anywhere)."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    s = q @ ops.transpose(k) / math.sqrt(q.shape[-1])
    if causal:
        m = nn.attention.causal_mask(t_q, t_k, q)
        s = s + m.broadcast_to(s.shape)
    p = ops.softmax(s)
    return (p if mask is None else p * mask) @ v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_attention_on_projection_heads(device, causal, with_mask, dtype):
    """Heads split from (B, T, H * d) arrays (read in place by the kernels): values and
    gradients match the composed Tensor-op attention; results merge back for free."""
    rng = np.random.default_rng(21)
    b, t, h, d = 2, 5, 3, 4
    data = [rng.standard_normal((b, t, h * d)) for _ in range(3)]
    g = rng.standard_normal((b, t, h * d))
    keep = (rng.random((b, h, t, t)) < 0.7) / 0.7
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    results = []
    for fused_op in (True, False):
        xs = [T(x, device, dtype=dtype) for x in data]
        mask = T(keep, device, False, dtype) if with_mask else None
        qh, kh, vh = (_heads(x, h) for x in xs)
        if fused_op:
            out = ops.attention(qh, kh, vh, causal=causal, mask=mask)[0]
        else:
            out = _composed_attention(qh, kh, vh, causal, mask)
        merged = out.permute((0, 2, 1, 3)).reshape((b, t, h * d))
        (merged * T(g, device, False, dtype)).sum().backward()
        results.append([merged.numpy()] + [x.grad.numpy() for x in xs])
    for got, want in zip(*results):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_heads_gradient_and_double_backward(device, with_mask, causal):
    """Finite differences through the head split, and second-order gradients of the fused
    op against the composed Tensor-op attention."""
    rng = np.random.default_rng(22)
    b, t, h, d = 1, 4, 2, 3
    data = [rng.standard_normal((b, t, h * d)) for _ in range(3)]
    keep = T((rng.random((b, h, t, t)) < 0.6) / 0.6, device, False) if with_mask else None

    def f(q, k, v):
        out = ops.attention(_heads(q, h), _heads(k, h), _heads(v, h), causal=causal, mask=keep)
        return out[0].permute((0, 2, 1, 3)).reshape((b, t, h * d))

    check_gradients(f, *data, device=device)
    grads = []
    for fused_op in (True, False):
        xs = [T(x, device) for x in data]
        qh, kh, vh = (_heads(x, h) for x in xs)
        if fused_op:
            out = ops.attention(qh, kh, vh, causal=causal, mask=keep)[0]
        else:
            out = _composed_attention(qh, kh, vh, causal, keep)
        (out * out).sum().backward(create_graph=True)
        (xs[0].grad * xs[1].grad + xs[2].grad * xs[2].grad).sum().backward()
        grads.append([x.grad.numpy() for x in xs])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_attention_backward_op_is_differentiable(device):
    """AttentionBackward's own gradient (finite differences of dq, dk, dv)."""
    rng = np.random.default_rng(23)
    data = [rng.standard_normal((2, 3, 2)) for _ in range(3)] + [rng.standard_normal((2, 3, 2))]

    def f(q, k, v, g):
        op = ops.Attention(0.7, True)
        op(q, k, v)  # keeps its probabilities for the backward op
        grads = ops.AttentionBackward(op)(q, k, v, g)
        return ops.stack([grads[0], grads[1], grads[2]], 0)

    check_gradients(f, *data, device=device)


def test_attention_errors(device):
    q = T(np.ones((2, 3, 4)), device)
    with pytest.raises(ValueError, match="attention"):
        ops.attention(q, T(np.ones((2, 3, 5)), device), q)
    with pytest.raises(ValueError, match="mask"):
        ops.attention(q, q, q, mask=T(np.ones((2, 3, 4)), device, False))


def test_multihead_attention_dropout_draws_like_dropout(device):
    """The fused layer draws its dropout mask as Dropout would, in the same order."""
    rng = np.random.default_rng(13)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    mha = nn.MultiHeadAttention(dropout=0.5, causal=True, device=device, dtype="float64")
    np.random.seed(5)
    out, probs = mha(T(q, device), T(k, device), T(v, device))
    np.random.seed(5)
    keep = np.random.rand(1, 2, 4, 4) <= 0.5  # needle.random.randb's draw
    want, p = np_attention(q, k, v, True, keep / 0.5)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs.numpy(), p, rtol=1e-12, atol=1e-12)


# --- replay and threads ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["numpy", "cpp"] if _CPP else ["numpy"])
@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_compiled_language_model_steps_are_bit_identical(name, model):
    from needle.models import LanguageModel

    dev = ndl.device(name)
    rng = np.random.RandomState(3)
    xs = [rng.randint(0, 20, (6, 2)).astype("float32") for _ in range(4)]
    ys = [rng.randint(0, 20, 12).astype("float32") for _ in range(4)]

    def train(compiled):
        np.random.seed(0)
        kw = {"seq_model": model, "num_layers": 2, "device": dev}
        if model == "transformer":
            kw.update(seq_len=6, dropout=0.2)
        lm = LanguageModel(8, 20, 8, num_head=2, dim_head=4, **kw)
        opt = ndl.optim.Adam(lm.parameters(), lr=0.01)
        step = softmax_step(lm, opt)  # a fresh state each step: nothing carried over

        fn = ndl.compile(step, state=(lm, opt)) if compiled else step
        np.random.seed(1)
        losses = [
            fn(ndl.Tensor(x, device=dev), ndl.Tensor(y, device=dev)).numpy() for x, y in zip(xs, ys)
        ]
        if compiled:
            assert fn.captures == 1 and fn.replays == len(xs) - fn.warmup - 1
        return [p.numpy() for p in lm.parameters()] + [np.array(losses)]

    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not _CPP, reason="cpp backend not installed")
def test_cpp_kernels_do_not_depend_on_thread_count():
    import needle_cpp._core as core

    dev = ndl.device("cpp")
    rng = np.random.default_rng(14)
    g = T(rng.standard_normal((40000, 70)), dev, False, "float32")  # past the thread threshold
    ids = T(rng.integers(0, 50, 40000).astype(np.float64), dev, False, "float32")
    gates = T(rng.standard_normal((2000, 400)), dev, False, "float32")
    c = T(rng.standard_normal((2000, 100)), dev, False, "float32")
    w = T(rng.standard_normal((100, 400)), dev, False, "float32")
    scores = T(rng.standard_normal((64, 64, 64)), dev, False, "float32")
    before = core.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            core.set_num_threads(threads)
            results.append(
                [
                    ops.scatter_add_rows(g, ids, 50).numpy(),
                    *(t.numpy() for t in ops.LSTMCellBackward()(gates, c, c, w, c, c)),
                    fused.attention_softmax(scores.realize_cached_data(), 0.3, True).numpy(),
                    *(x.numpy() for x in _attention_results(scores, threads)),
                ]
            )
    finally:
        core.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _attention_results(like, threads):
    """Forward and backward of the fused attention kernels on a size past the thread
    threshold (heads split from (B, T, H * d) arrays, with a mask)."""
    rng = np.random.default_rng(15)
    dev = like.device
    b, t, h, d = 64, 32, 4, 16
    q, k, v, g = (
        ndl.Tensor(rng.standard_normal((b, t, h, d)), dtype="float32", device=dev)
        .realize_cached_data()
        .permute((0, 2, 1, 3))
        for _ in range(4)
    )
    mask = ndl.Tensor(
        (rng.random((b, h, t, t)) < 0.8) / 0.8, dtype="float32", device=dev
    ).realize_cached_data()
    out, probs = fused.attention_forward(q, k, v, mask, 0.25, True)
    return (out, probs, *fused.attention_backward(q, k, v, probs, mask, g, 0.25, True))
