"""matmul_t, reduce_*_mid, the direct convolution path, the buffer cache and programs."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from cpp_test_utils import get, put, rand, tol
from needle_cpp import _core

# (m, n, p): tiny (plain loop), packed with edge tiles, one row, n == 0
SHAPES = [(3, 4, 5), (37, 70, 53), (130, 257, 100), (1, 64, 80), (5, 0, 4)]


def _mtol(dtype: str) -> dict:
    """Sums of up to a few hundred products: float32 cancellation needs absolute room."""
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else tol(dtype)


def _stored(x: np.ndarray, trans: bool) -> np.ndarray:
    return np.ascontiguousarray(x.T) if trans else x


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ta", [0, 1])
@pytest.mark.parametrize("tb", [0, 1])
def test_matmul_t_matches_numpy_and_matmul_bitwise(simd, dtype, shape, ta, tb):
    m, n, p = shape
    rng = np.random.default_rng(m * 7 + n + p)
    a, b = rand((m, n), dtype, rng), rand((n, p), dtype, rng)
    out = _core.alloc(m * p, dtype)
    _core.matmul_t(put(_stored(a, ta)), put(_stored(b, tb)), out, m, n, p, ta, tb)
    got = get(out, (m, p))
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, **_mtol(dtype))
    ref = _core.alloc(m * p, dtype)  # the composed path: compact operands, then matmul
    _core.matmul(put(a), put(b), ref, m, n, p)
    assert np.array_equal(got, get(ref, (m, p)))


@pytest.mark.parametrize("ta", [0, 1])
@pytest.mark.parametrize("tb", [0, 1])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (3, 40, 70, 50)])
def test_batched_matmul_t(dtype, shape, ta, tb):
    batch, m, n, p = shape
    rng = np.random.default_rng(1)
    a, b = rand((batch, m, n), dtype, rng), rand((batch, n, p), dtype, rng)
    sa = np.ascontiguousarray(a.transpose(0, 2, 1)) if ta else a
    sb = np.ascontiguousarray(b.transpose(0, 2, 1)) if tb else b
    out = _core.alloc(batch * m * p, dtype)
    _core.batched_matmul_t(put(sa), put(sb), out, batch, m, n, p, ta, tb)
    got = get(out, (batch, m, p))
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, **_mtol(dtype))
    ref = _core.alloc(batch * m * p, dtype)
    _core.batched_matmul(put(a), put(b), ref, batch, m, n, p)
    assert np.array_equal(got, get(ref, (batch, m, p)))


def test_matmul_t_out_aliases_input():
    a = rand((6, 6), "float64")
    h = put(a)
    _core.matmul_t(h, h, h, 6, 6, 6, 1, 0)
    np.testing.assert_allclose(get(h, (6, 6)), a.T @ a, rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "exc", "text"),
    [
        ((4, 4, 4, 2, 0), ValueError, "trans_a"),
        ((4, 4, 4, 0, -1), ValueError, "trans_b"),
        ((5, 4, 4, 1, 0), ValueError, "a has 16"),
        ((-1, 4, 4, 0, 0), ValueError, "negative"),
        ((2**40, 2**40, 1, 0, 0), ValueError, "overflow"),
    ],
)
def test_matmul_t_errors(args, exc, text):
    h = put(np.ones(16, np.float32))
    with pytest.raises(exc, match=f"matmul_t.*{text}"):
        _core.matmul_t(h, put(np.ones(16, np.float32)), _core.alloc(16, "float32"), *args)


def test_matmul_t_dtype_mismatch():
    with pytest.raises(TypeError, match="matmul_t: dtype"):
        _core.matmul_t(
            _core.alloc(4, "float32"), _core.alloc(4, "float64"), _core.alloc(4, "float32"),
            2, 2, 2, 0, 0,
        )  # fmt: skip


# --- reduce_*_mid ----------------------------------------------------------------------
MID = [(1, 5, 3), (4, 7, 9), (3, 1, 4), (2, 3, 1), (1, 70000, 3), (2, 5, 10000), (0, 3, 2)]


@pytest.mark.parametrize("shape", MID)
def test_reduce_mid(dtype, shape):
    outer, red, inner = shape
    x = rand(shape, dtype, np.random.default_rng(red))
    out = _core.alloc(outer * inner, dtype)
    _core.reduce_sum_mid(put(x), out, outer, red, inner)
    np.testing.assert_allclose(
        get(out), x.astype(np.float64).sum(axis=1).reshape(-1), rtol=1e-5, atol=1e-4
    )
    _core.reduce_max_mid(put(x), out, outer, red, inner)
    assert np.array_equal(get(out), x.max(axis=1).reshape(-1))


def test_reduce_mid_nan_and_empty_reduce(dtype):
    x = rand((2, 4, 3), dtype)
    x[1, 2, 0] = np.nan
    out = _core.alloc(6, dtype)
    _core.reduce_max_mid(put(x), out, 2, 4, 3)
    np.testing.assert_array_equal(get(out), x.max(axis=1).reshape(-1))  # NaN propagates
    _core.reduce_sum_mid(_core.alloc(0, dtype), out, 2, 0, 3)
    assert np.array_equal(get(out), np.zeros(6, dtype))


def test_reduce_mid_result_independent_of_threads():
    x = rand((3, 50000, 4), "float32")
    outs = []
    for threads in (1, 2):
        old = _core.get_num_threads()
        _core.set_num_threads(threads)
        try:
            out = _core.alloc(12, "float32")
            _core.reduce_sum_mid(put(x), out, 3, 50000, 4)
            outs.append(get(out))
        finally:
            _core.set_num_threads(old)
    assert np.array_equal(outs[0], outs[1])


def test_reduce_mid_errors():
    a, out = _core.alloc(10, "float32"), _core.alloc(4, "float32")
    with pytest.raises(ValueError, match="reduce_sum_mid: a has 10"):
        _core.reduce_sum_mid(a, out, 2, 3, 2)
    with pytest.raises(ValueError, match="reduce_max_mid: reduce must be >= 1"):
        _core.reduce_max_mid(a, out, 2, 0, 2)
    with pytest.raises(ValueError, match="reduce_sum_mid: negative"):
        _core.reduce_sum_mid(a, out, -1, 3, 2)
    with pytest.raises(TypeError, match="reduce_sum_mid: dtype"):
        _core.reduce_sum_mid(a, _core.alloc(4, "float64"), 1, 2, 2)


# --- direct convolution ----------------------------------------------------------------
def _conv_ref(x, w, stride):
    n, h, w_, _ = x.shape
    k, _, _, c_out = w.shape
    ho, wo = (h - k) // stride + 1, (w_ - k) // stride + 1
    out = np.zeros((n, ho, wo, c_out))
    for kh in range(k):
        for kw in range(k):
            patch = x[
                :,
                kh : kh + stride * (ho - 1) + 1 : stride,
                kw : kw + stride * (wo - 1) + 1 : stride,
            ]
            out += patch.astype(np.float64) @ w[kh, kw]
    return out


@pytest.mark.parametrize(
    ("n", "h", "w_", "c_in", "k", "c_out", "stride"),
    [
        (2, 6, 6, 3, 3, 5, 1),
        (3, 10, 10, 16, 3, 24, 1),
        (2, 9, 7, 5, 3, 7, 2),
        (1, 5, 5, 40, 5, 33, 1),
        (2, 8, 8, 4, 2, 3, 3),
        (4, 6, 6, 64, 3, 64, 1),
        (2, 5, 5, 8, 1, 4, 2),
    ],
)
def test_conv_direct_matches_im2col_bitwise(simd, dtype, n, h, w_, c_in, k, c_out, stride):
    rng = np.random.default_rng(c_in)
    x, w = rand((n, h, w_, c_in), dtype, rng), rand((k, k, c_in, c_out), dtype, rng)
    ho, wo = (h - k) // stride + 1, (w_ - k) // stride + 1
    results = []
    old = _core.conv_direct_max_pixels()
    try:
        for limit in (0, 1 << 30):  # im2col, then direct
            _core.set_conv_direct_max_pixels(limit)
            out = _core.alloc(n * ho * wo * c_out, dtype)
            _core.conv2d_nhwc(put(x), put(w), out, n, h, w_, c_in, k, c_out, stride)
            results.append(get(out, (n, ho, wo, c_out)))
    finally:
        _core.set_conv_direct_max_pixels(old)
    np.testing.assert_allclose(results[1], _conv_ref(x, w, stride), rtol=1e-4, atol=1e-4)
    assert np.array_equal(results[0], results[1])


def test_conv_direct_threshold_control():
    with pytest.raises(ValueError, match="set_conv_direct_max_pixels"):
        _core.set_conv_direct_max_pixels(-1)
    assert _core.conv_direct_max_pixels() >= 0


# --- buffer cache ----------------------------------------------------------------------
def test_cache_reuses_freed_buffers():
    _core.empty_cache()
    h = _core.alloc(1 << 20, "float32")
    ptr = h.ptr
    del h
    gc.collect()
    info = _core.cache_info()
    assert info["cached_buffers"] >= 1 and info["cached_bytes"] >= 4 << 20
    hits = info["hits"]
    h2 = _core.alloc((1 << 20) - 5, "float32")  # same size class
    assert h2.ptr == ptr and _core.cache_info()["hits"] == hits + 1
    del h2
    _core.empty_cache()
    assert _core.cache_info()["cached_bytes"] == 0


def test_cache_limit():
    old = _core.cache_info()["limit_bytes"] >> 20
    try:
        _core.set_cache_limit_mb(0)
        h = _core.alloc(1000, "float64")
        del h
        assert _core.cache_info()["cached_bytes"] == 0
        with pytest.raises(ValueError, match="set_cache_limit_mb"):
            _core.set_cache_limit_mb(-1)
    finally:
        _core.set_cache_limit_mb(old)


# --- programs --------------------------------------------------------------------------
def _random_program(rng, dtype, bufs):
    """A list of kernel calls over buffers of 24 elements (and a 4x6 view layout)."""
    ins = []
    names = [k for k in bufs if k.startswith("b")]
    for _ in range(60):
        kind = rng.integers(0, 9)
        a, b, c = (bufs[names[i]] for i in rng.integers(0, len(names), 3))
        if kind == 0:
            ins.append(
                (
                    str(rng.choice(["ewise_add", "ewise_mul", "ewise_sub", "ewise_maximum"])),
                    (a, b, c),
                )
            )
        elif kind == 1:
            ins.append(
                (
                    str(rng.choice(["scalar_mul", "scalar_add", "scalar_ge"])),
                    (a, float(rng.normal()), c),
                )
            )
        elif kind == 2:
            ins.append((str(rng.choice(["ewise_tanh", "ewise_abs", "ewise_exp"])), (a, c)))
        elif kind == 3:
            ins.append(("matmul", (a, b, c, 4, 6, 4)))  # reads 24 of a, 24 of b, writes 16
        elif kind == 4:
            ins.append(
                ("matmul_t", (a, b, c, 4, 6, 4, int(rng.integers(0, 2)), int(rng.integers(0, 2))))
            )
        elif kind == 5:
            ins.append(("compact", (a, c, (6, 4), (1, 6), 0)))
        elif kind == 6:
            ins.append(("reduce_sum_mid", (a, c, 2, 3, 4)))
        elif kind == 7:
            small = bufs[f"s{rng.integers(0, 2)}"]  # 12 rows of 2
            ins.append((str(rng.choice(["reduce_sum", "reduce_max"])), (a, small, 2)))
        else:
            ins.append(("scalar_mul", (a, 0.5, c)))  # keep values bounded
    return ins


@pytest.mark.parametrize("seed", range(4))
def test_program_is_bit_identical_to_a_python_loop(dtype, seed):
    rng = np.random.default_rng(seed)
    init = {f"b{i}": rng.standard_normal(24).astype(dtype) for i in range(5)}
    init.update({f"s{i}": np.zeros(12, dtype) for i in range(2)})
    loop_bufs = {k: put(v) for k, v in init.items()}
    prog_bufs = {k: put(v) for k, v in init.items()}
    instrs = _random_program(np.random.default_rng(seed + 100), dtype, loop_bufs)
    by_id = {id(h): k for k, h in loop_bufs.items()}
    remapped = [
        (name, tuple(prog_bufs[by_id[id(x)]] if id(x) in by_id else x for x in args))
        for name, args in instrs
    ]
    for name, args in instrs:
        getattr(_core, name)(*args)
    prog = _core.program_compile(remapped)
    assert len(prog) == len(instrs) and prog.python_calls == 0
    _core.program_run(prog)
    for k in init:
        assert np.array_equal(get(loop_bufs[k]), get(prog_bufs[k]), equal_nan=True), k


def test_program_set_scalars_changes_floats_between_runs():
    a = put(np.arange(4, dtype=np.float32))
    out = _core.alloc(4, "float32")
    prog = _core.program_compile([("scalar_mul", (a, 2.0, out)), ("scalar_add", (out, 0.5, out))])
    _core.program_run(prog)
    np.testing.assert_array_equal(get(out), np.arange(4) * 2.0 + 0.5)
    _core.program_set_scalars(prog, [(0, 1), (1, 1)], [3.0, -1.0])
    _core.program_run(prog)
    np.testing.assert_array_equal(get(out), np.arange(4) * 3.0 - 1.0)
    # a bad slot among good ones changes nothing
    with pytest.raises(ValueError, match="program_set_scalars"):
        _core.program_set_scalars(prog, [(0, 1), (1, 0)], [5.0, 5.0])
    _core.program_run(prog)
    np.testing.assert_array_equal(get(out), np.arange(4) * 3.0 - 1.0)


def test_program_set_scalars_reaches_python_run_kernels(monkeypatch):
    calls = []

    def extra_kernel(buf, value):
        calls.append(value)

    monkeypatch.setattr(_core, "extra_kernel", extra_kernel, raising=False)
    a = put(np.zeros(2, dtype=np.float32))
    prog = _core.program_compile([("extra_kernel", (a, 4.0)), ("scalar_add", (a, 1.0, a))])
    _core.program_set_scalars(prog, [(0, 1)], [7.5])
    _core.program_run(prog)
    assert calls == [7.5]


def test_program_keeps_buffers_alive_and_reruns():
    a = put(np.arange(4, dtype=np.float32))
    prog = _core.program_compile([("scalar_add", (a, 1.0, a))])
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is not None  # a is still referenced by the program
    _core.program_run(prog)
    _core.program_run(prog)
    np.testing.assert_array_equal(get(ref()), np.arange(4, dtype=np.float32) + 2)


@pytest.mark.parametrize(
    ("instr", "text"),
    [
        (("nope", ()), "instruction 1 \\(nope\\): not a kernel"),
        (("alloc", (3, "float32")), "instruction 1 \\(alloc\\): not a kernel"),
        (("ewise_add", (None,)), "instruction 1 \\(ewise_add\\): takes 3 arguments, got 1"),
        (
            ("scalar_add", ("x", 1.0, "y")),
            "instruction 1 \\(scalar_add\\): argument 0 must be a cpp buffer",
        ),
        (
            ("reduce_sum", ("A", "S", 2.5)),
            "instruction 1 \\(reduce_sum\\): argument 2 must be an int",
        ),
        (("matmul", ("A", "B", "S", 4, 4, 4)), "instruction 1 \\(matmul\\): matmul: out has 4"),
        (("compact", ("A", "S", (4, 4), (4, 1), 3)), "instruction 1 \\(compact\\): compact: view"),
        (("matmul_t", ("A", "B", "A", 4, 4, 4, 2, 0)), "instruction 1 \\(matmul_t\\): .*trans_a"),
        (("ewise_add", ("A", "D", "A")), "instruction 1 \\(ewise_add\\): .*dtype"),
        ("ewise_add", "instruction 1 \\(\\?\\): expected a \\(kernel_name, args\\) pair"),
    ],
)
def test_program_compile_rejects_bad_instructions(instr, text):
    bufs = {"A": put(np.ones(16, np.float32)), "B": put(np.ones(16, np.float32)),
            "S": _core.alloc(4, "float32"), "D": _core.alloc(16, "float64")}  # fmt: skip
    if isinstance(instr, tuple):
        name, args = instr
        instr = (name, tuple(bufs.get(x, x) if isinstance(x, str) else x for x in args))
    good = ("fill", (bufs["A"], 1.0))
    with pytest.raises(ValueError, match=text):
        _core.program_compile([good, instr])


def test_program_run_reports_the_failing_instruction():
    # ids are data: valid when compiled, out of range when run; the kernel's own run-time
    # check fires, named with the instruction's index, and the instructions before it ran
    w, ids, out = put(np.ones((3, 2), np.float32)), put(np.zeros(2, np.float32)), f32_buf(4)
    a = put(np.ones(4, np.float32))
    prog = _core.program_compile(
        [("fill", (a, 2.0)), ("take_rows", (w, ids, out, 2, 3, 2)), ("fill", (a, 5.0))]
    )
    _core.from_numpy(np.array([0.0, 7.0], np.float32), ids)
    with pytest.raises(IndexError, match=r"program_run: instruction 1 \(take_rows\)"):
        _core.program_run(prog)
    assert np.array_equal(get(a), np.full(4, 2.0, np.float32))


def f32_buf(n):
    return _core.alloc(n, "float32")


def test_program_accepts_numpy_scalars_like_the_kernels_do():
    a = put(np.arange(6, dtype=np.float32))
    out = _core.alloc(2, "float32")
    prog = _core.program_compile(
        [("scalar_mul", (a, np.float32(2.0), a)), ("reduce_sum", (a, out, np.int64(3)))]
    )
    _core.program_run(prog)
    assert np.array_equal(get(out), np.array([6.0, 24.0], np.float32))
    with pytest.raises(ValueError, match="argument 2 must be an int"):
        _core.program_compile([("reduce_sum", (a, out, True))])


def test_program_runs_kernels_outside_its_table_through_python(monkeypatch):
    seen = []

    def extra_kernel(h, value):  # stands in for a kernel bound later without a table entry
        seen.append(value)
        _core.fill(h, value)

    monkeypatch.setattr(_core, "extra_kernel", extra_kernel, raising=False)
    a = _core.alloc(3, "float64")
    prog = _core.program_compile([("extra_kernel", (a, 4.0)), ("scalar_add", (a, 1.0, a))])
    assert prog.python_calls == 1
    _core.program_run(prog)
    assert seen == [4.0] and np.array_equal(get(a), np.full(3, 5.0))
