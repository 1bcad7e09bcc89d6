"""Reliability under threads: grad mode per thread, backend first use, side-by-side training."""

from __future__ import annotations

import threading
import time

import needle as ndl
import numpy as np
import pytest
from needle.autograd import is_grad_enabled
from needle.backends import (
    BackendInfo,
    BackendStatus,
    hookimpl,
    list_backends,
    register_plugin,
    unregister_plugin,
)


def test_overlapping_no_grad_blocks_in_two_threads_restore_grad_mode() -> None:
    # A enters, B enters, A leaves, B leaves: with one process-wide flag B restored the
    # False it saw when it entered, and grad mode stayed off for good.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with ndl.no_grad():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with ndl.no_grad():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert is_grad_enabled()
    x = ndl.Tensor([1.0, 2.0], device="numpy")
    assert (x * x).op is not None  # recording in this thread


def test_no_grad_in_another_thread_does_not_stop_recording_here() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with ndl.no_grad():
            assert not is_grad_enabled()
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    t.start()
    try:
        assert inside.wait(5)
        assert is_grad_enabled()
        x = ndl.Tensor([3.0], device="numpy")
        y = x * x
        assert y.requires_grad and y.op is not None
        y.backward()
        assert x.grad is not None and x.grad.numpy().tolist() == [6.0]
    finally:
        release.set()
        t.join(5)


def test_new_threads_start_with_grad_enabled() -> None:
    seen = []
    with ndl.no_grad():
        t = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        t.start()
        t.join(5)
    assert seen == [True]


class SlowLoadPlugin:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loads = 0

    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        return BackendInfo(name=self.name, version="1", contract_version=(1, 0))

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        time.sleep(0.05)
        return BackendStatus(True, "", 1)

    @hookimpl
    def needle_backend_load(self, index: int):
        self.loads += 1
        time.sleep(0.3)
        return ndl.device("numpy").kernels


def test_slow_backend_load_in_two_threads_is_loaded_once_and_stays_usable() -> None:
    plugin = SlowLoadPlugin("slowload")
    backend = register_plugin(plugin)
    assert backend is not None
    try:
        start = threading.Barrier(2)
        errors: list[BaseException] = []
        results: list[list[float]] = []

        def use() -> None:
            try:
                start.wait(5)
                x = ndl.Tensor([1.0, 2.0], device="slowload")
                results.append((x + x).numpy().tolist())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=use) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors, errors
        assert results == [[2.0, 4.0], [2.0, 4.0]]
        assert plugin.loads == 1
        assert backend.status().usable and ndl.device("slowload").enabled()
    finally:
        unregister_plugin("slowload")


def test_device_objects_are_unique_under_threads() -> None:
    seen: list[object] = []
    start = threading.Barrier(8)

    def get() -> None:
        start.wait(5)
        seen.append(ndl.device("numpy"))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len({id(d) for d in seen}) == 1


# --- two models trained side by side --------------------------------------------------
STEPS = 1000


def _make(seed: int, device: str):
    np.random.seed(seed)
    model = ndl.nn.Sequential(
        ndl.nn.Linear(4, 8, device=device),
        ndl.nn.ReLU(),
        ndl.nn.Linear(8, 3, device=device),
    )
    rng = np.random.default_rng(seed)
    x = ndl.Tensor(rng.standard_normal((6, 4)).astype("float32"), device=device)
    y = ndl.Tensor(rng.integers(0, 3, 6).astype("float32"), device=device)
    return model, x, y


def _train(model, x, y, steps: int, out: list) -> None:
    opt = ndl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = ndl.nn.SoftmaxLoss()
    losses = []
    for _ in range(steps):
        opt.reset_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        with ndl.no_grad():  # a no_grad block in the middle of the other thread's step
            losses.append(float(loss.numpy()))
    out.append((losses, [p.numpy() for p in model.parameters()]))


@pytest.mark.slow
@pytest.mark.parametrize("device", ["numpy", "cpp"])
def test_two_threads_train_two_models_bit_identical_to_one_thread(device: str) -> None:
    if device not in list_backends() or not ndl.device(device).enabled():
        pytest.skip(f"backend {device} is not usable here")
    reference = []
    for seed in (1, 2):
        model, x, y = _make(seed, device)
        _train(model, x, y, STEPS, reference)

    built = [_make(seed, device) for seed in (1, 2)]
    outs: list[list] = [[], []]
    threads = [threading.Thread(target=_train, args=(*built[i], STEPS, outs[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i in range(2):
        assert len(outs[i]) == 1, "the training thread raised"
        losses, params = outs[i][0]
        ref_losses, ref_params = reference[i]
        assert losses == ref_losses
        for p, q in zip(params, ref_params):
            assert np.array_equal(p, q)
    assert is_grad_enabled()
