"""State is all or nothing: load_state_dict, optimizers, BatchNorm, backward(out_grad)."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import nn, optim
from needle.backends import BackendInfo, BackendStatus, hookimpl, register_plugin, unregister_plugin

DEV = "numpy"


def _model() -> nn.Module:
    np.random.seed(0)
    return nn.Sequential(nn.Linear(3, 4, device=DEV), nn.ReLU(), nn.Linear(4, 2, device=DEV))


def _snapshot(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def test_load_state_dict_assigns_nothing_when_a_later_key_has_the_wrong_shape() -> None:
    model = _model()
    before = _snapshot(model)
    state = {k: np.full(v.shape, 7.0, np.float32) for k, v in before.items()}
    last = sorted(state)[-1]
    state[last] = np.zeros((9, 9), np.float32)  # the last key does not fit
    with pytest.raises(ValueError, match=f"shape mismatch for key '{last}'"):
        model.load_state_dict(state)
    after = _snapshot(model)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_load_state_dict_refuses_non_numeric_values_before_assigning() -> None:
    model = _model()
    before = _snapshot(model)
    state = {k: np.full(v.shape, 7.0, np.float32) for k, v in before.items()}
    last = sorted(state)[-1]
    state[last] = np.full(before[last].shape, "x")
    with pytest.raises(TypeError, match=f"key '{last}' holds <U1 values"):
        model.load_state_dict(state)
    for k, v in _snapshot(model).items():
        np.testing.assert_array_equal(v, before[k])


def _trained_adam(model: nn.Module) -> optim.Adam:
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = ndl.Tensor(np.ones((2, 3), np.float32), device=DEV)
    model(x).sum().backward()
    opt.step()
    return opt


def test_optimizer_load_state_dict_is_all_or_nothing() -> None:
    model = _model()
    opt = _trained_adam(model)
    state = opt.state_dict()
    before = {k: (v.numpy().copy() if isinstance(v, ndl.Tensor) else v) for k, v in state.items()}
    bad = dict(state)
    bad["lr"] = 0.5
    bad["t"] = 99
    slot_keys = [k for k in state if k not in ("lr", "t")]
    for k in slot_keys:
        bad[k] = np.full(state[k].shape, 3.0, np.float32)
    bad[sorted(slot_keys)[-1]] = np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match="shape mismatch"):
        opt.load_state_dict(bad)
    assert opt.lr == 0.01 and opt.t == 1
    for k, v in opt.state_dict().items():
        if isinstance(v, ndl.Tensor):
            np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)

    bad = dict(state, lr="fast")
    with pytest.raises(TypeError, match="key 'lr' must be a number"):
        opt.load_state_dict(bad)
    assert opt.lr == 0.01


def test_batchnorm_refuses_an_empty_batch_in_training_mode() -> None:
    bn = nn.BatchNorm1d(3, device=DEV)
    with pytest.raises(ValueError, match=r"empty batch|at least one row"):
        bn(ndl.Tensor(np.zeros((0, 3), np.float32), device=DEV))
    assert np.all(np.isfinite(bn.running_mean.numpy()))
    assert np.all(np.isfinite(bn.running_var.numpy()))
    bn2 = nn.BatchNorm2d(3, device=DEV)
    with pytest.raises(ValueError, match=r"empty batch|at least one row"):
        bn2(ndl.Tensor(np.zeros((0, 3, 2, 2), np.float32), device=DEV))
    assert np.all(np.isfinite(bn2.running_mean.numpy()))


class _Other:
    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        return BackendInfo(name="otherdev", version="1", contract_version=(1, 0))

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        return BackendStatus(True, "", 1)

    @hookimpl
    def needle_backend_load(self, index: int):
        return ndl.device("numpy").kernels


def test_backward_checks_out_grad_device_and_dtype() -> None:
    x = ndl.Tensor([1.0, 2.0], device=DEV)
    y = x * x
    with pytest.raises(TypeError, match="backward: out_grad dtype float64 != tensor dtype float32"):
        y.backward(ndl.Tensor([1.0, 1.0], device=DEV, dtype="float64"))
    register_plugin(_Other())
    try:
        with pytest.raises(ValueError, match="out_grad is on otherdev, the tensor on numpy"):
            y.backward(ndl.Tensor([1.0, 1.0], device="otherdev"))
    finally:
        unregister_plugin("otherdev")
    assert x.grad is None  # nothing was accumulated by the refused calls
    y.backward(ndl.Tensor([1.0, 1.0], device=DEV))
    assert x.grad.numpy().tolist() == [2.0, 4.0]
