"""``DistributedDataParallel``: average gradients across ranks, overlapped with backward.

How it works (the design of PyTorch's DDP, on needle's autograd):

* At wrap time every rank describes its model (parameter and buffer names, dtypes and
  shapes); ranks that differ raise ``ValueError`` on every rank, naming the first
  differing entry. Then rank 0's parameters and buffers are broadcast, so all ranks
  start identical.
* Parameters that require grad are put in *buckets* of at most ``bucket_cap_mb``
  megabytes (default 25), in reverse order of ``module.parameters()`` (the order in
  which backward usually produces their gradients).
* needle's backward assigns each leaf's ``.grad`` exactly once, when that leaf's
  gradient is complete. DDP gives its parameters a subclass whose ``grad`` setter tells
  DDP so (no change to autograd). When every parameter of a bucket has its gradient, the
  bucket is packed into one flat buffer and a non-blocking all-reduce starts
  (``MPI_Iallreduce`` / NCCL), while backward goes on with earlier layers. Buckets start
  in index order on every rank, so the ranks' collectives always match.
* When the last bucket has started, DDP waits for all of them and writes the averaged
  gradients (sum / world size) back into ``.grad``, so the optimizer reads averaged
  gradients and needs no change. A parameter that got no gradient on some rank counts
  as zero there; one that got none on any rank keeps ``grad = None``. If some
  parameter never gets a gradient on this rank (unused in this step), the first read of
  a synchronised parameter's ``.grad`` (by the optimizer) flushes the remaining buckets.
* One backward per forward: to accumulate over several micro-batches, run all but the
  last inside ``with ddp.no_sync():``.
* ``needle.compile`` cannot capture the gradient all-reduce yet: with more than one
  rank, a DDP step inside a capture raises ``CaptureError`` (rather than replay a step
  that skips the all-reduce).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..autograd import Tensor, compute_gradient_of_variables, is_grad_enabled
from ..backend_ndarray.ndarray import NDArray
from ..nn.module import Module, Parameter

DEFAULT_BUCKET_CAP_MB = 25.0


class _Bucket:
    def __init__(self, index: int, params: list[Parameter], coll: Any) -> None:
        self.index, self.params, self.coll = index, params, coll
        self.offsets: list[int] = []
        n = 0
        for p in params:
            self.offsets.append(n)
            n += p.size
        self.numel = n
        self.dtype = params[0].dtype
        # One indicator per parameter after the values: 1 where this rank has a gradient.
        self.buffer = coll.empty(n + len(params), self.dtype)
        self.pending = len(params)
        self.work: Any = None

    def pack(self) -> None:
        buf, n = self.buffer, self.numel
        for i, (p, off) in enumerate(zip(self.params, self.offsets)):
            g = p.__dict__.get("_grad")
            if g is None:
                buf[off : off + p.size] = 0
                buf[n + i] = 0
            else:
                buf[off : off + p.size] = self.coll.as_buffer(g.realize_cached_data())
                buf[n + i] = 1

    def unpack(self, world: int) -> None:
        buf, n = self.buffer, self.numel
        buf[:n] /= world
        flags = _host_list(buf[n:])
        for p, off, flag in zip(self.params, self.offsets, flags):
            if flag == 0:
                p.__dict__["_grad"] = None
                continue
            out, finish = self.coll.output(p.shape, p.dtype, p.device)
            out[...] = buf[off : off + p.size]
            p.__dict__["_grad"] = Tensor.make_const(finish())


def _host_list(x: Any) -> list[float]:
    get = getattr(x, "get", None)  # CuPy arrays copy to the host with .get()
    return [float(v) for v in (get() if callable(get) else x).tolist()]


class _Reducer:
    """The bookkeeping of one DDP wrapper (kept off the Module attribute walk)."""

    def __init__(self, params: list[tuple[str, Parameter]], coll: Any, cap_bytes: int) -> None:
        self.coll, self.names = coll, {id(p): n for n, p in params}
        self.buckets: list[_Bucket] = []
        self.bucket_of: dict[int, _Bucket] = {}
        current: list[Parameter] = []
        size = 0
        for _, p in reversed(params):
            nbytes = p.size * (8 if p.dtype == "float64" else 4)
            if current and (size + nbytes > cap_bytes or p.dtype != current[0].dtype):
                self._add(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            self._add(current)
        self.armed = False
        self.finishing = False
        self.next_launch = 0
        self.ready: set[int] = set()

    def _add(self, params: list[Parameter]) -> None:
        bucket = _Bucket(len(self.buckets), params, self.coll)
        self.buckets.append(bucket)
        for p in params:
            self.bucket_of[id(p)] = bucket

    def prepare(self) -> None:
        if self.armed:
            self.finish()
        for b in self.buckets:
            b.pending, b.work = len(b.params), None
        self.ready.clear()
        self.next_launch = 0
        self.armed = True

    def mark_ready(self, p: Parameter) -> None:
        if id(p) in self.ready:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self.names[id(p)]!r} received a "
                "gradient twice in one step (two backward passes per forward?). Run "
                "accumulation steps inside `with ddp.no_sync():`"
            )
        self.ready.add(id(p))
        bucket = self.bucket_of[id(p)]
        bucket.pending -= 1
        self._launch_ready()
        for b in self.buckets[: self.next_launch]:
            b.work.test()  # drive MPI progress of the buckets in flight
        if self.next_launch == len(self.buckets):
            self.finish()

    def _launch_ready(self, flush: bool = False) -> None:
        while self.next_launch < len(self.buckets):
            b = self.buckets[self.next_launch]
            if b.pending and not flush:
                return
            b.pack()
            b.work = self.coll.iallreduce(
                b.buffer, "sum", f"DDP gradient bucket {b.index} ({len(b.params)} parameters)"
            )
            self.next_launch += 1

    def finish(self) -> None:
        """Start what is left (missing gradients count as zero), wait, write back."""
        if not self.armed or self.finishing:
            return
        self.finishing = True
        try:
            self._launch_ready(flush=True)
            for b in self.buckets:
                b.work.wait()
                b.unpack(self.coll.size)
        finally:
            self.armed = False
            self.finishing = False


_HOOKED: dict[type, type] = {}
_AUTOGRAD_CODE = compute_gradient_of_variables.__code__


def _hooked_class(cls: type) -> type:
    """A subclass of ``cls`` whose ``grad`` attribute reports to the owning DDP reducer."""
    if cls in _HOOKED.values():  # already hooked (a model wrapped again)
        return cls
    sub = _HOOKED.get(cls)
    if sub is not None:
        return sub

    def get_grad(self: Any) -> Any:
        d = self.__dict__
        reducer = d.get("_ddp_reducer")
        if (
            reducer is not None
            and reducer.armed
            and not reducer.finishing
            and id(self) in reducer.ready
            # backward reads .grad just before accumulating into it: no flush there, so a
            # second gradient in one step reaches the setter and raises
            and sys._getframe(1).f_code is not _AUTOGRAD_CODE
        ):
            reducer.finish()
        return d.get("_grad")

    def set_grad(self: Any, value: Any) -> None:
        d = self.__dict__
        d["_grad"] = value
        reducer = d.get("_ddp_reducer")
        if value is not None and reducer is not None and reducer.armed and not reducer.finishing:
            reducer.mark_ready(self)

    sub = type(cls.__name__, (cls,), {"grad": property(get_grad, set_grad)})
    sub.__module__ = cls.__module__
    _HOOKED[cls] = sub
    return sub


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training; call it as you would call ``module``.

    Args:
        module: the model, built the same way on every rank (checked here).
        bucket_cap_mb: the size of a gradient bucket in megabytes (10**6 bytes;
            default 25): smaller buckets start their all-reduce earlier in backward,
            larger ones make fewer, bigger messages.
        broadcast_buffers: also copy rank 0's buffers (BatchNorm running statistics)
            at wrap time.

    Raises:
        ValueError: ranks built different models (names the first differing parameter),
            or the parameters are on more than one device.
    """

    def __init__(
        self,
        module: Module,
        bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB,
        broadcast_buffers: bool = True,
    ) -> None:
        from . import _group

        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: expected a needle Module, got {type(module).__name__}"
            )
        if not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}"
            )
        self.module = module
        self.training = module.training
        named = module.named_parameters()
        devices = {p.device for _, p in named}
        if len(devices) > 1:
            raise ValueError(
                "DistributedDataParallel: parameters live on several devices "
                f"({', '.join(sorted(map(str, devices)))}); put the model on one device"
            )
        group = _group()
        device = next(iter(devices)) if devices else None
        coll = group.for_device(device) if device is not None else group.host
        if hasattr(coll, "dup"):  # its own communicator: buckets never interleave with
            coll = coll.dup()  # other collectives (SyncBatchNorm's, the user's)
        self._coll = coll
        self._check_same_model(named, module.named_buffers(), group.host)
        self._broadcast_state(named, module.named_buffers() if broadcast_buffers else [], coll)
        trainable = [(n, p) for n, p in named if p.requires_grad]
        self._reducer = _Reducer(trainable, coll, int(bucket_cap_mb * 1e6))
        self._sync = True
        for _, p in trainable:
            grad = p.__dict__.pop("grad", p.__dict__.get("_grad"))
            p.__class__ = _hooked_class(type(p))
            p.__dict__["_grad"] = grad
            p.__dict__["_ddp_reducer"] = self._reducer

    @property
    def bucket_sizes(self) -> list[int]:
        """Number of parameters in each gradient bucket, in the order they are reduced."""
        return [len(b.params) for b in self._reducer.buckets]

    @staticmethod
    def _check_same_model(named: Any, buffers: Any, host: Any) -> None:
        mine = [(n, p.dtype, tuple(p.shape)) for n, p in named]
        mine += [("buffer " + n, b.dtype, tuple(b.shape)) for n, b in buffers]
        everyone = host.allgather_object(mine)
        ref = everyone[0]
        for r, theirs in enumerate(everyone[1:], start=1):
            if theirs == ref:
                continue
            for i in range(max(len(ref), len(theirs))):
                a = ref[i] if i < len(ref) else None
                b = theirs[i] if i < len(theirs) else None
                if a != b:
                    name = (a or b)[0]  # type: ignore[index]
                    raise ValueError(
                        "DistributedDataParallel: ranks built different models; first "
                        f"differing parameter {name!r}: rank 0 has {_describe(a)}, "
                        f"rank {r} has {_describe(b)}"
                    )

    @staticmethod
    def _broadcast_state(named: Any, buffers: Any, coll: Any) -> None:
        if coll.size == 1:
            return
        for _, t in [*named, *buffers]:
            a = t.realize_cached_data()
            out, finish = coll.output(a.shape, a.dtype, a.device)
            out[...] = coll.as_buffer(a)
            coll.broadcast(out, 0)
            new: NDArray = finish()
            t.cached_data = new

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._sync and self.module.training and is_grad_enabled():
            from . import refuse_capture

            # one process under capture: nothing to average, so leave the step alone
            if not refuse_capture("DistributedDataParallel's gradient all-reduce"):
                self._reducer.prepare()
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True) -> Module:
        super().train(mode)
        return self

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forward/backward passes inside this block accumulate gradients locally only."""
        before, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = before

    def synchronize(self) -> None:
        """Finish the gradient all-reduce of this step now (the optimizer does it anyway)."""
        self._reducer.finish()

    def state_dict(self) -> dict[str, Tensor]:
        """The wrapped module's state (no ``module.`` prefix), to load into a bare model."""
        return self.module.state_dict()

    def load_state_dict(self, state: Any, strict: bool = True) -> None:
        self.module.load_state_dict(state, strict=strict)


def _describe(entry: Any) -> str:
    if entry is None:
        return "no such parameter"
    return f"{entry[1]}{entry[2]}"
