"""The NCCL transport: its glue against a fake ``cupy.cuda.nccl``, and on a real GPU."""

from __future__ import annotations

import sys
import types

import needle as ndl
import numpy as np
import pytest
from needle.distributed._collective import LocalCollective


class FakeDeviceArray(np.ndarray):
    """A NumPy array that answers ``.data.ptr`` like a CuPy array."""

    @property
    def data(self):  # type: ignore[override]
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])


def make_fake_cupy(calls: list):
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.available = True
    nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64 = 7, 8
    nccl.NCCL_SUM, nccl.NCCL_MAX, nccl.NCCL_MIN = 0, 2, 3
    nccl.get_unique_id = lambda: (1, 2, 3)

    class Comm:
        def __init__(self, ndev, uid, rank):
            calls.append(("init", ndev, uid, rank))

        def allReduce(self, send, recv, count, dtype, op, stream):
            calls.append(("allReduce", send, recv, count, dtype, op, stream))

        def bcast(self, buf, count, dtype, root, stream):
            calls.append(("bcast", buf, count, dtype, root, stream))

        def allGather(self, send, recv, count, dtype, stream):
            calls.append(("allGather", send, recv, count, dtype, stream))

        def abort(self):
            calls.append(("abort",))

    nccl.NcclCommunicator = Comm

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Event:
        def __init__(self, disable_timing=False):
            self.done = False

        def record(self, stream):
            self.done = True

    stream = types.SimpleNamespace(ptr=4242)
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl, cuda.Device, cuda.Event = nccl, Device, Event
    cuda.get_current_stream = lambda: stream
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    cupy.empty = lambda n, dtype: np.empty(n, dtype=dtype).view(FakeDeviceArray)
    return cupy, cuda, nccl


def test_nccl_glue_with_a_fake_cupy(monkeypatch):
    calls: list = []
    cupy, cuda, nccl = make_fake_cupy(calls)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    from needle.distributed._nccl import NCCLCollective

    coll = NCCLCollective(LocalCollective(), device_index=0)
    assert calls[0] == ("init", 1, (1, 2, 3), 0)
    buf = coll.empty(10, "float32")
    buf[...] = 3.0
    work = coll.iallreduce(buf, "mean")
    work.wait()
    _, send, recv, count, dtype, op, stream = calls[1]
    assert (send, recv, count, dtype, op, stream) == (buf.data.ptr, buf.data.ptr, 10, 7, 0, 4242)
    np.testing.assert_array_equal(buf, np.full(10, 3.0))  # mean over 1 rank
    coll.broadcast(coll.empty(4, "float64"), root=0)
    assert calls[2][2:] == (4, 8, 0, 4242)
    send, recv = coll.empty(3, "float32"), coll.empty(3, "float32")
    coll.allgather(send, recv)
    assert calls[3][3:] == (3, 7, 4242)
    with pytest.raises(ValueError, match="root 1 out of range"):
        coll.broadcast(buf, root=1)
    with pytest.raises(ValueError, match="NCCL communicator of rank 0 is on cuda:0"):
        coll.as_buffer(ndl.Tensor([1.0], device=ndl.device("numpy")).realize_cached_data())


def _usable_cuda() -> bool:
    try:
        return bool(ndl.cuda().enabled())
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _usable_cuda(), reason="needs a usable CUDA device (and CuPy with NCCL)")
def test_nccl_on_a_gpu():
    """One rank, a real NCCL communicator: all-reduce, broadcast, all-gather, DDP buckets."""
    from needle.distributed._nccl import NCCLCollective

    coll = NCCLCollective(LocalCollective(), device_index=0)
    dev = ndl.device("cuda")
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), device=dev).realize_cached_data()
    out, finish = coll.output(x.shape, x.dtype, dev)
    out[...] = coll.as_buffer(x)
    coll.iallreduce(out, "sum").wait()
    np.testing.assert_array_equal(finish().numpy(), np.arange(6.0).reshape(2, 3))
    recv, finish = coll.output((1, 2, 3), x.dtype, dev)
    coll.allgather(coll.as_buffer(x), recv)
    np.testing.assert_array_equal(finish().numpy()[0], np.arange(6.0).reshape(2, 3))
    coll.broadcast(out, 0)
