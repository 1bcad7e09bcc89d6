"""Benchmarks of needle.distributed; run under MPI, one thread per rank:

    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/bench_distributed.py allreduce
    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/bench_distributed.py overlap
    OMP_NUM_THREADS=1 mpiexec -n 1 python benchmarks/bench_distributed.py throughput
    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/bench_distributed.py throughput

* ``allreduce``: bus bandwidth (bytes x 2(n-1)/n / time, the nccl-tests convention) of
  ``needle.distributed.all_reduce`` on a cpp tensor against mpi4py's ``Allreduce`` of a
  NumPy array of the same bytes, message sizes 4 KB .. 64 MB (median of repeats), into
  a reused receive buffer and into a fresh one (as a functional all_reduce, which
  returns a new tensor, must: first-touch page faults cost 10-50% at 1-64 MB).
* ``overlap``: one backward pass of a deep MLP (cpp) alone, with DDP's bucketed
  non-blocking all-reduce started during it (25 MB and 4 MB buckets), and followed by a
  blocking all-reduce of every gradient (no overlap).
* ``throughput``: training steps per second of the MNIST MLP (784-512-10, Adam) at a
  global batch of 128 (each of n ranks takes 128 / n), in examples per second.

Rank 0 prints a Markdown table; ``--json PATH`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import needle as ndl
import needle.distributed as dist
import numpy as np
from needle import nn, optim


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        dist.barrier()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    # the slowest rank's median is the collective's time
    return float(dist.all_reduce(ndl.Tensor([statistics.median(times)]), "max").numpy()[0])


def measure_allreduce(args) -> list[dict]:
    from mpi4py import MPI

    comm, n = MPI.COMM_WORLD, dist.world_size()
    dev = ndl.device(args.backend)
    rows = []
    for nbytes in [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]:
        count = nbytes // 4
        repeats = max(5, min(200, (256 << 20) // nbytes))
        host = np.random.default_rng(0).standard_normal(count).astype(np.float32)
        recv = np.empty_like(host)
        x = ndl.Tensor(host, device=dev)
        t_mpi = _median_time(lambda h=host, o=recv: comm.Allreduce(h, o, op=MPI.SUM), repeats)
        t_fresh = _median_time(
            lambda h=host: comm.Allreduce(h, np.empty_like(h), op=MPI.SUM), repeats
        )
        t_ndl = _median_time(lambda x=x: dist.all_reduce(x), repeats)
        bus = nbytes * 2 * (n - 1) / n
        rows.append(
            {
                "bytes": nbytes,
                "mpi4py_ms": t_mpi * 1e3,
                "mpi4py_fresh_ms": t_fresh * 1e3,
                "needle_ms": t_ndl * 1e3,
                "mpi4py_GBps": bus / t_mpi / 1e9,
                "needle_GBps": bus / t_ndl / 1e9,
                "needle/mpi4py": t_mpi / t_ndl,
                "needle/mpi4py_fresh": t_fresh / t_ndl,
            }
        )
    return rows


def _deep_mlp(dev, width: int, depth: int) -> nn.Module:
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, device=dev), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10, device=dev))


def measure_overlap(args) -> list[dict]:
    dev = ndl.device(args.backend)
    width, depth, batch = args.width, args.depth, args.batch
    rng = np.random.default_rng(dist.rank())
    x = ndl.Tensor(rng.standard_normal((batch, width)).astype(np.float32), device=dev)
    y = ndl.Tensor(rng.integers(0, 10, batch), device=dev)
    loss_fn = nn.SoftmaxLoss()
    ndl.manual_seed(0)
    model = _deep_mlp(dev, width, depth)
    n_params = sum(p.size for p in model.parameters())
    rows = []

    def forward_backward(m) -> None:
        for p in model.parameters():
            p.grad = None
        loss_fn(m(x), y).backward()

    # forward alone, to subtract: the table is about the backward pass
    def forward_only() -> None:
        with ndl.no_grad():
            loss_fn(model(x), y)

    t_fwd = _median_time(forward_only, args.repeats)
    t_alone = _median_time(lambda: forward_backward(model), args.repeats)

    def blocking() -> None:
        forward_backward(model)
        for p in model.parameters():
            p.grad = dist.all_reduce(p.grad, "mean")

    t_block = _median_time(blocking, args.repeats)
    rows.append({"variant": "backward alone (no communication)", "ms": (t_alone - t_fwd) * 1e3})
    rows.append(
        {
            "variant": "backward, then blocking all_reduce per gradient",
            "ms": (t_block - t_fwd) * 1e3,
        }
    )
    for cap in (25.0, 4.0):
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap)

        def step(ddp=ddp) -> None:
            forward_backward(ddp)
            ddp.synchronize()

        t = _median_time(step, args.repeats)
        rows.append(
            {
                "variant": f"DDP, {cap:g} MB buckets ({len(ddp.bucket_sizes)} buckets), overlapped",
                "ms": (t - t_fwd) * 1e3,
            }
        )
    for r in rows:
        r["grad_MB"] = n_params * 4 / 1e6
    return rows


def measure_throughput(args) -> list[dict]:
    n, r = dist.world_size(), dist.rank()
    dev = ndl.device(args.backend)
    ndl.manual_seed(0)
    model = dist.DistributedDataParallel(
        nn.Sequential(nn.Linear(784, 512, device=dev), nn.ReLU(), nn.Linear(512, 10, device=dev))
    )
    opt = optim.Adam(model.parameters(), lr=1e-3)
    per = 128 // n
    rng = np.random.default_rng(r)
    x = ndl.Tensor(rng.standard_normal((per, 784)).astype(np.float32), device=dev)
    y = ndl.Tensor(rng.integers(0, 10, per), device=dev)
    loss_fn = nn.SoftmaxLoss()

    def step() -> None:
        opt.reset_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    steps = args.steps

    def run() -> None:
        for _ in range(steps):
            step()

    t = _median_time(run, 3, warmup=1)
    return [{"ranks": n, "global_batch": 128, "examples_per_s": steps * 128 / t}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["allreduce", "overlap", "throughput"])
    p.add_argument("--backend", default="cpp")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    dist.init()
    rows = {
        "allreduce": measure_allreduce,
        "overlap": measure_overlap,
        "throughput": measure_throughput,
    }[args.what](args)
    if dist.rank() == 0:
        keys = list(rows[0])
        print(f"{args.what}, {dist.world_size()} ranks, backend {args.backend}")
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for row in rows:
            cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
            print("| " + " | ".join(cells) + " |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
