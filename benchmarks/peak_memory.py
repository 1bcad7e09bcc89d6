"""Peak memory of one training step: needle eager, needle replayed (``needle.compile``),
PyTorch eager. Each measurement runs in a fresh process.

    python -m benchmarks.peak_memory --model resnet9 --batch 128 --backend cpp

The number is how far one step raises the process's resident set above what it held
just before the step (Linux: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``, minus ``VmRSS`` before): the memory the step needs at its
peak (activations, gradients, temporaries). Steps run after warm-up (and, replayed,
after the capture). The C++ backend's buffer cache is off (``NEEDLE_CPP_CACHE_MB=0``)
and glibc returns every buffer over 64 KiB to the system (``MALLOC_MMAP_THRESHOLD_``),
so freed memory is not counted as held. For the replayed step the size of the planned
buffer pool is printed too (it is allocated before the step, so it is in the baseline),
with the most bytes of its buffers that are live at one instruction.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable

import numpy as np


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


def _needle(model: str, batch: int, backend: str, replay: bool, steps: int) -> dict:
    import needle as ndl
    from needle import nn

    dev = ndl.device(backend)
    np.random.seed(0)
    if model == "resnet9":
        net = ndl.models.ResNet9(10, device=dev)
        shape = (batch, 3, 32, 32)
    else:
        net = ndl.models.MLP(784, (100,), 10, device=dev)
        shape = (batch, 784)
    opt = ndl.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()
    x = ndl.Tensor(np.random.randn(*shape).astype("float32"), device=dev, requires_grad=False)
    y = ndl.Tensor(np.random.randint(0, 10, batch).astype("float32"), device=dev)

    def update(x, y):
        opt.reset_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss

    run = ndl.compile(update, state=(net, opt)) if replay else update
    for _ in range(3 if replay else 1):  # warm-up (and capture) before measuring
        run(x, y)
    peaks = [_step_peak_mb(lambda: run(x, y).numpy()) for _ in range(steps)]
    out = {"peak_growth_mb": min(peaks)}
    if replay:
        entry = next(iter(run._cache.values()))
        out["pool_mb"] = entry.program.pool_bytes / 2**20
        out["live_peak_mb"] = entry.program.live_peak_bytes / 2**20
    return out


def _torch(model: str, batch: int, steps: int) -> dict:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import _torch_models

    torch.manual_seed(0)
    if model == "resnet9":
        net = _torch_models.resnet9(10)
        x = torch.randn(batch, 3, 32, 32)
    else:
        net = _torch_models.mlp(784, 100, 10)
        x = torch.randn(batch, 784)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    step()
    return {"peak_growth_mb": min(_step_peak_mb(step) for _ in range(steps))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["resnet9", "mlp"], default="resnet9")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--backend", default="cpp")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--one", choices=["eager", "replayed", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        if args.one == "torch":
            result = _torch(args.model, args.batch, args.steps)
        else:
            result = _needle(
                args.model, args.batch, args.backend, args.one == "replayed", args.steps
            )
        print(json.dumps(result))
        return 0
    rows = {}
    for mode in ("eager", "replayed", "torch"):
        cmd = [sys.executable, "-m", "benchmarks.peak_memory", "--one", mode]
        cmd += ["--model", args.model, "--batch", str(args.batch), "--backend", args.backend]
        cmd += ["--steps", str(args.steps)]
        env = {**os.environ, "NEEDLE_CPP_CACHE_MB": "0", "MALLOC_MMAP_THRESHOLD_": "65536"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            rows[mode] = {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        else:
            rows[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    label = {"eager": f"needle-{args.backend}", "replayed": f"needle-{args.backend} replayed"}
    print(f"peak memory of one {args.model} step, batch {args.batch} (MB above the RSS before it)")
    for mode, r in rows.items():
        name = label.get(mode, "torch")
        if "error" in r:
            print(f"  {name:<24} error: {r['error']}")
            continue
        extra = (
            f"  (buffer pool {r['pool_mb']:.1f} MB; at most {r['live_peak_mb']:.1f} MB of its "
            "buffers live at once)"
            if "pool_mb" in r
            else ""
        )
        print(f"  {name:<24} {r['peak_growth_mb']:8.1f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
