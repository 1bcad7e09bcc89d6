"""The LSTM layer op (``ops.lstm_layer``, kernels ``lstm_layer`` / ``lstm_layer_backward``).

Values and gradients are compared with the per-step composition (one ``ops.lstm_cell``
per step, the path nn.LSTM took before), with central finite differences (first and
second order) and with the contract's NumPy references. Every test runs with the
backend's kernels and with them hidden ("-composed": the composition in
``needle.backend_ndarray.fused``).
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients, device_for, fused_test_backends
from needle import nn, ops
from needle.backends.contract import KERNELS

BACKENDS = fused_test_backends()


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch):
    return device_for(request.param, monkeypatch)


def T(a, device, dtype="float64", requires_grad=True):
    return ndl.Tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=requires_grad)


def _data(seed, t=4, n=3, h=5):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((t, n, 4 * h)),
        rng.standard_normal((n, h)),
        rng.standard_normal((n, h)),
        rng.standard_normal((h, 4 * h)) * 0.5,
    ]


def _per_step(gx, h0, c0, w):
    """The layer as one ops.lstm_cell per step."""
    h, c, hs = h0, c0, []
    for x in ops.split(gx, 0):
        y = ops.lstm_cell(x, h, c, w)
        h, c = y[0], y[1]
        hs.append(h)
    return ops.stack(hs, 0), h, c


def _loss(hs, h_n, c_n):
    # every output matters, with different weights
    w = np.arange(hs.size).reshape(hs.shape) % 5 - 2.0
    wt = ndl.Tensor(w, dtype=hs.dtype, device=hs.device, requires_grad=False)
    return (hs * wt).sum() + (h_n * h_n).sum() * 0.5 + (c_n * 3.0).sum()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 3, 5), (3, 1, 2), (1, 1, 1)])
def test_matches_per_step(device, dtype, shape):
    data = _data(1, *shape)
    a = [T(x, device, dtype) for x in data]
    b = [T(x, device, dtype) for x in data]
    y = ops.lstm_layer(*a)
    z = _per_step(*b)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for u, v in zip(y, z):
        assert u.shape == v.shape and u.dtype == dtype
        np.testing.assert_allclose(u.numpy(), v.numpy(), **tol)
    _loss(*y).backward()
    _loss(*z).backward()
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.grad.numpy(), v.grad.numpy(), **tol)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_gradient_finite_differences(device, which):
    def f(gx, h0, c0, w):
        return ops.lstm_layer(gx, h0, c0, w)[which]

    check_gradients(f, *_data(2, 3, 2, 3), device=device)


def _first_order(data, device, create_graph):
    ts = [T(x, device) for x in data]
    _loss(*ops.lstm_layer(*ts)).backward(create_graph=create_graph)
    return ts


def test_second_order_finite_differences(device):
    """d/dinputs of S = sum(v_k * dL/dinput_k) against central differences of S, with the
    first-order gradients taken by the fused backward at each perturbed point."""
    data = _data(3, 3, 2, 2)
    rng = np.random.default_rng(4)
    v = [rng.standard_normal(x.shape) for x in data]

    def s_value(arrays):
        ts = _first_order(arrays, device, False)
        return sum(float((t.grad.numpy() * vk).sum()) for t, vk in zip(ts, v))

    ts = _first_order(data, device, True)
    first = [t.grad.numpy().copy() for t in ts]
    s = sum((t.grad * T(vk, device, requires_grad=False)).sum() for t, vk in zip(ts, v))
    s.backward()  # accumulates onto the first-order gradients
    analytic = [t.grad.numpy() - g for t, g in zip(ts, first)]
    eps = 1e-6
    for k, x in enumerate(data):
        num = np.zeros_like(x)
        for j in range(x.size):
            plus = [a.copy() for a in data]
            minus = [a.copy() for a in data]
            plus[k].reshape(-1)[j] += eps
            minus[k].reshape(-1)[j] -= eps
            num.reshape(-1)[j] = (s_value(plus) - s_value(minus)) / (2 * eps)
        np.testing.assert_allclose(analytic[k], num, rtol=1e-5, atol=1e-6, err_msg=f"input {k}")


def test_double_backward_matches_per_step(device):
    data = _data(5, 3, 2, 3)
    results = []
    for layer in (ops.lstm_layer, _per_step):
        ts = [T(x, device) for x in data]
        _loss(*layer(*ts)).backward(create_graph=True)
        (ts[0].grad * ts[3].grad.sum()).sum().backward()
        results.append([t.grad.numpy() for t in ts])
    for x, y in zip(*results):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_match_references(device, dtype):
    """The backend's pair (or the composition) against the contract's NumPy references."""
    from needle.backend_ndarray import NDArray, fused

    gx, h0, c0, w = _data(6, 5, 4, 3)
    nd = [NDArray(x, device=device, dtype=dtype) for x in (gx, w, h0, c0)]
    hs, cs, saved = fused.lstm_layer_forward(*nd)
    want = KERNELS["lstm_layer"].reference(gx, w, h0, c0)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hs.numpy(), want[0], **tol)
    np.testing.assert_allclose(cs.numpy(), want[1], **tol)
    rng = np.random.default_rng(7)
    dhs, dh_n, dc_n = rng.standard_normal(hs.shape), *rng.standard_normal((2, 4, 3))
    grads = [NDArray(x, device=device, dtype=dtype) for x in (dhs, dh_n, dc_n)]
    got = fused.lstm_layer_backward(nd[1], nd[2], nd[3], hs, cs, saved, *grads)
    ref = KERNELS["lstm_layer_backward"].reference(w, h0, c0, *want, dhs, dh_n, dc_n)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.numpy(), b, **tol)


def test_reference_backward_is_the_gradient_of_the_reference():
    """The contract's backward reference against finite differences of its forward."""
    gx, h0, c0, w = _data(8, 3, 2, 2)
    rng = np.random.default_rng(9)
    dhs, dh_n, dc_n = rng.standard_normal((3, 2, 2)), *rng.standard_normal((2, 2, 2))
    fwd, bwd = KERNELS["lstm_layer"].reference, KERNELS["lstm_layer_backward"].reference

    def loss(gx, w, h0, c0):
        hs, cs, _ = fwd(gx, w, h0, c0)
        return (hs * dhs).sum() + (hs[-1] * dh_n).sum() + (cs[-1] * dc_n).sum()

    dgx, dw, dh0, dc0 = bwd(w, h0, c0, *fwd(gx, w, h0, c0), dhs, dh_n, dc_n)
    args = [gx, w, h0, c0]
    for k, want in enumerate((dgx, dw, dh0, dc0)):
        num = np.zeros_like(args[k])
        for j in range(num.size):
            p = [a.copy() for a in args]
            m = [a.copy() for a in args]
            p[k].reshape(-1)[j] += 1e-6
            m[k].reshape(-1)[j] -= 1e-6
            num.reshape(-1)[j] = (loss(*p) - loss(*m)) / 2e-6
        np.testing.assert_allclose(want, num, rtol=1e-6, atol=1e-8)


