"""NCCL collectives for tensors on the ``cuda`` backend, through ``cupy.cuda.nccl``.

CuPy is imported when an :class:`NCCLCollective` is made (never at ``import needle``), so
machines without CuPy or a GPU import needle.distributed fine. The communicator's unique
id travels from rank 0 over the host (MPI) collective, as NCCL's own examples do. Buffers
are the flat CuPy arrays that the cuda backend keeps in its handles (``handle.array``);
operations are queued on CuPy's current stream, the stream the backend's kernels use, and
a CUDA event recorded after each one tells when it is done (bounded waits, as for MPI).
"""

from __future__ import annotations

from typing import Any

from ..backend_ndarray.ndarray import NDArray
from ._collective import Collective, Work


def _cupy() -> Any:
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "needle.distributed: the NCCL transport needs CuPy with NCCL "
            f"(pip install cupy-cuda12x); importing it failed: {exc}"
        ) from None
    return cupy, nccl


class NCCLCollective(Collective):
    """One NCCL communicator over all ranks, each rank on its own CUDA device."""

    name = "nccl"

    def __init__(self, host: Collective, device_index: int) -> None:
        cupy, nccl = _cupy()
        if not nccl.available:
            raise RuntimeError("needle.distributed: this CuPy build has no NCCL support")
        self.cupy, self.nccl, self.host = cupy, nccl, host
        self.rank, self.size, self.timeout = host.rank, host.size, host.timeout
        self.device_index = device_index
        uid = nccl.get_unique_id() if host.rank == 0 else None
        uid = host.allgather_object(uid)[0]
        with cupy.cuda.Device(device_index):
            self.comm = nccl.NcclCommunicator(host.size, uid, host.rank)
        self._dtypes = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        self._ops = {
            "sum": nccl.NCCL_SUM,
            "mean": nccl.NCCL_SUM,
            "max": nccl.NCCL_MAX,
            "min": nccl.NCCL_MIN,
        }

    # --- buffers ---------------------------------------------------------------------
    def _check_device(self, arr: NDArray, what: str) -> None:
        if arr.device.name != "cuda" or arr.device.index != self.device_index:
            raise ValueError(
                f"{what}: the NCCL communicator of rank {self.rank} is on cuda:"
                f"{self.device_index}; got a tensor on {arr.device}"
            )

    def as_buffer(self, arr: NDArray) -> Any:
        self._check_device(arr, "as_buffer")
        arr = arr.compact()
        return arr._handle.array[arr._offset : arr._offset + arr.size]

    def output(self, shape: tuple[int, ...], dtype: str, device: Any) -> tuple[Any, Any]:
        arr = NDArray.make(tuple(shape), device=device, dtype=dtype)
        return arr._handle.array[: arr.size], lambda: arr

    def empty(self, n: int, dtype: str) -> Any:
        with self.cupy.cuda.Device(self.device_index):
            return self.cupy.empty(n, dtype=dtype)

    # --- collectives -----------------------------------------------------------------
    def _dtype(self, buf: Any) -> Any:
        name = buf.dtype.name
        if name not in self._dtypes:
            raise TypeError(f"needle.distributed (nccl): unsupported dtype {name}")
        return self._dtypes[name]

    def _stream(self) -> Any:
        return self.cupy.cuda.get_current_stream()

    def _work(self, what: str, after: Any = None) -> Work:
        with self.cupy.cuda.Device(self.device_index):
            event = self.cupy.cuda.Event(disable_timing=True)
            event.record(self._stream())

        def test() -> bool:
            if not event.done:
                return False
            if after is not None:
                after()
            return True

        return Work(test, what, self.rank, self.timeout)

    def iallreduce(self, buf: Any, op: str, what: str = "all_reduce", send: Any = None) -> Work:
        src = buf if send is None else send
        with self.cupy.cuda.Device(self.device_index):
            stream = self._stream()
            self.comm.allReduce(
                src.data.ptr, buf.data.ptr, buf.size, self._dtype(buf), self._ops[op], stream.ptr
            )
            if op == "mean":
                buf /= self.size  # queued on the same stream, after the reduction
        return self._work(f"{what} of {buf.nbytes} bytes (nccl)")

    def broadcast(self, buf: Any, root: int) -> None:
        if not 0 <= root < self.size:
            raise ValueError(f"broadcast: root {root} out of range for world size {self.size}")
        with self.cupy.cuda.Device(self.device_index):
            self.comm.bcast(buf.data.ptr, buf.size, self._dtype(buf), root, self._stream().ptr)
        self._work(f"broadcast of {buf.nbytes} bytes (nccl)").wait()

    def allgather(self, send: Any, recv: Any) -> None:
        with self.cupy.cuda.Device(self.device_index):
            self.comm.allGather(
                send.data.ptr, recv.data.ptr, send.size, self._dtype(send), self._stream().ptr
            )
        self._work(f"all_gather of {send.nbytes} bytes (nccl)").wait()

    def barrier(self) -> None:
        self.host.barrier()

    def allgather_object(self, obj: Any) -> list[Any]:
        return self.host.allgather_object(obj)

    def abort(self, code: int = 1) -> None:
        try:
            self.comm.abort()
        finally:
            self.host.abort(code)
