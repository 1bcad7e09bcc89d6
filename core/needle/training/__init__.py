"""``needle train TASK``: train a model-zoo model on a real data set, with checkpoints.

The pieces: :class:`TrainConfig` (every option, typed and checked), the task classes
in :mod:`.tasks` (each loads its data, builds its model and runs one pass),
:func:`train` (the one epoch loop), and the argparse front end in :mod:`.cli`:
``add_train_parser(subparsers)`` registers the ``train`` sub-command on the CLI's
argparse sub-parsers; ``python -m needle.training TASK ...`` runs it alone.
"""

from __future__ import annotations

from .cli import add_train_parser, build_parser, main, run
from .config import TaskConfig, TrainConfig, TrainConfigError
from .loops import EpochResult, TrainHooks, run_batches
from .tasks import (
    TASKS,
    ClassificationTask,
    LanguageModelTask,
    Task,
    get_task,
)
from .trainer import train

__all__ = [
    "TASKS",
    "ClassificationTask",
    "EpochResult",
    "LanguageModelTask",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "TrainConfigError",
    "TrainHooks",
    "add_train_parser",
    "build_parser",
    "get_task",
    "main",
    "run",
    "run_batches",
    "train",
]
