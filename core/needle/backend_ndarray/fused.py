"""Fused layer functions on NDArrays: one optional kernel each, or a composition.

Each function here runs a backend's optional kernel when the device declares it
(``dev.has_kernel(name)``) and an equivalent composition of NDArray operations (so of
required kernels) otherwise. The ops in ``needle.ops`` call these functions; they never
call kernels themselves (this is the array layer, the one layer that does).
"""

from __future__ import annotations

import math

import numpy as np

from .ndarray import NDArray, full, one_hot

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


def _norm_forward_kernel(
    name: str, x: NDArray, w: NDArray, b: NDArray, eps: float, n_stats: int
) -> tuple[NDArray, NDArray]:
    """``(y, stats)`` from the optional kernel ``name`` (``batchnorm_forward`` or
    ``layernorm_forward``) on ``x`` (m, c); ``stats`` is (2, n_stats)."""
    m, c = x.shape
    out = NDArray.make((m, c), device=x.device, dtype=x.dtype)
    stats = NDArray.make((2, n_stats), device=x.device, dtype=x.dtype)
    getattr(x.device, name)(
        x._compact_handle(), w._compact_handle(), b._compact_handle(),
        out._handle, stats._handle, m, c, float(eps),
    )  # fmt: skip
    return out, stats


def _norm_backward_kernel(
    name: str, x: NDArray, dy: NDArray, w: NDArray, stats: NDArray, eps: float
) -> tuple[NDArray, NDArray, NDArray]:
    """``(dx, dw, db)`` from the optional kernel ``name`` (``batchnorm_backward`` or
    ``layernorm_backward``) on ``x`` (m, c)."""
    m, c = x.shape
    dx = NDArray.make((m, c), device=x.device, dtype=x.dtype)
    dwb = NDArray.make((2, c), device=x.device, dtype=x.dtype)
    getattr(x.device, name)(
        x._compact_handle(), dy._compact_handle(), w._compact_handle(),
        stats._compact_handle(), dx._handle, dwb._handle, m, c, float(eps),
    )  # fmt: skip
    return dx, dwb[0:1, :].reshape((c,)), dwb[1:2, :].reshape((c,))


def batch_norm_forward(x: NDArray, w: NDArray, b: NDArray, eps: float) -> tuple[NDArray, NDArray]:
    """Training batch norm of ``x`` (m, c) per column: returns ``(y, stats)``."""
    _check_2d("batch_norm", x, w, b, x.shape[1] if x.ndim == 2 else 0)
    m, c = x.shape
    if m < 1:
        raise ValueError(f"batch_norm: needs at least one row, got shape {x.shape}")
    dev = x.device
    if dev.has_kernel("batchnorm_forward"):
        return _norm_forward_kernel("batchnorm_forward", x, w, b, eps, c)
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
        return _norm_backward_kernel("batchnorm_backward", x, dy, w, stats, eps)
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
        return _norm_forward_kernel("layernorm_forward", x, w, b, eps, rows)
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
        return _norm_backward_kernel("layernorm_backward", x, dy, w, stats, eps)
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


# --- sequence layers: embedding rows, LSTM cell, attention (issue 12, item 3) ----------
# Row ids are whole numbers stored in the table's dtype (needle's dtypes are floats): exact
# up to 2**24 in float32. The optional kernels check every id on the device (IndexError
# naming the kernel and the id, before writing); the composed fallback builds a one-hot
# matrix on the device (range checked on the host inside ``host_check``, so a replayed
# step skips it) and, past ``_ONE_HOT_LIMIT`` elements, gathers on the host instead (a
# host read: ``needle.compile`` then refuses the step on that backend).

_ONE_HOT_LIMIT = 1 << 24


def _check_ids(fn: str, ids: NDArray, n_rows: int) -> np.ndarray:
    """Whole numbers in [0, n_rows), or IndexError naming ``fn`` and the first bad id;
    returns the ids read to the host, flat."""
    from .capture import host_check

    with host_check():  # an argument check (a replayed step skips it)
        values = ids.numpy().reshape(-1)
    with np.errstate(all="ignore"):
        bad = ~((values >= 0) & (values < n_rows) & (np.mod(values, 1) == 0))
    if bad.any():
        k = int(bad.argmax())
        raise IndexError(
            f"{fn}: id {float(values[k])!r} at position {k} is not a row index in [0, {n_rows})"
        )
    return values


