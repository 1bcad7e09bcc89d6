"""Capture and replay of kernel sequences: the machinery under ``needle.compile``.

Every kernel call goes through a :class:`~needle.backend_ndarray.Device` attribute, so
capturing a step is a matter of wrapping the device's kernel attributes while the step
runs once, eagerly: each call is executed *and* recorded. The record is a list of
instructions over buffer handles:

* ``kernel``: a kernel with its arguments (handles, ints, floats, tuples);
* ``draw``: a random draw made on the host through :mod:`needle.random` and copied to
  the device (dropout masks). At replay the same NumPy call runs again (a ``randb`` on
  the device, where the backend has ``bernoulli_mt19937``: :func:`replay_draw`), so a
  replayed step consumes the global generator exactly as the eager step would;
* ``host``: a callback registered with :func:`host_step` (optimizers use it for their
  step counter and learning rate). It runs again at replay and returns floats, which
  replace the arguments they were passed as at capture time.

Anything else that brings data to the host during capture (``to_numpy``: ``.numpy()``,
``.item()``, a Python ``if`` on a tensor value) raises :class:`CaptureError` naming the
op and the line, unless it runs inside :func:`host_check` (argument checks that are
skipped on replay).

After capture, :meth:`Program.plan` gives the buffers allocated during the step memory
for their lifetimes, from the first instruction that uses one to the last (buffers that
outlive the step, such as outputs and new state, to the end). When the backend has the
``buffer_view`` kernel, all of them are views into one arena at offsets planned so that
buffers live at the same instruction never overlap (:func:`arena_offsets`); otherwise a
pool reuses a buffer once its last reader has run, for a request of the same size.
Replaying calls the recorded kernels on the pooled buffers, either one by one from
Python or, when the backend declares ``program_compile``/``program_run``, through the
backend in one call per stretch between host instructions.
"""

from __future__ import annotations

import contextlib
import linecache
import math
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import random as _random
from ..backends import KERNELS
from .device import Device

_PACKAGE = Path(__file__).resolve().parent.parent  # core/needle


PLAN_ARENA = True
"""Lay a replay's temporaries out in one arena when the device has ``buffer_view``
(``Program.plan``); False keeps the exact-size pool everywhere (for comparisons)."""

ARENA_ALIGN = 64
"""Bytes: every temporary in an arena starts on a multiple of this (``buffer_view``'s rule)."""

# Kernel families whose ``out`` may be one of their inputs (the contract's aliasing rule).
_IN_PLACE_FAMILIES = frozenset({"ewise_binary", "scalar_binary", "ewise_unary"})

# Kernels that take host data: never inside a backend-run program segment.
_HOST_KERNELS = frozenset({"from_numpy", "to_numpy", "alloc"})


class CaptureError(RuntimeError):
    """A step cannot be captured: it reads device data on the host, or draws random
    numbers in a way a replay could not repeat."""


@dataclass
class _Slot:
    """A dynamic scalar: value ``index`` of host callback ``host``."""

    host: int
    index: int


@dataclass
class Instr:
    """One recorded instruction (see the module docstring for the kinds)."""

    kind: str  # "kernel", "draw", "host"
    name: str = ""
    fn: Any = None
    args: tuple[Any, ...] = ()


@dataclass
class _State:
    recorder: Recorder | None = None
    host_checks: int = 0


_LOCAL = threading.local()


def _state() -> _State:
    st = getattr(_LOCAL, "state", None)
    if st is None:
        st = _LOCAL.state = _State()
    return st


def is_capturing() -> bool:
    """Whether this thread is capturing a step."""
    return _state().recorder is not None


@contextlib.contextmanager
def host_check() -> Iterator[None]:
    """Allow host reads inside this block during capture (argument checks only: the
    block's kernels still run at capture, but a replay skips what it decided)."""
    st = _state()
    st.host_checks += 1
    try:
        yield
    finally:
        st.host_checks -= 1


