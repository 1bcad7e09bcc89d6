"""Reverse-mode automatic differentiation: ``Value``, ``Tensor``, ``Op``.

A ``Tensor`` is a node in a graph: the ``Op`` that made it, its ``inputs``, and its
``cached_data`` (an NDArray, computed eagerly). ``Tensor.backward`` walks the graph in
reverse topological order (found iteratively, so a chain 100,000 ops deep is fine),
asks each op for its ``gradient`` (written with Tensor ops, so gradients can be
differentiated again) and accumulates the result into each leaf's ``.grad``.
"""

from __future__ import annotations

import contextlib
import gc
import numbers
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import backend_ndarray as nd
from .backend_ndarray import Device, NDArray, default_device
from .backend_ndarray import device as _device


class _GradMode(threading.local):
    """Grad mode, one flag per thread (as in PyTorch): a ``no_grad`` block or a
    ``backward`` in one thread never changes what another thread records."""

    enabled = True


_GRAD_MODE = _GradMode()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Within this block, ops record no graph and results need no gradient (this thread)."""
    prev = _GRAD_MODE.enabled
    _GRAD_MODE.enabled = False
    try:
        yield
    finally:
        _GRAD_MODE.enabled = prev


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Turn graph recording back on inside a :func:`no_grad` block (this thread)."""
    prev = _GRAD_MODE.enabled
    _GRAD_MODE.enabled = True
    try:
        yield
    finally:
        _GRAD_MODE.enabled = prev


def is_grad_enabled() -> bool:
    """Whether ops record the graph in the calling thread."""
    return _GRAD_MODE.enabled


class Op:
    """An operation: ``compute`` on NDArrays, ``gradient`` on Tensors."""

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError

    # Subclasses narrow these signatures (``compute(self, a, b)``), hence ``Any`` here.
    def compute(self, *args: Any) -> Any:
        """Forward pass on NDArrays; returns an NDArray (or a tuple for tuple ops)."""
        raise NotImplementedError

    def gradient(self, out_grad: Any, node: Any) -> Any:
        """Partial adjoints of each input, given the adjoint ``out_grad`` of ``node``."""
        raise NotImplementedError

    def gradient_as_tuple(self, out_grad: Value, node: Value) -> tuple[Value | None, ...]:
        """:meth:`gradient`, always as a tuple with one entry per input."""
        out = self.gradient(out_grad, node)
        if isinstance(out, tuple):
            return out
        if isinstance(out, list):
            return tuple(out)
        return (out,)


class Value:
    """A node of the computation graph."""

    op: Op | None
    inputs: tuple[Any, ...]  # Values; Tensors for every TensorOp, which is what ops rely on
    cached_data: Any
    requires_grad: bool

    def realize_cached_data(self) -> Any:
        """The computed value (always present: needle computes eagerly)."""
        if self.cached_data is None:
            raise RuntimeError("this value's data was freed or never computed")
        return self.cached_data

    def is_leaf(self) -> bool:
        return self.op is None

    def _init(
        self,
        op: Op | None,
        inputs: Sequence[Value],
        *,
        cached_data: Any = None,
        requires_grad: bool | None = None,
    ) -> None:
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = tuple(inputs)
        self.cached_data = cached_data
        self.requires_grad = requires_grad

    @classmethod
    def make_const(cls, data: Any, *, requires_grad: bool = False) -> Value:
        value = cls.__new__(cls)
        value._init(None, (), cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: Sequence[Value]) -> Value:
        data = op.compute(*[x.realize_cached_data() for x in inputs])
        return cls._node(op, tuple(inputs), data)

    @classmethod
    def _node(cls, op: Op, inputs: tuple[Value, ...], data: Any) -> Value:
        """The node for ``op(inputs) = data``; graph kept only when a gradient can flow.

        The fields are set directly: this runs once per op and is on every op's path.
        """
        value = cls.__new__(cls)
        value.op, value.inputs, value.requires_grad = None, (), False  # no graph to keep...
        if _GRAD_MODE.enabled:
            for x in inputs:
                if x.requires_grad:  # ...unless a gradient can flow
                    value.op, value.inputs, value.requires_grad = op, inputs, True
                    break
        value.cached_data = data
        value._fresh()
        return value

    def _fresh(self) -> None:
        """Per-class fields of a new node (Tensor: ``grad``)."""


