"""needle.distributed: data-parallel training across processes, on MPI (and NCCL for CUDA).

Run a script under an MPI launcher (``mpiexec -n 2 python train.py``); without one it is
a single process of world size 1 and every collective is the identity, so the same
script runs both ways.

* :func:`init` reads rank and world size from the launcher (MPI through mpi4py); it is
  called on first use if the script does not call it. ``timeout`` (or the environment
  variable ``NEEDLE_DIST_TIMEOUT``, seconds, default 300) bounds every collective's wait.
* :func:`rank`, :func:`world_size`, :func:`local_rank`, :func:`barrier`.
* :func:`all_reduce`, :func:`broadcast`, :func:`all_gather` on Tensors. Tensors of the
  ``numpy`` and ``cpp`` backends are sent from their host memory directly; tensors of
  other backends are staged through the host, except ``cuda`` tensors, which go through
  NCCL (``cupy.cuda.nccl``) when CuPy has it.
* :class:`DistributedDataParallel`, :class:`~needle.data.DistributedSampler`,
  :class:`~needle.nn.SyncBatchNorm`.

Under a launcher with more than one rank, an exception that nobody catches on any rank
calls ``MPI_Abort``, so every rank ends with an error instead of waiting for the dead one.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

from ..autograd import Tensor, TensorOp, no_grad
from ..backend_ndarray.ndarray import NDArray
from ._collective import (
    Collective,
    DistributedTimeoutError,
    LocalCollective,
    MPICollective,
    check_op,
    host_view,
)

_LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
DEFAULT_TIMEOUT = 300.0


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (``mpiexec``/``mpirun``/``srun``) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


class _Group:
    def __init__(self, host: Collective, cuda_transport: str) -> None:
        self.host = host
        self.cuda_transport = cuda_transport  # "nccl", "mpi" (staged) or "auto"
        self._nccl: Collective | None = None
        self._nccl_failed: str | None = None
        self.local_rank = 0
        if isinstance(host, MPICollective):
            MPI = host.MPI
            self.local_rank = host.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()

    def for_device(self, device: Any) -> Collective:
        """The transport for tensors on ``device``."""
        if device.name != "cuda" or self.cuda_transport == "mpi" or self.host.size == 1:
            return self.host
        if self._nccl is None and self._nccl_failed is None:
            try:
                from ._nccl import NCCLCollective

                self._nccl = NCCLCollective(self.host, device.index)
            except RuntimeError as exc:
                if self.cuda_transport == "nccl":
                    raise
                self._nccl_failed = str(exc)
        return self._nccl if self._nccl is not None else self.host


_GROUP: _Group | None = None


def init(
    backend: str = "auto", timeout: float | None = None, abort_on_exception: bool = True
) -> None:
    """Join the job. Safe to call more than once (later calls change nothing).

    Args:
        backend: ``"auto"`` (MPI under a launcher, else a single process; CUDA tensors
            use NCCL when CuPy has it), ``"mpi"`` (MPI even without a launcher; CUDA
            tensors staged through the host), ``"nccl"`` (MPI for host tensors, NCCL
            required for CUDA tensors) or ``"local"`` (single process).
        timeout: seconds any collective may wait before raising
            :class:`DistributedTimeoutError` (default ``NEEDLE_DIST_TIMEOUT`` or 300).
        abort_on_exception: with more than one rank, an uncaught exception on any rank
            aborts the whole job (``MPI_Abort``) after printing it.
    """
    global _GROUP
    if backend not in ("auto", "mpi", "nccl", "local"):
        raise ValueError(
            f"needle.distributed.init: backend must be 'auto', 'mpi', 'nccl' or 'local'; "
            f"got {backend!r}"
        )
    if timeout is None:
        raw = os.environ.get("NEEDLE_DIST_TIMEOUT", "")
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            raise ValueError(
                f"NEEDLE_DIST_TIMEOUT must be a number of seconds, got {raw!r}"
            ) from None
    if timeout <= 0:
        raise ValueError(f"needle.distributed.init: timeout must be > 0 seconds, got {timeout}")
    if _GROUP is not None:
        return
    use_mpi = backend in ("mpi", "nccl") or (backend == "auto" and launched_by_mpi())
    host: Collective
    if use_mpi:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise RuntimeError(
                "needle.distributed: this process was started by an MPI launcher (or "
                f"backend={backend!r} was asked for) but mpi4py cannot be imported ({exc}); "
                "install it with `pip install mpi4py mpich`"
            ) from None
        host = MPICollective(MPI.COMM_WORLD, timeout)
    else:
        host = LocalCollective()
        host.timeout = timeout
    _GROUP = _Group(host, {"mpi": "mpi", "nccl": "nccl"}.get(backend, "auto"))
    if abort_on_exception and host.size > 1:
        _install_abort_hook()


def _install_abort_hook() -> None:
    previous = sys.excepthook

    def hook(kind: Any, value: Any, tb: Any) -> None:
        group = _GROUP
        who = f"rank {group.host.rank} of {group.host.size}" if group else "a rank"
        text = "".join(traceback.format_exception(kind, value, tb))
        text = f"needle.distributed: {who} raised; aborting every rank\n{text}"
        try:
            sys.stderr.flush()
            os.write(2, text.encode(errors="replace"))
        except OSError:
            pass
        if group is not None and group.host.size > 1:
            time.sleep(0.5)  # let the launcher forward the message before the abort
            group.host.abort(1)
        previous(kind, value, tb)

    sys.excepthook = hook


def _group() -> _Group:
    if _GROUP is None:
        init()
    assert _GROUP is not None
    return _GROUP


def is_initialized() -> bool:
    return _GROUP is not None


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1."""
    return _group().host.rank


