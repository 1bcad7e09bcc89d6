"""Where a replayed training step's time goes, kernel by kernel.

    OMP_NUM_THREADS=1 python -m benchmarks.kernel_profile --model resnet9 --backend cpp

Builds the model of ``benchmarks/bench_models.py`` (MLP, ResNet9, LSTM LM or Transformer
LM at the benchmark's sizes), captures its SGD training step with ``needle.compile``,
times whole replayed steps, then calls the recorded kernels of the program one by one
from Python, timing each, and prints the time per kernel name (the sum over a step's
calls, averaged over ``--steps`` passes) with the call counts. ``--top`` also lists the
slowest single calls with their integer arguments (sizes), and the time of the step's
random draws (dropout masks from NumPy's global generator: made on the device by the
backend's ``bernoulli_mt19937`` where it has one, else on the host and copied over) where
it has any. The per-call timing adds a little Python per kernel, so the
kernel sum is a bit above the replayed step.
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

import needle as ndl
import numpy as np
from needle import models, nn, optim
from needle.backend_ndarray.capture import replay_draw

from ._common import needle_train_step


def build(model_name: str, backend: str) -> tuple[Any, Any, Any, Any]:
    """The model, its optimizer and one (x, y) batch, as in bench_models."""
    dev = ndl.device(backend)
    rng = np.random.default_rng(0)
    ndl.manual_seed(0)
    x: np.ndarray
    y: np.ndarray

    def const(a: np.ndarray) -> ndl.Tensor:
        return ndl.Tensor(a.astype(np.float32), device=dev, requires_grad=False)

    if model_name == "mlp":
        model = models.MLP(784, hidden=(100,), num_classes=10, device=dev)
        x, y = rng.standard_normal((128, 784)), rng.integers(0, 10, 128)
    elif model_name == "resnet9":
        model = models.ResNet9(device=dev)
        x, y = rng.standard_normal((128, 3, 32, 32)), rng.integers(0, 10, 128)
    elif model_name == "lstm":
        model = models.LanguageModel(
            64, 1000, hidden_size=128, num_layers=2, seq_model="lstm", device=dev
        )
        x, y = rng.integers(0, 1000, (20, 32)), rng.integers(0, 1000, 640)
    elif model_name == "transformer":
        model = models.TransformerLM(
            1000, 64, hidden_size=128, num_layers=2, seq_len=20, num_head=4, dim_head=16,
            device=dev,
        )  # fmt: skip
        x, y = rng.integers(0, 1000, (20, 32)), rng.integers(0, 1000, 640)
    else:
        raise ValueError(f"unknown model {model_name!r}")
    return model, optim.SGD(model.parameters(), lr=0.01), const(x), const(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="resnet9", choices=["mlp", "resnet9", "lstm", "transformer"]
    )
    parser.add_argument("--backend", default="cpp")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest calls")
    args = parser.parse_args()
    model, opt, x, y = build(args.model, args.backend)
    loss_fn = nn.SoftmaxLoss()

    step = ndl.compile(needle_train_step(model, opt, loss_fn), state=(model, opt))
    for _ in range(3):  # warm-up, capture, one replay
        step(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(x, y)
    per_step = (time.perf_counter() - start) / args.steps
    (entry,) = step._cache.values()
    program = entry.program
    calls = [
        ins
        for ins in program.instrs
        if ins.kind == "kernel" and not any(type(a).__name__ == "_Slot" for a in ins.args)
    ]
    draws = [ins for ins in program.instrs if ins.kind == "draw"]
    total: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    slowest: dict[int, float] = {}
    for _ in range(args.steps):
        for i, ins in enumerate(calls):
            t0 = time.perf_counter()
            ins.fn(*ins.args)
            dt = time.perf_counter() - t0
            total[ins.name] += dt
            count[ins.name] += 1
            slowest[i] = min(slowest.get(i, dt), dt)
    draw_time = 0.0
    for _ in range(args.steps):  # random draws (dropout masks), as replays make them
        for ins in draws:
            t0 = time.perf_counter()
            replay_draw(ins, program.device)
            draw_time += time.perf_counter() - t0
    n = args.steps
    print(
        f"{args.model} on {args.backend}: replayed step {per_step * 1e3:.2f} ms; "
        f"{len(program.instrs)} instructions; arena/pool {program.pool_bytes / 1e6:.1f} MB, "
        f"live peak {program.live_peak_bytes / 1e6:.1f} MB"
    )
    print(f"kernels called one by one: {sum(total.values()) / n * 1e3:.2f} ms per step")
    if draws:
        print(f"random draws: {draw_time / n * 1e3:.2f} ms per step ({len(draws)} draws)")
    for name, t in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {t / n * 1e3:8.3f} ms  {count[name] // n:5d} calls")
    for i in sorted(slowest, key=lambda j: slowest[j], reverse=True)[: args.top]:
        ints = [a for a in calls[i].args if isinstance(a, int)]
        print(f"  {slowest[i] * 1e3:8.3f} ms  {calls[i].name} {ints}")


if __name__ == "__main__":
    main()
