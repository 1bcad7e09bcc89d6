"""Padded convolution and its direct gradient kernels (issue 12).

The kernels ``conv2d_nhwc_pad``, ``conv2d_nhwc_backward_input`` and
``conv2d_nhwc_backward_weight`` are checked against the contract's NumPy references and
an explicit loop formula; the Conv op (values, first and second-order gradients) against
the composition in ``needle.backend_ndarray.fused`` (the kernels hidden: "-composed") and
central finite differences.
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients, device_for, fused_test_backends
from needle import ops
from needle.backends import KERNELS

_CPP = "cpp" in {d.name for d in ndl.all_devices()}
BACKENDS = fused_test_backends()
KERNEL_BACKENDS = ["numpy"] + (["cpp"] if _CPP else [])
NAMES = ("conv2d_nhwc_pad", "conv2d_nhwc_backward_input", "conv2d_nhwc_backward_weight")

# (n, h, w, c_in, k, c_out, stride, padding): strides 1/2/4, padding 0..3, k 1/3/7, odd
# and non-square images, one channel in or out, outputs of one pixel.
GEOMETRIES = [
    (2, 5, 5, 3, 3, 4, 1, 1),
    (2, 7, 6, 2, 3, 3, 2, 1),
    (1, 9, 11, 1, 3, 2, 2, 0),
    (3, 6, 5, 4, 1, 1, 1, 0),
    (2, 7, 7, 3, 1, 5, 2, 2),
    (1, 9, 8, 2, 7, 3, 1, 3),
    (2, 10, 9, 3, 3, 2, 4, 2),
    (1, 4, 4, 2, 7, 1, 4, 3),
    (2, 3, 5, 1, 3, 1, 1, 3),
    (1, 5, 5, 2, 5, 2, 3, 0),
    (3, 1, 1, 4, 3, 5, 1, 1),  # one-pixel images: only the centre tap reaches them
    (2, 1, 1, 3, 1, 2, 5, 1),  # ... or no tap at all (zeros)
    (2, 1, 1, 2, 3, 3, 2, 2),
]


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch):
    return device_for(request.param, monkeypatch)


def _loop_conv(x, w, stride, padding):
    """The definition, one output pixel at a time."""
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, hp, wp, _ = xp.shape
    k = w.shape[0]
    ho, wo = (hp - k) // stride + 1, (wp - k) // stride + 1
    out = np.zeros((n, ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, i, j] = np.tensordot(patch, w, axes=3)
    return out


def _data(geom, seed=0):
    n, h, w_, c_in, k, c_out, stride, padding = geom
    rng = np.random.default_rng(seed)
    ho, wo = (h + 2 * padding - k) // stride + 1, (w_ + 2 * padding - k) // stride + 1
    x = rng.standard_normal((n, h, w_, c_in))
    w = rng.standard_normal((k, k, c_in, c_out))
    g = rng.standard_normal((n, ho, wo, c_out))
    return x, w, g


# --- kernels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_kernels_match_references(backend, geom, dtype):
    k_ = ndl.device(backend).kernels
    n, h, w_, c_in, k, c_out, stride, padding = geom
    x, w, g = _data(geom)
    ref_fwd = KERNELS["conv2d_nhwc_pad"].reference(x, w, stride, padding)
    np.testing.assert_allclose(ref_fwd, _loop_conv(x, w, stride, padding), rtol=1e-12, atol=1e-12)

    def up(a):
        hnd = k_.alloc(a.size, dtype)
        k_.from_numpy(a.astype(dtype).reshape(-1), hnd)
        return hnd

    def down(hnd, shape):
        return k_.to_numpy(hnd, (int(np.prod(shape)),), (1,), 0).reshape(shape)

    dims = (n, h, w_, c_in, k, c_out, stride, padding)
    out = k_.alloc(g.size, dtype)
    k_.conv2d_nhwc_pad(up(x), up(w), out, *dims)
    dx = k_.alloc(x.size, dtype)
    k_.conv2d_nhwc_backward_input(up(g), up(w), dx, *dims)
    dw = k_.alloc(w.size, dtype)
    k_.conv2d_nhwc_backward_weight(up(x), up(g), dw, *dims)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(down(out, g.shape), ref_fwd, **tol)
    want_dx = KERNELS["conv2d_nhwc_backward_input"].reference(g, w, h, w_, stride, padding)
    np.testing.assert_allclose(down(dx, x.shape), want_dx, **tol)
    want_dw = KERNELS["conv2d_nhwc_backward_weight"].reference(x, g, k, stride, padding)
    np.testing.assert_allclose(down(dw, w.shape), want_dw, **tol)
    # The gradients are the adjoints of the convolution: <conv(x, w), g> = <x, dx> = <w, dw>.
    inner = float((ref_fwd * g).sum())
    np.testing.assert_allclose(float((want_dx * x).sum()), inner, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(float((want_dw * w).sum()), inner, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_kernels_large_chunked(backend):
    """Sizes that make the cpp kernels split their im2col/cols buffers into several chunks."""
    k_ = ndl.device(backend).kernels
    geom = (40, 20, 20, 16, 3, 8, 1, 1)
    _, h, w_, _, k, _, stride, padding = geom
    x, w, g = _data(geom, seed=3)
    dims = geom

    def up(a):
        hnd = k_.alloc(a.size, "float64")
        k_.from_numpy(a.reshape(-1), hnd)
        return hnd

    dx, dw = k_.alloc(x.size, "float64"), k_.alloc(w.size, "float64")
    k_.conv2d_nhwc_backward_input(up(g), up(w), dx, *dims)
    k_.conv2d_nhwc_backward_weight(up(x), up(g), dw, *dims)
    got_dx = k_.to_numpy(dx, (x.size,), (1,), 0).reshape(x.shape)
    got_dw = k_.to_numpy(dw, (w.size,), (1,), 0).reshape(w.shape)
    want_dx = KERNELS["conv2d_nhwc_backward_input"].reference(g, w, h, w_, stride, padding)
    want_dw = KERNELS["conv2d_nhwc_backward_weight"].reference(x, g, k, stride, padding)
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("geom", [GEOMETRIES[0], GEOMETRIES[3], GEOMETRIES[10]], ids=str)
def test_forward_output_may_alias_an_input(backend, geom):
    k_ = ndl.device(backend).kernels
    stride, padding = geom[6:]
    x, w, _ = _data(geom, seed=7)
    want = KERNELS["conv2d_nhwc_pad"].reference(x, w, stride, padding).reshape(-1)
    for alias in ("x", "w"):
        size = max(x.size, w.size, want.size)
        bufs = {}
        for name, a in (("x", x), ("w", w)):
            bufs[name] = k_.alloc(size, "float64")
            k_.from_numpy(np.resize(a.reshape(-1), size), bufs[name])
        k_.conv2d_nhwc_pad(bufs["x"], bufs["w"], bufs[alias], *geom)
        got = k_.to_numpy(bufs[alias], (want.size,), (1,), 0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"out is {alias}")


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_kernels_reject_bad_geometry(backend, name):
    k_ = ndl.device(backend).kernels
    buf = k_.alloc(4096, "float32")
    other = k_.alloc(4096, "float32")
    out = k_.alloc(4096, "float32")
    bad = [
        (1, 4, 4, 2, 0, 2, 1, 0),  # k = 0
        (1, 4, 4, 2, 3, 2, 0, 0),  # stride 0
        (1, 4, 4, 2, 3, 2, 1, -1),  # negative padding
        (1, 2, 4, 2, 5, 2, 1, 1),  # kernel larger than the padded image
        (-1, 4, 4, 2, 3, 2, 1, 0),  # negative size
        (64, 40, 40, 4, 3, 2, 1, 1),  # buffers too small
    ]
    for dims in bad:
        with pytest.raises(ValueError, match=name):
            getattr(k_, name)(buf, other, out, *dims)
    with pytest.raises(TypeError, match=name):
        getattr(k_, name)(buf, k_.alloc(4096, "float64"), out, 1, 4, 4, 2, 3, 2, 1, 1)


# --- the Conv op -------------------------------------------------------------------------------
def _t(a, device, requires_grad=True, dtype="float64"):
    return ndl.Tensor(a, device=device, dtype=dtype, requires_grad=requires_grad)


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_conv_op_values_and_gradients(device, geom):
    _, _, _, _, _, _, stride, padding = geom
    x, w, g = _data(geom, seed=1)
    xt, wt = _t(x, device), _t(w, device)
    y = ops.conv(xt, wt, stride=stride, padding=padding)
    np.testing.assert_allclose(y.numpy(), _loop_conv(x, w, stride, padding), rtol=1e-10, atol=1e-10)
    (y * _t(g, device, False)).sum().backward()
    want_dx = KERNELS["conv2d_nhwc_backward_input"].reference(
        g, w, x.shape[1], x.shape[2], stride, padding
    )
    want_dw = KERNELS["conv2d_nhwc_backward_weight"].reference(x, g, w.shape[0], stride, padding)
    np.testing.assert_allclose(xt.grad.numpy(), want_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), want_dw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geom", GEOMETRIES[:2] + GEOMETRIES[6:8], ids=str)
def test_conv_op_finite_differences(device, geom):
    _, _, _, _, _, _, stride, padding = geom
    x, w, _ = _data(geom, seed=2)
    check_gradients(
        lambda a, b: ops.conv(a, b, stride=stride, padding=padding), x, w, device=device
    )


def _second_order(device, x, w, gv, stride, padding):
    """d/d(x, w, g) of |dL/dx|^2 + <dL/dw, dL/dw> with L = <conv(x, w), g>."""
    xt, wt, gt = _t(x, device), _t(w, device), _t(gv, device)
    y = ops.conv(xt, wt, stride=stride, padding=padding)
    (y * gt).sum().backward(create_graph=True)
    gx, gw = xt.grad, wt.grad
    xt.grad = wt.grad = gt.grad = None
    ((gx * gx).sum() + (gw * gw).sum()).backward()
    return [t.grad.numpy() for t in (xt, wt, gt)]


@pytest.mark.parametrize("geom", [GEOMETRIES[1], GEOMETRIES[6]], ids=str)
def test_conv_second_order(device, geom):
    """Second-order gradients against central differences of the first-order gradients."""
    _, _, _, _, _, _, stride, padding = geom
    x, w, g = _data(geom, seed=4)
    got = _second_order(device, x, w, g, stride, padding)

    def loss(a, b, c):
        xt, wt = _t(a, device), _t(b, device)
        y = ops.conv(xt, wt, stride=stride, padding=padding)
        (y * _t(c, device, False)).sum().backward()
        return float((xt.grad.numpy() ** 2).sum() + (wt.grad.numpy() ** 2).sum())

    arrays = [x, w, g]
    eps = 1e-5
    for i, a in enumerate(arrays):
        rng = np.random.default_rng(i)
        for j in rng.choice(a.size, size=min(a.size, 6), replace=False):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            num = (loss(*plus) - loss(*minus)) / (2 * eps)
            np.testing.assert_allclose(got[i].reshape(-1)[j], num, rtol=1e-5, atol=1e-6)


def test_conv_second_order_kernels_match_composed(monkeypatch):
    dev = ndl.device("cpp" if _CPP else "numpy")
    geom = GEOMETRIES[6]
    x, w, g = _data(geom, seed=5)
    with_kernels = _second_order(dev, x, w, g, geom[6], geom[7])
    monkeypatch.setattr(dev, "has_kernel", lambda kernel: False)
    composed = _second_order(dev, x, w, g, geom[6], geom[7])
    for a, b in zip(with_kernels, composed):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_conv_op_float32_non_square_kernel(device):
    """Non-square kernels take the composition even where the kernels exist."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 6, 7, 3)), rng.standard_normal((3, 2, 3, 4))
    xt, wt = _t(x, device, dtype="float32"), _t(w, device, dtype="float32")
    y = ops.conv(xt, wt, stride=2, padding=1)
    y.sum().backward()
    xt64, wt64 = _t(x, device), _t(w, device)
    y64 = ops.conv(xt64, wt64, stride=2, padding=1)
    y64.sum().backward()
    np.testing.assert_allclose(y.numpy(), y64.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), xt64.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wt.grad.numpy(), wt64.grad.numpy(), rtol=1e-4, atol=1e-4)