def _rows_args(fn: str, table: NDArray, ids: NDArray) -> None:
    if not isinstance(table, NDArray) or not isinstance(ids, NDArray):
        raise TypeError(f"{fn}: expected NDArrays")
    table._same_device(ids, fn)
    if table.ndim != 2:
        raise ValueError(f"{fn}: expected a 2-D table (rows, width), got shape {table.shape}")
    if ids.dtype != table.dtype:
        raise TypeError(f"{fn}: ids dtype {ids.dtype} differs from the table's {table.dtype}")


def _host_ids(fn: str, ids: NDArray, n_rows: int) -> np.ndarray:
    return _check_ids(fn, ids, n_rows).astype(np.int64)


def take_rows(w: NDArray, ids: NDArray) -> NDArray:
    """Rows ``w[ids]`` of ``w`` (n_rows, width) for ``ids`` of any shape (whole numbers in
    w's dtype): shape ``ids.shape + (width,)``. Optional kernel ``take_rows``; otherwise
    ``one_hot(ids) @ w`` on the device, or a host gather for very large one-hots."""
    _rows_args("take_rows", w, ids)
    n_rows, width = w.shape
    n_ids = ids.size
    shape = (*ids.shape, width)
    dev = w.device
    if dev.has_kernel("take_rows"):
        out = NDArray.make(shape, device=dev, dtype=w.dtype)
        dev.take_rows(w._compact_handle(), ids._compact_handle(), out._handle, n_ids, n_rows, width)
        return out
    if n_ids * n_rows <= _ONE_HOT_LIMIT and n_ids and width:
        _check_ids("take_rows", ids, n_rows)
        return (one_hot(n_rows, ids.reshape((n_ids,))) @ w).reshape(shape)
    idx = _host_ids("take_rows", ids, n_rows)
    return NDArray(w.numpy()[idx].reshape(shape), device=dev, dtype=w.dtype)


def scatter_add_rows(g: NDArray, ids: NDArray, n_rows: int) -> NDArray:
    """The adjoint of :func:`take_rows`: zeros (n_rows, width) with row ``g[k]`` added at
    row ``ids[k]``, for k in increasing order (so repeated ids sum in a fixed order).
    ``g`` has shape ``ids.shape + (width,)``."""
    if not isinstance(g, NDArray) or not isinstance(ids, NDArray):
        raise TypeError("scatter_add_rows: expected NDArrays")
    g._same_device(ids, "scatter_add_rows")
    if g.ndim != ids.ndim + 1 or g.shape[:-1] != ids.shape:
        raise ValueError(
            f"scatter_add_rows: rows of shape {g.shape} do not match ids of shape {ids.shape}"
        )
    if ids.dtype != g.dtype:
        raise TypeError(f"scatter_add_rows: ids dtype {ids.dtype} differs from {g.dtype}")
    if n_rows < 0:
        raise ValueError(f"scatter_add_rows: negative row count {n_rows}")
    width, n_ids = g.shape[-1], ids.size
    dev = g.device
    if dev.has_kernel("scatter_add_rows"):
        out = NDArray.make((n_rows, width), device=dev, dtype=g.dtype)
        dev.scatter_add_rows(
            g._compact_handle(), ids._compact_handle(), out._handle, n_ids, n_rows, width
        )
        return out
    if n_ids * n_rows <= _ONE_HOT_LIMIT and n_ids and width:
        _check_ids("scatter_add_rows", ids, n_rows)
        hot = one_hot(n_rows, ids.reshape((n_ids,)))
        return hot.permute((1, 0)) @ g.reshape((n_ids, width))
    idx = _host_ids("scatter_add_rows", ids, n_rows) if n_ids else np.zeros(0, np.int64)
    acc = np.zeros((n_rows, width), dtype=g.numpy().dtype)
    if n_ids:
        np.add.at(acc, idx, g.numpy().reshape(n_ids, width))
    return NDArray(acc, device=dev, dtype=g.dtype)


# LSTM cell: pre-activation gates (n, 4h) in the order input, forget, cell, output and the
# previous cell c (n, h): c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c').
def _lstm_args(fn: str, gates: NDArray, c: NDArray) -> tuple[int, int]:
    gates._same_device(c, fn)
    if gates.ndim != 2 or c.ndim != 2 or gates.shape != (c.shape[0], 4 * c.shape[1]):
        raise ValueError(
            f"{fn}: gates must be (n, 4h) for a cell state (n, h), got {gates.shape} and {c.shape}"
        )
    if gates.dtype != c.dtype:
        raise TypeError(f"{fn}: dtypes differ, {gates.dtype} and {c.dtype}")
    return c.shape[0], c.shape[1]


