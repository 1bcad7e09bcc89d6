"""One pass over the data: classification batches or language-model BPTT windows."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import nn, optim
from ..autograd import Tensor, no_grad


@dataclass
class EpochResult:
    """Mean loss, accuracy (classification) and example count of one pass."""

    loss: float
    accuracy: float
    examples: int
    seconds: float

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


def _correct(logits: Tensor, y: Any) -> int:
    """How many rows of ``logits`` have their arg-max at the label ``y`` (argmax on device)."""
    pred = logits.realize_cached_data().argmax(1).numpy()
    labels = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
    return int((pred.astype(np.int64) == labels.reshape(-1).astype(np.int64)).sum())


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="batch", leave=False, disable=not enabled, dynamic_ncols=True
    )


def classification_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    total: int,
    opt: optim.Optimizer | None = None,
    *,
    input_shape: tuple[int, ...] = (),
    desc: str = "",
    progress: bool = True,
) -> EpochResult:
    """Train (with ``opt``) or evaluate ``model`` on ``batches`` of ``(x, y)``.

    Args:
        input_shape: reshape each ``x`` to ``(batch, *input_shape)`` when given.
    """
    loss_fn = nn.SoftmaxLoss()
    model.train(opt is not None)
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = _progress(total, desc, progress)
    try:
        for x, y in batches:
            if input_shape:
                x = x.reshape((x.shape[0], *input_shape))
            if opt is None:
                with no_grad():
                    logits = model(x)
                    loss = loss_fn(logits, y)
            else:
                logits = model(x)
                loss = loss_fn(logits, y)
                opt.reset_grad()
                loss.backward()
                opt.step()
            n = x.shape[0]
            loss_sum += loss.item() * n
            correct += _correct(logits, y)
            seen += n
            bar.update(1)
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", samples_s=f"{rate:.0f}"
            )
    finally:
        bar.close()
    seen = max(seen, 1)
    return EpochResult(loss_sum / seen, correct / seen, seen, time.perf_counter() - start)


def _detach_state(h: Any) -> Any:
    if h is None:
        return None
    if isinstance(h, tuple):
        return tuple(_detach_state(x) for x in h)
    return h.detach()


def language_model_epoch(
    model: nn.Module,
    batches: np.ndarray,
    bptt: int,
    opt: optim.Optimizer | None = None,
    *,
    clip: float | None = None,
    limit: int | None = None,
    device: Any = None,
    desc: str = "",
    progress: bool = True,
) -> EpochResult:
    """Train or evaluate a language model over ``batches`` (rows x columns of token ids).

    The hidden state carries from one window to the next, detached (truncated BPTT).
    """
    from ..data import get_batch

    loss_fn = nn.SoftmaxLoss()
    model.train(opt is not None)
    starts = list(range(0, len(batches) - 1, bptt))
    if limit is not None:
        starts = starts[:limit]
    loss_sum, correct, seen = 0.0, 0, 0
    h = None
    start = time.perf_counter()
    bar = _progress(len(starts), desc, progress)
    try:
        for i in starts:
            x, y = get_batch(batches, i, bptt, device=device, dtype="float32")
            if opt is None:
                with no_grad():
                    logits, h = model(x, h)
                    loss = loss_fn(logits, y)
            else:
                logits, h = model(x, h)
                loss = loss_fn(logits, y)
                opt.reset_grad()
                loss.backward()
                if clip:
                    optim.clip_grad_norm(opt.params, clip)
                opt.step()
            h = _detach_state(h)
            n = y.shape[0]
            loss_sum += loss.item() * n
            correct += _correct(logits, y)
            seen += n
            bar.update(1)
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.3f}",
                ppl=f"{math.exp(loss_sum / seen):.1f}",
                tokens_s=f"{rate:.0f}",
            )
    finally:
        bar.close()
    seen = max(seen, 1)
    return EpochResult(loss_sum / seen, correct / seen, seen, time.perf_counter() - start)


def unigram_perplexity(train: Iterable[int], evaluate: Iterable[int], vocab_size: int) -> float:
    """Perplexity on ``evaluate`` of add-one-smoothed unigram frequencies from ``train``."""
    counts = np.bincount(np.asarray(list(train)), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[np.asarray(list(evaluate))].mean()))