def from_dlpack(obj: Any, device: Device | str | None = None, copy: bool | None = None) -> Tensor:
    """A leaf tensor (``requires_grad=False``) over the data of DLPack producer ``obj`` (a
    PyTorch, NumPy, CuPy or JAX array, or a needle tensor), sharing its memory where the
    device's backend has ``dlpack_import`` and the device, dtype and layout allow; else a
    copy (``copy=True`` always copies, ``copy=False`` raises ``BufferError`` instead).
    No gradient flows back to ``obj``. See ``docs/interop.md``."""
    return Tensor.make_const(nd.from_dlpack(obj, device=device, copy=copy))


class TensorOp(Op):
    """An op whose output is one Tensor."""

    def __call__(self, *args: Any) -> Tensor:
        return Tensor.make_from_op(self, args)  # type: ignore[return-value]


class TensorTupleOp(Op):
    """An op whose output is a tuple of Tensors (a :class:`TensorTuple`)."""

    def __call__(self, *args: Any) -> TensorTuple:
        return TensorTuple.make_from_op(self, args)  # type: ignore[return-value]


class TensorTuple(Value):
    """A tuple of tensors as one graph node (output of a :class:`TensorTupleOp`)."""

    def __len__(self) -> int:
        return len(self.realize_cached_data())

    def __getitem__(self, index: int) -> Tensor:
        return ops.tuple_get_item(self, index)

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def tuple(self) -> tuple[Tensor, ...]:
        return tuple(self)

    def __add__(self, other: TensorTuple) -> TensorTuple:
        """Element-wise sum of two tuples (backward accumulates tuple adjoints with it)."""
        if not isinstance(other, TensorTuple) or len(other) != len(self):
            raise TypeError("TensorTuple + : need another TensorTuple of the same length")
        return ops.make_tuple(*[x + y for x, y in zip(self, other)])

    def __repr__(self) -> str:
        return "needle.TensorTuple(" + ", ".join(repr(t) for t in self) + ")"

    def detach(self) -> TensorTuple:
        return TensorTuple.make_const(self.realize_cached_data())  # type: ignore[return-value]

    @property
    def device(self) -> Device:
        return self.realize_cached_data()[0].device


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _as_ndarray(array: Any, device: Device | None, dtype: Any) -> NDArray:
    if array is None:
        raise TypeError("Tensor: cannot make a tensor from None (give a number, list or array)")
    if isinstance(array, (list, tuple)) and not (array and isinstance(array[0], Tensor)):
        # One conversion on the host; lists default to float32 whatever NumPy infers.
        with contextlib.suppress(ValueError):  # ragged: NDArray reports it
            array, dtype = np.asarray(array), dtype or "float32"
    if isinstance(array, (complex, np.complexfloating)) or (
        isinstance(array, np.ndarray) and array.dtype.kind == "c"
    ):
        raise TypeError(
            "Tensor: complex values are not supported (needle tensors are real); "
            "pass .real, .imag or abs() of them"
        )
    if isinstance(array, Tensor):
        array = array.realize_cached_data()
    if isinstance(array, NDArray):
        if device is not None and array.device != device:
            array = array.to(device)
        return array if dtype is None else array.astype(nd.normalize_dtype(dtype))
    if isinstance(array, (list, tuple)) and array and isinstance(array[0], Tensor):
        array = [t.numpy() for t in array]
    if (
        isinstance(array, np.ndarray)
        and array.dtype == object
        and any(x is None for x in array.flat)
    ):  # NumPy would turn None into NaN
        raise TypeError("Tensor: the data holds None (a missing value?); give numbers only")
    # dtype None: a NumPy array keeps its float dtype; numbers are float32
    return NDArray(array, device=device, dtype=dtype)