def _sigmoid(x: NDArray) -> NDArray:
    return ((-x).exp() + 1.0) ** -1.0


def _lstm_acts(gates: NDArray, h: int) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    i, f, g, o = (gates[:, k * h : (k + 1) * h] for k in range(4))
    return _sigmoid(i), _sigmoid(f), g.tanh(), _sigmoid(o)


def lstm_cell_forward(gates: NDArray, c: NDArray) -> tuple[NDArray, NDArray]:
    """``(h', c')`` of one LSTM step from pre-activation ``gates`` and cell state ``c``
    (optional kernel ``lstm_cell``, else element-wise NDArray operations)."""
    n, h = _lstm_args("lstm_cell", gates, c)
    dev = c.device
    if dev.has_kernel("lstm_cell"):
        h_out = NDArray.make((n, h), device=dev, dtype=c.dtype)
        c_out = NDArray.make((n, h), device=dev, dtype=c.dtype)
        dev.lstm_cell(gates._compact_handle(), c._compact_handle(), h_out._handle,
                      c_out._handle, n, h)  # fmt: skip
        return h_out, c_out
    i, f, g, o = _lstm_acts(gates, h)
    c_new = f * c + i * g
    return o * c_new.tanh(), c_new


def lstm_cell_backward(
    gates: NDArray, c: NDArray, dh: NDArray, dc: NDArray
) -> tuple[NDArray, NDArray]:
    """``(d_gates, d_c)`` of :func:`lstm_cell_forward` given the adjoints ``dh`` and ``dc``
    of ``h'`` and ``c'`` (the activations are recomputed from ``gates``)."""
    n, h = _lstm_args("lstm_cell_backward", gates, c)
    for name, t in (("dh", dh), ("dc", dc)):
        c._same_device(t, "lstm_cell_backward")
        if t.shape != (n, h) or t.dtype != c.dtype:
            raise ValueError(
                f"lstm_cell_backward: {name} must be ({n}, {h}) {c.dtype}, got {t.shape} {t.dtype}"
            )
    dev = c.device
    if dev.has_kernel("lstm_cell_backward"):
        d_gates = NDArray.make((n, 4 * h), device=dev, dtype=c.dtype)
        d_c = NDArray.make((n, h), device=dev, dtype=c.dtype)
        dev.lstm_cell_backward(
            gates._compact_handle(), c._compact_handle(), dh._compact_handle(),
            dc._compact_handle(), d_gates._handle, d_c._handle, n, h,
        )  # fmt: skip
        return d_gates, d_c
    i, f, g, o = _lstm_acts(gates, h)
    t = (f * c + i * g).tanh()
    k = dc + dh * o * (1.0 - t * t)
    d_gates = NDArray.make((n, 4 * h), device=dev, dtype=c.dtype)
    d_gates[:, 0:h] = k * g * i * (1.0 - i)
    d_gates[:, h : 2 * h] = k * c * f * (1.0 - f)
    d_gates[:, 2 * h : 3 * h] = k * i * (1.0 - g * g)
    d_gates[:, 3 * h : 4 * h] = dh * t * o * (1.0 - o)
    return d_gates, k * f


# LSTM layer over a sequence: gx (t, n, 4h) the input projection of every step (biases
# included), w_hh (h, 4h), the state h0, c0 (n, h). The kernel pair lstm_layer /
# lstm_layer_backward runs when the device has both; otherwise the per-step composition
# (gx[s] + h @ w_hh, then lstm_cell_forward: the lstm_cell kernels or their NDArray
# composition). The forward returns ``saved`` for the backward only: the activated gates
# of every step transposed, (t, 4h, n) (kernels), or the pre-activation gates (t, n, 4h)
# (composition).
def _lstm_layer_kernels(dev: object) -> bool:
    return dev.has_kernel("lstm_layer") and dev.has_kernel("lstm_layer_backward")  # type: ignore[attr-defined]


