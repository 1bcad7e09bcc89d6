"""The training step the compile, replay-memory and fused-layer tests capture: the one the
model benchmarks time (``benchmarks/_common.py``), with a softmax cross-entropy loss."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from needle import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from benchmarks._common import needle_train_step


def softmax_step(model: Any, opt: Any) -> Callable[[Any, Any], Any]:
    """``step(x, y)``: reset gradients, SoftmaxLoss of ``model(x)`` (of its first output
    when it returns a tuple, as the language models do) against ``y``, backward, optimizer
    step; returns the loss. Hand it to ``ndl.compile(step, state=(model, opt))``."""
    return needle_train_step(model, opt, nn.SoftmaxLoss())
