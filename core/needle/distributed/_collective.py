"""The backend-neutral collective interface and its single-process and MPI implementations.

A :class:`Collective` moves *flat buffers* of its own kind: NumPy arrays for MPI (host
memory), CuPy arrays for NCCL. It also knows how to view an ``NDArray`` as such a buffer
(:meth:`Collective.as_buffer`) and how to make an ``NDArray`` to receive a result
(:meth:`Collective.output`), so the Tensor-level functions in ``needle.distributed`` and
``DistributedDataParallel`` never look at a backend's handles themselves.

Every wait is bounded: a collective that does not complete within the timeout raises
:class:`DistributedTimeoutError` naming the operation, the rank and the time waited.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend_ndarray.ndarray import NDArray

OPS = ("sum", "mean", "max", "min")


class DistributedTimeoutError(RuntimeError):
    """A collective did not complete in time (a rank died, hangs or took another path)."""


def check_op(op: str, what: str) -> str:
    if op not in OPS:
        raise ValueError(f"{what}: op must be one of {', '.join(OPS)}; got {op!r}")
    return op


# --- host views of NDArrays -------------------------------------------------------------
_CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double}


def host_view(arr: NDArray) -> np.ndarray | None:
    """A zero-copy NumPy view of ``arr`` when its memory is host memory and compact.

    The NumPy backend keeps a NumPy array in its handle; the C++ backend's handle exposes
    the host address of its buffer (``ptr``). Any other backend (CUDA, third parties)
    returns ``None`` and is staged through the host with ``numpy()``/``NDArray(...)``.
    The view does not keep the buffer alive: keep ``arr`` referenced while it is used.
    """
    if not arr.is_compact():
        return None
    handle, n, off = arr._handle, arr.size, arr._offset
    inner = getattr(handle, "array", None)
    if isinstance(inner, np.ndarray):
        return inner[off : off + n].reshape(arr.shape)
    if arr.device.name == "cpp" and hasattr(handle, "ptr") and arr.dtype in _CTYPES:
        if n == 0:
            return np.empty(arr.shape, dtype=arr.dtype)
        ctype = _CTYPES[arr.dtype]
        raw = (ctype * n).from_address(int(handle.ptr) + off * ctypes.sizeof(ctype))
        return np.ctypeslib.as_array(raw).reshape(arr.shape)
    return None


# --- pending operations -----------------------------------------------------------------
def _timeout_message(what: str, rank: int, timeout: float) -> str:
    return (
        f"needle.distributed: {what} on rank {rank} did not complete within {timeout:g} s "
        "(another rank died, hangs, or called a different collective); set "
        "NEEDLE_DIST_TIMEOUT or init(timeout=...) to change the limit"
    )


class Watchdog:
    """Ends the job when a blocking MPI wait outlives its deadline.

    A blocking ``MPI_Wait`` is MPICH's own progress loop (it yields the CPU when the
    machine is oversubscribed; a Python polling loop was 3-10x slower for 1-4 MB
    messages on a loaded 2-core machine), but it cannot be interrupted. So a daemon
    thread (mpi4py releases the GIL in ``Wait``) watches the deadline and, when it
    passes, prints a ``DistributedTimeoutError`` message and calls ``MPI_Abort``.
    """

    def __init__(self, abort: Callable[[int], None]) -> None:
        self._abort = abort
        self._lock = threading.Lock()
        self._pending: tuple[float, str] | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            with self._lock:
                pending = self._pending
            if pending is not None and time.monotonic() > pending[0]:
                text = f"{DistributedTimeoutError.__name__}: {pending[1]}\n"
                try:
                    sys.stderr.flush()
                    os.write(2, text.encode(errors="replace"))
                except OSError:
                    pass
                time.sleep(0.5)  # let the launcher forward the message
                self._abort(1)
                return

    def wait(self, req: Any, message: str, timeout: float) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="needle-dist-watchdog")
            self._thread.daemon = True
            self._thread.start()
        with self._lock:
            self._pending = (time.monotonic() + timeout, message)
        try:
            req.Wait()
        finally:
            with self._lock:
                self._pending = None


class Work:
    """A collective in flight: ``test()`` polls it, ``wait()`` blocks (bounded).

    Bounded means: a :class:`Work` made with ``blocking_wait`` (MPI) waits in MPI and a
    watchdog aborts the job past the timeout; otherwise (NCCL events, tests) it polls
    ``test`` and raises :class:`DistributedTimeoutError`.
    """

    def __init__(
        self,
        test: Callable[[], bool],
        what: str,
        rank: int,
        timeout: float,
        blocking_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        self._test, self.what, self.rank, self.timeout = test, what, rank, timeout
        self._blocking_wait = blocking_wait
        self.done = False

    def test(self) -> bool:
        if not self.done:
            self.done = bool(self._test())
        return self.done

    def wait(self) -> None:
        if self.test():
            return
        message = _timeout_message(self.what, self.rank, self.timeout)
        if self._blocking_wait is not None:
            self._blocking_wait(message, self.timeout)
            if not self.test():  # pragma: no cover - Wait returned, so it is complete
                raise RuntimeError(f"needle.distributed: {self.what}: wait returned early")
            return
        start = time.monotonic()
        deadline = start + self.timeout
        polls = 0
        while not self.test():
            polls += 1
            if polls & 15:
                continue
            now = time.monotonic()
            if now > deadline:
                raise DistributedTimeoutError(message)
            time.sleep(0.0002 if now - start > 0.01 else 0)


class DoneWork(Work):
    def __init__(self) -> None:
        super().__init__(lambda: True, "", 0, 0.0)
        self.done = True


# --- the interface ----------------------------------------------------------------------
class Collective:
    """What a transport provides. Buffers are flat, contiguous, of the transport's kind."""

    name = "abstract"
    rank = 0
    size = 1
    timeout = 600.0

    # buffers
    def as_buffer(self, arr: NDArray) -> Any:
        """``arr``'s elements as a read-only flat buffer (a view when possible)."""
        raise NotImplementedError

    def output(self, shape: tuple[int, ...], dtype: str, device: Any) -> tuple[Any, Any]:
        """(flat buffer to receive into, function returning the NDArray once filled)."""
        raise NotImplementedError

    def empty(self, n: int, dtype: str) -> Any:
        """A new flat buffer of ``n`` elements (bucket storage)."""
        raise NotImplementedError

    # collectives on flat buffers (in place unless noted)
    def iallreduce(self, buf: Any, op: str, what: str = "all_reduce", send: Any = None) -> Work:
        """Start reducing into ``buf``: in place, or from ``send`` when given."""
        raise NotImplementedError

    def allreduce(self, buf: Any, op: str, what: str = "all_reduce", send: Any = None) -> None:
        self.iallreduce(buf, op, what, send).wait()

    def broadcast(self, buf: Any, root: int) -> None:
        raise NotImplementedError

    def allgather(self, send: Any, recv: Any) -> None:
        """``recv`` (``size * len(send)`` elements) gets every rank's ``send``, rank order."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def allgather_object(self, obj: Any) -> list[Any]:
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)


class HostCollective(Collective):
    """Shared buffer handling of transports that move host (NumPy) memory."""

    def as_buffer(self, arr: NDArray) -> np.ndarray:
        view = host_view(arr)
        return (arr.numpy() if view is None else view).reshape(-1)

    def output(self, shape: tuple[int, ...], dtype: str, device: Any) -> tuple[Any, Any]:
        arr = NDArray.make(tuple(shape), device=device, dtype=dtype)
        view = host_view(arr)
        if view is not None:
            return view.reshape(-1), lambda: arr
        staged = np.empty(int(np.prod(shape)), dtype=dtype)
        return staged, lambda: NDArray(staged.reshape(shape), device=device, dtype=dtype)

    def empty(self, n: int, dtype: str) -> np.ndarray:
        return np.empty(n, dtype=dtype)


class LocalCollective(HostCollective):
    """World size 1, no launcher: every collective is the identity (no MPI needed)."""

    name = "local"

    def iallreduce(self, buf: Any, op: str, what: str = "all_reduce", send: Any = None) -> Work:
        if send is not None:
            buf[...] = send
        return DoneWork()

    def broadcast(self, buf: Any, root: int) -> None:
        if root != 0:
            raise ValueError(f"broadcast: root {root} out of range for world size 1")

    def allgather(self, send: Any, recv: Any) -> None:
        recv[...] = send

    def barrier(self) -> None:
        pass

    def allgather_object(self, obj: Any) -> list[Any]:
        return [obj]


class MPICollective(HostCollective):
    """MPI through mpi4py, on host buffers, with bounded waits."""

    name = "mpi"

    def __init__(self, comm: Any, timeout: float) -> None:
        from mpi4py import MPI

        self.MPI, self.comm, self.timeout = MPI, comm, timeout
        self.watchdog = Watchdog(self.abort)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._ops = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def dup(self) -> MPICollective:
        """A collective on a duplicated communicator (its own ordering of operations)."""
        return MPICollective(self.comm.Dup(), self.timeout)

    def _work(self, req: Any, what: str, after: Callable[[], None] | None = None) -> Work:
        finished = [False]

        def test() -> bool:
            if not finished[0]:
                if not req.Test():
                    return False
                finished[0] = True
            if after is not None:
                after()
            return True

        def blocking_wait(message: str, timeout: float) -> None:
            self.watchdog.wait(req, message, timeout)
            finished[0] = True

        return Work(test, what, self.rank, self.timeout, blocking_wait)

    def iallreduce(self, buf: Any, op: str, what: str = "all_reduce", send: Any = None) -> Work:
        src = self.MPI.IN_PLACE if send is None else send
        req = self.comm.Iallreduce(src, buf, self._ops[op])
        after = None
        if op == "mean":

            def after() -> None:
                buf[...] /= self.size

        return self._work(req, f"{what} of {buf.nbytes} bytes", after)

    def broadcast(self, buf: Any, root: int) -> None:
        if not 0 <= root < self.size:
            raise ValueError(f"broadcast: root {root} out of range for world size {self.size}")
        self._work(self.comm.Ibcast(buf, root=root), f"broadcast of {buf.nbytes} bytes").wait()

    def allgather(self, send: Any, recv: Any) -> None:
        req = self.comm.Iallgather(send, recv)
        self._work(req, f"all_gather of {send.nbytes} bytes").wait()

    def barrier(self) -> None:
        self._work(self.comm.Ibarrier(), "barrier").wait()

    def allgather_object(self, obj: Any) -> list[Any]:
        # Sizes first (bounded wait), then the pickled payloads.
        import pickle

        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        sizes = np.zeros(self.size, dtype=np.int64)
        self.allgather(np.array([data.size], dtype=np.int64), sizes)
        recv = np.empty(int(sizes.sum()), dtype=np.uint8)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        req = self.comm.Iallgatherv(data, [recv, sizes, offsets, self.MPI.BYTE])
        self._work(req, "all_gather of Python objects").wait()
        return [
            pickle.loads(recv[o : o + s].tobytes())
            for o, s in zip(offsets.tolist(), sizes.tolist())
        ]

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)