def _lstm_layer_args(
    fn: str, gx: NDArray, w_hh: NDArray, h0: NDArray, c0: NDArray
) -> tuple[int, int, int]:
    for t in (w_hh, h0, c0):
        gx._same_device(t, fn)
    if gx.ndim != 3 or h0.ndim != 2:
        raise ValueError(f"{fn}: expected gx (t, n, 4h) and h0 (n, h), got {gx.shape}, {h0.shape}")
    steps, (n, h) = gx.shape[0], h0.shape
    if gx.shape != (steps, n, 4 * h) or c0.shape != (n, h) or w_hh.shape != (h, 4 * h):
        raise ValueError(
            f"{fn}: expected gx (t, n, 4h), w_hh (h, 4h), h0 and c0 (n, h), got {gx.shape}, "
            f"{w_hh.shape}, {h0.shape}, {c0.shape}"
        )
    if len({gx.dtype, w_hh.dtype, h0.dtype, c0.dtype}) != 1:
        raise TypeError(f"{fn}: dtypes differ, {[a.dtype for a in (gx, w_hh, h0, c0)]}")
    return steps, n, h


def lstm_layer_forward(
    gx: NDArray, w_hh: NDArray, h0: NDArray, c0: NDArray
) -> tuple[NDArray, NDArray, NDArray]:
    """``(hs, cs, saved)``: every step's hidden and cell state (t, n, h) of an LSTM layer
    over ``gx`` (t, n, 4h) from the state ``h0``, ``c0``, and what the backward needs."""
    t, n, h = _lstm_layer_args("lstm_layer", gx, w_hh, h0, c0)
    dev, dt = gx.device, gx.dtype
    hs = NDArray.make((t, n, h), device=dev, dtype=dt)
    cs = NDArray.make((t, n, h), device=dev, dtype=dt)
    if _lstm_layer_kernels(dev):
        saved = NDArray.make((t, 4 * h, n), device=dev, dtype=dt)
        dev.lstm_layer(
            gx._compact_handle(), w_hh._compact_handle(), h0._compact_handle(),
            c0._compact_handle(), hs._handle, cs._handle, saved._handle, t, n, h,
        )  # fmt: skip
        return hs, cs, saved
    saved = NDArray.make((t, n, 4 * h), device=dev, dtype=dt)
    h_s, c_s = h0, c0
    for s in range(t):
        z = gx[s] + h_s @ w_hh
        saved[s] = z
        h_s, c_s = lstm_cell_forward(z, c_s)
        hs[s] = h_s
        cs[s] = c_s
    return hs, cs, saved


def lstm_layer_backward(
    w_hh: NDArray, h0: NDArray, c0: NDArray, hs: NDArray, cs: NDArray, saved: NDArray,
    dhs: NDArray, dh_n: NDArray, dc_n: NDArray,
) -> tuple[NDArray, NDArray, NDArray, NDArray]:  # fmt: skip
    """``(dgx, dw_hh, dh0, dc0)`` of :func:`lstm_layer_forward` from its inputs, outputs
    and ``saved``, given the adjoints ``dhs`` (t, n, h) of ``hs`` and ``dh_n``, ``dc_n``
    (n, h) of the final state. ``dgx`` is also the adjoint of the pre-activation gates."""
    fn = "lstm_layer_backward"
    if hs.ndim != 3:
        raise ValueError(f"{fn}: hs must be (t, n, h), got shape {hs.shape}")
    t, n, h = hs.shape
    kernels = _lstm_layer_kernels(w_hh.device)
    shapes = {
        "w_hh": (w_hh, (h, 4 * h)), "h0": (h0, (n, h)), "c0": (c0, (n, h)), "cs": (cs, (t, n, h)),
        "saved": (saved, (t, 4 * h, n) if kernels else (t, n, 4 * h)), "dhs": (dhs, (t, n, h)),
        "dh_n": (dh_n, (n, h)), "dc_n": (dc_n, (n, h)),
    }  # fmt: skip
    for name, (a, shape) in shapes.items():
        w_hh._same_device(a, fn)
        if a.shape != shape or a.dtype != w_hh.dtype:
            raise ValueError(f"{fn}: {name} must be {shape} {w_hh.dtype}, got {a.shape} {a.dtype}")
    dev, dt = w_hh.device, w_hh.dtype
    dgx = NDArray.make((t, n, 4 * h), device=dev, dtype=dt)
    if kernels:
        dw = NDArray.make((h, 4 * h), device=dev, dtype=dt)
        dh0 = NDArray.make((n, h), device=dev, dtype=dt)
        dc0 = NDArray.make((n, h), device=dev, dtype=dt)
        dev.lstm_layer_backward(
            w_hh._compact_handle(), h0._compact_handle(), c0._compact_handle(),
            hs._compact_handle(), cs._compact_handle(), saved._compact_handle(),
            dhs._compact_handle(), dh_n._compact_handle(), dc_n._compact_handle(),
            dgx._handle, dw._handle, dh0._handle, dc0._handle, t, n, h,
        )  # fmt: skip
        return dgx, dw, dh0, dc0
    dh, dc = dh_n, dc_n
    for s in reversed(range(t)):
        d_z, dc = lstm_cell_backward(saved[s], cs[s - 1] if s else c0, dhs[s] + dh, dc)
        dgx[s] = d_z
        dh = d_z @ w_hh.permute((1, 0))
    if t == 0:
        return dgx, full((h, 4 * h), 0.0, dtype=dt, device=dev), dh, dc
    h_prev = NDArray.make((t, n, h), device=dev, dtype=dt)
    h_prev[0] = h0
    if t > 1:
        h_prev[1:] = hs[: t - 1]
    dw = h_prev.reshape((t * n, h)).permute((1, 0)) @ dgx.reshape((t * n, 4 * h))
    return dgx, dw, dh, dc


