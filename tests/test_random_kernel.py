"""Dropout masks drawn on the device (optional kernel ``bernoulli_mt19937``): the values of
``np.random.rand(*shape) <= p`` and NumPy's global generator left exactly where that call
leaves it, eager and replayed; the host draw where the kernel cannot be used."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import nn
from needle import random as nd_random
from needle.backend_ndarray import Device
from train_steps import softmax_step

KERNEL = "bernoulli_mt19937"

# ``dev``: each CPU backend's device (tests/conftest.py); both declare the kernel.


def _state() -> tuple[np.ndarray, int, int, float]:
    s = np.random.get_state(legacy=False)
    return s["state"]["key"].copy(), s["state"]["pos"], s["has_gauss"], s["gauss"]


def _assert_same_state(a: tuple, b: tuple) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each ``needle.random.bernoulli_into`` call returned (True: drawn by the kernel)."""
    calls: list[bool] = []
    real = nd_random.bernoulli_into

    def bernoulli_into(*args):
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(nd_random, "bernoulli_into", bernoulli_into)
    return calls


def _without_kernel(monkeypatch: pytest.MonkeyPatch, dev: Device) -> None:
    """Make ``dev`` look like a backend without the kernel."""
    monkeypatch.setattr(
        dev, "has_kernel", lambda name: name != KERNEL and Device.has_kernel(dev, name)
    )


def _lead(skip: int) -> None:
    """Seed, then move the stream by ``skip`` 32-bit words (np.random.bytes(4): one word)."""
    np.random.seed(11)
    for _ in range(skip):
        np.random.bytes(4)


# sizes around the 312 doubles one twist gives; starting positions 624 (twist first), 1,
# 623 (the first pair straddles a twist) and 300 words
SIZES = [(1,), (311,), (312,), (313,), (10, 100), (40, 1024)]
LEADS = [0, 1, 623, 300]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("shape", SIZES, ids=str)
def test_eager_randb_is_numpys_draw(dev, spy, shape, lead, dtype):
    _lead(lead)
    want = np.random.rand(*shape) <= 0.3
    after = _state()
    _lead(lead)
    got = ndl.init.randb(*shape, p=0.3, device=dev, dtype=dtype)
    assert spy == [True]  # drawn by the kernel
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got.numpy(), want.astype(dtype))
    _assert_same_state(_state(), after)


@pytest.mark.parametrize("p", [0.0, 1.0, float("nan"), np.float32(0.7)], ids=str)
def test_edge_probabilities_and_empty_shapes(dev, spy, p):
    for shape in [(), (0, 3), (7, 5)]:
        _lead(3)
        want = np.random.rand(*shape) <= p
        after = _state()
        _lead(3)
        got = ndl.init.randb(*shape, p=p, device=dev)
        np.testing.assert_array_equal(got.numpy(), np.asarray(want, dtype="float32"))
        _assert_same_state(_state(), after)
    assert spy == [True] * 3


def test_gaussian_cache_is_kept(dev):
    """randn caches its second normal (has_gauss); a draw on the device keeps it."""
    np.random.seed(2)
    want = (np.random.randn(3), np.random.rand(50) <= 0.5, np.random.randn(3))
    np.random.seed(2)
    first = np.random.randn(3)
    mask = ndl.init.randb(50, p=0.5, device=dev).numpy()
    np.testing.assert_array_equal(first, want[0])
    np.testing.assert_array_equal(mask, want[1])
    np.testing.assert_array_equal(np.random.randn(3), want[2])


def test_dropout_masks_equal_the_host_draw(dev, spy, monkeypatch):
    x = ndl.Tensor(np.ones((64, 50), dtype=np.float32), device=dev)
    np.random.seed(4)
    on_device = nn.Dropout(0.3)(x).numpy()
    after = _state()
    assert spy == [True]
    _without_kernel(monkeypatch, dev)
    np.random.seed(4)
    on_host = nn.Dropout(0.3)(x).numpy()
    assert spy == [True]  # not called: the device has no kernel
    np.testing.assert_array_equal(on_device, on_host)
    _assert_same_state(_state(), after)


def _dropout_train(dev, compiled: bool, steps: int = 8):
    np.random.seed(0)
    model = nn.Sequential(
        nn.Linear(20, 64, device=dev), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 5, device=dev)
    )
    opt = ndl.optim.SGD(model.parameters(), lr=0.1)
    step = softmax_step(model, opt)
    fn = ndl.compile(step, state=(model, opt)) if compiled else step
    rng = np.random.RandomState(1)
    losses = []
    for _ in range(steps):
        x = ndl.Tensor(rng.randn(16, 20).astype("float32"), device=dev, requires_grad=False)
        y = ndl.Tensor(rng.randint(0, 5, 16).astype("float32"), device=dev, requires_grad=False)
        losses.append(fn(x, y).numpy().copy())
    return [p.numpy() for p in model.parameters()], losses, _state(), fn


def test_replayed_draws_use_the_kernel_and_equal_the_host_draws(dev, spy, monkeypatch):
    eager = _dropout_train(dev, False)
    replay = _dropout_train(dev, True)
    assert replay[3].replays >= 5
    # eager steps and replays draw on the device; the capture draws on the host (its
    # observer records the draw), so one step fewer than all of them
    assert spy.count(True) == 2 * 8 - 1 and all(spy)
    _without_kernel(monkeypatch, dev)
    host = _dropout_train(dev, False)
    host_replay = _dropout_train(dev, True)
    assert spy.count(True) == 2 * 8 - 1  # no new device draws
    for run in (replay, host, host_replay):
        for a, b in zip(eager[0] + eager[1], run[0] + run[1]):
            np.testing.assert_array_equal(a, b)
        _assert_same_state(eager[2], run[2])


def test_copying_fallback_when_the_state_cannot_be_viewed(dev, spy, monkeypatch):
    """Where the generator's memory cannot be read in place the state is copied out and
    back (bit generator ``state``): the same values and state."""
    monkeypatch.setattr(nd_random, "_state_views", lambda bg: None)
    _lead(623)
    np.random.randn()  # a cached Gaussian, kept
    want = np.random.rand(1000) <= 0.4
    after = _state()
    _lead(623)
    np.random.randn()
    got = ndl.init.randb(1000, p=0.4, device=dev)
    assert spy == [True]
    np.testing.assert_array_equal(got.numpy(), want)
    _assert_same_state(_state(), after)


@pytest.mark.skipif(not hasattr(np.random, "set_bit_generator"), reason="NumPy < 1.25")
def test_other_bit_generator_draws_on_the_host(dev, spy):
    old = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.PCG64(5))
        want = np.random.rand(500) <= 0.3
        np.random.set_bit_generator(np.random.PCG64(5))
        got = ndl.init.randb(500, p=0.3, device=dev)
        np.testing.assert_array_equal(got.numpy(), want)
        assert spy == [False]
    finally:
        np.random.set_bit_generator(old)


def test_what_the_kernel_cannot_draw_is_drawn_on_the_host(dev, spy):
    """A p per element (broadcast) and shapes NumPy reads otherwise: the host draw."""
    np.random.seed(1)
    want = np.random.rand(2, 3) <= np.array([0.1, 0.5, 0.9])
    np.random.seed(1)
    got = ndl.init.randb(2, 3, p=np.array([0.1, 0.5, 0.9]), device=dev)
    np.testing.assert_array_equal(got.numpy(), want)
    assert spy == [False]
    with pytest.raises(ValueError):
        ndl.init.randb(-1, 3, device=dev)  # NumPy's error, as before
