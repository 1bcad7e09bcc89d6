"""The training step the compile, replay-memory and fused-layer tests capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from needle import nn


def softmax_step(model: Any, opt: Any) -> Callable[[Any, Any], Any]:
    """``step(x, y)``: reset gradients, SoftmaxLoss of ``model(x)`` (of its first output
    when it returns a tuple, as the language models do) against ``y``, backward, optimizer
    step; returns the loss. Hand it to ``ndl.compile(step, state=(model, opt))``."""
    loss_fn = nn.SoftmaxLoss()

    def step(x: Any, y: Any) -> Any:
        opt.reset_grad()
        out = model(x)
        loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        opt.step()
        return loss

    return step
