"""NDArray takes the copy-free paths of issue 12 when a backend has the kernels.

``a.T @ g`` and ``g @ b.T`` call ``matmul_t`` on the untouched buffer (no ``compact``);
sums and maxima over one block of leading or middle axes call ``reduce_*_mid`` on the
array as it lies (no permuting copy). Without those kernels the composed paths give the
same values. Expected values come from NumPy.
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle.backend_ndarray.ndarray import NDArray

NEW = {"matmul_t", "batched_matmul_t", "reduce_sum_mid", "reduce_max_mid"}
# ``dev``: each CPU backend's device (tests/conftest.py)


@pytest.fixture
def calls(dev, monkeypatch):
    """Counts kernel calls by name on ``dev`` (compact, matmul, matmul_t, ...)."""
    counts: dict[str, int] = {}
    for name in ("compact", "matmul", "batched_matmul", "reduce_sum", "reduce_max", *NEW):
        if name in NEW and not dev.has_kernel(name):
            continue
        fn = getattr(dev, name)

        def spy(*args, _fn=fn, _name=name):
            counts[_name] = counts.get(_name, 0) + 1
            return _fn(*args)

        monkeypatch.setattr(dev, name, spy)
    return counts


def _without_new_kernels(dev, monkeypatch) -> None:
    has = dev.has_kernel
    monkeypatch.setattr(dev, "has_kernel", lambda name: name not in NEW and has(name))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["aT_g", "g_bT", "aT_bT", "batched"])
def test_transposed_operands_are_not_compacted(dev, calls, dtype, case):
    rng = np.random.default_rng(0)
    if case == "batched":
        x, y = rng.standard_normal((3, 40, 33)), rng.standard_normal((3, 40, 20))
        a, b = (
            NDArray(x, device=dev, dtype=dtype).permute((0, 2, 1)),
            NDArray(y, device=dev, dtype=dtype),
        )
        want = x.transpose(0, 2, 1) @ y
    else:
        x = rng.standard_normal((40, 33) if case != "g_bT" else (33, 40))
        y = rng.standard_normal((20, 40) if case != "aT_g" else (40, 20))
        a, b = NDArray(x, device=dev, dtype=dtype), NDArray(y, device=dev, dtype=dtype)
        if case != "g_bT":
            a, x = a.permute((1, 0)), x.T
        if case != "aT_g":
            b, y = b.permute((1, 0)), y.T
        want = x @ y
    calls.clear()
    got = (a @ b).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert calls.get("compact", 0) == 0, calls
    assert calls.get("batched_matmul_t" if case == "batched" else "matmul_t") == 1, calls


def test_matmul_t_path_equals_the_compacting_path_bitwise(dev, monkeypatch):
    rng = np.random.default_rng(1)
    a = NDArray(rng.standard_normal((130, 70)), device=dev, dtype="float32")
    g = NDArray(rng.standard_normal((130, 90)), device=dev, dtype="float32")
    fast = (a.permute((1, 0)) @ g).numpy()
    _without_new_kernels(dev, monkeypatch)
    slow = (a.permute((1, 0)) @ g).numpy()
    assert np.array_equal(fast, slow)


def test_views_that_are_not_plain_transposes_still_work(dev, calls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 12))
    a = NDArray(x, device=dev)
    sliced = a[2:9, 1:11].permute((1, 0))  # offset and strides of a slice: compacted
    got = (sliced @ NDArray(np.ones((7, 3)), device=dev)).numpy()
    np.testing.assert_allclose(got, x[2:9, 1:11].T @ np.ones((7, 3)), rtol=1e-5, atol=1e-5)
    assert calls.get("compact", 0) >= 1 and "matmul_t" not in calls


def test_matmul_gradients_use_matmul_t(dev, calls):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((16, 8)), rng.standard_normal((8, 5))
    xt = ndl.Tensor(x, device=dev, dtype="float64", requires_grad=True)
    wt = ndl.Tensor(w, device=dev, dtype="float64", requires_grad=True)
    out = xt @ wt
    calls.clear()
    out.backward(ndl.Tensor(np.ones((16, 5)), device=dev, dtype="float64"))
    np.testing.assert_allclose(xt.grad.numpy(), np.ones((16, 5)) @ w.T, rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), x.T @ np.ones((16, 5)), rtol=1e-12)
    assert calls.get("matmul_t") == 2 and calls.get("compact", 0) == 0, calls


SHAPE = (4, 3, 5, 6)
AXES = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 1, 2), (3,), (2, 3), (0, 2), None, ()]


@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("kind", ["sum", "max"])
def test_reductions_over_leading_and_middle_axes(dev, calls, monkeypatch, axes, kind):
    x = np.random.default_rng(4).standard_normal(SHAPE)
    arr = NDArray(x, device=dev, dtype="float64")
    calls.clear()
    got = getattr(arr, kind)(axis=axes).numpy()
    want = getattr(x, kind)(axis=axes) if axes != () else x
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    block = axes and axes[-1] < 3 and axes[-1] - axes[0] == len(axes) - 1
    if block and dev.has_kernel(f"reduce_{kind}_mid"):
        assert calls.get(f"reduce_{kind}_mid") == 1 and calls.get("compact", 0) == 0, calls
    _without_new_kernels(dev, monkeypatch)
    again = getattr(arr, kind)(axis=axes).numpy()
    np.testing.assert_allclose(again, want, rtol=1e-12, atol=1e-12)


def test_keepdims_and_nan_in_middle_reductions(dev):
    x = np.random.default_rng(5).standard_normal((2, 7, 3))
    x[1, 4, 2] = np.nan
    arr = NDArray(x, device=dev, dtype="float64")
    np.testing.assert_array_equal(
        arr.max(axis=1, keepdims=True).numpy(), x.max(axis=1, keepdims=True)
    )
    np.testing.assert_allclose(
        arr.sum(axis=(0, 1), keepdims=True).numpy(), x.sum(axis=(0, 1), keepdims=True)
    )


def test_bias_gradient_sums_without_a_copy(dev, calls):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 10))
    bias = ndl.Tensor(np.zeros((1, 10)), device=dev, dtype="float64", requires_grad=True)
    xt = ndl.Tensor(x, device=dev, dtype="float64")
    y = xt + ndl.broadcast_to(bias, (32, 10))
    calls.clear()
    y.backward(ndl.Tensor(x, device=dev, dtype="float64"))
    np.testing.assert_allclose(bias.grad.numpy(), x.sum(axis=0, keepdims=True), rtol=1e-12)
    if dev.has_kernel("reduce_sum_mid"):
        assert calls.get("reduce_sum_mid") == 1 and calls.get("compact", 0) == 0, calls
