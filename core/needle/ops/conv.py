"""2-D convolution in the course's layout: NHWC input, (KH, KW, C_in, C_out) weights.

Forward: zero-pad, then im2col as one ``as_strided`` view of shape
``(N, H_out, W_out, KH, KW, C_in)`` (no Python loop over pixels), compacted and
multiplied by the weights as a ``(KH*KW*C_in, C_out)`` matrix. A backend that declares
``conv2d_nhwc`` gets the padded input instead (square kernels only, as its contract says).

Backward (the course's approach, written with Tensor ops so it can be differentiated
again), with ``s`` the stride and ``p`` the padding:

* dX: dilate out_grad by ``s - 1`` to the exact length ``H + 2p - KH + 1``, pad it by
  ``K - 1``, convolve with the weights flipped spatially and with C_in/C_out swapped,
  then crop the ``p`` border.
* dW: convolve the padded input with channels and batch swapped, ``(C_in, H', W', N)``,
  by the dilated out_grad taken as a kernel ``(L_h, L_w, N, C_out)``, which gives
  exactly ``(C_in, KH, KW, C_out)``; move the axes back. That composition is what runs
  when the backward pass records a graph (``create_graph=True``). A plain backward
  takes the direct route instead, ``dW = im2col(x)^T out_grad``: the same numbers for
  the work of one forward pass, where the dilated kernel would multiply mostly zeros.
"""

from __future__ import annotations

import numbers

from ..autograd import Tensor, TensorOp, is_grad_enabled
from ..backend_ndarray import NDArray
from ._helpers import check_same_device, check_tensor


def _conv_nd(x: NDArray, w: NDArray, stride: int, padding: int) -> NDArray:
    if padding:
        x = x.pad(((0, 0), (padding, padding), (padding, padding), (0, 0)))
    return x.conv2d(w, stride)


def _weight_grad(x: NDArray, g: NDArray, kh: int, kw: int, stride: int, padding: int) -> NDArray:
    """dW = im2col(x)^T g, without dilating g: the work of one forward pass."""
    if padding:
        x = x.pad(((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h_out, w_out, c_out = g.shape
    cols = x.im2col(kh, kw, stride)
    g_t = g.compact().reshape((n * h_out * w_out, c_out)).permute((1, 0))
    return (g_t @ cols).permute((1, 0)).compact().reshape((kh, kw, x.shape[3], c_out))


class Conv(TensorOp):
    """conv(x, w) with zero padding ``padding`` and stride ``stride`` on H and W."""

    def __init__(self, stride: int = 1, padding: int = 0) -> None:
        self.stride = stride
        self.padding = padding

    def compute(self, x: NDArray, w: NDArray) -> NDArray:
        return _conv_nd(x, w, self.stride, self.padding)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        from .indexing import Dilate, flip, getitem, pad
        from .shape import permute

        x, w = node.inputs
        s, p = self.stride, self.padding
        _, h, w_, _ = x.shape
        kh, kw, _, _ = w.shape
        # Exact dilated lengths: the output positions cover H + 2p - KH + 1 input rows.
        lh, lw = h + 2 * p - kh + 1, w_ + 2 * p - kw + 1
        fast_gw = w.requires_grad and not is_grad_enabled()
        g = out_grad
        if (x.requires_grad or (w.requires_grad and not fast_gw)) and (
            s > 1 or (lh, lw) != g.shape[1:3]
        ):
            n, _, _, c_out = g.shape
            g = Dilate((1, 2), s - 1, (n, lh, lw, c_out))(g)

        gx = gw = None  # only what some input needs (an image batch needs no gradient)
        if x.requires_grad:
            # dX: full correlation of g with the flipped, transposed kernel, minus the border.
            w_t = permute(flip(w, (0, 1)), (0, 1, 3, 2))
            gx = conv(pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0))), w_t)
            if p:
                gx = getitem(gx, (slice(None), slice(p, p + h), slice(p, p + w_)))
        if fast_gw:
            # A plain backward (no graph recorded): the direct im2col product.
            gw = Tensor.make_const(
                _weight_grad(x.realize_cached_data(), out_grad.realize_cached_data(), kh, kw, s, p)
            )
        elif w.requires_grad:
            # dW: correlate the padded input (C_in as batch, N as channels) with g as a kernel.
            xp = pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
            # g spans exactly H + 2p - KH + 1 rows, so the result is (C_in, KH, KW, C_out).
            gw = permute(conv(permute(xp, (3, 1, 2, 0)), permute(g, (1, 2, 0, 3))), (1, 2, 0, 3))
        return gx, gw  # type: ignore[return-value]


def conv(x: Tensor, w: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in the course) of NHWC ``x`` with ``w``.

    Args:
        x: input of shape (N, H, W, C_in).
        w: weights of shape (KH, KW, C_in, C_out) (the course uses KH == KW).
        stride: step between output positions, >= 1.
        padding: zeros added on each side of H and W, >= 0.

    Returns:
        (N, (H + 2p - KH) // stride + 1, (W + 2p - KW) // stride + 1, C_out).

    Raises:
        ValueError: wrong ranks, channel mismatch, bad stride/padding, or a kernel larger
            than the padded input.
    """
    check_tensor("conv", x)
    check_tensor("conv", w)
    check_same_device("conv", x, w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(
            "conv: need NHWC input and (K, K, C_in, C_out) weights, "
            f"got shapes {x.shape} and {w.shape}"
        )
    if x.dtype != w.dtype:
        raise TypeError(f"conv: dtypes differ, {x.dtype} and {w.dtype}")
    if x.shape[3] != w.shape[2]:
        raise ValueError(
            f"conv: input has {x.shape[3]} channels but weights expect {w.shape[2]} "
            f"(shapes {x.shape} and {w.shape})"
        )
    for name, v, low in (("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise ValueError(f"conv: {name} must be an int >= {low}, got {v!r}")
    hp, wp = x.shape[1] + 2 * padding, x.shape[2] + 2 * padding
    if w.shape[0] > hp or w.shape[1] > wp or 0 in w.shape[:2]:
        raise ValueError(
            f"conv: kernel {w.shape[:2]} does not fit the padded input {(hp, wp)} "
            f"(shapes {x.shape} and {w.shape}, padding {padding})"
        )
    return Conv(int(stride), int(padding))(x, w)
