"""Fused batch norm, layer norm and softmax cross-entropy (issue 12, item 3).

Each op is checked against NumPy formulas (float64), its gradient against central finite
differences, its gradient's gradient (the backward op) against finite differences too,
and forward and gradient against the same layer composed from basic Tensor ops. Every
test runs with the backend's optional kernels and with them hidden ("-composed": the
composition of required kernels in ``needle.backend_ndarray.fused``).
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients, device_for, fused_test_backends
from needle import nn, ops
from train_steps import softmax_step

_CPP = "cpp" in {d.name for d in ndl.all_devices()}
BACKENDS = fused_test_backends()
EPS = 1e-5


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch):
    return device_for(request.param, monkeypatch)


def T(a, device, requires_grad=True, dtype="float64"):
    return ndl.Tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=requires_grad)


# --- NumPy references --------------------------------------------------------------------
def np_batch_norm(x, w, b, eps=EPS):
    mean, var = x.mean(0), x.var(0)
    return (x - mean) / np.sqrt(var + eps) * w + b, mean, var


def np_layer_norm(x, w, b, eps=EPS):
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def np_xent(z, y):
    m = z.max(1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
    return (lse - z[np.arange(len(y)), y.astype(int)]).mean()


# --- the same layers from basic Tensor ops ---------------------------------------------
def composed_norm(x, w, b, ax, eps=EPS):
    n = x.shape[ax]
    mean = ops.broadcast_to(ops.summation(x, (ax,), keepdims=True) / float(n), x.shape)
    xc = x - mean
    var = ops.broadcast_to(ops.summation(xc * xc, (ax,), keepdims=True) / float(n), x.shape)
    one = (1, x.shape[1])
    wb = ops.broadcast_to(ops.reshape(w, one), x.shape)
    bb = ops.broadcast_to(ops.reshape(b, one), x.shape)
    return xc / ops.sqrt(var + eps) * wb + bb


def composed_xent(z, y):
    hot = ops.one_hot(z.shape[1], y)
    return ops.summation(ops.logsumexp(z, (1,)) - ops.summation(z * hot, (1,))) / float(z.shape[0])


def _data(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# --- forward against NumPy ---------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 3), (1, 4), (37, 5)])
def test_batch_norm_forward(device, shape):
    x, w, b = _data(0, shape, shape[1:], shape[1:])
    op = ops.BatchNorm(EPS)
    y = op(T(x, device), T(w, device), T(b, device))
    want, mean, var = np_batch_norm(x, w, b)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.stats.numpy(), np.stack([mean, var]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 6), (3, 1), (0, 3)])
def test_layer_norm_forward(device, shape):
    x, w, b = _data(1, shape, shape[1:], shape[1:])
    y = ops.layer_norm(T(x, device), T(w, device), T(b, device))
    np.testing.assert_allclose(y.numpy(), np_layer_norm(x, w, b), rtol=1e-10, atol=1e-10)


def test_softmax_cross_entropy_forward(device):
    (z,) = _data(2, (6, 5))
    z[2] += 1000.0  # stability
    y = np.array([0, 4, 2, 2, 1, 3], dtype=float)
    loss = ops.softmax_cross_entropy(T(z, device), T(y, device, False))
    assert loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), np_xent(z, y), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, k", [(300, 10), (7, 1), (40, 31), (40, 32), (5, 300)])
def test_softmax_xent_kernels_short_and_long_rows(dtype, n, k):
    """The kernels row by row, per backend: short rows (the cpp kernels exponentiate a
    block of them in one loop; 300 x 10 spans several blocks) and long ones, with a row
    shifted far up, a row holding +inf, one holding -inf, and one holding NaN."""
    rng = np.random.default_rng(k)
    z = rng.standard_normal((n, k))
    labels = rng.integers(0, k, n).astype(float)
    z[1] += 1000.0
    special = {2: np.inf, 4: np.nan} if n > 4 and k > 1 else {}
    for row, v in special.items():
        z[row, 0] = v
    if special:  # a -inf logit (not the label's) is an ordinary row: its class gets 0
        z[3, 0], labels[3] = -np.inf, 1.0
    z = z.astype(dtype)
    zd = z.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = zd.max(1, keepdims=True)
        e = np.exp(zd - m)
        lse = np.log(e.sum(1)) + m[:, 0]
        want = lse - zd[np.arange(n), labels.astype(int)]
        grad = e / e.sum(1, keepdims=True) * 0.25
    grad[np.arange(n), labels.astype(int)] -= 0.25
    ordinary = [i for i in range(n) if i not in special]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for dev in ndl.all_devices():
        if dev.name == "cuda" or not dev.has_kernel("softmax_xent"):
            continue
        k_ = dev.kernels

        def up(a, kt=k_):
            h = kt.alloc(a.size, dtype)
            kt.from_numpy(np.ascontiguousarray(a, dtype=dtype).reshape(-1), h)
            return h

        out, gout = k_.alloc(n, dtype), k_.alloc(n * k, dtype)
        k_.softmax_xent(up(z), up(labels), out, n, k)
        k_.softmax_xent_backward(up(z), up(labels), up(np.array([0.25])), gout, n, k)
        got = np.asarray(k_.to_numpy(out, (n,), (1,), 0), np.float64)
        gg = np.asarray(k_.to_numpy(gout, (n, k), (k, 1), 0), np.float64)
        np.testing.assert_allclose(
            got[ordinary], want[ordinary], rtol=tol, atol=tol, err_msg=dev.name
        )
        np.testing.assert_allclose(
            gg[ordinary], grad[ordinary], rtol=tol, atol=tol, err_msg=dev.name
        )
        if special:  # the NaN row is NaN throughout; the +inf row's gradient has a NaN
            assert np.isnan(got[4]) and np.isnan(gg[4]).all(), dev.name
            assert np.isnan(gg[2]).any(), dev.name


def test_float32(device):
    x, w, b = (a.astype(np.float32) for a in _data(3, (64, 7), (7,), (7,)))
    y = ops.batch_norm(*(T(a, device, dtype="float32") for a in (x, w, b)))
    np.testing.assert_allclose(y.numpy(), np_batch_norm(x, w, b)[0], rtol=1e-4, atol=1e-4)
    y = ops.layer_norm(*(T(a, device, dtype="float32") for a in (x, w, b)))
    np.testing.assert_allclose(y.numpy(), np_layer_norm(x, w, b), rtol=1e-4, atol=1e-4)
    lab = np.arange(64) % 7
    loss = ops.softmax_cross_entropy(
        T(x, device, dtype="float32"), T(lab, device, False, "float32")
    )
    np.testing.assert_allclose(loss.numpy(), np_xent(x, lab), rtol=1e-5)


def test_non_contiguous_inputs(device):
    x, w, b = _data(4, (5, 6), (5,), (5,))
    xt = T(x, device).transpose()  # a transposed (6, 5) view of a compact (5, 6) buffer
    y = ops.batch_norm(xt, T(w, device), T(b, device))
    np.testing.assert_allclose(y.numpy(), np_batch_norm(x.T, w, b)[0], rtol=1e-10, atol=1e-10)
    y = ops.layer_norm(xt, T(w, device), T(b, device))
    np.testing.assert_allclose(y.numpy(), np_layer_norm(x.T, w, b), rtol=1e-10, atol=1e-10)
    lab = T(np.arange(6) % 5, device, False)
    loss = ops.softmax_cross_entropy(xt, lab)
    np.testing.assert_allclose(loss.numpy(), np_xent(x.T, np.arange(6) % 5), rtol=1e-12)


# --- gradients: finite differences and the composed layers -------------------------------
def test_batch_norm_gradient(device):
    x, w, b = _data(5, (6, 3), (3,), (3,))
    check_gradients(ops.batch_norm, x, w, b, device=device)


def test_layer_norm_gradient(device):
    x, w, b = _data(6, (4, 5), (5,), (5,))
    check_gradients(ops.layer_norm, x, w, b, device=device)


def test_batch_norm_eval_gradient(device):
    x, w, b, m = _data(7, (5, 3), (3,), (3,), (3,))
    v = np.random.default_rng(7).uniform(0.5, 2.0, 3)
    check_gradients(ops.batch_norm_eval, x, w, b, m, v, device=device)
    got = ops.batch_norm_eval(*(T(a, device) for a in (x, w, b, m, v))).numpy()
    np.testing.assert_allclose(got, (x - m) / np.sqrt(v + EPS) * w + b, rtol=1e-12)


def test_softmax_cross_entropy_gradient(device):
    (z,) = _data(8, (5, 4))
    lab = T(np.array([3, 0, 1, 1, 2]), device, False)
    check_gradients(lambda z: ops.softmax_cross_entropy(z, lab), z, device=device)


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_matches_composed(device, kind):
    x, w, b, g = _data(9, (7, 4), (4,), (4,), (7, 4))
    fused = ops.batch_norm if kind == "batch" else ops.layer_norm
    ax = 0 if kind == "batch" else 1
    results = []
    for fn in (fused, lambda x, w, b: composed_norm(x, w, b, ax)):
        ts = [T(a, device) for a in (x, w, b)]
        y = fn(*ts)
        (y * T(g, device, False)).sum().backward()
        results.append([y.numpy()] + [t.grad.numpy() for t in ts])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_softmax_cross_entropy_matches_composed(device):
    (z,) = _data(10, (6, 5))
    lab = np.array([4, 0, 1, 1, 2, 3], dtype=float)
    results = []
    for fn in (ops.softmax_cross_entropy, composed_xent):
        zt = T(z, device)
        loss = fn(zt, T(lab, device, False))
        loss.backward()
        results.append((loss.numpy(), zt.grad.numpy()))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# --- gradients of the backward ops (double backward) -------------------------------------
@pytest.mark.parametrize("kind", ["batch", "layer"])
@pytest.mark.parametrize("which", [0, 1, 2, "all"])
def test_norm_backward_gradient(device, kind, which):
    x, g, w = _data(11, (5, 3), (5, 3), (3,))

    def f(x, g, w):
        dx, dw, db = ops.NormBackward(kind, EPS)(x, g, w)
        if which == "all":
            row = (1, 3)
            return dx + ops.broadcast_to(ops.reshape(dw * 0.7 + db * 1.3, row), x.shape)
        return (dx, dw, db)[which]

    check_gradients(f, x, g, w, device=device, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_double_backward_matches_composed(device, kind):
    x, w, b, g, v = _data(12, (6, 4), (4,), (4,), (6, 4), (6, 4))
    fused = ops.batch_norm if kind == "batch" else ops.layer_norm
    ax = 0 if kind == "batch" else 1
    results = []
    for fn in (fused, lambda x, w, b: composed_norm(x, w, b, ax)):
        ts = [T(a, device) for a in (x, w, b)]
        (fn(*ts) * T(g, device, False)).sum().backward(create_graph=True)
        gx, gw = ts[0].grad, ts[1].grad
        for t in ts:
            t.grad = None
        ((gx * T(v, device, False)).sum() + (gw * gw).sum()).backward()
        results.append([t.grad.numpy() for t in ts[:2]])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)


def test_softmax_cross_entropy_backward_gradient(device):
    (z,) = _data(13, (4, 5))
    lab = T(np.array([1, 4, 0, 0]), device, False)
    scale = np.array([0.7])
    check_gradients(
        lambda z, s: ops.SoftmaxCrossEntropyBackward()(z, lab, s), z, scale, device=device
    )


# --- errors ----------------------------------------------------------------------------
def test_errors(device):
    x, w = T(np.zeros((4, 3)), device), T(np.ones(3), device)
    with pytest.raises(ValueError, match="batch_norm: weight must have shape"):
        ops.batch_norm(x, T(np.ones(2), device), w)
    with pytest.raises(ValueError, match="2-D"):
        ops.layer_norm(T(np.zeros(3), device), w, w)
    with pytest.raises(ValueError, match="labels of shape"):
        ops.softmax_cross_entropy(x, T(np.zeros(3), device, False))
    with pytest.raises(TypeError, match="labels dtype"):
        ops.softmax_cross_entropy(x, T(np.zeros(4), device, False, "float32"))
    with pytest.raises(IndexError):
        ops.softmax_cross_entropy(x, T(np.array([0, 1, 2, 3.0]), device, False))


# --- modules -----------------------------------------------------------------------------
def test_batchnorm1d_module(device):
    (x,) = _data(14, (10, 4))
    bn = nn.BatchNorm1d(4, momentum=0.2, device=device, dtype="float64")
    y = bn(T(x, device))
    np.testing.assert_allclose(y.numpy(), np_batch_norm(x, 1.0, 0.0)[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * x.var(0), rtol=1e-12)
    bn.eval()
    want = x / np.sqrt(bn.running_var.numpy() + EPS) - bn.running_mean.numpy() / np.sqrt(
        bn.running_var.numpy() + EPS
    )
    np.testing.assert_allclose(bn(T(x, device)).numpy(), want, rtol=1e-10, atol=1e-12)


def test_batchnorm2d_nhwc_matches_nchw(device):
    (x,) = _data(15, (2, 3, 4, 5))  # NCHW
    a = nn.BatchNorm2d(3, device=device, dtype="float64")
    b = nn.BatchNorm2d(3, device=device, dtype="float64", layout="NHWC")
    ya = a(T(x, device))
    yb = b(T(x.transpose(0, 2, 3, 1).copy(), device))
    np.testing.assert_allclose(yb.numpy().transpose(0, 3, 1, 2), ya.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.running_var.numpy(), a.running_var.numpy(), rtol=1e-12)
    assert set(a.state_dict()) == set(b.state_dict())
    xn = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    want = np_batch_norm(xn, 1.0, 0.0)[0].reshape(2, 4, 5, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ya.numpy(), want, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="layout"):
        nn.BatchNorm2d(3, layout="CHWN")


def test_layernorm1d_module_3d(device):
    (x,) = _data(16, (2, 3, 4))
    ln = nn.LayerNorm1d(4, device=device, dtype="float64")
    y = ln(T(x, device))
    want = np_layer_norm(x.reshape(6, 4), 1.0, 0.0).reshape(2, 3, 4)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-10)


def test_softmax_loss_module(device):
    (z,) = _data(17, (5, 3))
    lab = np.array([2, 0, 1, 1, 0])
    loss = nn.SoftmaxLoss()
    for y in (lab, T(lab, device, False), T(lab.reshape(5, 1), device, False)):
        np.testing.assert_allclose(loss(T(z, device), y).numpy(), np_xent(z, lab), rtol=1e-12)
    with pytest.raises(IndexError):
        loss(T(z, device), np.array([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="rows of logits"):
        loss(T(z, device), np.array([0, 1]))


# --- NHWC layers in the model zoo ----------------------------------------------------------
def test_nhwc_conv_and_pool_match_nchw(device):
    (x,) = _data(18, (2, 3, 6, 6))
    kw = {"device": device, "dtype": "float64"}
    a = nn.Conv(3, 4, 3, **kw)
    b = nn.Conv(3, 4, 3, layout="NHWC", **kw)
    b.load_state_dict(a.state_dict())
    xn = T(x.transpose(0, 2, 3, 1).copy(), device, False)
    ya, yb = a(T(x, device, False)), b(xn)
    np.testing.assert_array_equal(yb.numpy().transpose(0, 3, 1, 2), ya.numpy())
    for pool in (nn.MaxPool2d, nn.AvgPool2d):
        got = pool(2, layout="NHWC")(yb).numpy().transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(got, pool(2)(ya).numpy())
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        b(T(x, device, False))


def test_resnet9_keeps_nchw_interface_and_checkpoints(device):
    from needle.models import ResNet9
    from needle.models.cnn import ConvBN

    kw = {"device": device, "dtype": "float64"}
    np.random.seed(0)
    model = ResNet9(**kw)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv, nn.BatchNorm2d))]
    assert layers and all(m.layout == "NHWC" for m in layers)

    ref = nn.Sequential(  # the same layers, NCHW throughout
        ConvBN(3, 16, 7, 4, **kw),
        ConvBN(16, 32, 3, 2, **kw),
        nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **kw), ConvBN(32, 32, 3, 1, **kw))),
        ConvBN(32, 64, 3, 2, **kw),
        ConvBN(64, 128, 3, 2, **kw),
        nn.Residual(nn.Sequential(ConvBN(128, 128, 3, 1, **kw), ConvBN(128, 128, 3, 1, **kw))),
        nn.Flatten(),
        nn.Linear(128, 128, **kw),
        nn.ReLU(),
        nn.Linear(128, 10, **kw),
    )
    assert list(ref.state_dict()) == list(model.state_dict())
    ref.load_state_dict(model.state_dict())
    (x,) = _data(19, (2, 3, 32, 32))
    xs = [T(x, device) for _ in range(2)]
    ya, yb = model(xs[0]), ref(xs[1])
    np.testing.assert_allclose(ya.numpy(), yb.numpy(), rtol=1e-12, atol=1e-12)
    ya.sum().backward()
    yb.sum().backward()
    np.testing.assert_allclose(xs[0].grad.numpy(), xs[1].grad.numpy(), rtol=1e-9, atol=1e-12)


# --- replay and threads --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["numpy", "cpp"] if _CPP else ["numpy"])
def test_compiled_steps_are_bit_identical(name):
    dev = ndl.device(name)
    rng = np.random.RandomState(3)
    xs = [rng.randn(8, 6).astype("float32") for _ in range(7)]
    ys = [rng.randint(0, 4, 8).astype("float32") for _ in range(7)]

    def train(compiled):
        np.random.seed(0)
        model = nn.Sequential(
            nn.Linear(6, 12, device=dev),
            nn.BatchNorm1d(12, device=dev),
            nn.ReLU(),
            nn.LayerNorm1d(12, device=dev),
            nn.Linear(12, 4, device=dev),
        )
        opt = ndl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = softmax_step(model, opt)

        fn = ndl.compile(step, state=(model, opt)) if compiled else step
        losses = [
            fn(ndl.Tensor(x, device=dev), ndl.Tensor(y, device=dev)).numpy() for x, y in zip(xs, ys)
        ]
        return [p.numpy() for p in model.parameters()] + [
            model.modules_list[1].running_mean.numpy(),
            model.modules_list[1].running_var.numpy(),
            np.array(losses),
        ]

    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not _CPP, reason="cpp backend not installed")
def test_cpp_kernels_do_not_depend_on_thread_count():
    import needle_cpp._core as core

    dev = ndl.device("cpp")
    (x,) = _data(20, (60000, 5))  # past the parallel threshold: 2 threads really split
    w, b = (T(a, dev, False, "float32") for a in _data(21, (5,), (5,)))
    xt, g = T(x, dev, True, "float32"), T(x[::-1].copy(), dev, False, "float32")
    before = core.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            core.set_num_threads(threads)
            for fn in (ops.batch_norm, ops.layer_norm):
                xt.grad = None
                y = fn(xt, w, b)
                (y * g).sum().backward()
                results.append((y.numpy(), xt.grad.numpy()))
    finally:
        core.set_num_threads(before)
    for a, b in zip(results[:2], results[2:]):
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p, q)