class Tensor(Value):
    """An n-dimensional array that remembers how it was computed.

    Args:
        array: a NumPy array, a nested list, a scalar, an NDArray or a Tensor.
        device: where the data lives (default: ``NEEDLE_BACKEND`` or the best CPU backend).
        dtype: a dtype the backend supports. By default a NumPy float array (or an
            NDArray/Tensor) keeps its dtype and anything else is ``"float32"``.
        requires_grad: whether gradients flow to this tensor (default True, as in the course).
    """

    grad: Tensor | None

    def __init__(
        self,
        array: Any,
        *,
        device: Device | str | None = None,
        dtype: Any = None,
        requires_grad: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"Tensor: unexpected arguments {sorted(kwargs)}")
        dev = None if device is None else _device(device)
        if dtype is None and isinstance(array, (Tensor, NDArray)):
            dtype = array.dtype
        data = _as_ndarray(array, dev, dtype)
        self._init(None, (), cached_data=data, requires_grad=requires_grad)

    def _init(self, op: Op | None, inputs: Sequence[Value], **kwargs: Any) -> None:
        super()._init(op, inputs, **kwargs)
        self.grad = None

    def _fresh(self) -> None:
        self.grad = None

    @staticmethod
    def make_const(data: Any, *, requires_grad: bool = False) -> Tensor:  # type: ignore[override]
        if isinstance(data, Tensor):
            data = data.realize_cached_data()
        t = Tensor.__new__(Tensor)
        t._init(None, (), cached_data=data, requires_grad=requires_grad)
        return t

    # --- data access ---------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's data, detached from the graph."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        """Replace the value (the shape may change, as in the course; the dtype may not)."""
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise TypeError(
                f"Tensor.data: cannot assign {value.dtype}{value.shape} to {self.dtype}{self.shape}"
                f"; convert it first with .astype({self.dtype!r})"
            )
        self.cached_data = value.realize_cached_data()

    def detach(self) -> Tensor:
        """A new leaf tensor with the same data and no graph."""
        return Tensor.make_const(self.realize_cached_data())

    @property
    def shape(self) -> tuple[int, ...]:
        return self.realize_cached_data().shape

    @property
    def dtype(self) -> str:
        return self.realize_cached_data().dtype

    @property
    def device(self) -> Device:
        return self.realize_cached_data().device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self.realize_cached_data().size

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data."""
        return self.realize_cached_data().numpy()

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.size != 1:
            raise ValueError(f"item: tensor of shape {self.shape} has {self.size} elements, not 1")
        return float(self.numpy().reshape(-1)[0])

    def to(self, device: Device | str) -> Tensor:
        """This tensor's data on ``device`` (a new leaf; itself when already there)."""
        dev = _device(device)
        if dev == self.device:
            return self
        return Tensor(self.realize_cached_data().to(dev), requires_grad=self.requires_grad)

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype`` (differentiable)."""
        return ops.astype(self, dtype)

    def __len__(self) -> int:
        return len(self.realize_cached_data())

    def __repr__(self) -> str:
        return f"needle.Tensor({self.numpy()!s}, device={self.device!r}, dtype={self.dtype!r})"

    def __str__(self) -> str:
        return str(self.numpy())

    # NumPy must not take over ``ndarray + t`` or ``np.float32(2) * t`` (it would return
    # an ndarray and lose the graph): its operators defer, so the Tensor's reflected
    # operator runs (a NumPy scalar is a number; an array is refused with a TypeError).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """``np.asarray(t)``: a NumPy copy of the data (``copy=None`` or ``True``), even when
        ``t`` requires grad (the graph is not followed, as with ``t.detach().numpy()``).
        ``copy=False`` shares the data through DLPack (``dlpack_export``) or raises
        ``ValueError``; a write through it changes ``t`` without autograd knowing."""
        return self.realize_cached_data().__array__(dtype=dtype, copy=copy)

    # DLPack: the data is exported, detached from the graph (as PyTorch's detach()).
    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule of the detached data (shared memory where the backend has
        ``dlpack_export``, else a copy; ``copy=False`` then raises ``BufferError``)."""
        return self.realize_cached_data().__dlpack__(
            stream=stream, max_version=max_version, dl_device=dl_device, copy=copy
        )

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(device_type, device_id)`` as DLPack counts them (CPU is 1, CUDA 2)."""
        return self.realize_cached_data().__dlpack_device__()

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return self.item()

    # --- autograd ------------------------------------------------------------------
    def backward(
        self,
        out_grad: Tensor | None = None,
        *,
        retain_graph: bool = False,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            out_grad: the adjoint of this tensor; ones by default.
            retain_graph: keep the graph so backward can run through it again.
            create_graph: record the gradient computation, for higher-order gradients
                (implies ``retain_graph``).

        Raises:
            RuntimeError: the tensor does not require grad, or its graph was freed by an
                earlier backward.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if out_grad is None:
            out_grad = init_ones_like(self)
        elif not isinstance(out_grad, Tensor):
            raise TypeError(f"backward: out_grad must be a Tensor, got {type(out_grad).__name__}")
        elif out_grad.shape != self.shape:
            raise ValueError(
                f"backward: out_grad shape {out_grad.shape} != tensor shape {self.shape}"
            )
        elif out_grad.device != self.device:
            raise ValueError(
                f"backward: out_grad is on {out_grad.device}, the tensor on {self.device}"
            )
        elif out_grad.dtype != self.dtype:
            raise TypeError(
                f"backward: out_grad dtype {out_grad.dtype} != tensor dtype {self.dtype}"
            )
        with contextlib.ExitStack() as stack:
            if not create_graph:
                stack.enter_context(no_grad())
            compute_gradient_of_variables(
                self, out_grad, free_graph=not (retain_graph or create_graph)
            )

    # --- operators (``ops`` is imported at the bottom of this module: it imports this one)
    def __add__(self, other: Any) -> Tensor:
        return ops.add(self, other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Tensor:
        return ops.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        if not _is_number(other):
            return ops.subtract(other, self)
        return ops.add_scalar(ops.negate(self), other)

    def __mul__(self, other: Any) -> Tensor:
        return ops.multiply(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Tensor:
        return ops.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        if not _is_number(other):
            return ops.divide(other, self)
        return ops.mul_scalar(ops.power_scalar(self, -1.0), other)

    def __pow__(self, other: Any) -> Tensor:
        return ops.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return ops.rpower_scalar(self, other)

    def __neg__(self) -> Tensor:
        return ops.negate(self)

    def __matmul__(self, other: Tensor) -> Tensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return ops.matmul(other, self)

    def sum(self, axes: Any = None, keepdims: bool = False) -> Tensor:
        return ops.summation(self, axes, keepdims=keepdims)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return ops.broadcast_to(self, shape)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, axes: tuple[int, int] | None = None) -> Tensor:
        return ops.transpose(self, axes)

    def permute(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.permute(self, axes)

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def max(self, axes: Any = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axes, keepdims=keepdims)

    def mean(self, axes: Any = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axes, keepdims=keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices (as floats, no gradient) of the first maximum along ``axis``."""
        return ops.argmax(self, axis, keepdims)

    def flip(self, axes: Any = None) -> Tensor:
        return ops.flip(self, axes)

    def softmax(self) -> Tensor:
        """Softmax over the last axis."""
        return ops.softmax(self)

    def logsoftmax(self) -> Tensor:
        """Log-softmax over the last axis."""
        return ops.logsoftmax(self)

    def __getitem__(self, idx: Any) -> Tensor:
        """``self[idx]`` for ints, slices (any step) and ``...``; differentiable.

        Tensors have no ``__setitem__``: an in-place write would corrupt the recorded
        graph. Use ``needle.setitem(a, idx, value)``, which returns a new tensor.
        """
        return ops.getitem(self, idx)

    # Comparisons return 1.0/0.0 tensors with no gradient. Defining __eq__ would make
    # the class unhashable, and modules and optimizers keep tensors in dicts and sets,
    # so the identity hash is restored below.
    def _compare(self, op: str, other: Any) -> Any:
        if not isinstance(other, (Tensor, numbers.Number)) or isinstance(other, bool):
            return NotImplemented
        return getattr(ops, op)(self, other)

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._compare("eq", other)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._compare("ne", other)

    def __lt__(self, other: Any) -> Any:
        return self._compare("lt", other)

    def __le__(self, other: Any) -> Any:
        return self._compare("le", other)

    def __gt__(self, other: Any) -> Any:
        return self._compare("gt", other)

    def __ge__(self, other: Any) -> Any:
        return self._compare("ge", other)

    __hash__ = object.__hash__

    @property
    def T(self) -> Tensor:
        return self.transpose()


