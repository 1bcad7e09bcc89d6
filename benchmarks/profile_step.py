"""Where a training step's time goes: kernels by name versus Python, for one backend.

    python -m benchmarks.profile_step --model resnet9 --backend cpp

Runs a few warm-up steps of the model (batch 128 images, or a 20x32 PTB-sized token
batch for ``lstm``), then one step under cProfile, and prints the time spent inside each
kernel of the backend's compiled module (or NumPy kernel) and the remainder: the
Python of autograd, ops and NDArray. Also prints the unprofiled wall time of a step.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable

import needle as ndl
import numpy as np
from needle import nn, optim

from ._common import needle_train_step


def _step_fn(model_name: str, backend: str) -> Callable[[], None]:
    from needle import models

    dev = ndl.device(backend)
    rng = np.random.default_rng(0)
    if model_name == "resnet9":
        model = models.ResNet9(device=dev)
        images = rng.standard_normal((128, 3, 32, 32), dtype=np.float32)
        x = ndl.Tensor(images, device=dev, requires_grad=False)
        y = rng.integers(0, 10, 128)
    elif model_name == "lstm":
        model = models.LanguageModel(
            64, 1000, hidden_size=128, num_layers=2, seq_model="lstm", device=dev
        )
        x = ndl.Tensor(rng.integers(0, 1000, (20, 32)), device=dev, requires_grad=False)
        y = rng.integers(0, 1000, 20 * 32)
    else:
        raise ValueError(f"unknown model {model_name!r}: choose resnet9 or lstm")
    opt = optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()

    update = needle_train_step(model, opt, loss_fn)
    return lambda: update(x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet9", choices=["resnet9", "lstm"])
    parser.add_argument("--backend", default="cpp")
    args = parser.parse_args()
    step = _step_fn(args.model, args.backend)
    for _ in range(2):
        step()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    prof = cProfile.Profile()
    prof.runcall(step)
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    kernels: dict[str, tuple[int, float]] = {}
    for (filename, _, name), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        builtin = filename == "~" and ("needle_cpp" in name or "needle_cuda" in name)
        numpy_kernel = filename.endswith("needle_numpy/kernels.py")
        if builtin or numpy_kernel:
            key = name.strip("<>").replace("built-in method ", "")
            n, t = kernels.get(key, (0, 0.0))
            kernels[key] = (n + calls, t + tottime)
    print(f"{args.model} on {args.backend}: {min(times) * 1e3:.1f} ms per step (min of 5)")
    print(f"under cProfile: {total * 1e3:.1f} ms, of which")
    shown = 0.0
    for name, (calls, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:10]:
        shown += t
        print(f"  {t * 1e3:7.2f} ms  {calls:5d} calls  {name}")
    rest = sum(t for _, t in kernels.values()) - shown
    print(f"  {rest * 1e3:7.2f} ms  other kernels")
    kernel_time = sum(t for _, t in kernels.values())
    print(f"  {(total - kernel_time) * 1e3:7.2f} ms  Python (autograd, ops, NDArray, nn)")


if __name__ == "__main__":
    main()
