"""``needle.compile`` (this module is ``needle.compiled``): capture a step, replay its kernels.

::

    model, opt = ndl.models.MLP(784, (100,), 10), ndl.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = ndl.nn.SoftmaxLoss()

    @ndl.compile(state=(model, opt))
    def step(x, y):
        opt.reset_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for x, y in loader:
        loss = step(x, y)          # call 1 eager, call 2 captured, then replayed

How it works (details in docs/performance.md):

* **Warm-up, capture, replay.** The first call for a given signature runs eagerly (it
  creates optimizer state and caches). The second runs eagerly while every kernel call
  is recorded (:mod:`needle.backend_ndarray.capture`). Later calls copy the inputs into
  the captured input buffers and replay the recorded kernels: no Tensor, no autograd
  graph, no op dispatch. Replays and eager steps give bit-identical results.
* **Signature and guards.** A signature is the shapes, dtypes, devices and
  ``requires_grad`` of the Tensor arguments, the values of the other arguments, the
  training flags of the modules in ``state`` and the optimizers' fixed hyper-parameters.
  A new signature captures anew; at most ``cache_size`` (default 8) programs are kept,
  the least recently used dropped first. Before each replay the state is checked: a
  parameter, buffer or optimizer slot that was replaced from outside since the capture
  (``load_state_dict``, assignment) makes the step capture again.
* **State.** ``state`` lists the modules and optimizers the step updates. Their tensors
  (parameters, buffers such as BatchNorm's running statistics, optimizer slots,
  gradients) are updated in place by a replay, so the Python objects stay valid.
* **What refuses.** Reading device data on the host inside the step (``.numpy()``,
  ``.item()``, a Python ``if`` on a tensor value) raises :class:`CaptureError` naming the
  op and the line; so does a random draw that does not reach the device unchanged.
  Dropout masks are fine: a replay draws them again from NumPy's global generator, in
  the same order as an eager step, so eager and replayed training agree bit for bit.
  Learning-rate changes between steps are fine (optimizers pass them through
  :func:`~needle.backend_ndarray.capture.host_step`).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .autograd import Tensor
from .backend_ndarray import NDArray
from .backend_ndarray.capture import CaptureError, Program, Recorder
from .backend_ndarray.capture import handles_of as _handles_of
from .nn.module import Module, Parameter
from .optim import Optimizer

__all__ = ["CaptureError", "CompiledStep", "compile"]

# A place a tensor of the state lives: (holder object, attribute or key, kind).
_Where = tuple[Any, Any, str]


def _state_slots(state: Iterable[Any]) -> list[_Where]:
    """Every place that holds a tensor the step may replace: each parameter and buffer
    itself (``p.data = ...`` swaps its data), module attributes holding tensors (a
    buffer replaced by a new tensor), parameters' ``grad`` and optimizer slots."""
    slots: list[_Where] = []
    seen: set[int] = set()

    def params(ps: Iterable[Tensor]) -> None:
        for p in ps:
            if id(p) not in seen:
                seen.add(id(p))
                slots.append((p, None, "self"))
                slots.append((p, "grad", "attr"))

    for obj in state:
        if isinstance(obj, Module):
            params(obj.parameters())
            for m in obj.modules():
                for name, value in vars(m).items():
                    if isinstance(value, Tensor) and not isinstance(value, Parameter):
                        slots.append((m, name, "attr"))
        elif isinstance(obj, Optimizer):
            params(obj.params)
            for values in obj._slots.values():
                for index in list(values):
                    slots.append((values, index, "item"))
        elif isinstance(obj, Tensor):
            params([obj])
        else:
            raise TypeError(
                f"needle.compile: state must hold Modules, Optimizers or Tensors, "
                f"got {type(obj).__name__}"
            )
    return slots


def _read(where: _Where) -> Any:
    holder, key, kind = where
    if kind == "attr":
        return getattr(holder, key, None)
    if kind == "item":
        return holder.get(key)
    return holder


def _write(where: _Where, value: Any) -> None:
    holder, key, kind = where
    if kind == "attr":
        setattr(holder, key, value)
    elif kind == "item":
        holder[key] = value


def _data(t: Any) -> NDArray | None:
    return t.cached_data if isinstance(t, Tensor) else None


def _fingerprint(slots: list[_Where]) -> list[Any]:
    """Each slot's tensor and its data: the objects a replay relies on (kept alive, and
    compared by identity, so a freed object's id cannot be mistaken for it)."""
    out: list[Any] = []
    for w in slots:
        t = _read(w)
        out.append(t)
        out.append(_data(t))
    return out


def _unchanged(slots: list[_Where], after: list[Any]) -> bool:
    """Whether ``_fingerprint(slots)`` is still ``after`` (by identity), without building
    the list (every replay checks it, so it is written for speed)."""
    i = 0
    for holder, key, kind in slots:
        if kind == "attr":
            t = getattr(holder, key, None)
        elif kind == "item":
            t = holder.get(key)
        else:
            t = holder
        if (
            t is not after[i]
            or (t.cached_data if isinstance(t, Tensor) else None) is not after[i + 1]
        ):
            return False
        i += 2
    return True