def test_module_state_none_and_given(device):
    """nn.LSTM with h None (zeros; W_hh still gets a gradient) and with a given state."""
    np.random.seed(10)
    lstm = nn.LSTM(3, 4, 2, device=device, dtype="float64")
    x = T(np.random.standard_normal((1, 2, 3)), device)
    out, (h, c) = lstm(x)
    assert out.shape == (1, 2, 4) and h.shape == c.shape == (2, 2, 4)
    (out.sum() + c.sum()).backward()
    g = lstm.lstm_cells[0].W_hh.grad
    assert g is not None and np.all(g.numpy() == 0.0)  # h0 = 0 and one step
    h0 = np.random.standard_normal((2, 2, 4))
    c0 = np.random.standard_normal((2, 2, 4))
    out2, (h2, c2) = lstm(x, (T(h0, device), T(c0, device)))
    # reference: the per-step cells with the same weights
    seq = x
    for layer, cell in enumerate(lstm.lstm_cells):
        hs = _per_step(cell.input_gates(seq), T(h0[layer], device), T(c0[layer], device),
                       cell.W_hh)  # fmt: skip
        np.testing.assert_allclose(h2.numpy()[layer], hs[1].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c2.numpy()[layer], hs[2].numpy(), rtol=1e-12, atol=1e-12)
        seq = hs[0]
    np.testing.assert_allclose(out2.numpy(), seq.numpy(), rtol=1e-12, atol=1e-12)


def test_errors(device):
    gx, h0, c0, w = (T(x, device) for x in _data(11, 2, 3, 4))
    with pytest.raises(ValueError, match="lstm_layer"):
        ops.lstm_layer(gx, h0, c0, T(np.ones((4, 12)), device))
    with pytest.raises(ValueError, match="lstm_layer"):
        ops.lstm_layer(T(np.ones((0, 3, 16)), device), h0, c0, w)
    with pytest.raises(TypeError, match="lstm_layer"):
        ops.lstm_layer(gx, h0, T(c0.numpy(), device, "float32"), w)


# --- the Elman RNN layer (ops.rnn_layer, kernels rnn_layer / rnn_layer_backward) ------------
def _rnn_data(seed, t=4, n=3, h=5):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((t, n, h)),
        rng.standard_normal((n, h)),
        rng.standard_normal((h, h)) * 0.5,
    ]


def _rnn_per_step(gx, h0, w, act):
    h, hs = h0, []
    for x in ops.split(gx, 0):
        h = ops.rnn_cell(x, h, w, act)
        hs.append(h)
    return ops.stack(hs, 0)


