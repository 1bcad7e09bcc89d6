"""Programs the distributed tests run under ``mpiexec -n 2`` (or alone, world size 1).

``python mpi_worker.py MODE OUT [options]``; each mode writes what the test checks to
``OUT`` (``OUT.rank<r>.npz`` or ``.json``) and exits 0, or dies the way the mode says.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import needle as ndl
import needle.distributed as dist
import numpy as np
from needle import nn, optim

GLOBAL_BATCH = 128


def make_model(kind: str, device):
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(20, 32, device=device), nn.ReLU(), nn.Linear(32, 5, device=device)
        )
    return nn.Sequential(
        nn.Conv(3, 4, 3, device=device),
        nn.SyncBatchNorm(4, device=device),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5, device=device),
    )


def step_data(kind: str, step: int):
    """The global batch of ``step`` (the same on every rank)."""
    rng = np.random.default_rng(1000 + step)
    shape = (GLOBAL_BATCH, 20) if kind == "mlp" else (GLOBAL_BATCH, 3, 6, 6)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 5, GLOBAL_BATCH)
    return x, y


def equivalence(args) -> None:
    r, w = dist.rank(), dist.world_size()
    device = ndl.device(args.backend)
    ndl.manual_seed(1 + 7 * r)  # different on each rank: DDP's broadcast must fix it
    np.random.seed(1 + 7 * r)
    model = make_model(args.model, device)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.SoftmaxLoss()
    per = GLOBAL_BATCH // w
    for step in range(args.steps):
        x, y = step_data(args.model, step)
        xs, ys = x[r * per : (r + 1) * per], y[r * per : (r + 1) * per]
        opt.reset_grad()
        loss = loss_fn(ddp(ndl.Tensor(xs, device=device)), ndl.Tensor(ys, device=device))
        loss.backward()
        opt.step()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    np.savez(f"{args.out}.rank{r}.npz", **state)


def collectives(args) -> None:
    r, w = dist.rank(), dist.world_size()
    out = {"rank": r, "world": w}
    for backend in ("numpy", "cpp"):
        dev = ndl.device(backend)
        for dtype in ("float32", "float64"):
            base = np.arange(6, dtype=dtype).reshape(2, 3) + 10 * r
            x = ndl.Tensor(base, device=dev, dtype=dtype)
            key = f"{backend}.{dtype}"
            out[key + ".sum"] = dist.all_reduce(x).numpy().tolist()
            out[key + ".mean"] = dist.all_reduce(x, "mean").numpy().tolist()
            out[key + ".max"] = dist.all_reduce(x, "max").numpy().tolist()
            out[key + ".min"] = dist.all_reduce(x, "min").numpy().tolist()
            out[key + ".bcast"] = dist.broadcast(x, src=w - 1).numpy().tolist()
            out[key + ".gather"] = dist.all_gather(x).numpy().tolist()
            out[key + ".sum_T"] = dist.all_reduce(x.transpose()).numpy().tolist()
            out[key + ".dtype"] = dist.all_reduce(x).dtype
        # gradient of a sum all-reduce: every rank's adjoint, summed
        a = ndl.Tensor(base.astype("float32"), device=dev)
        (dist.all_reduce(a) * float(r + 1)).sum().backward()
        out[backend + ".grad"] = a.grad.numpy().tolist()
    dist.barrier()
    with open(f"{args.out}.rank{r}.json", "w") as f:
        json.dump(out, f)


def different_models(args) -> None:
    r = dist.rank()
    width = 8 if r == 0 else 9
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(width, 2))
    try:
        dist.DistributedDataParallel(model)
    except ValueError as exc:
        with open(f"{args.out}.rank{r}.json", "w") as f:
            json.dump({"error": str(exc)}, f)
        return
    raise SystemExit("no error for different models")


def capture(args) -> None:
    """A DDP step inside needle.compile: refused on every rank (a replay would skip the
    all-reduce)."""
    r = dist.rank()
    model = nn.Sequential(nn.Linear(4, 3))
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(ddp.parameters(), lr=0.1)

    @ndl.compile(state=(model, opt))
    def step(x, y):
        opt.reset_grad()
        loss = nn.SoftmaxLoss()(ddp(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = ndl.Tensor(np.ones((2, 4), np.float32)), ndl.Tensor(np.array([0, 1]))
    try:
        for _ in range(3):
            step(x, y)
    except RuntimeError as exc:
        result = {"error": type(exc).__name__, "message": str(exc)}
    else:
        result = {"error": None}
    with open(f"{args.out}.rank{r}.json", "w") as f:
        json.dump(result, f)


def failure(args) -> None:
    """Train with a sampler; rank 1 dies (kill/raise/skip a collective) at step 3."""
    r = dist.rank()
    device = ndl.device("numpy")
    ds = ndl.data.NDArrayDataset(
        np.random.default_rng(0).standard_normal((4096, 20)).astype(np.float32),
        np.random.default_rng(1).integers(0, 5, 4096),
    )
    sampler = ndl.data.DistributedSampler(ds, seed=3)
    loader = ndl.data.DataLoader(ds, batch_size=16, sampler=sampler, device=device)
    model = dist.DistributedDataParallel(make_model("mlp", device))
    opt = optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(1000):
        sampler.set_epoch(epoch)
        for step, (x, y) in enumerate(loader):
            if r == 1 and step == 3:
                if args.how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                elif args.how == "raise":
                    raise RuntimeError("deliberate failure on rank 1 at step 3")
                elif args.how == "hang":
                    time.sleep(3600)
            opt.reset_grad()
            nn.SoftmaxLoss()(model(x), y).backward()
            opt.step()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("out")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--model", default="mlp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--bucket-mb", type=float, default=25.0)
    p.add_argument("--how", default="kill")
    args = p.parse_args()
    {
        "equivalence": equivalence,
        "collectives": collectives,
        "different_models": different_models,
        "failure": failure,
        "capture": capture,
    }[args.mode](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
