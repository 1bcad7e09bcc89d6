"""The extended op set against NumPy (float64) and finite differences.

Every test runs on each CPU backend and once more on NumPy with the optional kernels
hidden ("numpy-composed"), so both the fused-kernel path and the composition of
required kernels are checked.
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients, device_for
from needle.backends import kernels_in_family

BACKENDS = ["numpy", "numpy-composed"] + (
    ["cpp"] if "cpp" in {d.name for d in ndl.all_devices()} else []
)


@pytest.fixture(params=BACKENDS)
def device(request, monkeypatch):
    return device_for(request.param, monkeypatch)


@pytest.fixture
def T(device):
    """Build a float64 tensor on the device under test."""

    def make(a, requires_grad: bool = True) -> ndl.Tensor:
        return ndl.Tensor(
            np.asarray(a, dtype=np.float64),
            dtype="float64",
            device=device,
            requires_grad=requires_grad,
        )

    return make


def close(t: ndl.Tensor, expected: np.ndarray) -> None:
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-10, atol=1e-12)


def np_logsumexp(x: np.ndarray, axes) -> np.ndarray:
    m = np.max(x, axis=axes, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m, axis=axes)


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- logsumexp, logsoftmax, softmax ----------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((3, 5), (1,)),
        ((3, 5), None),
        ((2, 3, 4), (0, 2)),
        ((2, 3, 4), 1),
        ((4,), 0),
        ((2, 3, 4), -1),
    ],
)
def test_logsumexp(rng, device, T, shape, axes):
    x = rng.standard_normal(shape) * 3
    ax = tuple(range(len(shape))) if axes is None else axes
    close(ndl.logsumexp(T(x), axes), np_logsumexp(x, ax))
    check_gradients(lambda a: ndl.logsumexp(a, axes), x, device=device)


def test_logsumexp_is_stable_and_keepdims(device, T):
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf]])
    out = ndl.logsumexp(T(x), 1).numpy()
    np.testing.assert_allclose(out[:2], [1000 + np.log(2), -1000 + np.log1p(np.exp(-1))])
    assert out[2] == -np.inf
    assert ndl.logsumexp(T(np.ones((2, 3))), 1, keepdims=True).shape == (2, 1)


def test_logsumexp_empty_reduction_is_minus_inf(device, T):
    out = ndl.logsumexp(T(np.zeros((3, 0))), 1)
    assert out.shape == (3,)
    assert np.all(out.numpy() == -np.inf)


def test_logsumexp_noncontiguous(rng, device, T):
    x = rng.standard_normal((4, 6))
    close(ndl.logsumexp(ndl.transpose(T(x)), 1), np_logsumexp(x.T, 1))
    close(ndl.logsumexp(T(x)[1:, ::2], 1), np_logsumexp(x[1:, ::2], 1))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (7,)])
def test_softmax_and_logsoftmax(rng, device, T, shape):
    x = rng.standard_normal(shape) * 2
    close(ndl.softmax(T(x)), np_softmax(x))
    close(ndl.logsoftmax(T(x)), np.log(np_softmax(x)))
    close(T(x).softmax(), np_softmax(x))
    close(T(x).logsoftmax(), np.log(np_softmax(x)))
    check_gradients(ndl.softmax, x, device=device)
    check_gradients(ndl.logsoftmax, x, device=device)


def test_softmax_stable_and_noncontiguous(rng, device, T):
    x = np.array([[1000.0, 0.0, -1000.0]])
    close(ndl.softmax(T(x)), np_softmax(x))
    close(ndl.logsoftmax(T(x)), x - np_logsumexp(x, 1)[:, None])
    y = rng.standard_normal((5, 3))
    close(ndl.softmax(ndl.transpose(T(y))), np_softmax(y.T))


def test_softmax_logsoftmax_second_order(rng, device):
    x = rng.standard_normal((2, 4))

    def f(a):
        return ndl.logsoftmax(a) * ndl.softmax(a)

    check_gradients(f, x, device=device)


@pytest.mark.parametrize("op", [ndl.softmax, ndl.logsoftmax])
def test_softmax_rejects_0d(T, op):
    with pytest.raises(ValueError, match=op.__name__):
        op(T(1.0))


def test_logsumexp_bad_axis(T):
    with pytest.raises(ValueError, match="logsumexp"):
        ndl.logsumexp(T(np.ones((2, 3))), 2)


# --- maximum ---------------------------------------------------------------------------
def test_maximum_forward_and_gradient(rng, device, T):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    close(ndl.maximum(T(a), T(b)), np.maximum(a, b))
    close(ndl.maximum(T(a), 0.25), np.maximum(a, 0.25))
    check_gradients(ndl.maximum, a, b, device=device)
    check_gradients(lambda x: ndl.maximum(x, 0.25), a, device=device)


def test_maximum_ties_split_evenly(T):
    a, b = T([1.0, 2.0, 3.0]), T([1.0, 5.0, 0.0])
    ndl.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0, 0.0])
    c = T([0.0, 1.0, -1.0])
    ndl.maximum(c, 0.0).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), [0.5, 1.0, 0.0])


def test_maximum_bad_input(T):
    with pytest.raises(ValueError, match="maximum"):
        ndl.maximum(T(np.ones((2, 3))), T(np.ones((4,))))
    with pytest.raises(TypeError, match="maximum"):
        ndl.maximum(T(np.ones(2)), "x")


# --- stack, split, concatenate ---------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(rng, device, T, axis):
    xs = [rng.standard_normal((3, 4)) for _ in range(3)]
    close(ndl.stack([T(x) for x in xs], axis), np.stack(xs, axis))
    check_gradients(lambda a, b, c: ndl.stack([a, b, c], axis), *xs, device=device)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_split(rng, device, T, axis):
    x = rng.standard_normal((3, 4, 2))
    parts = ndl.split(T(x), axis)
    expected = [np.take(x, i, axis=axis) for i in range(x.shape[axis])]
    assert len(parts) == len(expected)
    for p, e in zip(parts, expected):
        close(p, e)

    def f(a):  # uses every part, so the tuple adjoints accumulate
        ps = list(ndl.split(a, axis))
        return ndl.stack([p * float(i + 1) for i, p in enumerate(ps)], 0)

    check_gradients(f, x, device=device)


def test_split_single_part_gradient(rng, device, T):
    x = rng.standard_normal((3, 2))
    check_gradients(lambda a: ndl.split(a, 0)[1] * 2.0, x, device=device)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(rng, device, T, axis):
    shapes = [(2, 3), (2, 3), (2, 3)]
    shapes = [
        tuple(n + i if k == axis % 2 else n for k, n in enumerate(s)) for i, s in enumerate(shapes)
    ]
    xs = [rng.standard_normal(s) for s in shapes]
    close(ndl.concatenate([T(x) for x in xs], axis), np.concatenate(xs, axis))
    check_gradients(lambda a, b, c: ndl.concatenate([a, b, c], axis), *xs, device=device)


def test_joining_noncontiguous(rng, device, T):
    x = rng.standard_normal((3, 4))
    xt = ndl.transpose(T(x))
    close(ndl.stack([xt, xt], 1), np.stack([x.T, x.T], 1))
    close(ndl.concatenate([xt, T(x)[:, ::2].transpose()], 0), np.concatenate([x.T, x[:, ::2].T], 0))


def test_joining_bad_input(device, T):
    with pytest.raises(ValueError, match="stack: shapes differ"):
        ndl.stack([T(np.ones((2, 3))), T(np.ones((3, 2)))])
    with pytest.raises(ValueError, match="stack: need at least one"):
        ndl.stack([])
    with pytest.raises(ValueError, match="stack: axis 3"):
        ndl.stack([T(np.ones((2, 3)))], 3)
    with pytest.raises(TypeError, match="stack"):
        ndl.stack(T(np.ones((2, 3))))
    with pytest.raises(ValueError, match="concatenate: shapes"):
        ndl.concatenate([T(np.ones((2, 3))), T(np.ones((3, 2)))], 0)
    with pytest.raises(ValueError, match="split: axis 2"):
        ndl.split(T(np.ones((2, 3))), 2)
    with pytest.raises(TypeError, match="stack: dtypes differ"):
        ndl.stack([T(np.ones(2)), ndl.Tensor(np.ones(2), device=device, dtype="float32")])


# --- getitem, setitem ------------------------------------------------------------------
INDICES = [
    1,
    -1,
    (0, 2),
    (slice(1, 3),),
    (slice(None), slice(None, None, 2)),
    (slice(None, None, -1),),
    (-2, slice(3, 0, -2)),
    (Ellipsis, 1),
    (slice(5, 1),),
    (slice(None), slice(-1, None, -3), 0),
    (1, Ellipsis, slice(None, None, -1)),
]


@pytest.mark.parametrize("idx", INDICES)
def test_getitem(rng, device, T, idx):
    x = rng.standard_normal((4, 5, 3))
    close(T(x)[idx], x[idx])
    close(ndl.getitem(T(x), idx), x[idx])
    check_gradients(lambda a: a[idx], x, device=device)


def test_getitem_noncontiguous_and_0d(rng, device, T):
    x = rng.standard_normal((4, 5))
    close(ndl.transpose(T(x))[1:, -1], x.T[1:, -1])
    close(T(x)[2, 3], x[2, 3])
    assert T(x)[2, 3].shape == ()
    close(T(np.array(3.0))[...], np.array(3.0))


def test_getitem_twice_accumulates(device, T):
    a = T([1.0, 2.0, 3.0])
    (a[0] * 3.0 + a[0:2].sum() + a[::-1][0]).backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("idx", "exc", "match"),
    [
        (5, IndexError, "getitem: index 5"),
        ((0, 0, 0), IndexError, "getitem: too many"),
        ((Ellipsis, Ellipsis), IndexError, "single ellipsis"),
        ([0, 1], TypeError, "getitem"),
        (None, TypeError, "getitem"),
        (slice(None, None, 0), ValueError, "getitem"),
    ],
)
def test_getitem_bad_index(T, idx, exc, match):
    with pytest.raises(exc, match=match):
        T(np.ones((3, 4)))[idx]


@pytest.mark.parametrize(
    ("idx", "vshape"),
    [
        ((1,), (5,)),
        ((slice(0, 3), 2), (3,)),
        ((slice(None), slice(None, None, -2)), (1, 3)),
        ((Ellipsis, 0), ()),
        ((slice(1, 3), slice(1, 4)), (2, 3)),
    ],
)
def test_setitem(rng, device, T, idx, vshape):
    x, v = rng.standard_normal((4, 5)), rng.standard_normal(vshape)
    expected = x.copy()
    expected[idx] = v
    src = T(x)
    close(ndl.setitem(src, idx, T(v)), expected)
    close(src, x)  # out of place
    check_gradients(lambda a, b: ndl.setitem(a, idx, b), x, v, device=device)


def test_setitem_scalar(rng, device, T):
    x = rng.standard_normal((3, 4))
    expected = x.copy()
    expected[1, ::2] = 7.0
    close(ndl.setitem(T(x), (1, slice(None, None, 2)), 7.0), expected)
    check_gradients(lambda a: ndl.setitem(a, (1, slice(None, None, 2)), 7.0), x, device=device)


def test_setitem_bad_input(T):
    with pytest.raises(ValueError, match="setitem: value of shape"):
        ndl.setitem(T(np.ones((3, 4))), 0, T(np.ones(3)))
    with pytest.raises(IndexError, match="setitem"):
        ndl.setitem(T(np.ones((3, 4))), 3, 1.0)
    with pytest.raises(TypeError, match="setitem"):
        ndl.setitem(T(np.ones((3, 4))), 0, "x")
    with pytest.raises(TypeError):  # tensors have no __setitem__
        T(np.ones(3))[0] = 1.0


# --- flip, dilate, undilate, pad -------------------------------------------------------
@pytest.mark.parametrize("axes", [0, (1,), (0, 2), None, -1])
def test_flip(rng, device, T, axes):
    x = rng.standard_normal((2, 3, 4))
    close(ndl.flip(T(x), axes), np.flip(x, axes))
    close(T(x).flip(axes), np.flip(x, axes))
    check_gradients(lambda a: ndl.flip(a, axes), x, device=device)
    close(ndl.flip(ndl.transpose(T(x)), axes), np.flip(np.swapaxes(x, -1, -2), axes))


def np_dilate(x: np.ndarray, axes, d: int) -> np.ndarray:
    shape = [n * (d + 1) if i in axes else n for i, n in enumerate(x.shape)]
    out = np.zeros(shape)
    out[tuple(slice(None, None, d + 1) if i in axes else slice(None) for i in range(x.ndim))] = x
    return out


@pytest.mark.parametrize(("axes", "d"), [((0,), 1), ((1,), 2), ((0, 1), 1), ((1,), 0)])
def test_dilate_undilate(rng, device, T, axes, d):
    x = rng.standard_normal((3, 4))
    close(ndl.dilate(T(x), axes, d), np_dilate(x, axes, d))
    check_gradients(lambda a: ndl.dilate(a, axes, d), x, device=device)
    y = rng.standard_normal((5, 7))
    sl = tuple(slice(None, None, d + 1) if i in axes else slice(None) for i in range(2))
    close(ndl.undilate(T(y), axes, d), y[sl])
    check_gradients(lambda a: ndl.undilate(a, axes, d), y, device=device)
    close(ndl.undilate(ndl.dilate(T(x), axes, d), axes, d), x)


def test_dilate_bad_input(T):
    with pytest.raises(ValueError, match="dilate: dilation"):
        ndl.dilate(T(np.ones((2, 2))), (0,), -1)
    with pytest.raises(ValueError, match="undilate"):
        ndl.undilate(T(np.ones((2, 2))), (2,), 1)


def test_pad(rng, device, T):
    x = rng.standard_normal((2, 3, 4))
    widths = ((0, 0), (1, 2), (3, 0))
    close(ndl.pad(T(x), widths), np.pad(x, widths))
    check_gradients(lambda a: ndl.pad(a, widths), x, device=device)
    close(ndl.pad(ndl.transpose(T(x)), widths), np.pad(np.swapaxes(x, 1, 2), widths))
    with pytest.raises(ValueError, match="pad"):
        ndl.pad(T(x), ((1, 1),))
    with pytest.raises(ValueError, match="pad"):
        ndl.pad(T(x), ((0, 0), (0, -1), (0, 0)))


# --- where -----------------------------------------------------------------------------
def test_where(rng, device, T):
    c = (rng.standard_normal((3, 4)) > 0).astype(np.float64)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    close(ndl.where(T(c), T(a), T(b)), np.where(c != 0, a, b))
    close(ndl.where(T(c), T(a), 0.5), np.where(c != 0, a, 0.5))
    close(ndl.where(T(c), 2.0, T(b)), np.where(c != 0, 2.0, b))
    check_gradients(lambda x, y: ndl.where(T(c), x, y), a, b, device=device)


def test_where_no_gradient_to_cond(rng, T):
    c = T([1.0, 0.0, 1.0])  # requires_grad defaults to True
    a, b = T([1.0, 2.0, 3.0]), T([4.0, 5.0, 6.0])
    ndl.where(c, a, b).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 1.0, 0.0])


def test_where_bad_input(device, T):
    with pytest.raises(ValueError, match="where: shapes"):
        ndl.where(T(np.ones(3)), T(np.ones(3)), T(np.ones(4)))
    with pytest.raises(TypeError, match="where"):
        ndl.where(
            T(np.ones(3)), T(np.ones(3)), ndl.Tensor(np.ones(3), device=device, dtype="float32")
        )


# --- comparisons, argmax, one_hot ------------------------------------------------------
# the comparison kernels of the contract and their NumPy references (1.0/0.0)
CMP = {
    spec.name.removeprefix("ewise_"): spec.reference
    for spec in kernels_in_family("ewise_binary")
    if spec.exact
}
OPERATORS = {
    "eq": "__eq__",
    "ne": "__ne__",
    "lt": "__lt__",
    "le": "__le__",
    "gt": "__gt__",
    "ge": "__ge__",
}


@pytest.mark.parametrize("name", sorted(CMP))
def test_comparisons(rng, device, T, name):
    a = rng.integers(0, 3, (3, 4)).astype(np.float64)
    b = rng.integers(0, 3, (4,)).astype(np.float64)
    for out in (getattr(ndl, name)(T(a), T(b)), getattr(T(a), OPERATORS[name])(T(b))):
        close(out, CMP[name](a, b).astype(np.float64))
        assert out.requires_grad is False
    close(getattr(ndl, name)(T(a), 1.0), CMP[name](a, 1.0).astype(np.float64))
    close(getattr(ndl, name)(ndl.transpose(T(a)), 1.0), CMP[name](a.T, 1.0).astype(np.float64))


def test_comparison_bad_input_and_hash(T):
    with pytest.raises(ValueError, match="lt: shapes"):
        ndl.lt(T(np.ones(3)), T(np.ones(4)))
    with pytest.raises(TypeError, match="eq"):
        ndl.eq(T(np.ones(3)), "x")
    t = T(np.ones(3))
    assert len({t, t, T(np.ones(3))}) == 2  # still hashable, by identity
    assert (t == None) is False  # noqa: E711 (falls back to identity)


@pytest.mark.parametrize(("axis", "keepdims"), [(None, False), (0, False), (1, True), (-1, False)])
def test_argmax(rng, device, T, axis, keepdims):
    x = rng.integers(0, 4, (3, 5)).astype(np.float64)  # many ties: the first one wins
    expected = np.argmax(x, axis=axis, keepdims=keepdims).astype(np.float64)
    out = ndl.argmax(T(x), axis, keepdims)
    close(out, expected)
    assert out.requires_grad is False
    close(T(x).argmax(axis, keepdims), expected)
    close(
        ndl.argmax(ndl.transpose(T(x)), axis, keepdims),
        np.argmax(x.T, axis=axis, keepdims=keepdims).astype(np.float64),
    )


def test_argmax_bad_input(T):
    with pytest.raises(ValueError, match="argmax: empty"):
        ndl.argmax(T(np.ones((0, 3))))
    with pytest.raises(ValueError, match="argmax: axis"):
        ndl.argmax(T(np.ones((2, 3))), 2)


def test_one_hot(device, T):
    labels = np.array([[0.0, 3.0], [2.0, 1.0]])
    close(ndl.one_hot(4, T(labels)), np.eye(4)[labels.astype(int)])
    with pytest.raises(IndexError, match="one_hot"):
        ndl.one_hot(3, T(labels))
    with pytest.raises(IndexError, match="one_hot"):
        ndl.one_hot(4, T([-1.0]))


# --- Tensor methods --------------------------------------------------------------------
def test_tensor_methods(rng, device, T):
    x = rng.uniform(0.5, 2.0, (3, 4))
    close(T(x).max(1), x.max(1))
    close(T(x).max((0, 1), keepdims=True), x.max(keepdims=True))
    close(T(x).mean(0), x.mean(0))
    close(T(x).mean(keepdims=True), x.mean(keepdims=True))
    close(T(x).tanh(), np.tanh(x))
    close(T(x).sigmoid(), 1 / (1 + np.exp(-x)))
    close(T(x).sqrt(), np.sqrt(x))
