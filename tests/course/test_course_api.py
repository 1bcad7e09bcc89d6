"""The course's API details that student code relies on (hw1-hw4 helpers and checks)."""

from __future__ import annotations

import gc

import needle as ndl
import needle.backend_ndarray as nd
import numpy as np
import pytest
from needle import nn


# --- NDArray and NumPy ----------------------------------------------------------------
def test_numpy_functions_take_an_ndarray() -> None:
    a = np.arange(6.0).reshape(2, 3) - 2.5
    x = nd.array(a, dtype="float64")
    np.testing.assert_allclose(x, a)  # needs __array__ (and abs() of the difference)
    np.testing.assert_array_equal(np.asarray(x), a)
    assert np.linalg.norm(x) == pytest.approx(np.linalg.norm(a))
    np.testing.assert_array_equal(abs(x).numpy(), np.abs(a))
    t = ndl.Tensor(a, dtype="float32")
    np.testing.assert_allclose(t.cached_data, a.astype(np.float32))


def test_numpy_dtype_objects_are_accepted() -> None:
    assert nd.NDArray(np.ones((2, 3))).dtype == "float64"
    assert nd.NDArray(np.ones((2, 3)), dtype=np.float32).dtype == "float32"
    t = ndl.Tensor(np.ones((2, 3)), dtype=np.dtype("float32"))
    assert t.dtype == "float32"
    assert nd.normalize_dtype(np.dtype("float64")) == "float64"
    assert isinstance(nd.normalize_dtype(np.dtype("float64")), str)
    assert ndl.init.zeros(2, dtype=np.float64).dtype == "float64"


def test_astype_to_a_dtype_the_backend_lacks_gives_numpy() -> None:
    x = nd.array([[1.5, -2.0]], dtype="float32")
    out = x.astype("int64")
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    np.testing.assert_array_equal(out, [[1, -2]])
    assert x.astype(np.float64).dtype == "float64"
    assert isinstance(x.astype(bool), np.ndarray)


def test_flat_is_a_writable_view_seen_by_the_next_compute() -> None:
    a = np.arange(6.0).reshape(2, 3)
    t = ndl.Tensor(a, dtype="float64")
    before = float((t * 2).sum().numpy())
    t.realize_cached_data().flat[4] += 0.5
    assert float((t * 2).sum().numpy()) == pytest.approx(before + 1.0)
    assert t.numpy()[1, 1] == 4.5
    # a non-compact array: the write goes through the view into its buffer
    base = nd.array(a, dtype="float64")
    view = base.permute((1, 0))
    view.flat[1] = -7.0  # row-major order of the view: element (0, 1) = base (1, 0)
    assert base.numpy()[1, 0] == -7.0
    assert view.flat[1] == -7.0


def gradient_check(f, *args, tol=1e-6, **kwargs):  # type: ignore[no-untyped-def]
    """The homework's numerical check: perturb each input through ``flat``, in place."""
    eps = 1e-4
    numerical = [np.zeros(a.shape) for a in args]
    for i in range(len(args)):
        for j in range(args[i].realize_cached_data().size):
            args[i].realize_cached_data().flat[j] += eps
            f1 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] -= 2 * eps
            f2 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] += eps
            numerical[i].flat[j] = (f1 - f2) / (2 * eps)
    out = f(*args, **kwargs)
    computed = [g.numpy() for g in out.op.gradient_as_tuple(ndl.Tensor(np.ones(out.shape)), out)]
    for c, n in zip(computed, numerical):
        assert np.linalg.norm(c - n) < tol * max(1.0, np.linalg.norm(n)) * 1e3
    return computed


@pytest.mark.parametrize(
    "f, shapes",
    [
        (lambda a, b: a @ b, [(3, 4), (4, 2)]),
        (lambda a: ndl.summation(a, axes=(1,)), [(3, 4)]),
        (lambda a, b: a / b, [(3, 4), (3, 4)]),
        (lambda a: ndl.broadcast_to(a, (3, 4)), [(1, 4)]),
        (lambda a: ndl.logsumexp(a, axes=(1,)), [(3, 4)]),
    ],
)
def test_homework_gradient_check_through_flat(f, shapes) -> None:  # type: ignore[no-untyped-def]
    np.random.seed(0)
    args = [ndl.Tensor(np.random.randn(*s) + 2.0) for s in shapes]  # float64, kept
    assert all(a.dtype == "float64" for a in args)
    gradient_check(f, *args)


def test_process_slice_make_and_handle_ptr() -> None:
    x = nd.array(np.arange(24.0).reshape(4, 6), dtype="float32")
    assert x.process_slice(slice(None, None, None), 1) == slice(0, 6, 1)
    assert x.process_slice(slice(1, -1, 2), 1) == slice(1, 5, 2)
    assert x.process_slice(slice(-3, None), 0) == slice(1, 4, 1)
    view = x[1:3, 2:5]
    assert view._handle.ptr() == x._handle.ptr()
    assert int(x._handle.ptr) == x._handle.ptr()
    other = nd.array(np.zeros(3), dtype="float32")
    assert other._handle.ptr() != x._handle.ptr()
    # make: a new array object over the same buffer with a given layout (no copy)
    y = nd.NDArray.make((6, 4), strides=(1, 6), device=x.device, handle=x._handle)
    np.testing.assert_array_equal(y.numpy(), np.arange(24.0).reshape(4, 6).T)


