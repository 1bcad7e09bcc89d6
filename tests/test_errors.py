"""Bad input raises a fitting exception whose message names what was wrong."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle.backends import BackendInfo, BackendStatus, hookimpl, register_plugin, unregister_plugin


def test_matmul_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        ndl.Tensor(np.ones((2, 3))) @ ndl.Tensor(np.ones((4, 5)))


def test_shapes_that_do_not_broadcast() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\), \(4,\) do not broadcast"):
        ndl.Tensor(np.ones((2, 3))) + ndl.Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"cannot broadcast shape \(3,\) to \(2, 4\)"):
        ndl.broadcast_to(ndl.Tensor(np.ones(3)), (2, 4))


class _OtherCPU:
    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        return BackendInfo(
            name="othercpu", version="1", contract_version=(1, 0), dtypes=("float32",)
        )

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        return BackendStatus(True, "", 1)

    @hookimpl
    def needle_backend_load(self, index: int):
        return ndl.device("numpy").kernels


@pytest.fixture
def othercpu():
    register_plugin(_OtherCPU())
    yield ndl.device("othercpu")
    unregister_plugin("othercpu")


def test_tensors_on_two_devices(othercpu) -> None:
    a = ndl.Tensor([1.0, 2.0], device="numpy")
    b = ndl.Tensor([1.0, 2.0], device=othercpu)
    for fn in (
        lambda: a + b,
        lambda: a * b,
        lambda: ndl.reshape(a, (2, 1)) @ ndl.reshape(b, (1, 2)),
    ):
        with pytest.raises(ValueError, match="different devices, numpy and othercpu"):
            fn()
    np.testing.assert_allclose((a + b.to("numpy")).numpy(), [2.0, 4.0])


def test_unsupported_dtype_names_backend_and_dtype(othercpu) -> None:
    with pytest.raises(TypeError, match="'othercpu' does not support dtype 'float64'"):
        ndl.Tensor([1.0], device=othercpu, dtype="float64")
    with pytest.raises(TypeError, match="'numpy' does not support dtype 'int8'"):
        ndl.Tensor([1.0], device="numpy", dtype="int8")


def test_out_of_range_axis() -> None:
    x = ndl.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(2)
    with pytest.raises(ValueError, match="axis 5 is out of range"):
        ndl.transpose(x, (0, 5))


def test_out_of_range_index() -> None:
    arr = ndl.backend_ndarray.array(np.ones((2, 3)))
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 1 with size 3"):
        arr[0, 3]
    with pytest.raises(IndexError, match="too many indices"):
        arr[0, 0, 0]


def test_bad_reshape_and_permute() -> None:
    x = ndl.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) into \(4, 2\)"):
        ndl.reshape(x, (4, 2))
    with pytest.raises(ValueError, match="not a permutation"):
        ndl.permute(x, (0, 0))


def test_failed_op_leaves_inputs_unchanged() -> None:
    a = ndl.Tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError):
        a @ a
    np.testing.assert_array_equal(a.numpy(), np.arange(6.0).reshape(2, 3))


def test_wrong_types() -> None:
    with pytest.raises(TypeError, match="add: expected a Tensor or a number"):
        ndl.Tensor([1.0]) + "x"
    # float32 with float64 promotes to float64, as in NumPy and PyTorch (issue 13)
    assert (ndl.Tensor([1.0]) + ndl.Tensor([1.0], dtype="float64")).dtype == "float64"


def test_data_that_is_not_an_array() -> None:
    with pytest.raises(ValueError, match="cannot make a float32 array from list"):
        ndl.Tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="cannot make a float32 array from str"):
        ndl.Tensor("abc")