def world_size() -> int:
    """The number of processes in the job (1 without a launcher)."""
    return _group().host.size


def local_rank() -> int:
    """This process's rank among the ranks on its machine (to pick a GPU: ``cuda:i``)."""
    return _group().local_rank


def backend() -> str:
    """The host transport: ``"mpi"`` or ``"local"``."""
    return _group().host.name


def barrier() -> None:
    """Wait until every rank has called barrier (bounded by the timeout)."""
    _group().host.barrier()


def abort(code: int = 1) -> None:
    """End every rank of the job now (``MPI_Abort``); a single process just exits."""
    _group().host.abort(code)


def refuse_capture(what: str) -> bool:
    """Inside ``needle.compile``'s capture with several ranks, raise (a replay would skip
    the collective); return whether a capture (of a single process) is going on."""
    try:
        from ..backend_ndarray.capture import CaptureError, is_capturing
    except ImportError:  # pragma: no cover - a needle without capture
        return False
    if not is_capturing():
        return False
    if world_size() > 1:
        raise CaptureError(
            f"needle.distributed: {what} cannot be captured by needle.compile yet (a "
            "replay would not repeat the collective); run distributed steps eagerly"
        )
    return True


def _check_tensor(x: Any, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a needle Tensor, got {type(x).__name__}")
    return x


class AllReduce(TensorOp):
    """Element-wise reduction of one tensor across ranks; every rank gets the result.

    Differentiable for ``sum`` and ``mean``: the adjoint is the same reduction of the
    ranks' adjoints (each rank's loss depends on every rank's input).
    """

    def __init__(self, op: str) -> None:
        self.op = op

    def compute(self, a: NDArray) -> NDArray:
        coll = _group().for_device(a.device)
        if coll.size == 1:
            return a.copy()
        refuse_capture("all_reduce")
        out, finish = coll.output(a.shape, a.dtype, a.device)
        send = coll.as_buffer(a)  # a view of a's memory where possible: no copy
        coll.allreduce(out, self.op, f"all_reduce({self.op}) of {a.dtype}{a.shape}", send)
        return finish()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        if self.op not in ("sum", "mean"):
            raise RuntimeError(f"all_reduce: op {self.op!r} has no gradient (only sum, mean)")
        return AllReduce(self.op)(out_grad)


def all_reduce(x: Tensor, op: str = "sum") -> Tensor:
    """A new tensor: ``op`` (``sum``, ``mean``, ``max`` or ``min``) of ``x`` over all ranks.

    Every rank must call it with the same shape and dtype. ``sum``/``mean`` are
    differentiable; ``max``/``min`` return a constant.
    """
    _check_tensor(x, "all_reduce")
    check_op(op, "all_reduce")
    if op in ("max", "min"):
        with no_grad():
            return AllReduce(op)(x).detach()
    return AllReduce(op)(x)


def broadcast(x: Tensor, src: int = 0) -> Tensor:
    """A new constant tensor holding rank ``src``'s ``x`` on every rank."""
    _check_tensor(x, "broadcast")
    coll = _group().for_device(x.device)
    if not isinstance(src, int) or not 0 <= src < coll.size:
        raise ValueError(f"broadcast: src must be a rank in 0..{coll.size - 1}, got {src!r}")
    a = x.realize_cached_data()
    out, finish = coll.output(a.shape, a.dtype, a.device)
    out[...] = coll.as_buffer(a)
    coll.broadcast(out, src)
    return Tensor.make_const(finish())


def all_gather(x: Tensor) -> Tensor:
    """A new constant tensor of shape ``(world_size, *x.shape)``: row ``r`` is rank r's ``x``."""
    _check_tensor(x, "all_gather")
    coll = _group().for_device(x.device)
    a = x.realize_cached_data()
    out, finish = coll.output((coll.size, *a.shape), a.dtype, a.device)
    coll.allgather(coll.as_buffer(a), out)
    return Tensor.make_const(finish())


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (small metadata, not tensors)."""
    return _group().host.allgather_object(obj)


from .ddp import DistributedDataParallel  # noqa: E402

__all__ = [
    "AllReduce",
    "Collective",
    "DistributedDataParallel",
    "DistributedTimeoutError",
    "abort",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "backend",
    "barrier",
    "broadcast",
    "host_view",
    "init",
    "is_initialized",
    "launched_by_mpi",
    "local_rank",
    "rank",
    "world_size",
]
