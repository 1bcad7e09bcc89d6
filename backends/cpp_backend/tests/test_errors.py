"""Bad input: every kernel raises the right built-in type, naming itself, and never
touches memory outside its buffers."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put
from needle.backends import KERNELS, kernels_in_family


def f32(n):
    from needle_cpp import _core

    return _core.alloc(n, "float32")


def z32(n):
    return put(np.zeros(n, np.float32))


def z64(n):
    return put(np.zeros(n, np.float64))


def f64(n):
    from needle_cpp import _core

    return _core.alloc(n, "float64")


def _prog():
    """A compiled program of one instruction, scalar_add(a, 1.0, out): argument 1 is its float."""
    from needle_cpp import _core

    return _core.program_compile([("scalar_add", (f32(4), 1.0, f32(4)))])


def _key(n: int = 624, read_only: bool = False) -> np.ndarray:
    """A uint32 key of n words for bernoulli_mt19937 (624 is the right size)."""
    key = np.arange(n, dtype=np.uint32)
    key.flags.writeable = not read_only
    return key


# (kernel, args builder, exception type)
def _att(n: int = 3, mask: int = 0, f64: bool = False) -> tuple:
    """attention_forward buffers: q (n elements), k, v, out, probs of 8 (enough for
    1 x 1 x 2 x 2 with widths 2), a mask of ``mask`` elements (0: none)."""
    v = z64(8) if f64 else z32(8)
    return (z32(n), z32(8), v, z32(mask), z32(8), z32(8))


def _att_alias() -> tuple:
    q = z32(8)
    return (q, z32(8), z32(8), z32(0), q, z32(8), 1, 1, 2, 2, 2, 2, 0, 0, 1.0)


def _att_b(n: int) -> tuple:
    """attention_backward buffers: q of n elements, the rest of 8, no mask."""
    return (z32(n), z32(8), z32(8), z32(8), z32(0), z32(8), z32(8), z32(8), z32(8))


CASES = [
    ("alloc", lambda: (4, "int8"), TypeError),
    ("alloc", lambda: (-1, "float32"), ValueError),
    ("from_numpy", lambda: (np.zeros(3, np.float32), f32(4)), ValueError),
    ("from_numpy", lambda: (np.array(["x"], dtype=object), f32(1)), TypeError),
    ("to_numpy", lambda: (f32(4), (2, 2), (2, 2), 0), IndexError),
    ("to_numpy", lambda: (f32(4), (2,), (1, 1), 0), ValueError),
    ("fill", lambda: (None, 1.0), TypeError),
    ("astype", lambda: (f32(3), f64(4)), ValueError),
    ("compact", lambda: (f32(10), f32(12), (3, 4), (4, 1), 0), IndexError),
    ("compact", lambda: (f32(12), f32(12), (3, 4), (4, 1), 1), IndexError),
    ("compact", lambda: (f32(12), f32(12), (3, -4), (4, 1), 0), ValueError),
    ("compact", lambda: (f32(12), f32(12), (3, 4), (4, -1), 0), ValueError),
    ("compact", lambda: (f32(12), f32(12), (3, 4), (4, 1), -1), ValueError),
    ("compact", lambda: (f32(12), f32(11), (3, 4), (4, 1), 0), ValueError),
    ("compact", lambda: (f32(12), f32(12), (3, 4), (4,), 0), ValueError),
    ("compact", lambda: (f32(12), f32(12), (2**62, 4), (2**62, 1), 0), ValueError),
    ("compact", lambda: (f32(12), f32(12), (3, 4), (2**62, 2**62), 0), IndexError),
    ("compact", lambda: (f32(12), f32(12), (3, 4.5), (4, 1), 0), TypeError),
    ("ewise_setitem", lambda: (f32(12), f32(10), (3, 4), (4, 1), 0), IndexError),
    ("ewise_setitem", lambda: (f32(11), f32(12), (3, 4), (4, 1), 0), ValueError),
    ("ewise_setitem", lambda: (f32(12), f32(12), (3, 4), (4, 1), -2), ValueError),
    ("scalar_setitem", lambda: (12, 1.0, f32(10), (3, 4), (4, 1), 0), IndexError),
    ("scalar_setitem", lambda: (11, 1.0, f32(12), (3, 4), (4, 1), 0), ValueError),
    ("reduce_sum", lambda: (f32(5), f32(2), 3), ValueError),
    ("reduce_sum", lambda: (f32(6), f32(2), -3), ValueError),
    ("reduce_sum", lambda: (f32(6), f64(2), 3), TypeError),
    ("reduce_max", lambda: (f32(6), f32(2), 0), ValueError),
    ("reduce_max", lambda: (f32(5), f32(2), 3), ValueError),
    ("reduce_argmax", lambda: (f32(6), f32(2), 0), ValueError),
    ("reduce_argmax", lambda: (f32(6), f64(2), 3), TypeError),
    ("logsumexp_last", lambda: (f32(5), f32(2), 3), ValueError),
    ("logsumexp_last", lambda: (f32(6), f32(2), -1), ValueError),
    ("softmax_last", lambda: (f32(6), f32(2), 0), ValueError),
    ("softmax_last", lambda: (f32(6), f32(5), 3), ValueError),
    ("softmax_last", lambda: (f32(6), f64(6), 3), TypeError),
    ("matmul", lambda: (f32(5), f32(6), f32(4), 2, 3, 2), ValueError),
    ("matmul", lambda: (f32(6), f32(6), f32(3), 2, 3, 2), ValueError),
    ("matmul", lambda: (f32(6), f32(6), f32(4), -2, 3, 2), ValueError),
    ("matmul", lambda: (f32(6), f64(6), f32(4), 2, 3, 2), TypeError),
    ("matmul", lambda: (f32(6), f32(6), f32(4), 2**40, 2**40, 2), ValueError),
    ("batched_matmul", lambda: (f32(12), f32(12), f32(7), 2, 2, 3, 2), ValueError),
    ("batched_matmul", lambda: (f32(12), f32(12), f64(8), 2, 2, 3, 2), TypeError),
    ("batched_matmul", lambda: (f32(12), f32(12), f32(8), -2, 2, 3, 2), ValueError),
    ("conv2d_nhwc", lambda: (f32(16), f32(4), f32(8), 1, 4, 4, 1, 2, 1, 1), ValueError),
    ("conv2d_nhwc", lambda: (f32(16), f32(4), f32(9), 1, 4, 4, 1, 2, 1, 0), ValueError),
    ("conv2d_nhwc", lambda: (f32(16), f32(25), f32(9), 1, 4, 4, 1, 5, 1, 1), ValueError),
    ("conv2d_nhwc", lambda: (f32(15), f32(4), f32(9), 1, 4, 4, 1, 2, 1, 1), ValueError),
    ("conv2d_nhwc", lambda: (f32(16), f32(3), f32(9), 1, 4, 4, 1, 2, 1, 1), ValueError),
    ("conv2d_nhwc", lambda: (f32(16), f64(4), f32(9), 1, 4, 4, 1, 2, 1, 1), TypeError),
    # conv2d_nhwc_pad and its gradients: x (1, 4, 4, 1), w (3, 3, 1, 1), padding 1 -> (1, 4, 4, 1)
    *[
        case
        for kn in ("conv2d_nhwc_pad", "conv2d_nhwc_backward_input", "conv2d_nhwc_backward_weight")
        for case in (
            (kn, lambda: (f32(16), f32(9), f32(16), 1, 4, 4, 1, 0, 1, 1, 1), ValueError),  # k 0
            (
                kn,
                lambda: (f32(16), f32(9), f32(16), 1, 4, 4, 1, 3, 1, 0, 1),
                ValueError,
            ),  # stride 0
            (kn, lambda: (f32(16), f32(9), f32(16), 1, 4, 4, 1, 3, 1, 1, -1), ValueError),  # pad
            (
                kn,
                lambda: (f32(16), f32(49), f32(16), 1, 2, 2, 1, 7, 1, 1, 2),
                ValueError,
            ),  # k > padded
            (kn, lambda: (f32(16), f32(9), f32(16), -1, 4, 4, 1, 3, 1, 1, 1), ValueError),  # n < 0
            (kn, lambda: (f32(15), f32(15), f32(15), 1, 4, 4, 1, 3, 1, 1, 1), ValueError),  # short
            (
                kn,
                lambda: (f32(16), f32(16), f32(16), 1 << 40, 1 << 40, 4, 1, 3, 1, 1, 1),
                ValueError,
            ),
            (kn, lambda: (f32(16), f32(16), f32(16), 1, 4, 4, 1, 3, 1, 1, 1 << 62), ValueError),
            (kn, lambda: (f32(16), f64(16), f32(16), 1, 4, 4, 1, 3, 1, 1, 1), TypeError),
        )
    ],
    # the gradients' output may not be their first input
    *[
        (kn, lambda: (lambda b: (b, f32(9), b, 1, 4, 4, 1, 3, 1, 1, 1))(f32(16)), ValueError)
        for kn in ("conv2d_nhwc_backward_input", "conv2d_nhwc_backward_weight")
    ],
    ("ewise_where", lambda: (f32(3), f32(4), f32(4), f32(4)), ValueError),
    ("ewise_where", lambda: (f64(4), f32(4), f32(4), f32(4)), TypeError),
    # issue 12 kernels (more in test_perf_kernels.py)
    ("matmul_t", lambda: (f32(6), f32(6), f32(4), 2, 3, 2, 2, 0), ValueError),
    ("matmul_t", lambda: (f32(5), f32(6), f32(4), 2, 3, 2, 1, 0), ValueError),
    ("matmul_t", lambda: (f32(6), f64(6), f32(4), 2, 3, 2, 0, 1), TypeError),
    ("batched_matmul_t", lambda: (f32(12), f32(12), f32(7), 2, 2, 3, 2, 0, 1), ValueError),
    ("batched_matmul_t", lambda: (f32(12), f32(12), f32(8), 2, 2, 3, 2, 0, 5), ValueError),
    ("reduce_sum_mid", lambda: (f32(11), f32(4), 2, 3, 2), ValueError),
    ("reduce_sum_mid", lambda: (f32(12), f64(4), 2, 3, 2), TypeError),
    ("reduce_max_mid", lambda: (f32(12), f32(4), 2, 0, 2), ValueError),
    ("reduce_max_mid", lambda: (f32(12), f32(4), -2, 3, 2), ValueError),
    ("program_compile", lambda: ([("nope", ())],), ValueError),
    ("program_compile", lambda: ([("matmul", (f32(4), f32(4), f32(4), 3, 3, 3))],), ValueError),
    ("program_run", lambda: ([],), TypeError),
    ("program_set_scalars", lambda: (_prog(), [(0, 1)], []), ValueError),
    ("program_set_scalars", lambda: (_prog(), [(0, 0)], [1.0]), ValueError),
    ("program_set_scalars", lambda: (_prog(), [(3, 1)], [1.0]), IndexError),
    ("program_set_scalars", lambda: (_prog(), [(0, 1)], ["x"]), TypeError),
    ("program_set_scalars", lambda: (_prog(), [("a", 1)], [1.0]), ValueError),
    # fused-layer kernels: a short first buffer, a dtype mismatch, a bad index or flag
    ("batchnorm_forward", lambda: (z32(5), z32(3), z32(3), z32(6), z32(6), 2, 3, 1e-5), ValueError),
    ("batchnorm_forward", lambda: (z32(6), z64(3), z32(3), z32(6), z32(6), 2, 3, 1e-5), TypeError),
    (
        "batchnorm_backward",
        lambda: (z32(5), z32(6), z32(3), z32(6), z32(6), z32(6), 2, 3, 1e-5),
        ValueError,
    ),
    ("layernorm_forward", lambda: (z32(5), z32(3), z32(3), z32(6), z32(4), 2, 3, 1e-5), ValueError),
    ("layernorm_forward", lambda: (z32(6), z64(3), z32(3), z32(6), z32(4), 2, 3, 1e-5), TypeError),
    (
        "layernorm_backward",
        lambda: (z32(5), z32(6), z32(3), z32(4), z32(6), z32(6), 2, 3, 1e-5),
        ValueError,
    ),
    ("softmax_xent", lambda: (z32(5), z32(2), z32(2), 2, 3), ValueError),
    ("softmax_xent", lambda: (z32(6), put(np.float32([0, 3])), z32(2), 2, 3), IndexError),
    ("softmax_xent_backward", lambda: (z32(5), z32(2), z32(1), z32(6), 2, 3), ValueError),
    ("take_rows", lambda: (z32(5), z32(2), z32(4), 2, 3, 2), ValueError),
    ("take_rows", lambda: (z32(6), put(np.float32([0, 5])), z32(4), 2, 3, 2), IndexError),
    ("scatter_add_rows", lambda: (z32(3), z32(2), z32(6), 2, 3, 2), ValueError),
    ("scatter_add_rows", lambda: (z32(4), put(np.float32([-1, 0])), z32(6), 2, 3, 2), IndexError),
    ("lstm_cell", lambda: (z32(15), z32(4), z32(4), z32(4), 2, 2), ValueError),
    ("lstm_cell", lambda: (z32(16), z64(4), z32(4), z32(4), 2, 2), TypeError),
    (
        "lstm_cell_backward",
        lambda: (z32(15), z32(4), z32(4), z32(4), z32(16), z32(4), 2, 2),
        ValueError,
    ),
    # lstm_layer (t, n, h) = (2, 1, 1): gx/gates 8, w_hh 4, states 1, hs/cs 2
    (
        "lstm_layer",
        lambda: (z32(7), z32(4), z32(1), z32(1), z32(2), z32(2), z32(8), 2, 1, 1),
        ValueError,
    ),
    (
        "lstm_layer",
        lambda: (z32(8), z32(4), z32(1), z32(1), z32(2), z32(1), z32(8), 2, 1, 1),
        ValueError,
    ),
    (
        "lstm_layer",
        lambda: (z32(8), z64(4), z32(1), z32(1), z32(2), z32(2), z32(8), 2, 1, 1),
        TypeError,
    ),
    (
        "lstm_layer",
        lambda: (z32(8), z32(4), z32(1), z32(1), z32(2), z32(2), z32(8), -2, 1, 1),
        ValueError,
    ),
    (
        "lstm_layer",
        lambda: (z32(8), z32(4), z32(1), z32(1), z32(2), z32(2), z32(8), 2**40, 2**40, 1),
        ValueError,
    ),
    (  # gates is also an input (gx): outputs must be fresh buffers
        "lstm_layer",
        lambda: (lambda gx: (gx, z32(4), z32(1), z32(1), z32(2), z32(2), gx, 2, 1, 1))(z32(8)),
        ValueError,
    ),
    (
        "lstm_layer_backward",
        lambda: (
            z32(4),
            z32(1),
            z32(1),
            z32(2),
            z32(2),
            z32(8),
            z32(2),
            z32(1),
            z32(1),
            z32(8),
            z32(3),
            z32(1),
            z32(1),
            2,
            1,
            1,
        ),
        ValueError,
    ),
    (
        "lstm_layer_backward",
        lambda: (
            z32(4),
            z32(1),
            z32(1),
            z32(2),
            z32(2),
            z32(8),
            z64(2),
            z32(1),
            z32(1),
            z32(8),
            z32(4),
            z32(1),
            z32(1),
            2,
            1,
            1,
        ),
        TypeError,
    ),
    # rnn_layer (t, n, h) = (2, 1, 2): gx/hs 4, w_hh 4, h0 2
    ("rnn_layer", lambda: (z32(3), z32(4), z32(2), z32(4), 2, 1, 2, 0), ValueError),
    ("rnn_layer", lambda: (z32(4), z32(4), z32(2), z32(4), 2, 1, 2, 2), ValueError),
    ("rnn_layer", lambda: (z32(4), z64(4), z32(2), z32(4), 2, 1, 2, 0), TypeError),
    ("rnn_layer", lambda: (z32(4), z32(4), z32(2), z32(4), 2**40, 2**40, 2, 0), ValueError),
    (
        "rnn_layer_backward",
        lambda: (z32(4), z32(2), z32(4), z32(4), z32(4), z32(3), z32(2), 2, 1, 2, 0),
        ValueError,
    ),
    (
        "rnn_layer_backward",
        lambda: (lambda b: (z32(4), z32(2), b, z32(4), b, z32(4), z32(2), 2, 1, 2, 1))(z32(4)),
        ValueError,
    ),
    ("attention_softmax", lambda: (z32(5), z32(6), 1, 2, 3, 1.0, 0), ValueError),
    ("attention_softmax", lambda: (z32(6), z32(6), 1, 2, 3, 1.0, 2), ValueError),
    # attention: q k v mask out probs | batch heads t_q t_k d d_v layout causal scale
    ("attention_forward", lambda: (*_att(), 1, 1, 2, 2, 2, 2, 0, 0, 1.0), ValueError),  # q short
    ("attention_forward", lambda: (*_att(8), 1, 1, 2, 2, 2, 2, 2, 0, 1.0), ValueError),
    ("attention_forward", lambda: (*_att(8), 1, 1, 2, 2, 2, 2, 0, 3, 1.0), ValueError),
    ("attention_forward", lambda: (*_att(8), 1, 1, 2, 0, 2, 2, 0, 0, 1.0), ValueError),
    ("attention_forward", lambda: (*_att(8), -1, 1, 2, 2, 2, 2, 0, 0, 1.0), ValueError),
    ("attention_forward", lambda: (*_att(8, mask=3), 1, 1, 2, 2, 2, 2, 0, 0, 1.0), ValueError),
    ("attention_forward", lambda: (*_att(8, f64=True), 1, 1, 2, 2, 2, 2, 0, 0, 1.0), TypeError),
    ("attention_forward", _att_alias, ValueError),
    ("attention_backward", lambda: (*_att_b(3), 1, 1, 2, 2, 2, 2, 0, 0, 1.0), ValueError),
    ("attention_backward", lambda: (*_att_b(4), 1, 1, 2, 2, 2, 2, 1, 5, 1.0), ValueError),
    (
        "attention_backward",
        lambda: (*_att_b(4), 1 << 40, 1 << 40, 2, 2, 2, 2, 0, 0, 1.0),
        ValueError,
    ),
    ("dlpack_export", lambda: (f32(4), (2, 2), (2, 2), 0), IndexError),
    ("dlpack_export", lambda: (np.zeros(4, np.float32), (4,), (1,), 0), TypeError),
    ("dlpack_import", lambda: (object(), None), TypeError),
    ("dlpack_import", lambda: (np.arange(4), False), BufferError),
    ("buffer_view", lambda: (f32(64), 1, 4), ValueError),  # not on a 64-byte boundary
    ("buffer_view", lambda: (f64(64), 4, 4), ValueError),  # 32 bytes in
    ("buffer_view", lambda: (f32(64), 16, 49), ValueError),  # one element past the end
    ("buffer_view", lambda: (f32(64), 80, 0), ValueError),  # starts past the end
    ("buffer_view", lambda: (f32(64), -16, 4), ValueError),
    ("buffer_view", lambda: (f32(64), 0, -1), ValueError),
    ("buffer_view", lambda: (f32(64), 2**62, 2**62), ValueError),  # no overflow
    ("buffer_view", lambda: (f32(64), 2**62 + 1, 1), ValueError),
    ("buffer_view", lambda: (np.zeros(64, np.float32), 0, 4), TypeError),
    ("buffer_view", lambda: (f32(64), 0.5, 4), TypeError),
    ("bernoulli_mt19937", lambda: (np.zeros(624, np.int64), 0, 0.5, f32(4), 4), TypeError),
    ("bernoulli_mt19937", lambda: (np.zeros(624, ">u4"), 0, 0.5, f32(4), 4), TypeError),
    ("bernoulli_mt19937", lambda: (list(range(624)), 0, 0.5, f32(4), 4), TypeError),
    ("bernoulli_mt19937", lambda: (_key(623), 0, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(1248).reshape(2, 624), 0, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(1248)[::2], 0, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(read_only=True), 0, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), 625, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), -1, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), 2**40, 0.5, f32(4), 4), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), 0.5, 0.5, f32(4), 4), TypeError),
    ("bernoulli_mt19937", lambda: (_key(), 0, "0.5", f32(4), 4), TypeError),
    ("bernoulli_mt19937", lambda: (_key(), 0, 0.5, f32(4), -1), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), 0, 0.5, f32(4), 5), ValueError),
    ("bernoulli_mt19937", lambda: (_key(), 0, 0.5, np.zeros(4, np.float32), 4), TypeError),
    ("set_num_threads", lambda: (0,), ValueError),
    ("set_simd_level", lambda: ("sse9",), ValueError),
]
for _ewise, _scalar in zip(kernels_in_family("ewise_binary"), kernels_in_family("scalar_binary")):
    CASES += [
        (_ewise.name, lambda: (f32(3), f32(4), f32(4)), ValueError),
        (_ewise.name, lambda: (f32(4), f64(4), f32(4)), TypeError),
        (_ewise.name, lambda: (f32(4), np.zeros(4, np.float32), f32(4)), TypeError),
        (_scalar.name, lambda: (f32(3), 1.0, f32(4)), ValueError),
        (_scalar.name, lambda: (f64(4), 1.0, f32(4)), TypeError),
        (_scalar.name, lambda: (f32(4), "1", f32(4)), TypeError),
    ]
for _unary in kernels_in_family("ewise_unary"):
    CASES += [
        (_unary.name, lambda: (f32(3), f32(4)), ValueError),
        (_unary.name, lambda: (f32(4), f64(4)), TypeError),
    ]


def test_every_kernel_of_the_contract_has_a_bad_input_case():
    covered = {kernel for kernel, _, _ in CASES}
    lacking = [k for k, spec in KERNELS.items() if spec.params and k not in covered]
    assert not lacking, f"kernels without a bad-input case: {lacking}"


@pytest.mark.parametrize(
    "spec,case",
    [(s, c) for s in KERNELS.values() for c in s.errors],
    ids=[f"{s.name}_{c.tag}" for s in KERNELS.values() for c in s.errors],
)
def test_contract_error_cases(core, spec, case):
    """The bad inputs the contract itself lists (KernelSpec.errors) for each kernel."""
    if not callable(getattr(core, spec.name, None)):
        pytest.skip(f"optional kernel {spec.name} is not in this build")
    other = "float64"
    with pytest.raises(case.exceptions, match=spec.name):
        getattr(core, spec.name)(*case.make_args(core, "float32", other))


@pytest.mark.parametrize(
    "kernel,args,exc", CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)]
)
def test_bad_input_raises(core, kernel, args, exc):
    with pytest.raises(exc, match=kernel):
        getattr(core, kernel)(*args())


def test_failed_kernel_leaves_output_unchanged(core):
    out = put(np.arange(12, dtype=np.float32))
    with pytest.raises(IndexError):
        core.ewise_setitem(put(np.ones(12, np.float32)), out, (3, 5), (4, 1), 0)
    np.testing.assert_array_equal(get(out), np.arange(12, dtype=np.float32))
    key = _key()
    with pytest.raises(ValueError):
        core.bernoulli_mt19937(key, 0, 0.5, out, 13)
    np.testing.assert_array_equal(get(out), np.arange(12, dtype=np.float32))
    np.testing.assert_array_equal(key, _key())


def test_foreign_handle_is_a_type_error(core):
    class Fake:
        size = 4
        dtype = "float32"

    with pytest.raises(TypeError, match="ewise_add"):
        core.ewise_add(Fake(), Fake(), f32(4))
