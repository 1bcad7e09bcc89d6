"""One pass over batches, for training (``opt`` given) and evaluation alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .. import nn, optim
from ..autograd import Tensor, no_grad

__all__ = ["EpochResult", "TrainHooks", "run_batches", "unigram_perplexity"]

B = TypeVar("B")


@dataclass
class EpochResult:
    """Mean loss, accuracy (share of arg-max hits) and example count of one pass."""

    loss: float
    accuracy: float
    examples: int
    seconds: float

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


@dataclass
class TrainHooks:
    """Where a data-parallel run would plug in; the defaults are a single process.

    Attributes:
        average_gradients: called with the optimizer's parameters after ``backward`` and
            before clipping and the step (an all-reduce would go here).
        is_primary: only the primary process logs, writes checkpoints and metrics.
        log: where progress lines go.
    """

    average_gradients: Callable[[Sequence[Tensor]], None] | None = None
    is_primary: bool = True
    log: Callable[[str], None] = lambda msg: print(msg, flush=True)


def _hits(logits: Tensor, y: Any) -> Tensor:
    """How many rows of ``logits`` have their arg-max at the label ``y``, as a 0-d tensor
    computed on the device (so a compiled step can return it)."""
    if not isinstance(y, Tensor):
        y = Tensor(np.asarray(y, dtype=np.float64).reshape(-1), device=logits.device)
    pred = logits.detach().argmax(1)
    labels = y.detach().reshape((pred.shape[0],))
    if labels.dtype != pred.dtype:
        labels = labels.astype(pred.dtype)
    return (pred == labels).sum()


def _detach(state: Any) -> Any:
    """A recurrent state cut from the graph: truncated backpropagation through time."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_detach(x) for x in state)
    return state.detach()


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="batch", leave=False, disable=not enabled, dynamic_ncols=True
    )


def run_batches(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    total: int,
    forward: Callable[[Tensor, Any], tuple[Tensor, Any]],
    opt: optim.Optimizer | None = None,
    *,
    clip: float | None = None,
    hooks: TrainHooks | None = None,
    desc: str = "",
    progress: bool = True,
    postfix: Callable[[float, float, float], dict[str, str]] | None = None,
    compile_cache: dict[str, Any] | None = None,
) -> EpochResult:
    """Train ``model`` on ``batches`` (with ``opt``) or evaluate it (``opt=None``).

    Args:
        batches: ``(x, labels)`` pairs of tensors.
        forward: ``(x, state) -> (logits, new state)``; the state is what a recurrent model
            carries from one batch to the next (``None`` at first and for other models),
            detached here; the loss is softmax cross-entropy.
        total: how many batches there are (for the progress bar).
        clip: when training, scale gradients to this global norm first (0/None: no clip).
        hooks: ``average_gradients`` runs after ``backward``, before clipping and the step.
        postfix: ``(mean loss, accuracy, examples per second) -> progress-bar fields``.
        compile_cache: when given (a dict kept across epochs), training steps run through
            ``needle.compile``: captured once per signature (batch shape, state present or
            not), then replayed. Not with gradient hooks (a data-parallel all-reduce is not
            a kernel of the device).
    """
    loss_fn = nn.SoftmaxLoss()
    model.train(opt is not None)
    average = hooks.average_gradients if hooks is not None else None

    def train_step(x: Tensor, y: Tensor, state: Any) -> tuple[Tensor, Tensor, Any]:
        """One update; the loss and the count of arg-max hits stay on the device."""
        assert opt is not None
        logits, state = forward(x, state)
        loss = loss_fn(logits, y)
        opt.reset_grad()
        loss.backward()
        if average is not None:
            average(opt.params)
        if clip:
            optim.clip_grad_norm(opt.params, clip)
        opt.step()
        return loss, _hits(logits, y), _detach(state)

    step: Callable[[Tensor, Tensor, Any], tuple[Tensor, Tensor, Any]] = train_step
    if opt is not None and compile_cache is not None and average is None:
        from ..compiled import compile as needle_compile

        if compile_cache.get("opt") is not opt:  # a new optimizer: a new step
            compile_cache.clear()
            compile_cache["opt"] = opt
            compile_cache["step"] = needle_compile(train_step, state=(model, opt))
        step = compile_cache["step"]
    loss_sum, correct, seen = 0.0, 0, 0
    state: Any = None
    start = time.perf_counter()
    bar = _progress(total, desc, progress)
    try:
        for x, y in batches:
            if opt is None:
                with no_grad():
                    logits, state = forward(x, state)
                    state = _detach(state)
                    loss = loss_fn(logits, y)
                    hits = _hits(logits, y)
            else:
                loss, hits, state = step(x, y, state)
            n = y.shape[0]
            loss_sum += loss.item() * n
            correct += int(hits.item())
            seen += n
            bar.update(1)
            if postfix is not None:
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(postfix(loss_sum / seen, correct / seen, rate))
    finally:
        bar.close()
    seen = max(seen, 1)
    return EpochResult(loss_sum / seen, correct / seen, seen, time.perf_counter() - start)


def unigram_perplexity(train: Iterable[int], evaluate: Iterable[int], vocab_size: int) -> float:
    """Perplexity on ``evaluate`` of add-one-smoothed unigram frequencies from ``train``."""
    counts = np.bincount(np.asarray(list(train)), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[np.asarray(list(evaluate))].mean()))