def _rnn_loss(hs):
    w = np.arange(hs.size).reshape(hs.shape) % 5 - 2.0
    wt = ndl.Tensor(w, dtype=hs.dtype, device=hs.device, requires_grad=False)
    return (hs * wt).sum() + (hs * hs).sum() * 0.25


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 1, 1), (3, 1, 2)])
def test_rnn_matches_per_step(device, act, dtype, shape):
    data = _rnn_data(20, *shape)
    a = [T(x, device, dtype) for x in data]
    b = [T(x, device, dtype) for x in data]
    y = ops.rnn_layer(*a, act)
    z = _rnn_per_step(*b, act)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(y.numpy(), z.numpy(), **tol)
    _rnn_loss(y).backward()
    _rnn_loss(z).backward()
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.grad.numpy(), v.grad.numpy(), **tol)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_rnn_gradients_first_and_second_order(device, act):
    data = _rnn_data(21, 3, 2, 3)
    check_gradients(lambda gx, h0, w: ops.rnn_layer(gx, h0, w, act), *data, device=device)
    # second order: against the per-step composition (finite differences of the first
    # order for tanh; relu's second derivative is zero almost everywhere)
    results = []
    for layer in (ops.rnn_layer, _rnn_per_step):
        ts = [T(x, device) for x in data]
        _rnn_loss(layer(*ts, act)).backward(create_graph=True)
        (ts[0].grad * ts[2].grad.sum()).sum().backward()
        results.append([t.grad.numpy() for t in ts])
    for x, y in zip(*results):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)


def test_rnn_second_order_finite_differences(device):
    data = _rnn_data(22, 3, 2, 2)
    rng = np.random.default_rng(23)
    v = [rng.standard_normal(x.shape) for x in data]

    def first(arrays, create_graph):
        ts = [T(x, device) for x in arrays]
        _rnn_loss(ops.rnn_layer(*ts)).backward(create_graph=create_graph)
        return ts

    def s_value(arrays):
        return sum(float((t.grad.numpy() * vk).sum()) for t, vk in zip(first(arrays, False), v))

    ts = first(data, True)
    g1 = [t.grad.numpy().copy() for t in ts]
    sum((t.grad * T(vk, device, requires_grad=False)).sum() for t, vk in zip(ts, v)).backward()
    for k, x in enumerate(data):
        num = np.zeros_like(x)
        for j in range(x.size):
            p = [a.copy() for a in data]
            m = [a.copy() for a in data]
            p[k].reshape(-1)[j] += 1e-6
            m[k].reshape(-1)[j] -= 1e-6
            num.reshape(-1)[j] = (s_value(p) - s_value(m)) / 2e-6
        np.testing.assert_allclose(ts[k].grad.numpy() - g1[k], num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("relu", [0, 1])
def test_rnn_kernels_match_references(device, relu):
    from needle.backend_ndarray import NDArray, fused

    act = "relu" if relu else "tanh"
    gx, h0, w = _rnn_data(24, 5, 4, 3)
    nd = [NDArray(x, device=device, dtype="float64") for x in (gx, w, h0)]
    hs = fused.rnn_layer_forward(*nd, act)
    want = KERNELS["rnn_layer"].reference(gx, w, h0, relu)
    np.testing.assert_allclose(hs.numpy(), want, rtol=1e-12, atol=1e-12)
    dhs = np.random.default_rng(25).standard_normal(hs.shape)
    got = fused.rnn_layer_backward(nd[1], nd[2], hs, NDArray(dhs, device=device), act)
    ref = KERNELS["rnn_layer_backward"].reference(w, h0, want, dhs, relu)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-12)


def test_rnn_module(device):
    np.random.seed(26)
    rnn = nn.RNN(3, 4, 2, nonlinearity="relu", device=device, dtype="float64")
    x = T(np.random.standard_normal((1, 2, 3)), device)
    out, h = rnn(x)
    assert out.shape == (1, 2, 4) and h.shape == (2, 2, 4)
    (out.sum() + h.sum()).backward()
    g = rnn.rnn_cells[0].W_hh.grad
    assert g is not None and np.all(g.numpy() == 0.0)  # h0 = 0 and one step
    with pytest.raises(ValueError, match="rnn_layer"):
        ops.rnn_layer(T(np.ones((2, 3, 4)), device), T(np.ones((3, 4)), device),
                      T(np.ones((4, 3)), device))  # fmt: skip


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_compiled_training_is_bit_identical(device, kind):
    """nn.LSTM / nn.RNN trained through needle.compile (replayed steps) and eagerly give
    the same bits, with the kernels and with the composition."""

    def train(compiled):
        ndl.manual_seed(0)
        layer = nn.LSTM if kind == "lstm" else nn.RNN
        model = layer(3, 4, 2, device=device)
        opt = ndl.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.reset_grad()
            out, _ = model(x)
            loss = (out * out).sum()
            loss.backward()
            opt.step()
            return loss

        fn = ndl.compile(step, state=(model, opt)) if compiled else step
        rng = np.random.default_rng(30)
        losses = [fn(T(rng.standard_normal((5, 2, 3)), device, "float32", False)).numpy()
                  for _ in range(6)]  # fmt: skip
        return losses, [p.numpy() for p in model.parameters()], fn

    eager, replay = train(False), train(True)
    assert replay[2].replays >= 3
    for a, b in zip(eager[0] + eager[1], replay[0] + replay[1]):
        np.testing.assert_array_equal(a, b)