# Elman RNN layer: hs[s] = act(gx[s] + hs[s-1] @ w_hh), hs[-1] = h0, act tanh or relu;
# gx and hs (t, n, h), w_hh (h, h). Kernels rnn_layer / rnn_layer_backward when the device
# has both, else the per-step composition. The backward reads hs only.
def _rnn_acts(nonlinearity: str) -> int:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_layer: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return int(nonlinearity == "relu")


def _rnn_layer_args(fn: str, gx: NDArray, w_hh: NDArray, h0: NDArray) -> tuple[int, int, int]:
    for a in (w_hh, h0):
        gx._same_device(a, fn)
    if gx.ndim != 3 or h0.ndim != 2 or gx.shape[1:] != h0.shape or w_hh.shape != (h0.shape[1],) * 2:
        raise ValueError(
            f"{fn}: expected gx (t, n, h), w_hh (h, h), h0 (n, h), got {gx.shape}, "
            f"{w_hh.shape}, {h0.shape}"
        )
    if len({gx.dtype, w_hh.dtype, h0.dtype}) != 1:
        raise TypeError(f"{fn}: dtypes differ, {gx.dtype}, {w_hh.dtype}, {h0.dtype}")
    return gx.shape  # type: ignore[return-value]


def rnn_layer_forward(gx: NDArray, w_hh: NDArray, h0: NDArray, nonlinearity: str) -> NDArray:
    """Every step's hidden state ``hs`` (t, n, h) of an Elman layer over ``gx`` from ``h0``."""
    relu = _rnn_acts(nonlinearity)
    t, n, h = _rnn_layer_args("rnn_layer", gx, w_hh, h0)
    dev = gx.device
    hs = NDArray.make((t, n, h), device=dev, dtype=gx.dtype)
    if dev.has_kernel("rnn_layer") and dev.has_kernel("rnn_layer_backward"):
        dev.rnn_layer(gx._compact_handle(), w_hh._compact_handle(), h0._compact_handle(),
                      hs._handle, t, n, h, relu)  # fmt: skip
        return hs
    h_s = h0
    for s in range(t):
        pre = gx[s] + h_s @ w_hh
        h_s = pre.maximum(0.0) if relu else pre.tanh()
        hs[s] = h_s
    return hs


