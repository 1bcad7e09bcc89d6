"""Silent coercions in the Tensor API become errors or correct results."""

from __future__ import annotations

import operator

import needle as ndl
import numpy as np
import pytest
from needle import nn, optim

DEV = "numpy"


def T(x, **kw) -> ndl.Tensor:
    return ndl.Tensor(x, device=DEV, **kw)


@pytest.mark.parametrize(
    "scalar", [np.float32(2), np.float64(2), np.int64(2)], ids=lambda s: type(s).__name__
)
def test_numpy_scalar_times_tensor_stays_a_tensor_with_its_graph(scalar) -> None:
    x = T([1.0, 3.0])
    for y, grad in (
        (scalar * x, [2.0, 2.0]),
        (scalar + x, [1.0, 1.0]),
        (scalar - x, [-1.0, -1.0]),
        (scalar / x, [-2.0, -2.0 / 9.0]),
    ):
        assert isinstance(y, ndl.Tensor) and y.op is not None
        x.grad = None
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-6)
    assert (scalar * x).numpy().tolist() == [2.0, 6.0]
    assert (scalar - x).numpy().tolist() == [1.0, -1.0]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "matmul"])
def test_ndarray_with_tensor_is_a_type_error_not_an_ndarray(op: str) -> None:
    x = T(np.ones((2, 2), np.float32))
    a = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError, match=r"expected a (needle\.)?Tensor"):
        getattr(operator, op)(a, x)


def test_numpy_functions_on_tensors_are_refused_but_asarray_works() -> None:
    x = T([1.0, 2.0])
    with pytest.raises(TypeError):
        np.add(np.ones(2), x)
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])


def test_tensor_of_none_and_complex_are_refused() -> None:
    with pytest.raises(TypeError, match="from None"):
        T(None)
    with pytest.raises(TypeError, match="complex"):
        T(np.array([1 + 2j, 3]))
    with pytest.raises(TypeError, match="complex"):
        T(1 + 2j)
    with pytest.raises(TypeError, match="complex"):
        T([1 + 2j])
    for holey in ([None, 1.0], [[1.0], [None]], np.array([None, 1.0])):
        with pytest.raises(TypeError, match="holds None"):
            T(holey)
    assert T([1, 2.5]).numpy().tolist() == [1.0, 2.5]


@pytest.mark.parametrize("shape", [(2.0, 3), (6.0,), (2, 3.5), (True, 6)])
def test_float_or_bool_dims_in_reshape_are_refused(shape) -> None:
    with pytest.raises(TypeError, match="reshape: shape entries must be ints"):
        T(np.ones((2, 3))).reshape(shape)


def test_reshape_accepts_numpy_ints_and_one_minus_one() -> None:
    x = T(np.arange(6.0))
    assert x.reshape((np.int64(2), -1)).shape == (2, 3)
    with pytest.raises(ValueError, match="negative size -2"):
        x.reshape((-2, 3))


@pytest.mark.parametrize("shape", [(2.0, 3), (2, 3.0)])
def test_float_dims_in_broadcast_to_are_refused(shape) -> None:
    with pytest.raises(TypeError, match="broadcast_to: shape entries must be ints"):
        T(np.ones((1, 3))).broadcast_to(shape)


def test_broadcast_to_minus_one_is_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match=r"broadcast_to: negative size -1 in \(-1, 3\)"):
        T(np.ones((1, 3))).broadcast_to((-1, 3))


@pytest.mark.parametrize("method", ["sum", "max", "mean"])
def test_axes_true_is_refused(method: str) -> None:
    with pytest.raises(TypeError, match="axis must be an int, got True"):
        getattr(T(np.ones((2, 3))), method)(axes=True)


@pytest.mark.parametrize("method", ["sum", "max", "mean"])
def test_reducing_axis_0_of_a_0d_tensor_is_a_clear_error(method: str) -> None:
    with pytest.raises(ValueError, match="a 0-d tensor has no axis 0 to reduce; use axes=None"):
        getattr(T(3.0), method)(axes=0)
    assert getattr(T(3.0), method)().numpy() == 3.0


@pytest.mark.parametrize("as_tensor", [False, True])
def test_float_label_is_refused_where_labels_are_classes(as_tensor: bool) -> None:
    logits = T(np.zeros((2, 3), np.float32))
    labels = np.array([0.7, 1.0], np.float32)
    with pytest.raises(ValueError, match="whole numbers"):
        nn.SoftmaxLoss()(logits, T(labels) if as_tensor else labels)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: optim.Adam(p, lr=-1), "Adam: lr must be >= 0.0, got -1"),
        (lambda p: optim.Adam(p, lr=float("nan")), "Adam: lr must be a finite number"),
        (lambda p: optim.Adam(p, beta1=1.0), r"Adam: beta1 must be in \[0.0, 1.0\)"),
        (lambda p: optim.Adam(p, eps=-1e-8), "Adam: eps must be >= 0.0"),
        (lambda p: optim.SGD(p, lr=-0.1), "SGD: lr must be >= 0.0"),
        (lambda p: optim.SGD(p, momentum=1.5), r"SGD: momentum must be in \[0.0, 1.0\)"),
        (lambda p: optim.SGD(p, weight_decay=-1), "SGD: weight_decay must be >= 0.0"),
        (lambda p: optim.SGD(p, lr="0.1"), "SGD: lr must be a finite number"),
    ],
)
def test_optimizer_hyper_parameters_are_checked(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make([T([1.0])])


@pytest.mark.parametrize("max_norm", [-1, 0, float("nan"), float("inf"), "1"])
def test_clip_grad_norm_refuses_a_bad_max_norm(max_norm) -> None:
    p = T([3.0, 4.0])
    p.grad = T([3.0, 4.0])
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a finite number > 0"):
        optim.clip_grad_norm([p], max_norm)
    assert p.grad.numpy().tolist() == [3.0, 4.0]


def test_clip_grad_norm_still_clips() -> None:
    p = T([3.0, 4.0])
    p.grad = T([3.0, 4.0])
    assert optim.clip_grad_norm([p], 1.0) == 5.0
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: x.transpose((True, 0)), "transpose: axis must be an int, got True"),
        (lambda x: x.permute((True, 0, 2)), "permute: axis must be an int, got True"),
        (lambda x: x.permute((0.0, 1, 2)), "permute: axis must be an int, got 0.0"),
    ],
)
def test_bool_and_float_axes_in_transpose_and_permute_are_refused(call, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        call(T(np.ones((2, 3, 4))))


def test_transpose_and_permute_still_take_ints() -> None:
    x = T(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(
        x.permute((np.int64(2), 0, 1)).numpy(), np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1)
    )
    assert x.transpose((0, 2)).shape == (4, 3, 2)
