"""Memory planning of replayed steps: ``buffer_view`` and the arena of ``Program.plan``.

Buffers live at the same instruction never share memory (checked on the planned programs
of the model zoo's training steps, instruction by instruction and lifetime by lifetime),
the arena stays close to the most bytes live at once, and replays through the arena give
the same bits as replays through the exact-size pool.
"""

from __future__ import annotations

import gc
import itertools

import needle as ndl
import numpy as np
import pytest
from needle import nn
from needle.backend_ndarray import capture
from needle.backend_ndarray.capture import arena_offsets, handles_of
from train_steps import softmax_step

# ``dev``: each CPU backend's device (tests/conftest.py)


# --- the offset planner ----------------------------------------------------------------
def _check_blocks(blocks, offsets, total, align=64):
    for (_, _, nbytes), off in zip(blocks, offsets):
        assert off % align == 0
        assert nbytes == 0 or off + nbytes <= total
    for (a, oa), (b, ob) in itertools.combinations(zip(blocks, offsets), 2):
        if a[2] == 0 or b[2] == 0 or a[1] < b[0] or b[1] < a[0]:
            continue  # empty, or never live together
        assert oa + a[2] <= ob or ob + b[2] <= oa, f"{a} at {oa} overlaps {b} at {ob}"


def _live_peak(blocks, align=1):
    end = max((last for _, last, _ in blocks), default=0)
    return max(
        (
            sum(-(-n // align) * align for f, last, n in blocks if f <= i <= last)
            for i in range(end + 1)
        ),
        default=0,
    )


def test_arena_offsets_small_cases():
    assert arena_offsets([]) == ([], 0)
    # a chain: each block dies where the next is born, so neighbours are live together
    chain = [(0, 1, 100), (1, 2, 100), (2, 3, 100), (3, 4, 100)]
    offsets, total = arena_offsets(chain)
    _check_blocks(chain, offsets, total)
    assert total == 2 * 128  # two blocks of 100 bytes (rounded to 128) alternate
    # disjoint lifetimes share the same bytes; empty blocks take no room
    offsets, total = arena_offsets([(0, 0, 64), (1, 1, 64), (0, 5, 0)])
    assert offsets == [0, 0, 0] and total == 64


@pytest.mark.parametrize("seed", range(8))
def test_arena_offsets_random_lifetimes_never_overlap(seed):
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(120):
        first = int(rng.integers(0, 200))
        last = first + int(rng.integers(0, 40 if rng.random() < 0.9 else 200))
        blocks.append((first, last, int(rng.integers(0, 5000))))
    offsets, total = arena_offsets(blocks)
    _check_blocks(blocks, offsets, total)
    peak = _live_peak(blocks, 64)
    assert peak <= total <= 2 * peak  # a loose bound: greedy is not optimal on noise


# --- the buffer_view kernel -----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_buffer_view_shares_memory_and_keeps_its_parent_alive(dev, dtype):
    k = dev.kernels
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")
    item = np.dtype(dtype).itemsize
    step = 64 // item  # elements per 64 bytes
    parent = k.alloc(4 * step, dtype)
    k.from_numpy(np.arange(4 * step, dtype=dtype), parent)
    view = k.buffer_view(parent, step, 2 * step)
    assert view.size == 2 * step and view.dtype == dtype
    assert int(view.ptr) == int(parent.ptr) + 64
    np.testing.assert_array_equal(
        k.to_numpy(view, (2 * step,), (1,), 0), np.arange(step, 3 * step, dtype=dtype)
    )
    k.fill(view, -1.0)  # a write through the view is seen by the parent, only there
    want = np.arange(4 * step, dtype=dtype)
    want[step : 3 * step] = -1
    np.testing.assert_array_equal(k.to_numpy(parent, (4 * step,), (1,), 0), want)
    inner = k.buffer_view(view, step, 0)  # a view of a view; empty is fine
    assert inner.size == 0
    last = k.buffer_view(view, step, step)
    del parent, view
    gc.collect()
    k.scalar_add(last, 1.0, last)  # the memory is still there
    np.testing.assert_array_equal(k.to_numpy(last, (step,), (1,), 0), np.zeros(step, dtype))


def test_buffer_view_refuses_bad_offsets(dev):
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")
    k = dev.kernels
    a = k.alloc(64, "float32")
    for offset, size in [(1, 4), (8, 4), (16, 49), (80, 0), (-16, 1), (0, -1)]:
        with pytest.raises(ValueError, match="buffer_view"):
            k.buffer_view(a, offset, size)
    with pytest.raises(TypeError, match="buffer_view"):
        k.buffer_view(np.zeros(64, np.float32), 0, 4)


def test_overlapping_views_in_one_call_stay_inside_their_buffers(dev):
    """The contract leaves the values unspecified when one call gets distinct handles over
    overlapping memory (the planner never does that); the kernels still write only inside
    their buffers."""
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")
    k = dev.kernels
    parent = k.alloc(96, "float32")
    k.from_numpy(np.arange(96, dtype="float32"), parent)
    a, out = k.buffer_view(parent, 16, 32), k.buffer_view(parent, 32, 32)  # 16 shared
    k.ewise_add(a, a, out)
    k.matmul(a, a, out, 4, 8, 4)
    k.compact(a, out, (4, 8), (1, 4), 0)
    got = k.to_numpy(parent, (96,), (1,), 0)
    np.testing.assert_array_equal(got[:16], np.arange(16, dtype="float32"))
    np.testing.assert_array_equal(got[64:], np.arange(64, 96, dtype="float32"))


def test_a_step_that_makes_views_refuses_to_compile(dev):
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")
    x = ndl.Tensor(np.ones(16, "float32"), device=dev)

    def step(x):
        out = x * 2.0
        dev.buffer_view(out.realize_cached_data()._handle, 0, 16)
        return out

    fn = ndl.compile(step)
    fn(x)  # eager warm-up
    with pytest.raises(capture.CaptureError, match="buffer view"):
        fn(x)


def test_views_are_buffers_of_compiled_programs(dev):
    if not (dev.has_kernel("buffer_view") and dev.has_kernel("program_compile")):
        pytest.skip("no buffer_view or no programs")
    k = dev.kernels
    arena = k.alloc(48, "float32")
    a, b, out = (k.buffer_view(arena, 16 * i, 16) for i in range(3))
    k.from_numpy(np.arange(16, dtype="float32"), a)
    prog = k.program_compile([("scalar_mul", (a, 2.0, b)), ("ewise_add", (a, b, out))])
    k.program_run(prog)
    np.testing.assert_array_equal(
        k.to_numpy(arena, (3, 16), (16, 1), 0),
        np.stack([np.arange(16), 2 * np.arange(16), 3 * np.arange(16)]).astype("float32"),
    )


# --- planned training steps --------------------------------------------------------------


def _capture(kind, dev):
    """A replayed training step of a model-zoo model (captured, then replayed twice)."""
    np.random.seed(0)
    if kind == "mlp":
        model = ndl.models.MLP(20, (32, 32), 5, device=dev)
        x = ndl.Tensor(np.random.randn(16, 20).astype("float32"), device=dev)
        y = ndl.Tensor(np.random.randint(0, 5, 16).astype("float32"), device=dev)
    elif kind == "resnet9":
        model = ndl.models.ResNet9(10, device=dev)
        x = ndl.Tensor(np.random.randn(2, 3, 32, 32).astype("float32"), device=dev)
        y = ndl.Tensor(np.random.randint(0, 10, 2).astype("float32"), device=dev)
    elif kind == "lstm":
        model = ndl.models.LanguageModel(8, 50, 12, 2, "lstm", device=dev)
    else:
        model = ndl.models.TransformerLM(
            50, embedding_size=8, hidden_size=16, num_layers=2, seq_len=6,
            num_head=2, dim_head=4, dropout=0.3, device=dev,
        )  # fmt: skip
    if kind in ("lstm", "transformer"):
        ids = np.random.randint(0, 50, (7, 4)).astype("float32")
        x = ndl.Tensor(ids[:-1], device=dev)
        y = ndl.Tensor(ids[1:].reshape(-1), device=dev)
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
    fn = ndl.compile(softmax_step(model, opt), state=(model, opt))
    for _ in range(4):
        fn(x, y)
    assert fn.captures == 1 and fn.replays == 2
    return next(iter(fn._cache.values())).program


def _span(h):
    start = int(h.ptr)
    return start, start + h.size * np.dtype(h.dtype).itemsize


@pytest.mark.parametrize("kind", ["mlp", "resnet9", "lstm", "transformer"])
def test_planned_buffers_live_together_never_overlap(dev, kind):
    program = _capture(kind, dev)
    if dev.has_kernel("buffer_view"):
        assert program.pool_bytes < sum(_span(h)[1] - _span(h)[0] for _, _, h in program.lifetimes)
    # every instruction: distinct handles, disjoint memory
    for i, ins in enumerate(program.instrs):
        hs = {id(h): h for h in handles_of(ins.args) if h.size}
        for a, b in itertools.combinations(hs.values(), 2):
            (sa, ea), (sb, eb) = _span(a), _span(b)
            assert ea <= sb or eb <= sa, f"instruction {i} ({ins.name}): {a} overlaps {b}"
    # every pair of temporaries live at one instruction: disjoint memory
    spans = sorted(
        ((f, last, *_span(h)) for f, last, h in program.lifetimes if h.size), key=lambda s: s[0]
    )
    for j, (f, last, s, e) in enumerate(spans):
        for f2, _, s2, e2 in spans[j + 1 :]:
            if f2 > last:
                break
            assert e <= s2 or e2 <= s, f"lifetimes [{f}, {last}] and [{f2}, ...] share memory"


@pytest.mark.parametrize("kind", ["mlp", "resnet9", "lstm", "transformer"])
def test_arena_is_close_to_the_live_peak(dev, kind):
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view: the exact-size pool")
    program = _capture(kind, dev)
    slack = 64 * len(program.lifetimes)  # each buffer rounded up to 64 bytes at most
    assert program.live_peak_bytes <= program.pool_bytes
    assert program.pool_bytes <= 1.1 * program.live_peak_bytes + slack


def test_arena_and_pool_replays_are_bit_identical(dev, monkeypatch):
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view: the exact-size pool only")
    results = []
    for arena in (True, False):
        monkeypatch.setattr(capture, "PLAN_ARENA", arena)
        np.random.seed(0)
        model = ndl.models.ResNet9(10, device=dev)
        opt = ndl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fn = ndl.compile(softmax_step(model, opt), state=(model, opt))
        rng = np.random.RandomState(1)
        losses = []
        for _ in range(6):
            x = ndl.Tensor(rng.randn(2, 3, 32, 32).astype("float32"), device=dev)
            y = ndl.Tensor(rng.randint(0, 10, 2).astype("float32"), device=dev)
            losses.append(fn(x, y).numpy())
        program = next(iter(fn._cache.values())).program
        results.append((losses, [p.numpy() for p in model.parameters()], program.pool_bytes))
    (la, pa, bytes_arena), (lp, pp, bytes_pool) = results
    np.testing.assert_array_equal(np.array(la), np.array(lp))
    for a, b in zip(pa, pp):
        np.testing.assert_array_equal(a, b)
    assert bytes_arena < bytes_pool


def test_state_copies_move_up_and_free_their_buffers_early(dev, monkeypatch):
    """The copies of new optimizer state into the old buffers run right after the new
    values are made, not all at the end, so fewer new buffers are live at once."""

    def live_peak():
        np.random.seed(0)
        model = ndl.models.MLP(20, (64,), 5, device=dev)
        opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
        x = ndl.Tensor(np.random.randn(4, 20).astype("float32"), device=dev)
        y = ndl.Tensor(np.random.randint(0, 5, 4).astype("float32"), device=dev)
        fn = ndl.compile(softmax_step(model, opt), state=(model, opt))
        for _ in range(3):
            fn(x, y)
        program = next(iter(fn._cache.values())).program
        names = [ins.name for ins in program.instrs if ins.kind == "kernel"]
        return program.live_peak_bytes, names

    # the copies stay (the next test takes them out), so that their place can be compared
    monkeypatch.setattr(capture.Program, "_elide_copies", lambda self, start: None)
    hoisted, names = live_peak()
    monkeypatch.setattr(capture.Program, "_hoist", lambda self, start: None)
    at_end, names_at_end = live_peak()
    assert sorted(names) == sorted(names_at_end) and names != names_at_end
    assert hoisted < at_end


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_state_is_updated_in_place_without_copies(dev, optimizer, monkeypatch):
    """The new parameters and optimizer state are computed straight into their buffers:
    the program holds no copies of new state into old buffers, needs fewer bytes than
    with them, keeps each parameter in the buffer it had, and replays the same bits."""

    def run():
        np.random.seed(0)
        model = ndl.models.MLP(20, (64,), 5, device=dev)
        params = model.parameters()
        if optimizer == "adam":
            opt = ndl.optim.Adam(params, lr=1e-3)
        else:
            opt = ndl.optim.SGD(params, lr=0.1, momentum=0.9 if optimizer == "momentum" else 0.0)
        rng = np.random.RandomState(1)
        fn = ndl.compile(softmax_step(model, opt), state=(model, opt))
        losses, buffers = [], []
        for _ in range(5):
            x = ndl.Tensor(rng.randn(4, 20).astype("float32"), device=dev)
            y = ndl.Tensor(rng.randint(0, 5, 4).astype("float32"), device=dev)
            losses.append(fn(x, y).numpy())
            buffers.append([p.cached_data._handle for p in params])
        program = next(iter(fn._cache.values())).program
        names = [ins.name for ins in program.instrs if ins.kind == "kernel"]
        return losses, [p.numpy() for p in params], buffers, names, program.live_peak_bytes

    losses, weights, buffers, names, peak = run()
    monkeypatch.setattr(capture.Program, "_elide_copies", lambda self, start: None)
    losses_c, weights_c, _, names_c, peak_c = run()
    assert "ewise_setitem" not in names
    assert names_c.count("ewise_setitem") >= 4  # one per parameter at least
    assert peak < peak_c
    np.testing.assert_array_equal(np.array(losses), np.array(losses_c))
    for a, b in zip(weights, weights_c):
        np.testing.assert_array_equal(a, b)
    for later in buffers[2:]:  # replays (after the warm-up and the capture)
        assert all(h is h0 for h, h0 in zip(later, buffers[1]))


def test_a_copy_stays_when_the_old_state_is_read_after_the_new_one_is_made(dev):
    """A step that reads a parameter's old value after computing its new one: computing
    the new value in place would change what that read sees, so the copy is kept."""

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(ndl.Tensor(np.arange(6, dtype="float32"), device=dev))

    model = One()

    def step(x):
        new = model.w.data - x  # made first ...
        old_total = (model.w.data * 2.0).sum()  # ... the old value read after
        model.w.data = new
        return old_total

    fn = ndl.compile(step, state=(model,))
    x = ndl.Tensor(np.ones(6, dtype="float32"), device=dev)
    totals = [float(fn(x).numpy()) for _ in range(4)]
    assert fn.replays == 2
    # w starts at 0..5 (sum 15) and loses 1 per element (6 in all) every step
    assert totals == [2.0 * (15 - 6 * k) for k in range(4)]
    program = next(iter(fn._cache.values())).program
    assert "ewise_setitem" in [ins.name for ins in program.instrs]


@pytest.mark.parametrize("arena", [True, False])
def test_state_moved_to_planned_buffers_holds_its_values_after_the_capture(dev, arena, monkeypatch):
    """Gradients (state the step replaces without reading) point at planned buffers after
    the capture; they hold the capture step's values at once, not only after a replay."""
    if arena and not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")

    def grads(compiled, calls):
        np.random.seed(0)
        model = ndl.models.MLP(20, (32,), 5, device=dev)
        opt = ndl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = ndl.Tensor(np.random.randn(8, 20).astype("float32"), device=dev)
        y = ndl.Tensor(np.random.randint(0, 5, 8).astype("float32"), device=dev)
        step = softmax_step(model, opt)
        fn = ndl.compile(step, state=(model, opt)) if compiled else step
        for _ in range(calls):
            fn(x, y)
        return [p.grad.numpy() for p in model.parameters()]

    monkeypatch.setattr(capture, "PLAN_ARENA", arena)
    for calls in (2, 3):  # warm-up and capture; then a replay
        for a, b in zip(grads(False, calls), grads(True, calls)):
            np.testing.assert_array_equal(a, b, err_msg=f"after {calls} calls")


def test_two_dtypes_get_one_arena_each(dev):
    if not dev.has_kernel("buffer_view"):
        pytest.skip("no buffer_view")
    rng = np.random.RandomState(0)

    def step(a, b):
        return ((a * 2.0 + 1.0) * a).sum(), ((b * 3.0 - 1.0) * b).sum()

    fn = ndl.compile(step)
    for _ in range(4):
        a_np, b_np = rng.randn(40).astype("float32"), rng.randn(40).astype("float64")
        a, b = ndl.Tensor(a_np, device=dev), ndl.Tensor(b_np, device=dev, dtype="float64")
        got = fn(a, b)
        want = step(a, b)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g.numpy(), w.numpy())
    program = next(iter(fn._cache.values())).program
    assert fn.replays == 2
    assert {h.dtype for _, _, h in program.lifetimes} == {"float32", "float64"}
    bases = {}
    for _, _, h in program.lifetimes:
        bases.setdefault(h.dtype, []).append(_span(h))
    for spans in bases.values():  # each dtype's buffers lie in one arena of its own
        lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
        assert hi - lo <= program.pool_bytes
