"""``TrainConfig``: every option of ``needle train``, typed and checked."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["OPTIMIZERS", "TUNABLE", "TaskConfig", "TrainConfig", "TrainConfigError"]

OPTIMIZERS = ("sgd", "adam")

#: The options a task gives a default for; ``None`` in a config means "the task's default".
TUNABLE = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "embedding_size",
    "hidden_size",
    "num_layers",
    "bptt",
    "clip",
    "dropout",
)


class TrainConfigError(ValueError):
    """An option of ``needle train`` has a value it cannot take (the message names it)."""


# option -> (smallest allowed value, whether the bound itself is allowed)
_INT_MIN = {
    "epochs": 0,
    "batch_size": 1,
    "seed": 0,
    "limit_batches": 1,
    "embedding_size": 0,
    "hidden_size": 0,
    "num_layers": 1,
    "bptt": 1,
}
_FLOAT_MIN = {
    "lr": (0.0, False),
    "momentum": (0.0, True),
    "weight_decay": (0.0, True),
    "clip": (0.0, True),
    "dropout": (0.0, True),
}
_SEED_MAX = 2**32 - 1  # what np.random.seed accepts
_PATHS = ("data_dir", "checkpoint", "resume", "metrics_json")


@dataclass(frozen=True)
class TrainConfig:
    """The options of one ``needle train`` run.

    A tunable option (:data:`TUNABLE`) left at ``None`` takes the task's default:
    ``Task.configure`` returns a :class:`TaskConfig`, a copy with every one filled in.
    Construction checks every value given: a wrong type raises ``TypeError`` and an
    out-of-range value :class:`TrainConfigError` (a ``ValueError``), each naming the
    option; an unknown option is the constructor's own ``TypeError``.

    Attributes:
        task: the task's name (``needle train --help`` lists them).
        backend: array backend name; ``None`` is the default device.
        epochs: passes over the training data (0 only evaluates).
        batch_size: examples (images, or PTB columns) per batch.
        lr: initial learning rate; a cosine decay takes it to 5% by the last epoch.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 weight decay of the optimizer.
        seed: seeds initialisation; epoch ``e`` draws from ``epoch_seed(seed, e)``.
        data_dir: folder holding the data set (else ``NEEDLE_DATA``, then ``data/``).
        checkpoint: write model, optimizer, epoch and RNG state here after each epoch.
        resume: continue from this checkpoint.
        metrics_json: write the final metrics as JSON here.
        limit_batches: at most this many batches per pass (quick runs, tests).
        progress: show a progress bar.
        compile: replay training steps with ``needle.compile`` where the task allows it
            (classification without gradient clipping, one process); else eager.
        embedding_size, hidden_size, num_layers, bptt, clip: language models.
        dropout: the Transformer's dropout (training only).
    """

    task: str
    backend: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    seed: int = 0
    data_dir: str | os.PathLike[str] | None = None
    checkpoint: str | os.PathLike[str] | None = None
    resume: str | os.PathLike[str] | None = None
    metrics_json: str | os.PathLike[str] | None = None
    limit_batches: int | None = None
    progress: bool = True
    compile: bool = True
    embedding_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    bptt: int | None = None
    clip: float | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise TypeError(f"TrainConfig option 'task' must be a task name, got {self.task!r}")
        for name, low in _INT_MIN.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"TrainConfig option {name!r} must be an int, got {type(value).__name__}"
                )
            if value < low:
                raise TrainConfigError(f"option {name!r} must be >= {low}, got {value}")
        if self.seed > _SEED_MAX:
            raise TrainConfigError(f"option 'seed' must be <= {_SEED_MAX}, got {self.seed}")
        for name, (floor, inclusive) in _FLOAT_MIN.items():
            raw = getattr(self, name)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise TypeError(
                    f"TrainConfig option {name!r} must be a number, got {type(raw).__name__}"
                )
            number = float(raw)
            if number != number or number < floor or (number == floor and not inclusive):
                bound = ">=" if inclusive else ">"
                raise TrainConfigError(f"option {name!r} must be {bound} {floor}, got {number}")
            object.__setattr__(self, name, number)
        if self.dropout is not None and self.dropout >= 1.0:
            raise TrainConfigError(f"option 'dropout' must be < 1, got {self.dropout}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise TrainConfigError(
                f"option 'optimizer' must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.backend is not None and not isinstance(self.backend, str):
            raise TypeError(
                f"TrainConfig option 'backend' must be a backend name, got {self.backend!r}"
            )
        for name in _PATHS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(
                    f"TrainConfig option {name!r} must be a path, got {type(value).__name__}"
                )
        for name in ("progress", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"TrainConfig option {name!r} must be a bool, "
                    f"got {type(getattr(self, name)).__name__}"
                )

    @classmethod
    def from_namespace(cls, ns: Any) -> TrainConfig:
        """The config of an ``argparse`` namespace; attributes that are not options are ignored."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})

    def unset(self) -> list[str]:
        """The tunable options still ``None`` (left to the task)."""
        return [name for name in TUNABLE if getattr(self, name) is None]

    def options(self) -> dict[str, Any]:
        """Every option by name (a shallow copy, unlike ``dataclasses.asdict``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class TaskConfig(TrainConfig):
    """A :class:`TrainConfig` with every tunable option set: what a task's methods get.

    ``Task.configure`` makes one; constructing it directly needs every tunable option
    as a keyword.
    """

    epochs: int = field(kw_only=True)
    batch_size: int = field(kw_only=True)
    lr: float = field(kw_only=True)
    optimizer: str = field(kw_only=True)
    weight_decay: float = field(kw_only=True)
    embedding_size: int = field(kw_only=True)
    hidden_size: int = field(kw_only=True)
    num_layers: int = field(kw_only=True)
    bptt: int = field(kw_only=True)
    clip: float = field(kw_only=True)
    dropout: float = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = self.unset()
        if missing:
            raise TrainConfigError(f"TaskConfig needs a value for {', '.join(missing)}")
