"""Records of shape and layout ops: reshape, broadcast_to, permute, transpose, astype,
flip, dilate, undilate, pad, stack, split, concatenate, getitem, setitem."""

from __future__ import annotations

import numpy as np

from ._core import ErrorInput, OpInfo, SampleInput, T

S, E = SampleInput, ErrorInput


def _reshape_samples():
    return [
        S((T((3, 4)), (4, 3)), desc="2d"),
        S((T((2, 3, 4), layout="transposed"), (6, -1)), desc="transposed_minus1"),
        S((T((2, 6), layout="stepped"), (3, 2, 2)), desc="stepped"),
        S((T((4, 3), layout="broadcast"), (12,)), desc="broadcast_view"),
        S((T(()), (1, 1)), desc="0d_to_2d"),
        S((T((1,)), ()), desc="to_0d"),
        S((T((0, 4)), (4, 0)), desc="empty"),
    ]


def _reshape_errors():
    return [
        E(S((T((3, 4)), (5,)), desc="bad_size"), ValueError, r"reshape"),
        E(S((T((3, 4)), (-1, -1)), desc="two_minus1"), ValueError, r"-1"),
    ]


def _broadcast_samples():
    return [
        S((T((3, 1)), (3, 4)), desc="2d"),
        S((T((4,)), (2, 3, 4)), desc="new_axes"),
        S((T((3, 1), layout="stepped"), (2, 3, 5)), desc="stepped"),
        S((T(()), (2, 2)), desc="0d"),
        S((T((1, 3)), (0, 3)), desc="to_empty"),
    ]


def _permute_samples():
    return [
        S((T((2, 3, 4)), (2, 0, 1)), desc="3d"),
        S((T((2, 3, 4), layout="transposed"), (1, 2, 0)), desc="transposed"),
        S((T((3, 4, 2), layout="sliced"), (0, 2, 1)), desc="sliced"),
        S((T((3,)), (0,)), desc="1d"),
        S((T((0, 2)), (1, 0)), desc="empty"),
    ]


def _transpose_samples():
    return [
        S((T((3, 4)),), desc="default"),
        S((T((2, 3, 4), layout="stepped"),), desc="default_3d_stepped"),
        S((T((2, 3, 4)), (0, 2)), desc="axes02"),
        S((T((2, 3, 4), layout="transposed"), (-1, -2)), desc="neg_axes_transposed"),
    ]


def _astype_samples():
    return [
        S((T((3, 4)), "float64"), desc="to_float64"),
        S((T((3, 4), layout="transposed"), "float32"), desc="to_float32_transposed"),
        S((T((2, 3), layout="stepped"), "float64"), desc="to_float64_stepped"),
        S((T(()), "float32"), desc="0d"),
    ]


def _flip_samples():
    return [
        S((T((3, 4)),), desc="all_axes"),
        S((T((2, 3, 4), layout="transposed"), (0, 2)), desc="axes02_transposed"),
        S((T((5,), layout="stepped"), 0), desc="1d_stepped"),
        S((T((3, 4), layout="broadcast"), 1), desc="broadcast_view"),
        S((T(()),), desc="0d"),
        S((T((0, 3)), 1), desc="empty"),
    ]


def _dilate_ref(x, axes, dilation):
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    shape = tuple(n * (dilation + 1) if i in axes else n for i, n in enumerate(x.shape))
    out = np.zeros(shape)
    out[
        tuple(slice(None, None, dilation + 1) if i in axes else slice(None) for i in range(x.ndim))
    ] = x
    return out


def _undilate_ref(x, axes, dilation):
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return x[
        tuple(slice(None, None, dilation + 1) if i in axes else slice(None) for i in range(x.ndim))
    ]


def _dilate_samples():
    return [
        S((T((2, 3)), (0,), 1), desc="axis0_d1"),
        S((T((2, 3), layout="transposed"), (0, 1), 2), desc="both_d2_transposed"),
        S((T((2, 2, 3), layout="stepped"), (1, 2), 1), desc="3d_stepped"),
        S((T((3, 2)), (1,), 0), desc="d0"),
    ]


def _undilate_samples():
    return [
        S((T((4, 6)), (1,), 1), desc="axis1_d1"),
        S((T((6, 6), layout="stepped"), (0, 1), 2), desc="both_d2_stepped"),
        S((T((5, 4), layout="transposed"), (0,), 1), desc="odd_transposed"),
    ]


def _dilation_errors(name):
    def errors():
        return [
            E(S((T((2, 3)), (0,), -1), desc="negative_dilation"), ValueError, r"dilation"),
            E(S((T((2, 3)), (2,), 1), desc="axis_out_of_range"), ValueError, r"out of range"),
        ]

    return errors


def _pad_samples():
    return [
        S((T((2, 3)), ((1, 0), (2, 1))), desc="2d"),
        S((T((2, 3, 2), layout="stepped"), ((0, 0), (1, 1), (0, 2))), desc="3d_stepped"),
        S((T((3, 4), layout="transposed"), ((1, 1), (0, 0))), desc="transposed"),
        S((T((0, 2)), ((1, 0), (0, 1))), desc="empty"),
    ]


def _pad_errors():
    return [
        E(S((T((2, 3)), ((1, 1),)), desc="wrong_pairs"), ValueError, r"pad"),
        E(S((T((2, 3)), ((1, 1), (-1, 0))), desc="negative"), ValueError, r"non-negative"),
    ]


