"""``Module`` and ``Parameter``: the bookkeeping every layer shares.

A module's parameters, buffers and sub-modules are found by walking its attributes
(including lists, tuples and dicts of them), as in the course's needle, so a layer only
has to assign them in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..autograd import Tensor


class Parameter(Tensor):
    """A tensor that is a trainable parameter of a :class:`Module`."""


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, object) for every Parameter and Module reachable from ``value``."""
    if isinstance(value, (Parameter, Module)):
        yield prefix, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{prefix}.{i}" if prefix else str(i))


class Module:
    """Base class of every layer and model.

    Subclasses assign :class:`Parameter`\\ s, sub-modules and buffers (non-trainable
    state such as BatchNorm's running statistics, registered with
    :meth:`register_buffer`) in ``__init__`` and implement :meth:`forward`.
    """

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: list[str] = []

    # --- structure -------------------------------------------------------------------
    def _direct(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if not name.startswith("_"):
                yield from _walk(value, name)

    def named_children(self) -> list[tuple[str, Module]]:
        """The direct sub-modules with their attribute names."""
        return [(n, v) for n, v in self._direct() if isinstance(v, Module)]

    def children(self) -> list[Module]:
        """The direct sub-modules."""
        return [m for _, m in self.named_children()]

    def _children(self) -> list[Module]:
        """Every sub-module at any depth (the course's name)."""
        out: list[Module] = []
        for child in self.children():
            out.append(child)
            out.extend(child._children())
        return out

    def modules(self) -> list[Module]:
        """This module and every sub-module at any depth."""
        return [self, *self._children()]

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """Every parameter with its dotted name, e.g. ``("0.weight", ...)``; no duplicates."""
        out: list[tuple[str, Parameter]] = []
        seen: set[int] = set()
        for name, value in self._direct():
            full = f"{prefix}{name}"
            if isinstance(value, Parameter):
                items = [(full, value)]
            else:
                items = value.named_parameters(prefix=full + ".")
            for n, p in items:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append((n, p))
        return out

    def parameters(self) -> list[Parameter]:
        """Every parameter, each once, in a fixed order."""
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: Tensor) -> None:
        """Keep ``value`` as attribute ``name``: saved in :meth:`state_dict`, not trained."""
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, value)

    def named_buffers(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        """Every buffer with its dotted name."""
        out = [(f"{prefix}{n}", getattr(self, n)) for n in self._buffer_names]
        for name, child in self.named_children():
            out.extend(child.named_buffers(prefix=f"{prefix}{name}."))
        return out

    # --- modes -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch this module and its sub-modules to training (or eval) mode."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (dropout off, batch norm uses running statistics)."""
        return self.train(False)

    # --- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Parameters and buffers by dotted name, detached from the graph."""
        state = {n: p.detach() for n, p in self.named_parameters()}
        state.update((n, b.detach()) for n, b in self.named_buffers())
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy ``state`` (tensors or NumPy arrays by name) into this module in place.

        Raises:
            KeyError: with ``strict``, a key is missing from ``state`` or is not one of
                this module's (the message names the key).
            ValueError: a value's shape differs from the parameter's (names the key).
        """
        targets: dict[str, tuple[Module, str]] = {}
        for name, _ in self.named_parameters():
            targets[name] = self._owner(name)
        for name, _ in self.named_buffers():
            targets[name] = self._owner(name)
        if strict:
            name = type(self).__name__
            missing = [k for k in targets if k not in state]
            extra = [k for k in state if k not in targets]
            if missing:
                raise KeyError(f"load_state_dict: missing key(s) {missing} for {name}")
            if extra:
                raise KeyError(f"load_state_dict: unexpected key(s) {extra} for {name}")
        # all or nothing: every value is checked and converted before any is assigned
        staged: list[tuple[Tensor, Any]] = []
        for key, (owner, attr) in targets.items():
            if key not in state:
                continue
            current: Tensor = getattr(owner, attr)
            value = state[key]
            array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(array.shape) != current.shape:
                raise ValueError(
                    f"load_state_dict: shape mismatch for key {key!r}: "
                    f"checkpoint has {tuple(array.shape)}, model has {current.shape}"
                )
            if array.dtype.kind not in "fiub":
                raise TypeError(
                    f"load_state_dict: key {key!r} holds {array.dtype} values, "
                    f"expected numbers for a {current.dtype} tensor"
                )
            new = Tensor(array, device=current.device, dtype=current.dtype, requires_grad=False)
            staged.append((current, new.realize_cached_data()))
        for current, data in staged:
            current.cached_data = data

    def _owner(self, dotted: str) -> tuple[Module, str]:
        """The module and attribute name that hold the tensor called ``dotted``."""
        parts = dotted.split(".")
        if len(parts) == 1:
            return self, dotted
        obj: Any = getattr(self, parts[0])
        for i, part in enumerate(parts[1:], start=1):
            if isinstance(obj, Module):
                return obj._owner(".".join(parts[i:]))
            obj = obj[part] if isinstance(obj, Mapping) else obj[int(part)]
        raise TypeError(f"load_state_dict: {dotted!r} is not held by a module attribute")

    def save(self, path: str) -> None:
        """Write :meth:`state_dict` to ``path`` (safetensors; see :func:`needle.save`)."""
        from ..serialization import save

        save(self.state_dict(), path)

    def load(self, path: str, strict: bool = True) -> None:
        """Load parameters written by :meth:`save` (see :meth:`load_state_dict`)."""
        from ..serialization import load

        self.load_state_dict(load(path), strict=strict)

    # --- calling and printing ----------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its settings)."""
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class _Layers(list):  # type: ignore[type-arg]
    """``Sequential.modules``: the list of layers (the course's attribute), still callable
    as :meth:`Module.modules` (``seq.modules()`` is the Sequential and every sub-module)."""

    def __init__(self, owner: Sequential) -> None:
        super().__init__(owner.modules_list)
        self._owner = owner

    def __call__(self) -> list[Module]:
        return Module.modules(self._owner)


class Sequential(Module):
    """Applies ``modules`` one after another; ``seq.modules`` is the list of layers."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.modules_list = list(modules)

    @property  # type: ignore[override]
    def modules(self) -> _Layers:
        """The layers, in order (the course's ``Sequential.modules``)."""
        return _Layers(self)

    @modules.setter
    def modules(self, layers: Any) -> None:
        self.modules_list = list(layers)

    def named_children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.modules_list)]

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        out: list[tuple[str, Parameter]] = []
        seen: set[int] = set()
        for i, m in enumerate(self.modules_list):
            for n, p in m.named_parameters(prefix=f"{prefix}{i}."):
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append((n, p))
        return out

    def _owner(self, dotted: str) -> tuple[Module, str]:
        head, _, rest = dotted.partition(".")
        return self.modules_list[int(head)]._owner(rest)

    def __len__(self) -> int:
        return len(self.modules_list)

    def __getitem__(self, i: int) -> Module:
        return self.modules_list[i]

    def forward(self, x: Any) -> Any:
        for m in self.modules_list:
            x = m(x)
        return x


class Residual(Module):
    """``fn(x) + x``."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x
