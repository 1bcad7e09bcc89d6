"""SGD, Adam, clipping and schedules against hand-written NumPy updates."""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
import pytest
from needle import nn, optim


def _param(a: np.ndarray, grad: np.ndarray) -> nn.Parameter:
    p = nn.Parameter(ndl.Tensor(a.astype(np.float32)))
    p.grad = ndl.Tensor(grad.astype(np.float32), requires_grad=False)
    return p


def test_sgd_momentum_weight_decay_formula(rng: np.random.Generator) -> None:
    w = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(3)]
    p = _param(w, grads[0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    u = np.zeros_like(w)
    for g in grads:
        p.grad = ndl.Tensor(g.astype(np.float32), requires_grad=False)
        opt.step()
        u = 0.9 * u + 0.1 * (g + 0.01 * w)
        w = w - 0.1 * u
    np.testing.assert_allclose(p.numpy(), w, rtol=1e-5, atol=1e-6)


def test_plain_sgd_step() -> None:
    p = _param(np.array([1.0, 2.0]), np.array([0.5, -1.0]))
    optim.SGD([p], lr=0.2).step()
    np.testing.assert_allclose(p.numpy(), [0.9, 2.2], rtol=1e-6)


def test_adam_matches_numpy(rng: np.random.Generator) -> None:
    w = rng.standard_normal(4)
    p = _param(w, np.zeros(4))
    opt = optim.Adam([p], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)
    m = np.zeros(4)
    v = np.zeros(4)
    for step in range(1, 4):
        g = rng.standard_normal(4)
        p.grad = ndl.Tensor(g.astype(np.float32), requires_grad=False)
        opt.step()
        g = g + 0.1 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    np.testing.assert_allclose(p.numpy(), w, rtol=1e-5, atol=1e-6)


def test_step_does_not_grow_graph_and_keeps_leaf() -> None:
    ndl.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.Adam(model.parameters(), lr=0.1)
    x = ndl.Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=False)
    for _ in range(3):
        opt.reset_grad()
        model(x).sum().backward()
        opt.step()
    for p in model.parameters():
        assert p.op is None and p.inputs == () and p.requires_grad and p.dtype == "float32"


def test_clip_grad_norm() -> None:
    a = _param(np.zeros(2), np.array([3.0, 0.0]))
    b = _param(np.zeros(1), np.array([4.0]))
    norm = optim.clip_grad_norm([a, b], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0.8], rtol=1e-5)


def test_schedules() -> None:
    opt = optim.SGD([_param(np.zeros(1), np.zeros(1))], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [sched.step() for _ in range(4)] == [1.0, 0.5, 0.5, 0.25]
    opt.lr = 1.0
    cos = optim.CosineLR(opt, total_steps=4, min_lr=0.0)
    lrs = [cos.step() for _ in range(4)]
    np.testing.assert_allclose(
        lrs, [(1 + math.cos(math.pi * k / 4)) / 2 for k in range(1, 5)], atol=1e-12
    )


def test_optimizer_state_dict_roundtrip(rng: np.random.Generator) -> None:
    w = rng.standard_normal(3)
    g = rng.standard_normal(3)
    p1, p2 = _param(w, g), _param(w, g)
    o1 = optim.Adam([p1], lr=0.05)
    o1.step()
    o2 = optim.Adam([p2], lr=0.05)
    o2.step()
    o2.load_state_dict(o1.state_dict())
    assert o2.t == 1
    o1.step()
    o2.step()
    np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    with pytest.raises(KeyError, match=r"u\.0"):
        o2.load_state_dict({"u.0": np.zeros(3)})
    with pytest.raises(ValueError, match=r"m\.0"):
        o2.load_state_dict({"m.0": np.zeros(4)})