@dataclass
class _Entry:
    """One captured signature."""

    program: Program
    inputs: list[NDArray]  # the captured input arrays, one per Tensor argument (nested too)
    outputs: list[NDArray]  # views over the pooled buffers holding the outputs
    structure: Any  # how the outputs nest (tuples, lists)
    slots: list[_Where]  # the state the program reads: checked before every replay
    after: list[Any]  # their fingerprint right after a step
    # Slots the program only writes (gradients): after a replay each points at the value
    # in this program's buffers again (another signature's replay points them at its own)
    rebound: list[tuple[_Where, Any]]


class CompiledStep:
    """A step function with capture and replay (see :func:`compile`)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        state: Iterable[Any] = (),
        cache_size: int = 8,
        warmup: int = 1,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"needle.compile: cache_size must be at least 1, got {cache_size}")
        if warmup < 0:
            raise ValueError(f"needle.compile: warmup must be >= 0, got {warmup}")
        self.fn = fn
        self.state = list(state)
        self.cache_size = cache_size
        self.warmup = warmup
        self._cache: OrderedDict[Any, _Entry] = OrderedDict()
        self._seen: dict[Any, int] = {}
        self.captures = 0  # how many times a step was captured (tests and docs read it)
        self.replays = 0
        functools.update_wrapper(self, fn)
        self._modules = self._list_modules()

    def _list_modules(self) -> list[Module]:
        """Every module of the state, at any depth (re-listed at each capture: walking the
        attributes at every call would cost more than a small replayed step)."""
        return [m for obj in self.state if isinstance(obj, Module) for m in obj.modules()]

    # --- signature ---------------------------------------------------------------------
    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        parts: list[Any] = []

        def describe(a: Any) -> Any:
            if isinstance(a, Tensor):
                return ("T", a.shape, a.dtype, a.device, a.requires_grad)
            if isinstance(a, (tuple, list)):  # nested Tensors (an LSTM's (h, c))
                return (type(a).__name__, tuple(describe(x) for x in a))
            try:
                hash(a)
            except TypeError:
                raise TypeError(
                    f"needle.compile: argument {a!r} is neither a Tensor nor hashable, so "
                    "a replay could not tell whether it changed"
                ) from None
            return ("V", type(a), a)

        for a in (*args, *kwargs.values()):
            parts.append(describe(a))
        parts.append(tuple(m.training for m in self._modules))
        for obj in self.state:
            if isinstance(obj, Optimizer):
                parts.append(obj._static_config())
        return (tuple(parts), tuple(sorted(kwargs)))

    # --- calling -----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = self._key(args, kwargs)
        entry = self._cache.get(key)
        if entry is not None:
            if _unchanged(entry.slots, entry.after):
                self._cache.move_to_end(key)
                return self._replay(entry, args, kwargs)
            del self._cache[key]  # the state was replaced from outside: capture again
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        if seen < self.warmup:
            return self.fn(*args, **kwargs)
        return self._capture(key, args, kwargs)

    def _device(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        for a in _leaves((*args, *kwargs.values())):
            return a.device
        for obj in self.state:
            params = obj.parameters() if isinstance(obj, Module) else getattr(obj, "params", [])
            for p in params:
                return p.device
        raise CaptureError("needle.compile: the step has no Tensor argument and no state")

    def _capture(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._modules = self._list_modules()
        device = self._device(args, kwargs)
        slots = _state_slots(self.state)
        before = [_read(w) for w in slots]
        before_data = [_data(t) for t in before]
        with Recorder(device) as rec:
            result = self.fn(*args, **kwargs)
        if len(_state_slots(self.state)) != len(slots):
            # The step created optimizer slots or modules: keep this eager result and
            # capture at the next call, when the state is complete.
            return result
        out_arrays = [t.cached_data for t in _leaves([result], strict=True)]
        read = {id(h) for ins in rec.instrs for h in _handles_of(ins.args)}
        keep: list[Any] = [a._handle for a in out_arrays]
        copies: list[tuple[int, NDArray, NDArray]] = []  # (slot, new data, old buffer)
        rebind: list[tuple[int, NDArray]] = []  # (slot, new data): the slot moves to it
        for i, (w, t0, d0) in enumerate(zip(slots, before, before_data)):
            t1 = _read(w)
            d1 = _data(t1)
            if t1 is t0 and d1 is d0:
                continue
            if d1 is None:
                raise CaptureError(
                    f"needle.compile: the step cleared {_describe(w)}; leave state tensors set"
                )
            same_layout = (
                d0 is not None
                and (d0.shape, d0.dtype) == (d1.shape, d1.dtype)
                and d0.is_compact()
                and d0.size == d0._handle.size
            )
            if same_layout and d0 is not None and id(d0._handle) in read:
                copies.append((i, d1, d0))  # the next step reads the old buffer: copy in
            else:
                rebind.append((i, d1))  # nothing reads the old value: point at the new
                keep.append(d1._handle)  # read after the step (a copied one is not)
        program = rec.finish(keep)
        body = len(program.instrs)
        with Recorder(device) as tail:  # the copies into old buffers end the program
            for _, src, dst in copies:
                dst[...] = src
        program.instrs.extend(tail.instrs)
        program.temps.update(tail.temps)
        program.plan(hoist_from=body)
        # The Python objects go back to the tensors (and buffers) that now hold the values.
        for i, _, _ in copies:
            t0 = before[i]
            if _read(slots[i]) is not t0:
                _write(slots[i], t0)
            t0.cached_data = before_data[i]
        rebound: list[tuple[_Where, Any]] = []
        for i, d1 in rebind:
            t1 = _read(slots[i])
            view = _view(program, d1)
            if view._handle is not d1._handle:
                view[...] = d1  # the planned buffer gets its first value from the capture
            if slots[i][2] == "self":
                t1.cached_data = view
                rebound.append((slots[i], view))
            else:
                t_new = Tensor.make_const(view)
                _write(slots[i], t_new)
                rebound.append((slots[i], t_new))
        # A rebound slot's old value is never read, so whatever holds it when this program
        # replays (another signature's tensor) does not matter: only the others are checked.
        moved = {i for i, _ in rebind}
        checked = [w for i, w in enumerate(slots) if i not in moved]
        entry = _Entry(
            program=program,
            inputs=[a.cached_data for a in _leaves((*args, *kwargs.values()))],
            outputs=[_view(program, a) for a in out_arrays],
            structure=_structure(result),
            slots=checked,
            after=_fingerprint(checked),
            rebound=rebound,
        )
        self._cache[key] = entry
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self.captures += 1
        return result

    def _replay(self, entry: _Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        for captured, a in zip(entry.inputs, _leaves((*args, *kwargs.values()))):
            src = a.cached_data
            if src is captured:
                continue
            if (
                captured._offset == 0
                and captured._handle.size == captured.size
                and captured.is_compact()
            ):
                # one kernel: the argument's view, compacted into the captured buffer
                captured.device.compact(
                    src._handle, captured._handle, src.shape, src.strides, src._offset
                )
            else:
                captured[...] = src
        entry.program.run()
        for where, value in entry.rebound:
            if where[2] == "self":
                where[0].cached_data = value
            else:
                _write(where, value)
        self.replays += 1
        fresh = [Tensor.make_const(view.copy()) for view in entry.outputs]
        return _unflatten(entry.structure, fresh)


def _leaves(values: Any, strict: bool = False) -> list[Tensor]:
    """The Tensors among ``values``, nested tuples and lists included, in order.

    ``strict`` (a step's outputs): anything else but ``None`` is an error.
    """
    out: list[Tensor] = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out.extend(_leaves(v, strict))
        elif strict and v is not None:
            raise CaptureError(
                f"needle.compile: the step must return Tensors (or tuples/lists of them), "
                f"got {type(v).__name__}"
            )
    return out


def _describe(where: _Where) -> str:
    holder, key, kind = where
    if kind == "item":
        return f"optimizer slot {key}"
    return f"{type(holder).__name__}.{key}"


def _view(program: Program, a: NDArray) -> NDArray:
    """``a``'s layout over the pooled buffer that replaced its own."""
    return NDArray.make(a.shape, a.strides, a.device, program.pooled(a._handle), a._offset)


def _unflatten(structure: Any, flat: list[Tensor]) -> Any:
    it = iter(flat)

    def build(s: Any) -> Any:
        if s is Tensor:
            return next(it)
        if isinstance(s, list):
            return [build(x) for x in s]
        if isinstance(s, tuple):
            return tuple(build(x) for x in s)
        return None

    return build(structure)


def _structure(result: Any) -> Any:
    if isinstance(result, Tensor):
        return Tensor
    if isinstance(result, list):
        return [_structure(r) for r in result]
    if isinstance(result, tuple):
        return tuple(_structure(r) for r in result)
    return None


def compile(
    fn: Callable[..., Any] | None = None,
    *,
    state: Iterable[Any] = (),
    cache_size: int = 8,
    warmup: int = 1,
) -> Any:
    """Capture ``fn`` (forward, loss, backward, optimizer update) and replay its kernels.

    Use as ``ndl.compile(step, state=(model, opt))`` or as a decorator
    ``@ndl.compile(state=(model, opt))``. See the module documentation for the rules.

    Args:
        state: the modules and optimizers the step updates.
        cache_size: programs kept, one per signature (least recently used dropped).
        warmup: eager calls per signature before the capture (1 creates optimizer state).
    """
    if fn is None:
        return lambda f: CompiledStep(f, state, cache_size, warmup)
    return CompiledStep(fn, state, cache_size, warmup)