def rnn_layer_backward(
    w_hh: NDArray, h0: NDArray, hs: NDArray, dhs: NDArray, nonlinearity: str
) -> tuple[NDArray, NDArray, NDArray]:
    """``(dgx, dw_hh, dh0)`` of :func:`rnn_layer_forward` given the adjoint ``dhs`` of
    ``hs`` (the final state's adjoint is part of ``dhs[t-1]``)."""
    fn = "rnn_layer_backward"
    relu = _rnn_acts(nonlinearity)
    t, n, h = _rnn_layer_args(fn, hs, w_hh, h0)
    w_hh._same_device(dhs, fn)
    if dhs.shape != hs.shape or dhs.dtype != hs.dtype:
        raise ValueError(f"{fn}: dhs must be {hs.shape} {hs.dtype}, got {dhs.shape} {dhs.dtype}")
    dev, dt = w_hh.device, w_hh.dtype
    dgx = NDArray.make((t, n, h), device=dev, dtype=dt)
    if dev.has_kernel("rnn_layer") and dev.has_kernel("rnn_layer_backward"):
        dw = NDArray.make((h, h), device=dev, dtype=dt)
        dh0 = NDArray.make((n, h), device=dev, dtype=dt)
        dev.rnn_layer_backward(
            w_hh._compact_handle(), h0._compact_handle(), hs._compact_handle(),
            dhs._compact_handle(), dgx._handle, dw._handle, dh0._handle, t, n, h, relu,
        )  # fmt: skip
        return dgx, dw, dh0
    dh = full((n, h), 0.0, dtype=dt, device=dev)
    for s in reversed(range(t)):
        y = hs[s]
        d = dhs[s] + dh
        d_pre = d * (y > 0.0) if relu else d * (1.0 - y * y)
        dgx[s] = d_pre
        dh = d_pre @ w_hh.permute((1, 0))
    if t == 0:
        return dgx, full((h, h), 0.0, dtype=dt, device=dev), dh
    h_prev = NDArray.make((t, n, h), device=dev, dtype=dt)
    h_prev[0] = h0
    if t > 1:
        h_prev[1:] = hs[: t - 1]
    dw = h_prev.reshape((t * n, h)).permute((1, 0)) @ dgx.reshape((t * n, h))
    return dgx, dw, dh


# Attention: scores (batch, t_q, t_k) -> softmax(scores * scale + mask) over the keys, the
# mask adding -1e9 where key j > query i + (t_k - t_q) when ``causal`` (as the composed
# layer's constant mask does), nothing otherwise.
_MASKED = -1e9


def attention_softmax(scores: NDArray, scale: float, causal: bool) -> NDArray:
    """Scaled (and causally masked) softmax over the last axis of ``scores`` (..., t_q,
    t_k); optional kernel ``attention_softmax``, else NDArray operations."""
    if scores.ndim < 2:
        raise ValueError(f"attention_softmax: need (..., t_q, t_k) scores, got {scores.shape}")
    *lead, t_q, t_k = scores.shape
    if t_k < 1:
        raise ValueError(f"attention_softmax: need at least one key, got {scores.shape}")
    batch = 1
    for d in lead:
        batch *= d
    dev = scores.device
    if dev.has_kernel("attention_softmax"):
        out = NDArray.make(scores.shape, device=dev, dtype=scores.dtype)
        dev.attention_softmax(
            scores._compact_handle(), out._handle, batch, t_q, t_k, float(scale), int(causal)
        )
        return out
    x = scores * float(scale)
    if causal:
        mask = np.triu(np.ones((t_q, t_k)), k=1 + t_k - t_q) * _MASKED
        m = NDArray(mask, device=dev, dtype=scores.dtype)
        x = x + m.reshape((1,) * len(lead) + (t_q, t_k)).broadcast_to(scores.shape)
    return x.softmax()


# --- end of sequence layers --------------------------------------------------------------


# --- convolution with padding and its gradients (issue 12) ------------------------------
# Layouts as NDArray.conv2d: NHWC input x (n, h, w, c_in), weights (kh, kw, c_in, c_out),
# output (n, ho, wo, c_out) with ho = (h + 2 padding - kh) // stride + 1 (wo alike). The
# kernels take square weights only; other shapes, and devices without the kernels, get the
# compositions. The callers (needle.ops.conv) have checked shapes, dtypes and devices.


def _conv_kernel(dev, name: str, w_shape: tuple[int, ...]) -> bool:
    """Whether ``dev`` has convolution kernel ``name`` and it applies (square kernels)."""
    return w_shape[0] == w_shape[1] and dev.has_kernel(name)


def _run_conv_kernel(
    name: str, a: NDArray, b: NDArray, out_shape: tuple[int, ...], dims: tuple[int, ...]
) -> NDArray:
    """A fresh ``out_shape`` array filled by conv kernel ``name`` from ``a`` and ``b``;
    ``dims`` are its trailing (n, h, w, c_in, k, c_out, stride, padding) arguments."""
    out = NDArray.make(out_shape, device=a.device, dtype=a.dtype)
    getattr(a.device, name)(a._compact_handle(), b._compact_handle(), out._handle, *dims)
    return out