# --- Tensors --------------------------------------------------------------------------
def test_dtype_inference_and_promotion() -> None:
    assert ndl.Tensor(np.ones(3)).dtype == "float64"
    assert ndl.Tensor([1.0, 2.0]).dtype == "float32"
    assert ndl.Tensor(3.0).dtype == "float32"
    a32 = ndl.Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    b64 = ndl.Tensor(np.array([0.5, 0.25, 4.0]))
    for out, ref in [
        (a32 + b64, np.float32([1, 2, 3]) + np.array([0.5, 0.25, 4.0])),
        (a32 * b64, np.float32([1, 2, 3]) * np.array([0.5, 0.25, 4.0])),
        (b64 - a32, np.array([0.5, 0.25, 4.0]) - np.float32([1, 2, 3])),
    ]:
        assert out.dtype == "float64"
        np.testing.assert_array_equal(out.numpy(), ref)
    m = ndl.Tensor(np.ones((2, 3), dtype=np.float32)) @ ndl.Tensor(np.ones((3, 2)))
    assert m.dtype == "float64"
    (a32 * b64).sum().backward()
    assert a32.grad.dtype == "float32" and b64.grad.dtype == "float64"
    np.testing.assert_allclose(a32.grad.numpy(), [0.5, 0.25, 4.0])
    np.testing.assert_allclose(b64.grad.numpy(), [1.0, 2.0, 3.0])


def test_data_assignment_may_change_shape() -> None:
    layer = nn.Linear(3, 5)
    assert layer.bias.shape == (1, 5)
    layer.bias.data = ndl.Tensor(np.arange(5, dtype=np.float32))
    assert layer.bias.shape == (5,)
    np.testing.assert_array_equal(layer.bias.numpy(), np.arange(5))
    with pytest.raises(TypeError, match="astype"):
        layer.bias.data = ndl.Tensor(np.arange(5.0))


def test_tensor_counter_counts_live_tensors() -> None:
    gc.collect()
    start = ndl.autograd.TENSOR_COUNTER
    keep = [ndl.Tensor([float(i)]) for i in range(10)]
    assert ndl.autograd.TENSOR_COUNTER - start == 10
    del keep
    gc.collect()
    assert start == ndl.autograd.TENSOR_COUNTER


def test_one_element_numpy_arrays_are_scalars() -> None:
    x = ndl.Tensor(np.array([1.0, 2.0], dtype=np.float32))
    np.testing.assert_allclose(ndl.add_scalar(x, np.array([2.0])).numpy(), [3.0, 4.0])
    np.testing.assert_allclose(ndl.mul_scalar(x, np.array(3.0)).numpy(), [3.0, 6.0])
    np.testing.assert_allclose((x + np.array([1.0])).numpy(), [2.0, 3.0])
    np.testing.assert_allclose((x * np.float32(2)).numpy(), [2.0, 4.0])
    np.testing.assert_allclose(ndl.power_scalar(x, np.array([2])).numpy(), [1.0, 4.0])
    with pytest.raises(TypeError, match="add_scalar: expected a scalar"):
        ndl.add_scalar(x, np.array([1.0, 2.0]))


def test_dilate_by_zero_is_a_new_node() -> None:
    x = ndl.Tensor(np.ones((2, 3), dtype=np.float32))
    y = ndl.dilate(x, (0,), 0)
    assert y is not x and y.op is not None
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))


# --- devices --------------------------------------------------------------------------
def test_course_device_names() -> None:
    assert str(ndl.cpu()) == "cpu()" and str(nd.cpu()) == "cpu()"
    assert str(ndl.cuda()) == "cuda()"
    assert str(ndl.cpu_numpy()) == "cpu_numpy()"
    dev = ndl.cpu()
    assert dev == ndl.device(dev.name) and hash(dev) == hash(ndl.device(dev.name))
    # tensors made on cpu() live on the backend's device: errors and checkpoints name it
    t = ndl.Tensor([1.0], device=dev)
    assert t.device == dev and str(t.device) == dev.name
    assert dev.name in repr(dev)


def test_cpu_follows_needle_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEEDLE_BACKEND", "numpy")
    assert ndl.cpu() == ndl.device("numpy") and nd.cpu() == ndl.device("numpy")
    assert str(ndl.cpu()) == "cpu()"
    if ndl.device("cpp").enabled():
        monkeypatch.setenv("NEEDLE_BACKEND", "cpp")
        assert ndl.cpu() == ndl.device("cpp")


def test_device_mismatch_error_names_the_backends() -> None:
    if not ndl.device("cpp").enabled():
        pytest.skip("needs the cpp and numpy backends")
    a = ndl.Tensor([1.0], device=ndl.cpu_numpy())
    b = ndl.Tensor([1.0], device="cpp")
    with pytest.raises(ValueError, match="numpy") as err:
        _ = a + b
    assert "cpp" in str(err.value) and "cpu" not in str(err.value)
