"""(3) The shared argument checks (pure Python, no GPU)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from needle_cuda import checks


@dataclass
class H:
    size: int
    dtype: str = "float32"
    device: int = 0


def test_check_dtype():
    assert checks.check_dtype("alloc", "float32") == "float32"
    assert checks.check_dtype("alloc", "float64") == "float64"
    with pytest.raises(TypeError, match=r"alloc.*float16"):
        checks.check_dtype("alloc", "float16")
    with pytest.raises(TypeError, match="alloc"):
        checks.check_dtype("alloc", None)


def test_as_int_and_nonneg():
    assert checks.as_int("k", "n", 3) == 3
    import numpy as np

    assert checks.as_int("k", "n", np.int64(7)) == 7
    with pytest.raises(TypeError, match="k: n must be an integer"):
        checks.as_int("k", "n", 2.5)
    with pytest.raises(TypeError):
        checks.as_int("k", "n", True)
    with pytest.raises(ValueError, match="alloc: size must be >= 0"):
        checks.check_nonneg("alloc", "size", -1)


def test_check_handles_type_and_device():
    checks.check_handles("ewise_add", [H(3), H(3)], H, 0)
    with pytest.raises(TypeError, match="ewise_add: expected a cuda-backend buffer"):
        checks.check_handles("ewise_add", [H(3), object()], H, 0)
    with pytest.raises(ValueError, match=r"ewise_add: buffer lives on cuda:1.*cuda:0"):
        checks.check_handles("ewise_add", [H(3, device=1)], H, 0)


def test_check_flat():
    assert checks.check_flat("ewise_mul", 3, H(3), H(4), H(3)) == "float32"
    with pytest.raises(ValueError, match="ewise_mul: buffer of 2 elements, need 3"):
        checks.check_flat("ewise_mul", 3, H(3), H(2), H(3))
    with pytest.raises(TypeError, match="ewise_mul: dtype mismatch float32 vs float64"):
        checks.check_flat("ewise_mul", 3, H(3), H(3, "float64"), H(3))


def test_check_view_valid():
    assert checks.check_view("compact", 6, (2, 3), (3, 1), 0) == ((2, 3), (3, 1), 0, 6)
    assert checks.check_view("compact", 6, (3, 2), (1, 3), 0)[3] == 6  # transpose
    assert checks.check_view("compact", 1, (4, 5), (0, 0), 0)[3] == 20  # broadcast
    assert checks.check_view("compact", 10, (), (), 9) == ((), (), 9, 1)  # 0-d
    # empty views are valid whatever the offset
    assert checks.check_view("compact", 0, (0, 3), (3, 1), 100)[3] == 0


def test_check_view_errors():
    with pytest.raises(ValueError, match=r"compact: shape .* differ in length"):
        checks.check_view("compact", 6, (2, 3), (1,), 0)
    with pytest.raises(ValueError, match="to_numpy: negative"):
        checks.check_view("to_numpy", 6, (2, -3), (3, 1), 0)
    with pytest.raises(ValueError, match="negative"):
        checks.check_view("compact", 6, (2, 3), (3, -1), 2)
    with pytest.raises(ValueError, match="negative"):
        checks.check_view("compact", 6, (2, 3), (3, 1), -1)
    with pytest.raises(
        IndexError, match=r"ewise_setitem: view .* reaches element 6 of a buffer of 6"
    ):
        checks.check_view("ewise_setitem", 6, (2, 3), (3, 1), 1)
    with pytest.raises(IndexError):
        checks.check_view("scalar_setitem", 5, (), (), 5)
    with pytest.raises(TypeError, match="compact: shape must be"):
        checks.check_view("compact", 6, 3, (1,), 0)
    with pytest.raises(TypeError, match="compact: strides must be an integer"):
        checks.check_view("compact", 6, (3,), (1.0,), 0)


def _indices(shape, strides, offset):
    import itertools

    return [
        offset + sum(i * s for i, s in zip(idx, strides))
        for idx in itertools.product(*(range(d) for d in shape))
    ]


@pytest.mark.parametrize(
    "shape,strides",
    [
        ((2, 3, 4), (12, 4, 1)),
        ((2, 3, 4), (1, 2, 6)),
        ((4, 1, 3), (3, 3, 1)),
        ((2, 2, 2, 2), (8, 4, 2, 1)),
        ((3, 4), (0, 1)),
        ((3, 4), (4, 0)),
        ((2, 3, 2), (12, 2, 1)),  # slice of a bigger array: partly mergeable
        ((1, 1), (5, 7)),
        ((5,), (2,)),
    ],
)
def test_simplify_layout_preserves_indices(shape, strides):
    sh, st = checks.simplify_layout(shape, strides)
    assert _indices(sh, st, 3) == _indices(shape, strides, 3)


def test_layout_args_limits():
    # 10 contiguous dims merge to one
    shape, strides = (2,) * 10, tuple(2 ** (9 - i) for i in range(10))
    args = checks.layout_args("compact", shape, strides)
    assert args[0] == 1 and args[1] == 1024 and args[9] == 1
    assert len(args) == 1 + 2 * checks.MAX_DIMS
    # 9 dims that cannot merge (every other stride skips)
    shape = (2,) * 9
    strides = tuple(4 ** (8 - i) for i in range(9))
    with pytest.raises(ValueError, match="compact: the cuda backend supports views of at most 8"):
        checks.layout_args("compact", shape, strides)


def test_is_row_major():
    assert checks.is_row_major((2, 3), (3, 1))
    assert checks.is_row_major((), ())
    assert checks.is_row_major((1, 4, 1), (9, 1, 9))
    assert not checks.is_row_major((3, 2), (1, 3))
    assert not checks.is_row_major((3,), (2,))


def test_check_rows():
    assert checks.check_rows("reduce_sum", H(12), H(3), 4) == (3, 4, "float32")
    assert checks.check_rows("reduce_sum", H(0), H(3), 0) == (3, 0, "float32")
    with pytest.raises(ValueError, match="reduce_sum: negative reduce_size"):
        checks.check_rows("reduce_sum", H(12), H(3), -1)
    with pytest.raises(ValueError, match="reduce_max: reduce_size must be >= 1"):
        checks.check_rows("reduce_max", H(12), H(3), 0, min_reduce=1)
    with pytest.raises(ValueError, match="reduce_sum: buffer of 11 elements, need 12"):
        checks.check_rows("reduce_sum", H(11), H(3), 4)
    with pytest.raises(TypeError, match="reduce_sum: dtype mismatch"):
        checks.check_rows("reduce_sum", H(12), H(3, "float64"), 4)


def test_check_softmax():
    assert checks.check_softmax("softmax_last", H(12), H(12), 4) == (3, 4, "float32")
    with pytest.raises(ValueError, match="softmax_last: reduce_size must be >= 1"):
        checks.check_softmax("softmax_last", H(12), H(12), 0)
    with pytest.raises(ValueError, match="softmax_last: buffer of 8"):
        checks.check_softmax("softmax_last", H(12), H(8), 4)


def test_check_matmul():
    assert checks.check_matmul("matmul", H(6), H(12), H(8), 1, 2, 3, 4) == (1, 2, 3, 4, "float32")
    assert checks.check_matmul("matmul", H(0), H(0), H(8), 1, 2, 0, 4)[2] == 0
    with pytest.raises(ValueError, match="matmul: buffer of 5 elements, need 6"):
        checks.check_matmul("matmul", H(5), H(12), H(8), 1, 2, 3, 4)
    with pytest.raises(ValueError, match="matmul: m must be >= 0"):
        checks.check_matmul("matmul", H(6), H(12), H(8), 1, -2, 3, 4)
    with pytest.raises(TypeError, match="batched_matmul: dtype mismatch"):
        checks.check_matmul("batched_matmul", H(12), H(24, "float64"), H(16), 2, 2, 3, 4)
    with pytest.raises(ValueError, match="batched_matmul: buffer of 12 elements, need 16"):
        checks.check_matmul("batched_matmul", H(12), H(24), H(12), 2, 2, 3, 4)


def test_check_conv2d():
    r = checks.check_conv2d(
        "conv2d_nhwc", H(2 * 5 * 5 * 3), H(3 * 3 * 3 * 4), H(2 * 2 * 2 * 4), 2, 5, 5, 3, 3, 4, 2
    )
    assert r[7:9] == (2, 2)
    with pytest.raises(ValueError, match="conv2d_nhwc: kernel size 6"):
        checks.check_conv2d("conv2d_nhwc", H(150), H(1000), H(100), 2, 5, 5, 3, 6, 4, 1)
    with pytest.raises(ValueError, match="conv2d_nhwc: stride must be >= 1"):
        checks.check_conv2d("conv2d_nhwc", H(150), H(108), H(100), 2, 5, 5, 3, 3, 4, 0)