def conv2d_pad(x: NDArray, w: NDArray, stride: int, padding: int) -> NDArray:
    """x zero-padded by ``padding`` on H and W, convolved with ``w``."""
    n, h, w_, c_in = x.shape
    kh, kw, _, c_out = w.shape
    dev = x.device
    if _conv_kernel(dev, "conv2d_nhwc_pad", w.shape):
        ho, wo = (h + 2 * padding - kh) // stride + 1, (w_ + 2 * padding - kw) // stride + 1
        dims = (n, h, w_, c_in, kh, c_out, stride, padding)
        return _run_conv_kernel("conv2d_nhwc_pad", x, w, (n, ho, wo, c_out), dims)
    if padding:
        x = x.pad(((0, 0), (padding, padding), (padding, padding), (0, 0)))
    return x.conv2d(w, stride)


def conv2d_backward_input(
    g: NDArray, w: NDArray, hw: tuple[int, int], stride: int, padding: int
) -> NDArray:
    """dx (n, h, w, c_in) of :func:`conv2d_pad` given its output gradient ``g``."""
    n, ho, wo, c_out = g.shape
    kh, kw, c_in, _ = w.shape
    h, w_ = hw
    dev = g.device
    if _conv_kernel(dev, "conv2d_nhwc_backward_input", w.shape):
        dims = (n, h, w_, c_in, kh, c_out, stride, padding)
        return _run_conv_kernel("conv2d_nhwc_backward_input", g, w, (n, h, w_, c_in), dims)
    # cols (n, ho, wo, kh, kw, c_in) = g @ W^T, each tap added at its input pixels.
    w_t = w.compact().reshape((kh * kw * c_in, c_out)).permute((1, 0))
    cols = (g.compact().reshape((n * ho * wo, c_out)) @ w_t).reshape((n, ho, wo, kh, kw, c_in))
    dxp = NDArray.make((n, h + 2 * padding, w_ + 2 * padding, c_in), device=dev, dtype=g.dtype)
    dxp.fill(0.0)
    for i in range(kh):
        for j in range(kw):
            at = (
                slice(None),
                slice(i, i + stride * (ho - 1) + 1, stride),
                slice(j, j + stride * (wo - 1) + 1, stride),
            )
            dxp[at] = dxp[at] + cols[:, :, :, i, j]
    return dxp[:, padding : padding + h, padding : padding + w_].compact()


def conv2d_backward_weight(
    x: NDArray, g: NDArray, kh: int, kw: int, stride: int, padding: int
) -> NDArray:
    """dw (kh, kw, c_in, c_out) of :func:`conv2d_pad` given its input ``x`` and output
    gradient ``g``: im2col(x)^T g."""
    n, h, w_, c_in = x.shape
    _, ho, wo, c_out = g.shape
    dev = x.device
    if _conv_kernel(dev, "conv2d_nhwc_backward_weight", (kh, kw)):
        dims = (n, h, w_, c_in, kh, c_out, stride, padding)
        return _run_conv_kernel("conv2d_nhwc_backward_weight", x, g, (kh, kw, c_in, c_out), dims)
    if padding:
        x = x.pad(((0, 0), (padding, padding), (padding, padding), (0, 0)))
    cols = x.im2col(kh, kw, stride)
    g_t = g.compact().reshape((n * ho * wo, c_out)).permute((1, 0))
    return (g_t @ cols).permute((1, 0)).compact().reshape((kh, kw, c_in, c_out))


# --- fused multi-head attention (issue 12) ---------------------------------------------
# q (..., t_q, d), k (..., t_k, d), v (..., t_k, d_v); probs (..., t_q, t_k) = softmax(q k^T *
# scale + causal mask) and out = (probs [* mask]) @ v. The optional kernels read q, k, v in
# place in two layouts: compact (..., t, d) stacks (layout 0), or, for 4-D (B, H, t, d)
# views that permute a compact (B, t, H, d) array, the (B, t, H * d) output of a linear
# projection split into heads (layout 1, no copy; the results come back as the same kind of
# view, so merging the heads again is a free reshape).


def _heads_view(x: NDArray) -> bool:
    """``x`` is (B, H, t, d) over a compact (B, t, H, d) array at offset 0."""
    if x.ndim != 4 or x._offset != 0:
        return False
    _, h, t, d = x._shape
    return x._strides == (t * h * d, d, h * d, 1)


def _attention_layout(q: NDArray, k: NDArray, v: NDArray) -> int:
    return 1 if _heads_view(q) and _heads_view(k) and _heads_view(v) else 0