def init_ones_like(t: Tensor) -> Tensor:
    """A constant tensor of ones with ``t``'s shape, dtype and device."""
    return Tensor.make_const(nd.full(t.shape, 1.0, dtype=t.dtype, device=t.device))


def __getattr__(name: str) -> Any:
    # ``TENSOR_COUNTER`` (the course's count of live tensors), computed when read so that
    # creating a tensor costs nothing extra: the tensors the garbage collector tracks
    if name == "TENSOR_COUNTER":
        # type(o), not isinstance: isinstance reads __class__, which some lazy proxies
        # (torch's deprecated attributes) answer with a warning
        return sum(1 for o in gc.get_objects() if issubclass(type(o), Tensor))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_topo_sort(node_list: Sequence[Value]) -> list[Value]:
    """Nodes reachable from ``node_list`` in topological order (inputs before users).

    Iterative depth-first post-order, so graph depth is bounded by memory, not by
    Python's recursion limit.
    """
    order: list[Value] = []
    visited: set[int] = set()
    for root in node_list:
        if id(root) in visited:
            continue
        stack: list[tuple[Value, int]] = [(root, 0)]
        visited.add(id(root))
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                if id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def _accumulate(a: Value | None, b: Value) -> Value:
    return b if a is None else a + b  # type: ignore[operator]


