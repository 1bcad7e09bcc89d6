"""Fused layer functions on NDArrays: one optional kernel each, or a composition.

Each function here runs a backend's optional kernel when the device declares it
(``dev.has_kernel(name)``) and an equivalent composition of NDArray operations (so of
required kernels) otherwise. The ops in ``needle.ops`` call these functions; they never
call kernels themselves (this is the array layer, the one layer that does).
"""

from __future__ import annotations

from .ndarray import NDArray, one_hot

# --- normalisation and softmax cross-entropy (issue 12, item 3) ------------------------
# Layouts: batch norm normalises the rows of an (m, c) array per column (channel-last:
# (N, D) or NHWC flattened to (N*H*W, C)); layer norm normalises each row of an (r, d)
# array over its d columns. ``stats`` is a (2, c) or (2, r) array: the means, then the
# biased variances. The backward functions return (dx, dw, db).


def _check_2d(fn: str, x: NDArray, w: NDArray, b: NDArray | None, n_w: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"{fn}: expected a 2-D input, got shape {x.shape}")
    for name, t in (("weight", w), ("bias", b)):
        if t is None:
            continue
        x._same_device(t, fn)
        if t.shape != (n_w,):
            raise ValueError(f"{fn}: {name} must have shape ({n_w},), got {t.shape}")
        if t.dtype != x.dtype:
            raise TypeError(f"{fn}: {name} dtype {t.dtype} differs from input dtype {x.dtype}")


def _rsqrt(var: NDArray, eps: float) -> NDArray:
    return (var + eps).sqrt() ** -1.0


def batch_norm_forward(x: NDArray, w: NDArray, b: NDArray, eps: float) -> tuple[NDArray, NDArray]:
    """Training batch norm of ``x`` (m, c) per column: returns ``(y, stats)``."""
    _check_2d("batch_norm", x, w, b, x.shape[1] if x.ndim == 2 else 0)
    m, c = x.shape
    if m < 1:
        raise ValueError(f"batch_norm: needs at least one row, got shape {x.shape}")
    dev = x.device
    if dev.has_kernel("batchnorm_forward"):
        out = NDArray.make((m, c), device=dev, dtype=x.dtype)
        stats = NDArray.make((2, c), device=dev, dtype=x.dtype)
        dev.batchnorm_forward(
            x._compact_handle(), w._compact_handle(), b._compact_handle(),
            out._handle, stats._handle, m, c, float(eps),
        )  # fmt: skip
        return out, stats
    mean = x.sum(0, keepdims=True) / float(m)
    xc = x - mean.broadcast_to(x.shape)
    var = (xc * xc).sum(0, keepdims=True) / float(m)
    scale = (_rsqrt(var, eps) * w.reshape((1, c))).broadcast_to(x.shape)
    y = xc * scale + b.reshape((1, c)).broadcast_to(x.shape)
    return y, _stack_stats(mean, var)


def batch_norm_backward(
    x: NDArray, dy: NDArray, w: NDArray, stats: NDArray, eps: float
) -> tuple[NDArray, NDArray, NDArray]:
    """Gradients ``(dx, dw, db)`` of :func:`batch_norm_forward` given ``dy``."""
    m, c = x.shape
    dev = x.device
    if dev.has_kernel("batchnorm_backward"):
        dx = NDArray.make((m, c), device=dev, dtype=x.dtype)
        dwb = NDArray.make((2, c), device=dev, dtype=x.dtype)
        dev.batchnorm_backward(
            x._compact_handle(), dy._compact_handle(), w._compact_handle(),
            stats._compact_handle(), dx._handle, dwb._handle, m, c, float(eps),
        )  # fmt: skip
        return dx, dwb[0:1, :].reshape((c,)), dwb[1:2, :].reshape((c,))
    mean, var = stats[0:1, :], stats[1:2, :]
    r = _rsqrt(var, eps)
    xh = (x - mean.broadcast_to(x.shape)) * r.broadcast_to(x.shape)
    db = dy.sum(0, keepdims=True)
    dw = (dy * xh).sum(0, keepdims=True)
    inner = dy - (db / float(m)).broadcast_to(x.shape) - xh * (dw / float(m)).broadcast_to(x.shape)
    dx = inner * (r * w.reshape((1, c))).broadcast_to(x.shape)
    return dx, dw.reshape((c,)), db.reshape((c,))


def batch_norm_eval(
    x: NDArray, w: NDArray, b: NDArray, mean: NDArray, var: NDArray, eps: float
) -> NDArray:
    """Batch norm of ``x`` (m, c) with given per-column statistics (evaluation): one
    scale and one shift per column, then ``x * scale + shift``."""
    _check_2d("batch_norm_eval", x, w, b, x.shape[1] if x.ndim == 2 else 0)
    _check_2d("batch_norm_eval", x, mean, var, x.shape[1])
    c = x.shape[1]
    scale = _rsqrt(var, eps) * w
    shift = b - mean * scale
    return x * scale.reshape((1, c)).broadcast_to(x.shape) + shift.reshape((1, c)).broadcast_to(
        x.shape
    )