def _stack_samples():
    return [
        S(([T((2, 3)), T((2, 3)), T((2, 3))], 0), desc="axis0"),
        S(([T((2, 3), layout="transposed"), T((2, 3), layout="stepped")], 2), desc="axis_last"),
        S(([T((4,))], 1), desc="single"),
        S(([T(()), T(())], 0), desc="0d"),
    ]


def _stack_errors():
    return [
        E(S(([T((2, 3)), T((3, 2))], 0), desc="shapes_differ"), ValueError, r"shape"),
        E(S(([], 0), desc="empty_list"), ValueError, r"at least one"),
    ]


def _split_ref(x, axis=0):
    return [np.take(x, i, axis=axis) for i in range(x.shape[axis])]


def _split_samples():
    return [
        S((T((3, 4)), 0), desc="axis0"),
        S((T((2, 3, 4), layout="transposed"), 1), desc="axis1_transposed"),
        S((T((3, 2), layout="stepped"), 1), desc="axis1_stepped"),
    ]


def _split_errors():
    return [E(S((T((3, 4)), 2), desc="axis_out_of_range"), ValueError, r"out of range")]


def _concat_ref(xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _concat_samples():
    return [
        S(([T((2, 3)), T((4, 3))], 0), desc="axis0"),
        S(
            ([T((2, 3), layout="transposed"), T((2, 1), layout="stepped"), T((2, 2))], 1),
            desc="axis1_mixed_layouts",
        ),
        S(([T((0, 3)), T((2, 3))], 0), desc="with_empty"),
    ]


def _concat_errors():
    return [
        E(S(([T((2, 3)), T((2, 4))], 0), desc="off_axis_mismatch"), ValueError, r"differ"),
        E(S(([T(()), T(())], 0), desc="0d"), ValueError, r"0-d"),
    ]


def _getitem_samples():
    return [
        S((T((5, 6)), (slice(1, 4), slice(None, None, 2))), desc="slices_steps"),
        S((T((5, 6)), (-1, slice(None))), desc="negative_int"),
        S((T((2, 3, 4)), (Ellipsis, 1)), desc="ellipsis"),
        S(
            (T((5, 6), layout="transposed"), (slice(None, None, -1), slice(4, 0, -2))),
            desc="negative_steps_transposed",
        ),
        S((T((4, 6), layout="stepped"), (slice(-3, None), 2)), desc="stepped_view"),
        S((T((2, 3)), (1, 2)), desc="to_0d"),
        S((T((5, 3)), slice(2, 2)), desc="empty_slice"),
    ]


def _getitem_errors():
    return [
        E(S((T((3, 4)), (3, 0)), desc="out_of_bounds"), IndexError, r"out of bounds"),
        E(S((T((3, 4)), (0, 0, 0)), desc="too_many"), IndexError, r"too many"),
        E(S((T((3, 4)), 1.5), desc="float_index"), TypeError, r"ind"),
    ]


def _setitem_ref(x, idx, value):
    y = np.array(x, copy=True)
    y[idx] = value
    return y


def _setitem_samples():
    return [
        S((T((4, 5)), (slice(1, 3), slice(None)), T((2, 5))), desc="block"),
        S((T((4, 5), layout="transposed"), (slice(None), 1), T((4,))), desc="column_transposed"),
        S((T((4, 5)), (slice(None), slice(0, 4, 2)), T((2,))), desc="broadcast_value"),
        S(
            (T((4, 5), layout="stepped"), (slice(None, None, -1), 0), T((4,), layout="sliced")),
            desc="negative_step_stepped",
        ),
        S((T((3, 4)), (1, slice(None)), 2.5), desc="number"),
    ]


def _setitem_errors():
    return [
        E(S((T((4, 5)), (slice(0, 2),), T((3, 5))), desc="value_shape"), ValueError, r"broadcast"),
        E(S((T((4, 5)), (4,), 1.0), desc="out_of_bounds"), IndexError, r"out of bounds"),
    ]


RECORDS = [
    OpInfo("reshape", np.reshape, _reshape_samples, _reshape_errors),
    OpInfo(
        "broadcast_to",
        np.broadcast_to,
        _broadcast_samples,
        lambda: [E(S((T((3,)), (4,)), desc="incompatible"), ValueError, r"broadcast")],
    ),
    OpInfo(
        "permute",
        np.transpose,
        _permute_samples,
        lambda: [E(S((T((2, 3)), (0, 0)), desc="not_a_permutation"), ValueError, r"permutation")],
    ),
    OpInfo(
        "transpose",
        lambda x, axes=(-2, -1): np.swapaxes(x, *axes),
        _transpose_samples,
        lambda: [E(S((T((3,)),), desc="1d"), ValueError, r"2 dims")],
    ),
    OpInfo(
        "astype",
        lambda x, dtype: x,  # values compared within the target dtype's tolerance
        _astype_samples,
        out_dtype="arg1",
    ),
    OpInfo("flip", lambda x, axes=None: np.flip(x, axes), _flip_samples),
    OpInfo("dilate", _dilate_ref, _dilate_samples, _dilation_errors("dilate")),
    OpInfo("undilate", _undilate_ref, _undilate_samples, _dilation_errors("undilate")),
    OpInfo("pad", np.pad, _pad_samples, _pad_errors),
    OpInfo("stack", lambda xs, axis=0: np.stack(xs, axis), _stack_samples, _stack_errors),
    OpInfo("split", _split_ref, _split_samples, _split_errors),
    OpInfo("concatenate", _concat_ref, _concat_samples, _concat_errors),
    OpInfo("getitem", lambda x, idx: x[idx], _getitem_samples, _getitem_errors),
    OpInfo("setitem", _setitem_ref, _setitem_samples, _setitem_errors),
]