def host_step(fn: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
    """Run host code that advances per-step state and returns the floats it passes on.

    Eagerly this is ``fn()``. During capture ``fn`` is recorded: a replay calls it again
    at the same point, and each returned float replaces the kernel argument it became.
    Each value must reach a kernel unchanged (``x * value`` with the value itself), or
    the capture fails rather than replay a stale number.
    """
    rec = _state().recorder
    values = tuple(fn())
    if rec is None:
        return values
    # Fresh float objects, so that identity finds exactly the arguments they became.
    fresh = tuple(math.copysign(abs(float(v)), float(v)) for v in values)
    rec.add_host(fn, fresh)
    return fresh


def _site() -> str:
    """``op Name at file:line: code``: the innermost op (or needle function above the
    array layer) that asked, and the user's line that led there."""
    op = caller = user = ""
    frame = sys._getframe(2)
    array_layer = _PACKAGE / "backend_ndarray"
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        inside = path.is_relative_to(_PACKAGE)
        if inside and not path.is_relative_to(array_layer) and path.name != "autograd.py":
            owner = frame.f_locals.get("self")
            name = frame.f_code.co_name
            where = f"{type(owner).__name__}.{name}" if owner is not None else name
            if not op and name in ("compute", "gradient"):
                op = where
            caller = caller or where
        if not inside and not user:
            code = linecache.getline(str(path), frame.f_lineno).strip()
            user = f"{path.name}:{frame.f_lineno}: {code}"
        frame = frame.f_back  # type: ignore[assignment]
    return f"op {op or caller or '(unknown)'} at {user or '(unknown line)'}"


class Recorder:
    """Wraps a device's kernels while a step runs once; builds a :class:`Program`."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.instrs: list[Instr] = []
        self.temps: dict[int, Any] = {}  # id -> handle allocated during capture
        self.draws: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = []
        self.hosts: list[tuple[Callable[[], Any], tuple[float, ...]]] = []
        self._scalar_ids: dict[int, _Slot] = {}
        self._used_slots: set[tuple[int, int]] = set()
        self._saved: dict[str, Any] = {}

    # --- installation ------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        st = _state()
        if st.recorder is not None:
            raise CaptureError("a step is already being captured in this thread")
        table = self.device.kernels
        for name in KERNELS:
            fn = getattr(table, name, None)
            if fn is None:
                continue
            self._saved[name] = self.device.__dict__.get(name)
            setattr(self.device, name, self._wrap(name, fn))
        st.recorder = self
        _random.set_observer(self._on_draw)
        return self

    def __exit__(self, *exc: Any) -> None:
        _state().recorder = None
        _random.set_observer(None)
        for name, old in self._saved.items():
            if old is None:
                self.device.__dict__.pop(name, None)
            else:
                setattr(self.device, name, old)

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if name == "alloc":

            def alloc(size: int, dtype: str) -> Any:
                handle = fn(size, dtype)
                self.temps[id(handle)] = handle
                return handle

            return alloc
        if name == "to_numpy":

            def to_numpy(*args: Any) -> Any:
                if not _state().host_checks:
                    raise CaptureError(
                        f"needle.compile: the step reads device data on the host ({_site()}); "
                        "a replay would not repeat that read. Move it out of the compiled "
                        "function, or run this step eagerly."
                    )
                return fn(*args)

            return to_numpy
        if name == "buffer_view":

            def buffer_view(*args: Any) -> Any:
                # A planning call: a view made inside the step would keep pointing at the
                # capture's buffer after the plan replaced it.
                raise CaptureError(
                    f"needle.compile: the step makes a buffer view ({_site()}); a replay "
                    "could not repeat it. Run this step eagerly."
                )

            return buffer_view
        if name == "from_numpy":

            def from_numpy(src: Any, out: Any) -> None:
                fn(src, out)
                self._record_from_numpy(fn, src, out)

            return from_numpy

        def kernel(*args: Any) -> Any:
            result = fn(*args)
            self._record(name, fn, args)
            return result

        kernel.__name__ = name
        return kernel

    # --- recording -----------------------------------------------------------------------
    def _record(self, name: str, fn: Any, args: tuple[Any, ...]) -> None:
        if self._scalar_ids:
            args = tuple(self._scalar_slot(a) for a in args)
        self.instrs.append(Instr("kernel", name, fn, args))

    def _scalar_slot(self, a: Any) -> Any:
        if type(a) is float:
            slot = self._scalar_ids.get(id(a))
            if slot is not None:
                self._used_slots.add((slot.host, slot.index))
                return slot
        return a

    def _on_draw(
        self, fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        self.draws.append((fn_name, args, kwargs, out))

    def _record_from_numpy(self, fn: Any, src: Any, out: Any) -> None:
        for i, (name, args, kwargs, drawn) in enumerate(self.draws):
            drawn_arr = np.asarray(drawn)
            if drawn_arr.size == np.size(src) and np.array_equal(
                np.asarray(drawn_arr, dtype=np.asarray(src).dtype).reshape(-1), np.ravel(src)
            ):
                del self.draws[i]
                recipe = (getattr(_random, name), args, kwargs, np.asarray(src).dtype)
                self.instrs.append(Instr("draw", name, fn, (recipe, out)))
                return
        # Data that is the same at every replay (a constant made inside the step).
        self.instrs.append(Instr("kernel", "from_numpy", fn, (np.array(src, copy=True), out)))

    def add_host(self, fn: Callable[[], Any], values: tuple[float, ...]) -> None:
        index = len(self.hosts)
        self.hosts.append((fn, values))
        for j, v in enumerate(values):
            self._scalar_ids[id(v)] = _Slot(index, j)
        self.instrs.append(Instr("host", getattr(fn, "__qualname__", "host"), fn, (index,)))

    def finish(self, keep: list[Any]) -> Program:
        """The program of what was recorded; ``keep`` lists handles that outlive it."""
        if self.draws:
            name, args, _, _ = self.draws[0]
            raise CaptureError(
                f"needle.compile: random draw needle.random.{name}{args} was not copied to the "
                "device unchanged, so a replay could not repeat it; run this step eagerly"
            )
        for h, (fn, values) in enumerate(self.hosts):
            for j in range(len(values)):
                if (h, j) not in self._used_slots:
                    raise CaptureError(
                        f"needle.compile: value {j} of {getattr(fn, '__qualname__', fn)} did "
                        "not reach a kernel unchanged; a replay would use a stale number"
                    )
        return Program(self.device, self.instrs, self.temps, keep, len(self.hosts))


@dataclass
class Program:
    """A recorded step, planned onto a pool of buffers and ready to replay."""

    device: Device
    instrs: list[Instr]
    temps: dict[int, Any]
    keep: list[Any]
    n_hosts: int
    remap: dict[int, Any] = field(default_factory=dict)
    pool_bytes: int = 0  # what the pool allocated
    live_peak_bytes: int = 0  # the most bytes of temporaries live at one instruction
    # (first, last, buffer) of every temporary: the instructions it is live across, and the
    # memory it was given (tests check that live buffers never share memory)
    lifetimes: list[tuple[int, int, Any]] = field(default_factory=list)
    _segments: list[Any] = field(default_factory=list)
    _host_instrs: list[Instr] = field(default_factory=list)

    def plan(self, arena: bool | None = None, hoist_from: int | None = None) -> None:
        """Give each temporary buffer memory of its own for its lifetime, from the first
        instruction that uses it to the last (to the end for ``keep``).

        With ``arena`` (by default when :data:`PLAN_ARENA` is set and the device has the
        ``buffer_view`` kernel) the temporaries are views at planned offsets of one
        buffer per dtype (:func:`arena_offsets`); without it, an exact-size pool: a buffer
        freed by its last reader is reused only for a request of the same size and dtype
        (kernels may size their work from a buffer's length, so a larger one cannot stand
        in).

        ``hoist_from``: the instructions from this index on (the copies of new state into
        the old buffers that end a step) move up to just after the last instruction before
        them that uses one of their buffers (:meth:`_hoist`), so that a copied buffer's
        life ends there instead of at the end of the step.
        """
        if hoist_from is not None:
            self._elide_copies(hoist_from)
            self._hoist(hoist_from)
        spans = self._lifetimes()
        if arena is None:
            arena = PLAN_ARENA and self.device.has_kernel("buffer_view")
        if arena:
            self._plan_arena(spans)
        else:
            self._plan_pool(spans)
        sizes = {hid: _nbytes(self.temps[hid]) for hid in spans}
        self.live_peak_bytes = _live_peak(spans, sizes)
        self.lifetimes = [(f, last, self.remap[hid]) for hid, (f, last) in spans.items()]
        self.instrs = [
            Instr(ins.kind, ins.name, ins.fn, _substitute(ins.args, self.remap))
            for ins in self.instrs
        ]
        self.temps = {}  # the capture's own buffers can go now
        self._host_instrs = [ins for ins in self.instrs if ins.kind == "host"]
        self._segments = self._build_segments()

    def _elide_copies(self, start: int) -> None:
        """Drop each whole-buffer copy ``ewise_setitem(src, dst)`` from ``start`` on (new
        state into its old buffer) whose ``src`` can be computed in ``dst`` directly: the
        instruction that makes ``src`` writes ``dst`` instead, and the ones after it read
        ``dst``. That holds when ``src`` is a temporary made as the ``out`` of a kernel
        (one allowed to update an input in place, if it reads ``dst``), nothing else uses
        ``dst`` from there to the copy, and nothing uses ``src`` after it. Every kernel
        computes the same values from the same inputs, so the state ends with the same
        bits, without the copy or the temporary (parameters are updated in place)."""
        i = start
        while i < len(self.instrs):
            pair = _whole_copy(self.instrs[i], self.temps, self.keep)
            at = None if pair is None else self._producer(*pair, i)
            if pair is None or at is None:
                i += 1
                continue
            swap = {id(pair[0]): pair[1]}
            for j in range(at, i):
                old = self.instrs[j]
                self.instrs[j] = Instr(old.kind, old.name, old.fn, _substitute(old.args, swap))
            del self.instrs[i]

    def _producer(self, src: Any, dst: Any, copy_at: int) -> int | None:
        """The index of the kernel that makes temporary ``src`` if the copy of ``src``
        into ``dst`` at ``copy_at`` can be elided (see :meth:`_elide_copies`), else None."""
        users = [j for j, ins in enumerate(self.instrs) if j != copy_at and _uses(ins, src)]
        if not users or users[-1] > copy_at:
            return None  # never made, or read after the copy
        first = users[0]
        if any(_uses(self.instrs[j], dst) for j in range(first + 1, copy_at)):
            return None  # dst is used while src holds the new value
        maker = self.instrs[first]
        spec = KERNELS.get(maker.name) if maker.kind == "kernel" else None
        if spec is None or "out" not in spec.params or spec.arity != len(maker.args):
            return None
        if maker.args[spec.params.index("out")] is not src:
            return None
        if _uses(maker, dst) and spec.family not in _IN_PLACE_FAMILIES:
            return None
        return first

    def _hoist(self, start: int) -> None:
        """Move each instruction from ``start`` on, in order, to just after the last
        instruction before it that uses one of its buffers (reads or writes it). Nothing
        between the old place and the new one touches those buffers, so every kernel
        reads and writes the same values as before: the results are the same bits."""
        body, tail = self.instrs[:start], self.instrs[start:]
        last_use: dict[int, tuple[int, int]] = {}  # id(handle) -> (body index, tail order)
        for i, ins in enumerate(body):
            for h in handles_of(ins.args):
                last_use[id(h)] = (i, -1)
        after: dict[int, list[Instr]] = {}  # body index (-1: the start) -> moved there
        for ins in tail:
            hs = list(handles_of(ins.args))
            at = max((last_use.get(id(h), (-1, -1)) for h in hs), default=(len(body) - 1, -1))
            moved = after.setdefault(at[0], [])
            moved.append(ins)
            for h in hs:
                last_use[id(h)] = (at[0], len(moved) - 1)
        self.instrs = list(after.get(-1, []))
        for i, ins in enumerate(body):
            self.instrs.append(ins)
            self.instrs.extend(after.get(i, ()))

    def _lifetimes(self) -> dict[int, tuple[int, int]]:
        """``id(temporary) -> (first, last)``: the instructions that use it first and last
        (``len(instrs)`` for the handles in ``keep``, which outlive the step)."""
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for i, ins in enumerate(self.instrs):
            for h in handles_of(ins.args):
                if id(h) in self.temps:
                    first.setdefault(id(h), i)
                    last[id(h)] = i
        end = len(self.instrs)
        for h in self.keep:
            if id(h) in first:
                last[id(h)] = end
        return {hid: (at, last[hid]) for hid, at in first.items()}

    def _plan_pool(self, spans: dict[int, tuple[int, int]]) -> None:
        """The exact-size pool: walk the instructions, taking a buffer of the same size and
        dtype freed by an earlier last reader, or allocating one. Buffers born at an
        instruction are taken before the ones it reads last are freed, so an instruction's
        outputs never share memory with its inputs."""
        starts: dict[int, list[int]] = {}
        releases: dict[int, list[int]] = {}
        for hid, (at, stop) in spans.items():
            starts.setdefault(at, []).append(hid)
            releases.setdefault(stop, []).append(hid)
        free: dict[tuple[int, str], list[Any]] = {}
        alloc = self.device.kernels.alloc  # not the recording wrapper
        for i in range(len(self.instrs) + 1):
            for hid in starts.get(i, ()):
                h = self.temps[hid]
                bucket = free.get((h.size, h.dtype))
                if bucket:
                    self.remap[hid] = bucket.pop()
                else:
                    self.remap[hid] = alloc(h.size, h.dtype)
                    self.pool_bytes += _nbytes(h)
            for hid in releases.get(i, ()):
                h = self.temps[hid]
                free.setdefault((h.size, h.dtype), []).append(self.remap[hid])

    def _plan_arena(self, spans: dict[int, tuple[int, int]]) -> None:
        """One arena per dtype, each temporary a ``buffer_view`` of it at the offset
        :func:`arena_offsets` gives: temporaries live at the same instruction never share
        a byte, so neither do an instruction's outputs and inputs.

        The handles in ``keep`` (outputs, new state) are in the arena too, live to the
        end: after a replay they hold their values until the next replay, which writes
        them again before anything reads them (at capture each was a fresh buffer, so no
        kernel reads it before writing it). Outputs are copied out after each replay, and
        a replay's arguments are copied into their captured buffers before it starts, so
        what the caller holds is never overwritten while it is read.
        """
        kernels = self.device.kernels  # not the recording wrappers
        groups: dict[str, list[int]] = {}
        for hid in spans:
            groups.setdefault(self.temps[hid].dtype, []).append(hid)
        for dtype, hids in groups.items():
            item = np.dtype(dtype).itemsize
            blocks = [(*spans[hid], _nbytes(self.temps[hid])) for hid in hids]
            offsets, total = arena_offsets(blocks, ARENA_ALIGN)
            base = kernels.alloc(total // item, dtype)
            self.pool_bytes += total
            for hid, offset in zip(hids, offsets):
                self.remap[hid] = kernels.buffer_view(base, offset // item, self.temps[hid].size)

    def pooled(self, handle: Any) -> Any:
        """The pooled buffer standing for ``handle`` (itself if it was not a temporary)."""
        return self.remap.get(id(handle), handle)

    def _build_segments(self) -> list[Any]:
        """Runs of kernel instructions (compiled by the backend when it can), split at
        draws and host-data kernels. Kernels with dynamic scalars join a compiled run when
        the backend can change a program's floats (``program_set_scalars``); without it
        they split the run and are called from Python."""
        dev = self.device
        native = dev.has_kernel("program_compile") and dev.has_kernel("program_run")
        settable = native and dev.has_kernel("program_set_scalars")
        segments: list[Any] = []
        run: list[Instr] = []

        def flush() -> None:
            if not run:
                return
            prog = None
            if native and len(run) > 1:
                calls = [(ins.name, _placeholders(ins.args)) for ins in run]
                try:
                    prog = dev.program_compile(calls)
                except (ValueError, TypeError):  # a kernel it cannot run: replay from Python
                    prog = None
            if prog is not None:
                found = [
                    ((i, j), a)
                    for i, ins in enumerate(run)
                    for j, a in enumerate(ins.args)
                    if isinstance(a, _Slot)
                ]
                places = tuple(place for place, _ in found)
                segments.append(("native", (prog, places, tuple(a for _, a in found))))
            else:
                segments.extend(one(ins) for ins in run)
            run.clear()

        def one(ins: Instr) -> tuple[str, Instr]:
            # a kernel without dynamic scalars runs with its recorded arguments as they are
            static = ins.kind == "kernel" and not any(isinstance(a, _Slot) for a in ins.args)
            return ("static" if static else "one", ins)

        for ins in self.instrs:
            if ins.kind == "host":  # run before the segments (see run)
                continue
            dynamic = any(isinstance(a, _Slot) for a in ins.args)
            if ins.kind == "kernel" and ins.name not in _HOST_KERNELS and (settable or not dynamic):
                run.append(ins)
            else:
                flush()
                segments.append(one(ins))
        flush()
        return segments

    def run(self) -> None:
        """Replay the step once.

        The host callbacks run first, in their recorded order: they only compute floats
        from host state (step counters, learning rates), never read the device, so their
        place among the kernels does not matter and every compiled run sees its values.
        """
        values: list[tuple[float, ...]] = [()] * self.n_hosts
        for host in self._host_instrs:
            values[host.args[0]] = tuple(float(v) for v in host.fn())
        dev = self.device
        for kind, item in self._segments:
            if kind == "static":
                item.fn(*item.args)
                continue
            if kind == "native":
                prog, places, slots = item
                if slots:
                    dev.program_set_scalars(
                        prog, places, tuple(values[a.host][a.index] for a in slots)
                    )
                dev.program_run(prog)
                continue
            ins: Instr = item
            if ins.kind == "kernel":
                args = tuple(
                    values[a.host][a.index] if isinstance(a, _Slot) else a for a in ins.args
                )
                ins.fn(*args)
            elif ins.kind == "draw":
                replay_draw(ins, dev)


def replay_draw(ins: Instr, device: Device | None = None) -> None:
    """Make a ``draw`` instruction's draw again into its buffer: on ``device`` for a
    ``randb`` its backend can draw (:meth:`Device.bernoulli_into`: the same values, the
    generator left in the same state), else on the host, copied over."""
    (draw, dargs, dkwargs, dtype), out = ins.args
    if (
        draw is _random.randb
        and device is not None
        and device.bernoulli_into(out, out.size, dkwargs["p"])
    ):
        return
    src = np.asarray(draw(*dargs, **dkwargs), dtype=dtype).reshape(-1)
    ins.fn(np.ascontiguousarray(src), out)


def arena_offsets(blocks: list[tuple[int, int, int]], align: int = 64) -> tuple[list[int], int]:
    """Byte offsets in one arena for ``blocks`` of ``(first, last, nbytes)``, and the
    arena's size: blocks whose instruction ranges ``[first, last]`` intersect get byte
    ranges that do not (each rounded up to ``align`` bytes, every offset a multiple of it).

    Greedy: blocks are placed one by one, each into a gap left between the placed blocks
    that are live at the same time as it, or above them all. Two orders (largest first;
    longest-lived first) and two choices of gap (the lowest that fits; the smallest that
    fits) are tried in turn, until one reaches the lower bound (the most bytes live at
    once), and the smallest arena kept: on training steps the first usually reaches it.
    Empty blocks get offset 0.
    """
    sizes = [-(-nbytes // align) * align for _, _, nbytes in blocks]
    by_size = sorted(range(len(blocks)), key=lambda k: (-sizes[k], blocks[k][0], k))
    by_life = sorted(range(len(blocks)), key=lambda k: (blocks[k][0] - blocks[k][1], -sizes[k], k))
    # No arena is smaller than the most (rounded) bytes live at once: stop on reaching it.
    bound = _live_peak(
        {k: (first, last) for k, (first, last, _) in enumerate(blocks)}, dict(enumerate(sizes))
    )
    best: tuple[list[int], int] | None = None
    for order, lowest in ((by_size, True), (by_size, False), (by_life, True), (by_life, False)):
        offsets, total = _place(blocks, sizes, order, lowest)
        if best is None or total < best[1]:
            best = (offsets, total)
        if best[1] <= bound:
            break
    assert best is not None
    return best


def _place(
    blocks: list[tuple[int, int, int]], sizes: list[int], order: list[int], lowest: bool
) -> tuple[list[int], int]:
    """:func:`arena_offsets` for one order and one choice of gap (``lowest``: the lowest
    gap that fits, else the smallest)."""
    n = len(blocks)
    offsets = [0] * n
    p_first = np.empty(n, np.int64)  # the blocks placed so far
    p_last = np.empty(n, np.int64)
    p_start = np.empty(n, np.int64)
    p_end = np.empty(n, np.int64)
    placed = total = 0
    for k in order:
        size = sizes[k]
        if size == 0:
            continue
        first, last, _ = blocks[k]
        offset = 0
        if placed:
            live = (p_first[:placed] <= last) & (p_last[:placed] >= first)
            if live.any():
                by_start = np.argsort(p_start[:placed][live], kind="stable")
                starts = p_start[:placed][live][by_start]
                tops = np.maximum.accumulate(p_end[:placed][live][by_start])
                below = np.concatenate(([0], tops[:-1]))  # the highest end under each start
                gaps = starts - below
                fits = np.flatnonzero(gaps >= size)
                if not fits.size:
                    offset = int(tops[-1])
                elif lowest:
                    offset = int(below[fits[0]])
                else:
                    offset = int(below[fits[np.argmin(gaps[fits])]])
        p_first[placed], p_last[placed] = first, last
        p_start[placed], p_end[placed] = offset, offset + size
        placed += 1
        offsets[k] = offset
        total = max(total, offset + size)
    return offsets, total


def _uses(ins: Instr, handle: Any) -> bool:
    """Whether ``ins`` reads or writes ``handle``."""
    return any(h is handle for h in handles_of(ins.args))


def _whole_copy(ins: Instr, temps: dict[int, Any], keep: list[Any]) -> tuple[Any, Any] | None:
    """``(src, dst)`` if ``ins`` copies all of temporary ``src`` (not kept past the step)
    over all of ``dst``, same size and dtype; else None."""
    if ins.kind != "kernel" or ins.name != "ewise_setitem":
        return None
    from .ndarray import compact_strides  # (ndarray imports this module)

    src, dst, shape, strides, offset = ins.args
    whole = (
        offset == 0
        and tuple(strides) == compact_strides(tuple(shape))
        and math.prod(shape) == src.size == dst.size
        and src.dtype == dst.dtype
        and id(src) in temps
        and not any(h is src for h in keep)
    )
    return (src, dst) if whole else None


def _nbytes(h: Any) -> int:
    return int(h.size) * np.dtype(h.dtype).itemsize


def _live_peak(spans: dict[int, tuple[int, int]], sizes: dict[int, int]) -> int:
    """The most bytes of buffers live at one instruction (``[first, last]`` inclusive)."""
    delta: dict[int, int] = {}
    for hid, (first, last) in spans.items():
        delta[first] = delta.get(first, 0) + sizes[hid]
        delta[last + 1] = delta.get(last + 1, 0) - sizes[hid]
    live = peak = 0
    for i in sorted(delta):
        live += delta[i]
        peak = max(peak, live)
    return peak


def handles_of(args: tuple[Any, ...]) -> Iterator[Any]:
    for a in args:
        if isinstance(a, tuple):
            yield from handles_of(a)
        elif (
            hasattr(a, "size")
            and hasattr(a, "dtype")
            and not isinstance(a, (np.ndarray, float, int))
        ):
            yield a


def _placeholders(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with each dynamic scalar as a float (set before every run)."""
    return tuple(0.0 if isinstance(a, _Slot) else a for a in args)


def _substitute(args: tuple[Any, ...], remap: dict[int, Any]) -> tuple[Any, ...]:
    out = []
    for a in args:
        if isinstance(a, tuple):
            out.append(_substitute(a, remap))
        else:
            out.append(remap.get(id(a), a))
    return tuple(out)


__all__ = [
    "CaptureError",
    "Program",
    "Recorder",
    "arena_offsets",
    "handles_of",
    "host_check",
    "host_step",
    "is_capturing",
]