def layer_norm_forward(x: NDArray, w: NDArray, b: NDArray, eps: float) -> tuple[NDArray, NDArray]:
    """Layer norm of each row of ``x`` (r, d): returns ``(y, stats)``."""
    _check_2d("layer_norm", x, w, b, x.shape[1] if x.ndim == 2 else 0)
    rows, d = x.shape
    if d < 1:
        raise ValueError(f"layer_norm: needs at least one column, got shape {x.shape}")
    dev = x.device
    if dev.has_kernel("layernorm_forward"):
        out = NDArray.make((rows, d), device=dev, dtype=x.dtype)
        stats = NDArray.make((2, rows), device=dev, dtype=x.dtype)
        dev.layernorm_forward(
            x._compact_handle(), w._compact_handle(), b._compact_handle(),
            out._handle, stats._handle, rows, d, float(eps),
        )  # fmt: skip
        return out, stats
    mean = x.sum(1, keepdims=True) / float(d)
    xc = x - mean.broadcast_to(x.shape)
    var = (xc * xc).sum(1, keepdims=True) / float(d)
    xh = xc * _rsqrt(var, eps).broadcast_to(x.shape)
    y = xh * w.reshape((1, d)).broadcast_to(x.shape) + b.reshape((1, d)).broadcast_to(x.shape)
    return y, _stack_stats(mean.reshape((1, rows)), var.reshape((1, rows)))


def layer_norm_backward(
    x: NDArray, dy: NDArray, w: NDArray, stats: NDArray, eps: float
) -> tuple[NDArray, NDArray, NDArray]:
    """Gradients ``(dx, dw, db)`` of :func:`layer_norm_forward` given ``dy``."""
    rows, d = x.shape
    dev = x.device
    if dev.has_kernel("layernorm_backward"):
        dx = NDArray.make((rows, d), device=dev, dtype=x.dtype)
        dwb = NDArray.make((2, d), device=dev, dtype=x.dtype)
        dev.layernorm_backward(
            x._compact_handle(), dy._compact_handle(), w._compact_handle(),
            stats._compact_handle(), dx._handle, dwb._handle, rows, d, float(eps),
        )  # fmt: skip
        return dx, dwb[0:1, :].reshape((d,)), dwb[1:2, :].reshape((d,))
    mean = stats[0:1, :].reshape((rows, 1)).broadcast_to(x.shape)
    r = _rsqrt(stats[1:2, :].reshape((rows, 1)), eps).broadcast_to(x.shape)
    xh = (x - mean) * r
    g = dy * w.reshape((1, d)).broadcast_to(x.shape)
    s1 = g.sum(1, keepdims=True).broadcast_to(x.shape)
    s2 = (g * xh).sum(1, keepdims=True).broadcast_to(x.shape)
    dx = (g * float(d) - s1 - xh * s2) * r / float(d)
    return dx, (dy * xh).sum(0), dy.sum(0)


def _stack_stats(mean: NDArray, var: NDArray) -> NDArray:
    """(1, c) means and (1, c) variances as one compact (2, c) array."""
    c = mean.shape[1]
    stats = NDArray.make((2, c), device=mean.device, dtype=mean.dtype)
    stats[0:1, :] = mean
    stats[1:2, :] = var
    return stats


def _check_xent(fn: str, logits: NDArray, labels: NDArray) -> tuple[int, int]:
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be 2-D (n, k), got shape {logits.shape}")
    n, k = logits.shape
    logits._same_device(labels, fn)
    if labels.shape != (n,):
        raise ValueError(
            f"{fn}: labels must have shape ({n},) for logits {logits.shape}, got {labels.shape}"
        )
    if labels.dtype != logits.dtype:
        raise TypeError(
            f"{fn}: labels dtype {labels.dtype} differs from logits dtype {logits.dtype}"
        )
    if k < 1:
        raise ValueError(f"{fn}: logits need at least one class, got shape {logits.shape}")
    return n, k


def softmax_xent(logits: NDArray, labels: NDArray) -> NDArray:
    """Per-row cross-entropy ``logsumexp(row) - row[label]`` of (n, k) logits against
    class indices ``labels`` (n,) stored in the logits' dtype."""
    n, k = _check_xent("softmax_xent", logits, labels)
    dev = logits.device
    if dev.has_kernel("softmax_xent"):
        out = NDArray.make((n,), device=dev, dtype=logits.dtype)
        dev.softmax_xent(logits._compact_handle(), labels._compact_handle(), out._handle, n, k)
        return out
    hot = one_hot(k, labels)
    return logits.logsumexp(1) - (logits * hot).sum(1)


def softmax_xent_backward(logits: NDArray, labels: NDArray, scale: NDArray) -> NDArray:
    """``(softmax(logits) - one_hot(labels)) * scale`` with ``scale`` a one-element array
    on the device (the upstream gradient over n: no host read)."""
    n, k = _check_xent("softmax_xent_backward", logits, labels)
    if scale.size != 1:
        raise ValueError(f"softmax_xent_backward: scale must have one element, got {scale.shape}")
    dev = logits.device
    if dev.has_kernel("softmax_xent_backward"):
        out = NDArray.make((n, k), device=dev, dtype=logits.dtype)
        dev.softmax_xent_backward(
            logits._compact_handle(), labels._compact_handle(), scale._compact_handle(),
            out._handle, n, k,
        )  # fmt: skip
        return out
    hot = one_hot(k, labels)
    return (logits.softmax() - hot) * scale.reshape((1, 1)).broadcast_to((n, k))


# --- end of normalisation and softmax cross-entropy ------------------------------------