def _handle_in(x: NDArray, layout: int) -> object:
    """A handle holding ``x`` (..., t, w) as the kernel reads it: compact in ``layout``."""
    if layout == 1:
        return x._handle if _heads_view(x) else x.permute((0, 2, 1, 3))._compact_handle()
    return x._compact_handle()


def _new_in_layout(shape: tuple[int, ...], layout: int, like: NDArray) -> NDArray:
    """A new array of ``shape`` (..., t, w) stored in ``layout`` (as the kernel writes it)."""
    if layout == 1:
        b, h, t, w = shape
        store = NDArray.make((b, t, h, w), device=like.device, dtype=like.dtype)
        return store.permute((0, 2, 1, 3))
    return NDArray.make(shape, device=like.device, dtype=like.dtype)


def _attention_dims(q: NDArray, v: NDArray, layout: int) -> tuple[int, ...]:
    """(batch, heads, t_q, t_k, d, d_v) for the kernels."""
    lead = q.shape[:2] if layout == 1 else (math.prod(q.shape[:-2]), 1)
    return (*lead, *q.shape[-2:-1], *v.shape[-2:-1], q.shape[-1], v.shape[-1])


def _mask_handle(mask: NDArray | None, like: NDArray) -> object:
    """The mask's handle, or an empty buffer (the kernels' "no mask")."""
    if mask is None:
        return NDArray.make((0,), device=like.device, dtype=like.dtype)._handle
    return mask._compact_handle()


def attention_forward(
    q: NDArray, k: NDArray, v: NDArray, mask: NDArray | None, scale: float, causal: bool
) -> tuple[NDArray, NDArray]:
    """``(out, probs)`` of scaled dot-product attention (see above); ``mask`` (..., t_q,
    t_k) multiplies the probabilities before ``@ v``. Optional kernel
    ``attention_forward``, else :func:`attention_softmax` and two batched products."""
    dev = q.device
    if dev.has_kernel("attention_forward"):
        layout = _attention_layout(q, k, v)
        dims = _attention_dims(q, v, layout)
        out = _new_in_layout((*q.shape[:-1], v.shape[-1]), layout, q)
        probs = NDArray.make((*q.shape[:-1], k.shape[-2]), device=dev, dtype=q.dtype)
        dev.attention_forward(
            _handle_in(q, layout), _handle_in(k, layout), _handle_in(v, layout),
            _mask_handle(mask, q), out._handle, probs._handle, *dims, layout, int(causal),
            float(scale),
        )  # fmt: skip
        return out, probs
    probs = attention_softmax(q @ _swap_last(k), scale, causal)
    weights = probs if mask is None else probs * mask
    return weights @ v, probs


def attention_backward(
    q: NDArray,
    k: NDArray,
    v: NDArray,
    probs: NDArray,
    mask: NDArray | None,
    d_out: NDArray,
    scale: float,
    causal: bool,
) -> tuple[NDArray, NDArray, NDArray]:
    """``(dq, dk, dv)`` of :func:`attention_forward` given the adjoint ``d_out`` of ``out``
    and the forward's ``probs``. Optional kernel ``attention_backward``, else batched
    products and a softmax backward."""
    dev = q.device
    if dev.has_kernel("attention_backward"):
        layout = _attention_layout(q, k, v)
        dims = _attention_dims(q, v, layout)
        dq, dk, dv = (_new_in_layout(x.shape, layout, q) for x in (q, k, v))
        dev.attention_backward(
            _handle_in(q, layout), _handle_in(k, layout), _handle_in(v, layout),
            probs._compact_handle(), _mask_handle(mask, q),
            _handle_in(d_out, layout), dq._handle, dk._handle, dv._handle, *dims, layout,
            int(causal), float(scale),
        )  # fmt: skip
        return dq, dk, dv
    weights = probs if mask is None else probs * mask
    dv = _swap_last(weights) @ d_out
    d_p = d_out @ _swap_last(v)
    if mask is not None:
        d_p = d_p * mask
    row = (d_p * probs).sum(probs.ndim - 1, keepdims=True)
    d_s = probs * (d_p - row.broadcast_to(probs.shape)) * float(scale)
    return d_s @ k, _swap_last(d_s) @ q, dv


def _swap_last(x: NDArray) -> NDArray:
    return x.permute((*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


# --- end of fused multi-head attention ---------------------------------------------------
