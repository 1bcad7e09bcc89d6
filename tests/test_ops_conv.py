"""conv: forward against a direct NumPy reference, gradients against finite differences."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients


def conv_reference(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Direct NHWC x KKIO cross-correlation: a loop over kernel taps, einsum over channels."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out


BACKENDS = ["numpy"] + (["cpp"] if "cpp" in {d.name for d in ndl.all_devices()} else [])


@pytest.fixture(params=BACKENDS)
def device(request):
    """Every CPU backend: numpy runs the im2col path, cpp its conv2d_nhwc kernel if any."""
    return ndl.device(request.param)


def t64(a: np.ndarray, device=None, requires_grad: bool = True) -> ndl.Tensor:
    return ndl.Tensor(a, dtype="float64", device=device, requires_grad=requires_grad)


@pytest.mark.parametrize(
    ("shape", "k", "c_out", "stride", "padding"),
    [
        ((2, 5, 5, 3), 3, 4, 1, 0),
        ((2, 5, 5, 3), 3, 4, 1, 1),
        ((2, 6, 7, 3), 3, 2, 2, 1),
        ((1, 7, 7, 2), 5, 3, 2, 2),
        ((3, 8, 6, 1), 1, 2, 3, 0),
        ((1, 4, 4, 2), 4, 1, 1, 0),
        ((2, 9, 9, 2), 3, 2, 3, 0),
        ((1, 3, 3, 1), 3, 1, 1, 3),
    ],
)
def test_conv_forward_matches_numpy(rng, device, shape, k, c_out, stride, padding):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k, k, shape[3], c_out))
    out = ndl.conv(t64(x, device), t64(w, device), stride=stride, padding=padding)
    np.testing.assert_allclose(
        out.numpy(), conv_reference(x, w, stride, padding), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    ("shape", "k", "c_out", "stride", "padding"),
    [
        ((2, 4, 4, 2), 3, 2, 1, 0),
        ((1, 5, 5, 2), 3, 2, 1, 1),
        ((1, 6, 5, 2), 3, 2, 2, 1),
        ((2, 5, 5, 1), 2, 3, 2, 0),
        ((1, 7, 7, 1), 3, 1, 3, 2),
        ((1, 3, 3, 2), 3, 1, 1, 3),
    ],
)
def test_conv_gradients(rng, device, shape, k, c_out, stride, padding):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k, k, shape[3], c_out))
    check_gradients(
        lambda a, b: ndl.conv(a, b, stride=stride, padding=padding), x, w, device=device
    )


def test_conv_second_order_gradient(rng, device):
    # The backward is built from differentiable ops, so d(dL/dw)/dx exists and is right.
    x0 = rng.standard_normal((1, 4, 4, 2))
    w = t64(rng.standard_normal((3, 3, 2, 2)), device)

    def grad_w_norm(x: ndl.Tensor) -> ndl.Tensor:
        w.grad = None
        (ndl.conv(x, w, stride=2, padding=1) ** 2.0).sum().backward(create_graph=True)
        x.grad = None  # keep only the outer backward's gradient on x
        return (w.grad * w.grad).sum()

    check_gradients(grad_w_norm, x0, device=device)


def test_conv_noncontiguous_input(rng, device):
    x = rng.standard_normal((2, 3, 6, 5))  # permuted to NHWC (2, 6, 5, 3) below
    w = rng.standard_normal((3, 3, 3, 2))
    xt = ndl.permute(t64(x, device), (0, 2, 3, 1))
    out = ndl.conv(xt, t64(w, device), stride=2, padding=1)
    ref = conv_reference(x.transpose(0, 2, 3, 1), w, 2, 1)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_conv_empty_batch(rng, device):
    w = rng.standard_normal((3, 3, 2, 4))
    out = ndl.conv(t64(np.zeros((0, 5, 5, 2)), device), t64(w, device), padding=1)
    assert out.shape == (0, 5, 5, 4)


def test_conv_float32_matches_float64(rng, device):
    x = rng.standard_normal((2, 6, 6, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    f32 = {"device": device, "dtype": "float32"}
    out = ndl.conv(ndl.Tensor(x, **f32), ndl.Tensor(w, **f32), padding=1)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), conv_reference(x, w, 1, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("xs", "ws", "kwargs", "exc", "match"),
    [
        ((5, 5, 3), (3, 3, 3, 4), {}, ValueError, "conv: need NHWC"),
        ((1, 5, 5, 3), (3, 3, 2, 4), {}, ValueError, "conv: input has 3 channels"),
        ((1, 5, 5, 3), (3, 3, 3, 4), {"stride": 0}, ValueError, "conv: stride"),
        ((1, 5, 5, 3), (3, 3, 3, 4), {"padding": -1}, ValueError, "conv: padding"),
        ((1, 2, 2, 3), (3, 3, 3, 4), {}, ValueError, "conv: kernel"),
    ],
)
def test_conv_bad_input(xs, ws, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ndl.conv(t64(np.zeros(xs)), t64(np.zeros(ws)), **kwargs)


def test_conv_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="conv: dtypes differ"):
        ndl.conv(ndl.Tensor(np.zeros((1, 3, 3, 1)), dtype="float32"), t64(np.zeros((1, 1, 1, 1))))
