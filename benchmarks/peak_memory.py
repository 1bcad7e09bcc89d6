"""Peak memory of one training step: needle eager, needle replayed (``needle.compile``),
PyTorch eager. Each measurement runs in a fresh process.

    python -m benchmarks.peak_memory --model resnet9 --batch 128 --backend cpp
    python -m benchmarks.peak_memory --programs      # planned buffers of four models

What a step needs beyond the model and optimizer state: for an eager step, how far it
raises the process's resident set above what it held just before the step (Linux:
``VmHWM`` after resetting it through ``/proc/self/clear_refs``, minus ``VmRSS`` before).
A replayed step's buffers are planned at capture and allocated before the step (they are
in the RSS before it), so its figure is their size plus that growth. They hold the
gradients from one step to the next, which an eager step finds in the RSS before it:
the eager row says how many MB those are. Steps run after
warm-up (and, replayed, after the capture). The C++ backend's buffer cache is off
(``NEEDLE_CPP_CACHE_MB=0``) and glibc returns every buffer over 64 KiB to the system
(``MALLOC_MMAP_THRESHOLD_``), so freed memory is not counted as held.

Replayed twice: with the planner's arena (every temporary a view into one buffer at
planned offsets; the default where the backend has ``buffer_view``) and with the
exact-size pool (a freed buffer reused only for a request of the same size). Beside each,
the most bytes of the step's buffers live at one instruction: what any plan needs.

``--programs`` prints, without measuring the RSS, the planned buffers of the replayed
steps of an MLP, ResNet9, an LSTM LM and a Transformer LM: live peak, arena and pool.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import needle_train_step

MODELS = ("resnet9", "mlp", "lstm", "transformer")
LM = dict(vocab=1000, emb=64, hidden=128, layers=2, seq=20)  # as benchmarks/bench_models.py
MB = 2**20


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _step_peak_mb(step: Callable[[], object]) -> float:
    """How far ``step()`` raises the resident set above where it started."""
    gc.collect()
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    step()
    return _status_mb("VmHWM") - before


def _default_batch(model: str) -> int:
    return 32 if model in ("lstm", "transformer") else 128


def _needle_step(model: str, batch: int, backend: str) -> tuple[Any, Any, Any, Any]:
    """(update function, x, y, state) of one SGD training step in needle."""
    import needle as ndl
    from needle import nn

    dev = ndl.device(backend)
    np.random.seed(0)
    if model == "resnet9":
        net = ndl.models.ResNet9(10, device=dev)
        x_np = np.random.randn(batch, 3, 32, 32).astype("float32")
        y_np = np.random.randint(0, 10, batch).astype("float32")
    elif model == "mlp":
        net = ndl.models.MLP(784, (100,), 10, device=dev)
        x_np = np.random.randn(batch, 784).astype("float32")
        y_np = np.random.randint(0, 10, batch).astype("float32")
    else:
        if model == "lstm":
            net = ndl.models.LanguageModel(
                LM["emb"], LM["vocab"], LM["hidden"], LM["layers"], "lstm", device=dev
            )
        else:
            net = ndl.models.TransformerLM(
                LM["vocab"], embedding_size=LM["emb"], hidden_size=LM["hidden"],
                num_layers=LM["layers"], seq_len=LM["seq"], num_head=4,
                dim_head=LM["emb"] // 4, device=dev,
            )  # fmt: skip
        ids = np.random.randint(0, LM["vocab"], (LM["seq"] + 1, batch)).astype("float32")
        x_np, y_np = ids[:-1], ids[1:].reshape(-1)
    opt = ndl.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()
    x = ndl.Tensor(x_np, device=dev, requires_grad=False)
    y = ndl.Tensor(y_np, device=dev, requires_grad=False)

    return needle_train_step(net, opt, loss_fn), x, y, (net, opt)


def _replayed(model: str, batch: int, backend: str, arena: bool) -> tuple[Any, Any, Any, Any]:
    """A compiled step after its warm-up, capture and first replay; and its program."""
    import needle as ndl
    from needle.backend_ndarray import capture

    capture.PLAN_ARENA = arena
    update, x, y, state = _needle_step(model, batch, backend)
    run = ndl.compile(update, state=state)
    for _ in range(3):  # eager warm-up, capture, a first replay
        run(x, y)
    program = next(iter(run._cache.values())).program
    return run, x, y, program


def _needle(model: str, batch: int, backend: str, mode: str, steps: int) -> dict:
    if mode == "eager":
        run, x, y, state = _needle_step(model, batch, backend)
        run(x, y)  # warm-up
        growth = min(_step_peak_mb(lambda: run(x, y).numpy()) for _ in range(steps))
        grads = [p.grad for p in state[0].parameters() if p.grad is not None]
        return {"peak_growth_mb": growth, "grads_mb": sum(g.numpy().nbytes for g in grads) / MB}
    run, x, y, program = _replayed(model, batch, backend, arena=mode == "replayed")
    growth = min(_step_peak_mb(lambda: run(x, y).numpy()) for _ in range(steps))
    return {
        "peak_growth_mb": growth,
        "pool_mb": program.pool_bytes / MB,
        "live_peak_mb": program.live_peak_bytes / MB,
    }


def _torch(model: str, batch: int, steps: int) -> dict:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import _torch_models

    torch.manual_seed(0)
    if model == "resnet9":
        net = _torch_models.resnet9(10)
        x = torch.randn(batch, 3, 32, 32)
        y = torch.randint(0, 10, (batch,))
    elif model == "mlp":
        net = _torch_models.mlp(784, 100, 10)
        x = torch.randn(batch, 784)
        y = torch.randint(0, 10, (batch,))
    else:
        net = _torch_models.LanguageModel(
            LM["vocab"], LM["emb"], LM["hidden"], LM["layers"], model, LM["seq"]
        )
        x = torch.randint(0, LM["vocab"], (LM["seq"], batch))
        y = torch.randint(0, LM["vocab"], (LM["seq"] * batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    step()
    return {"peak_growth_mb": min(_step_peak_mb(step) for _ in range(steps))}


def _programs(backend: str) -> int:
    """The planned buffers of each model's replayed step: arena and exact-size pool."""
    print(
        f"planned buffers of replayed training steps on {backend} (MB; live peak: the most "
        "bytes live at one instruction)"
    )
    head = (
        f"  {'model':<40} {'instrs':>6} {'buffers':>7} {'live peak':>9} {'arena':>13} {'pool':>13}"
    )
    print(head)
    for model in MODELS:
        batch = _default_batch(model)
        row: dict[bool, Any] = {}
        for arena in (True, False):
            _, _, _, program = _replayed(model, batch, backend, arena)
            row[arena] = program
        p = row[True]
        live = p.live_peak_bytes / MB

        def cell(q: Any) -> str:
            return f"{q.pool_bytes / MB:6.2f} ({q.pool_bytes / q.live_peak_bytes:4.2f}x)"

        name = f"{model} batch {batch}" + (
            f", seq {LM['seq']} vocab {LM['vocab']}" if model in ("lstm", "transformer") else ""
        )
        print(
            f"  {name:<40} {len(p.instrs):>6} {len(p.lifetimes):>7} {live:>9.2f} "
            f"{cell(p):>13} {cell(row[False]):>13}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="resnet9")
    p.add_argument("--batch", type=int, help="default 128 (images), 32 (language models)")
    p.add_argument("--backend", default="cpp")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--programs", action="store_true", help="planned buffers of four models")
    p.add_argument(
        "--one", choices=["eager", "replayed", "replayed-pool", "torch"], help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    batch = args.batch or _default_batch(args.model)
    if args.programs:
        return _programs(args.backend)
    if args.one:
        if args.one == "torch":
            result = _torch(args.model, batch, args.steps)
        else:
            result = _needle(args.model, batch, args.backend, args.one, args.steps)
        print(json.dumps(result))
        return 0
    rows = {}
    for mode in ("eager", "replayed", "replayed-pool", "torch"):
        cmd = [sys.executable, "-m", "benchmarks.peak_memory", "--one", mode]
        cmd += ["--model", args.model, "--batch", str(batch), "--backend", args.backend]
        cmd += ["--steps", str(args.steps)]
        env = {**os.environ, "NEEDLE_CPP_CACHE_MB": "0", "MALLOC_MMAP_THRESHOLD_": "65536"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            rows[mode] = {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        else:
            rows[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    label = {
        "eager": f"needle-{args.backend}",
        "replayed": f"needle-{args.backend} replayed",
        "replayed-pool": "  (exact-size pool)",
        "torch": "torch",
    }
    print(
        f"peak memory of one {args.model} step, batch {batch} (MB needed beyond the state; "
        f"threads: {os.environ.get('OMP_NUM_THREADS', 'default')})"
    )
    for mode, r in rows.items():
        name = label[mode]
        if "error" in r:
            print(f"  {name:<24} error: {r['error']}")
            continue
        if "pool_mb" in r:
            total = r["pool_mb"] + r["peak_growth_mb"]
            kind = "arena" if mode == "replayed" else "pool"
            print(
                f"  {name:<24} {total:8.1f}  ({kind} {r['pool_mb']:.1f} + growth "
                f"{r['peak_growth_mb']:.1f}; at most {r['live_peak_mb']:.1f} live at once)"
            )
        elif "grads_mb" in r:  # in the RSS before the step; a replay's are in its arena
            print(
                f"  {name:<24} {r['peak_growth_mb']:8.1f}  (and {r['grads_mb']:.1f} of gradients "
                "kept from the step before)"
            )
        else:
            print(f"  {name:<24} {r['peak_growth_mb']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