def compute_gradient_of_variables(
    output_tensor: Tensor, out_grad: Tensor, *, free_graph: bool = False
) -> None:
    """Backpropagate ``out_grad`` from ``output_tensor``; accumulate into leaves' ``.grad``.

    Args:
        free_graph: drop each interior node's inputs once its gradient has been used, so
            memory is returned as soon as possible; a second backward then raises.
    """
    if getattr(output_tensor, "_graph_freed", False):
        raise RuntimeError(
            "backward: the graph was already freed by an earlier backward; "
            "pass retain_graph=True to the first call to backpropagate twice"
        )
    grads: dict[int, Value] = {id(output_tensor): out_grad}
    # Adjoints of TensorTuple nodes arrive one element at a time (from ops with a
    # ``tuple_index``, i.e. TupleGetItem); they are kept sparse and assembled once, so a
    # split into n parts costs n adjoints, not n tuples of n (mostly zero) tensors.
    parts: dict[int, dict[int, Value]] = {}
    for node in reversed(find_topo_sort([output_tensor])):
        grad = grads.pop(id(node), None)
        pieces = parts.pop(id(node), None)
        if pieces is not None:
            dense = _tuple_adjoint(node, pieces)
            grad = dense if grad is None else grad + dense  # type: ignore[operator]
        if grad is None or not node.requires_grad:
            continue
        if node.op is None:
            if getattr(node, "_graph_freed", False):
                raise RuntimeError(
                    "backward: the graph was already freed by an earlier backward; "
                    "pass retain_graph=True to the first call to backpropagate twice"
                )
            if isinstance(node, Tensor):
                if grad.dtype != node.dtype:  # type: ignore[attr-defined]
                    raise TypeError(f"backward: gradient dtype {grad.dtype} != {node.dtype}")  # type: ignore[attr-defined]
                node.grad = grad if node.grad is None else node.grad + grad  # type: ignore[assignment]
            continue
        index = getattr(node.op, "tuple_index", None)
        if index is not None:
            source = node.inputs[0]
            if source.requires_grad:
                slot = parts.setdefault(id(source), {})
                slot[index] = _accumulate(slot.get(index), grad)
        else:
            for inp, g in zip(node.inputs, node.op.gradient_as_tuple(grad, node)):
                if inp.requires_grad and g is not None:
                    grads[id(inp)] = _accumulate(grads.get(id(inp)), g)
        if free_graph:
            node.op, node.inputs = None, ()
            node._graph_freed = True  # type: ignore[attr-defined]


def _tuple_adjoint(node: Value, pieces: dict[int, Value]) -> Value:
    """The adjoint of a TensorTuple from its elements' adjoints (zeros where none came)."""
    data = node.realize_cached_data()
    full: list[Any] = []
    for i, part in enumerate(data):
        piece = pieces.get(i)
        if piece is None:
            piece = Tensor.make_const(
                nd.full(part.shape, 0.0, dtype=part.dtype, device=part.device)
            )
        full.append(piece)
    return ops.make_tuple(*full)


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """``x`` as a constant tensor on ``like``'s device and dtype (scalars included)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Real):
        return Tensor.make_const(nd.full((), float(x), dtype=like.dtype, device=like.device))
    return Tensor(x, device=like.device, dtype=like.dtype, requires_grad=False)


__all__ = [
    "Op",
    "Tensor",
    "TensorOp",
    "TensorTuple",
    "TensorTupleOp",
    "Value",
    "as_tensor",
    "compute_gradient_of_variables",
    "default_device",
    "enable_grad",
    "find_topo_sort",
    "is_grad_enabled",
    "no_grad",
]

# Late import: ``ops`` builds on Tensor and TensorOp above; Tensor's operators call it.
from . import ops  # noqa: E402
