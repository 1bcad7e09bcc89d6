"""Optimizers (SGD, Adam), gradient clipping and learning-rate schedules.

Updates run under ``no_grad`` and replace each parameter's data, so a step never adds
to the graph. Optimizer state is kept per parameter index (the order of the parameter
list), which is what ``state_dict`` saves.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import ops
from .autograd import Tensor, no_grad
from .backend_ndarray.capture import host_step


class Optimizer:
    """Base class: holds the parameter list and clears gradients.

    Args:
        params: the tensors to update (e.g. ``model.parameters()``).
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)
        self.lr = 0.0
        self._slots: dict[str, dict[int, Tensor]] = {}

    def step(self) -> None:
        """Apply one update from the parameters' ``.grad``."""
        raise NotImplementedError

    def reset_grad(self) -> None:
        """Forget every parameter's gradient (the course's name)."""
        for p in self.params:
            p.grad = None

    zero_grad = reset_grad

    def _scalars(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def _static_config(self) -> tuple[Any, ...]:
        """Hyper-parameters a captured step bakes in (``needle.compile`` re-captures when
        they change); the learning rate and step count are read afresh at each replay."""
        return tuple(
            (k, v)
            for k, v in sorted(vars(self).items())
            if isinstance(v, (int, float)) and k not in ("lr", "t")
        )

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and per-parameter slots, keyed ``"slot.index"``."""
        state: dict[str, Any] = dict(self._scalars())
        for slot, values in self._slots.items():
            for i, t in values.items():
                state[f"{slot}.{i}"] = t.detach()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            KeyError: a key that this optimizer does not have (named in the message).
            ValueError: a slot whose shape differs from its parameter's.
        """
        # all or nothing: everything is checked and converted before anything is assigned
        name = type(self).__name__
        scalars: dict[str, Any] = {}
        for key, current in self._scalars().items():
            if key in state:
                value = state[key]
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(
                        f"{name}.load_state_dict: key {key!r} must be a number, "
                        f"got {type(value).__name__}"
                    )
                scalars[key] = type(current)(value)
        slots: list[tuple[str, int, Tensor]] = []
        for key, value in state.items():
            if key in scalars:
                continue
            slot, _, digits = key.rpartition(".")
            if slot not in self._slots or not digits.isdigit() or int(digits) >= len(self.params):
                raise KeyError(f"{name}.load_state_dict: unexpected key {key!r}")
            p = self.params[int(digits)]
            array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(array.shape) != p.shape:
                raise ValueError(
                    f"{name}.load_state_dict: shape mismatch for key "
                    f"{key!r}: {tuple(array.shape)} vs parameter {p.shape}"
                )
            slots.append(
                (
                    slot,
                    int(digits),
                    Tensor(array, device=p.device, dtype=p.dtype, requires_grad=False),
                )
            )
        for key, value in scalars.items():
            setattr(self, key, value)
        for slot, index, tensor in slots:
            self._slots[slot][index] = tensor


def _check_hyper(opt: str, name: str, value: Any, low: float, high: float | None = None) -> None:
    """``value`` must be a finite real in ``[low, high)`` (``high=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{opt}: {name} must be a finite number, got {value!r}")
    number = float(value)
    if number < low or (high is not None and number >= high):
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{opt}: {name} must be {bound}, got {value!r}")


def _grad_with_decay(p: Tensor, weight_decay: float) -> Tensor:
    g = p.grad.detach()  # type: ignore[union-attr]
    return g + p.detach() * weight_decay if weight_decay else g


class SGD(Optimizer):
    """Stochastic gradient descent with the course's momentum and L2 weight decay.

    ``g = grad + weight_decay * p``; ``u = momentum * u + (1 - momentum) * g``;
    ``p = p - lr * u`` (with ``momentum=0``, plain ``p - lr * g``).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        _check_hyper("SGD", "lr", lr, 0.0)
        _check_hyper("SGD", "momentum", momentum, 0.0, 1.0)
        _check_hyper("SGD", "weight_decay", weight_decay, 0.0)
        super().__init__(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self._slots = {"u": {}}

    def step(self) -> None:
        u = self._slots["u"]
        # read through host_step, so a replayed (needle.compile) step sees lr changes
        (lr,) = host_step(lambda: (float(self.lr),))
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = _grad_with_decay(p, self.weight_decay)
                if self.momentum:
                    prev = u.get(i)
                    g = (
                        g * (1 - self.momentum)
                        if prev is None
                        else prev * self.momentum + g * (1 - self.momentum)
                    )
                    u[i] = g.detach()
                p.data = (p.detach() - g * lr).astype(p.dtype).detach()


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay (added to the gradient).

    ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``p = p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        _check_hyper("Adam", "lr", lr, 0.0)
        _check_hyper("Adam", "beta1", beta1, 0.0, 1.0)
        _check_hyper("Adam", "beta2", beta2, 0.0, 1.0)
        _check_hyper("Adam", "eps", eps, 0.0)
        _check_hyper("Adam", "weight_decay", weight_decay, 0.0)
        super().__init__(params)
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.eps, self.weight_decay = eps, weight_decay
        self.t = 0
        self._slots = {"m": {}, "v": {}}

    def _scalars(self) -> dict[str, Any]:
        return {"lr": self.lr, "t": self.t}

    def _advance(self) -> tuple[float, float, float]:
        """One more step: the learning rate and the two bias corrections it uses."""
        self.t += 1
        return float(self.lr), 1.0 - self.beta1**self.t, 1.0 - self.beta2**self.t

    def step(self) -> None:
        m, v = self._slots["m"], self._slots["v"]
        lr, c1, c2 = host_step(self._advance)  # replayed steps advance t too
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = _grad_with_decay(p, self.weight_decay)
                m_i = (
                    g * (1 - self.beta1) if i not in m else m[i] * self.beta1 + g * (1 - self.beta1)
                )
                v_i = (
                    g * g * (1 - self.beta2)
                    if i not in v
                    else v[i] * self.beta2 + g * g * (1 - self.beta2)
                )
                m[i], v[i] = m_i.detach(), v_i.detach()
                update = (m_i / c1) / ((v_i / c2) ** 0.5 + self.eps)
                p.data = (p.detach() - update * lr).astype(p.dtype).detach()


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm``.

    Computed on the device, with no read on the host, so a compiled step
    (``needle.compile``) can clip: the factor ``max_norm / max(norm + 1e-6, max_norm)``
    is exactly 1 when the norm is within bounds, so those gradients are unchanged.

    Returns:
        The norm before clipping, as a 0-d tensor on the gradients' device
        (``float(norm)`` gives the number; that reads it on the host).

    Raises:
        ValueError: ``max_norm`` is not a finite number > 0.
    """
    if (
        isinstance(max_norm, bool)
        or not isinstance(max_norm, numbers.Real)
        or not math.isfinite(max_norm)
        or max_norm <= 0
    ):
        raise ValueError(f"clip_grad_norm: max_norm must be a finite number > 0, got {max_norm!r}")
    params = [p for p in params if p.grad is not None]
    if not params:
        return Tensor(0.0, requires_grad=False)
    with no_grad():
        total: Tensor | None = None
        for p in params:
            g = p.grad.detach()  # type: ignore[union-attr]
            sq = (g * g).sum()
            total = sq if total is None else total + sq
        norm = total**0.5  # type: ignore[operator]
        bound = norm * 0.0 + float(max_norm)  # a 0-d tensor: m / m is exactly 1
        factor = ops.divide(bound, ops.maximum(norm + 1e-6, float(max_norm)))
        for p in params:
            g = p.grad.detach()  # type: ignore[union-attr]
            p.grad = (g * factor.broadcast_to(g.shape)).detach()
    return norm.detach()


class LRScheduler:
    """Base class: call :meth:`step` once per epoch (or per step) to update ``optimizer.lr``."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_step = 0

    def lr_at(self, step: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one step; returns the new learning rate."""
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base_lr = float(state["base_lr"])
        self.last_step = int(state["last_step"])
        self.optimizer.lr = self.lr_at(self.last_step)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (step // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineLR(LRScheduler):
    """``lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2``."""

    def __init__(self, optimizer: Optimizer, total_steps: int, min_lr: float = 0.0) -> None:
        super().__init__(optimizer)
        self.total_steps, self.min_lr = total_steps, min_lr

    def lr_at(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * frac)) / 2


__all__ = ["SGD", "Adam", "CosineLR", "LRScheduler", "Optimizer", "StepLR", "clip_grad_norm"]
