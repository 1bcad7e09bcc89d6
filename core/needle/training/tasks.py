"""The tasks of ``needle train``: each loads its data, builds its model and runs an epoch.

A task is an object: :class:`Task` fixes the interface, :class:`ClassificationTask`
(images through a ``DataLoader``) and :class:`LanguageModelTask` (PTB, truncated BPTT)
implement it, and :data:`TASKS` holds the five named recipes with their defaults.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import models, nn, optim
from ..autograd import Tensor
from .config import TUNABLE, TaskConfig, TrainConfig, TrainConfigError
from .loops import EpochResult, TrainHooks, run_batches, unigram_perplexity

__all__ = [
    "TASKS",
    "CIFAR10Task",
    "ClassificationTask",
    "LanguageModelTask",
    "MNISTTask",
    "RecurrentLMTask",
    "Task",
    "TransformerLMTask",
    "get_task",
]

Data = dict[str, Any]

#: Values for tunable options that neither the user nor the task sets.
BASE_DEFAULTS: Mapping[str, Any] = {
    "weight_decay": 0.0,
    "embedding_size": 0,
    "hidden_size": 0,
    "num_layers": 1,
    "bptt": 35,
    "clip": 0.0,
    "dropout": 0.0,
}
_REQUIRED_DEFAULTS = ("epochs", "batch_size", "lr", "optimizer")


class Task(ABC):
    """A named training recipe.

    Subclasses implement :meth:`load_data`, :meth:`build_model` and :meth:`run_epoch`;
    :meth:`metrics`, :meth:`extra_metrics` and :meth:`describe` shape what is reported.

    Attributes:
        name: what ``needle train NAME`` calls it.
        description: one line for ``--help``.
        defaults: values for the tunable options (``config.TUNABLE``) the user leaves out;
            ``epochs``, ``batch_size``, ``lr`` and ``optimizer`` are required.
        eval_splits: the splits evaluated after training, ``"test"`` first.
    """

    eval_splits: tuple[str, ...] = ("test",)

    def __init__(self, name: str, description: str, defaults: Mapping[str, Any]) -> None:
        unknown = sorted(set(defaults) - set(TUNABLE))
        if unknown:
            raise ValueError(f"task {name!r}: no tunable option named {', '.join(unknown)}")
        missing = [k for k in _REQUIRED_DEFAULTS if k not in defaults]
        if missing:
            raise ValueError(f"task {name!r} needs a default for {', '.join(missing)}")
        self.name = name
        self.description = description
        self.defaults = dict(defaults)
        self.configure(TrainConfig(task=name))  # the defaults themselves must be valid

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def configure(self, config: TrainConfig) -> TaskConfig:
        """``config`` with every tunable option the user left out set to this task's default."""
        options = config.options()
        for name in TUNABLE:
            if options[name] is None:
                options[name] = self.defaults.get(name, BASE_DEFAULTS.get(name))
        return TaskConfig(**options)

    @abstractmethod
    def load_data(self, config: TaskConfig, device: Any) -> Data:
        """The splits (at least ``"train"`` and :attr:`eval_splits`) and anything else."""

    @abstractmethod
    def build_model(self, config: TaskConfig, device: Any, data: Data) -> nn.Module:
        """A freshly initialised model on ``device``."""

    @abstractmethod
    def run_epoch(
        self,
        model: nn.Module,
        opt: optim.Optimizer | None,
        data: Data,
        split: str,
        *,
        train: bool,
        config: TaskConfig,
        device: Any = None,
        desc: str = "",
        hooks: TrainHooks | None = None,
    ) -> EpochResult:
        """One pass over ``data[split]``: training with ``opt`` if ``train``, else evaluation."""

    def metrics(self, result: EpochResult) -> dict[str, float]:
        """Quality metrics of one pass beyond its loss, unprefixed (``{"accuracy": ...}``)."""
        return {}

    def extra_metrics(self, data: Data) -> dict[str, float]:
        """Metrics of the data rather than the model (baselines); reported once."""
        return {}

    def _batches(
        self,
        model: nn.Module,
        batches: Any,
        total: int,
        forward: Any,
        opt: optim.Optimizer | None,
        config: TaskConfig,
        hooks: TrainHooks | None,
        desc: str,
        clip: float | None = None,
    ) -> EpochResult:
        """One pass through :func:`run_batches` with this task's progress fields; compiled
        steps (``config.compile``) are kept on the model, so they live as long as it does."""
        return run_batches(
            model,
            batches,
            total,
            forward,
            opt,
            clip=clip,
            hooks=hooks,
            desc=desc,
            progress=config.progress,
            postfix=self.progress_postfix,
            compile_cache=model.__dict__.setdefault("_train_step_cache", {})
            if config.compile
            else None,
        )

    def describe(self, result: EpochResult) -> str:
        """One pass's result in the epoch log line."""
        return f"loss {result.loss:.4f}"

    def progress_postfix(self, loss: float, accuracy: float, rate: float) -> dict[str, str]:
        """The progress bar's fields, given the running loss, accuracy and examples/s."""
        return {"loss": f"{loss:.4f}", "examples_s": f"{rate:.0f}"}


def _check_mode(opt: optim.Optimizer | None, train: bool, split: str) -> optim.Optimizer | None:
    if train and opt is None:
        raise ValueError(f"run_epoch(split={split!r}, train=True) needs an optimizer")
    return opt if train else None


class ClassificationTask(Task):
    """Images and labels through a ``DataLoader``; reports accuracy.

    Args:
        model: ``device -> Module`` building the network.
        input_shape: reshape each batch ``x`` to ``(batch, *input_shape)`` when given.
    """

    def __init__(
        self,
        name: str,
        description: str,
        defaults: Mapping[str, Any],
        *,
        model: Callable[[Any], nn.Module],
        input_shape: tuple[int, ...] = (),
    ) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        super().__init__(name, description, defaults)

    def datasets(self, config: TaskConfig) -> tuple[Any, Any]:
        """The training and test ``Dataset``s."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its data is")

    def load_data(self, config: TaskConfig, device: Any) -> Data:
        from .. import data

        train, test = self.datasets(config)
        return {
            "train": data.DataLoader(train, config.batch_size, shuffle=True, device=device),
            "test": data.DataLoader(test, 500, device=device),
        }

    def build_model(self, config: TaskConfig, device: Any, data: Data) -> nn.Module:
        return self.model(device)

    def run_epoch(
        self,
        model: nn.Module,
        opt: optim.Optimizer | None,
        data: Data,
        split: str,
        *,
        train: bool,
        config: TaskConfig,
        device: Any = None,
        desc: str = "",
        hooks: TrainHooks | None = None,
    ) -> EpochResult:
        opt = _check_mode(opt, train, split)
        loader = data[split]
        total = len(loader)
        batches: Any = loader
        if config.limit_batches is not None:
            batches = itertools.islice(loader, config.limit_batches)
            total = min(config.limit_batches, total)
        shape = self.input_shape

        def forward(x: Tensor, state: Any) -> tuple[Tensor, Any]:
            if shape:
                x = x.reshape((x.shape[0], *shape))
            return model(x), None

        return self._batches(model, batches, total, forward, opt, config, hooks, desc or split)

    def metrics(self, result: EpochResult) -> dict[str, float]:
        return {"accuracy": result.accuracy}

    def describe(self, result: EpochResult) -> str:
        return f"loss {result.loss:.4f}, accuracy {result.accuracy:.4f}"

    def progress_postfix(self, loss: float, accuracy: float, rate: float) -> dict[str, str]:
        return {"loss": f"{loss:.4f}", "acc": f"{accuracy:.4f}", "samples_s": f"{rate:.0f}"}


class MNISTTask(ClassificationTask):
    """A classifier of MNIST digits (ships in ``data/mnist``)."""

    def datasets(self, config: TaskConfig) -> tuple[Any, Any]:
        from .. import data

        return (
            data.MNISTDataset(root=config.data_dir, train=True),
            data.MNISTDataset(root=config.data_dir, train=False),
        )


class CIFAR10Task(ClassificationTask):
    """A classifier of CIFAR-10 images, trained with random flips and crops."""

    def datasets(self, config: TaskConfig) -> tuple[Any, Any]:
        from .. import data

        augment = [data.RandomFlipHorizontal(), data.RandomCrop(4)]
        return (
            data.CIFAR10Dataset(config.data_dir, train=True, transforms=augment),
            data.CIFAR10Dataset(config.data_dir, train=False),
        )


class LanguageModelTask(Task):
    """Next-word prediction on the PTB sample with truncated BPTT; reports perplexity.

    The data are the corpus and its three splits batchified into ``batch_size``
    columns; a pass walks windows of ``bptt`` rows, carrying the hidden state from one
    window to the next, detached.
    """

    eval_splits = ("test", "valid")

    def load_data(self, config: TaskConfig, device: Any) -> Data:
        from .. import data

        corpus = data.Corpus(config.data_dir)
        return {
            "corpus": corpus,
            "train": data.batchify(corpus.train, config.batch_size),
            "valid": data.batchify(corpus.valid, config.batch_size),
            "test": data.batchify(corpus.test, config.batch_size),
        }

    def build_model(self, config: TaskConfig, device: Any, data: Data) -> nn.Module:
        return self.language_model(config, device, len(data["corpus"].dictionary))

    @abstractmethod
    def language_model(self, config: TaskConfig, device: Any, vocab_size: int) -> nn.Module:
        """The network: ``model(x, state) -> (logits, state)``."""

    def run_epoch(
        self,
        model: nn.Module,
        opt: optim.Optimizer | None,
        data: Data,
        split: str,
        *,
        train: bool,
        config: TaskConfig,
        device: Any = None,
        desc: str = "",
        hooks: TrainHooks | None = None,
    ) -> EpochResult:
        from ..data import get_batch

        opt = _check_mode(opt, train, split)
        rows: np.ndarray = data[split]
        bptt = config.bptt
        starts = list(range(0, len(rows) - 1, bptt))
        if config.limit_batches is not None:
            starts = starts[: config.limit_batches]
        batches = (get_batch(rows, i, bptt, device=device, dtype="float32") for i in starts)

        def forward(x: Tensor, state: Any) -> tuple[Tensor, Any]:
            return model(x, state)  # type: ignore[no-any-return]

        clip = config.clip if train else None
        return self._batches(
            model, batches, len(starts), forward, opt, config, hooks, desc or split, clip
        )

    def metrics(self, result: EpochResult) -> dict[str, float]:
        return {"perplexity": result.perplexity}

    def extra_metrics(self, data: Data) -> dict[str, float]:
        corpus = data["corpus"]
        vocab = len(corpus.dictionary)
        return {
            "unigram_valid_perplexity": unigram_perplexity(corpus.train, corpus.valid, vocab),
            "unigram_test_perplexity": unigram_perplexity(corpus.train, corpus.test, vocab),
        }

    def describe(self, result: EpochResult) -> str:
        return f"loss {result.loss:.4f}, perplexity {result.perplexity:.1f}"

    def progress_postfix(self, loss: float, accuracy: float, rate: float) -> dict[str, str]:
        return {"loss": f"{loss:.3f}", "ppl": f"{math.exp(loss):.1f}", "tokens_s": f"{rate:.0f}"}


class RecurrentLMTask(LanguageModelTask):
    """Embedding, a recurrent network (``"rnn"`` or ``"lstm"``) and a linear decoder."""

    def __init__(
        self, name: str, description: str, defaults: Mapping[str, Any], *, cell: str
    ) -> None:
        if cell not in ("rnn", "lstm"):
            raise ValueError(f"task {name!r}: cell must be 'rnn' or 'lstm', got {cell!r}")
        self.cell = cell
        super().__init__(name, description, defaults)

    def language_model(self, config: TaskConfig, device: Any, vocab_size: int) -> nn.Module:
        return models.LanguageModel(
            config.embedding_size,
            vocab_size,
            config.hidden_size,
            config.num_layers,
            self.cell,
            device=device,
        )


class TransformerLMTask(LanguageModelTask):
    """A causal Transformer language model (4 heads) over windows of ``bptt`` tokens."""

    num_head = 4

    def language_model(self, config: TaskConfig, device: Any, vocab_size: int) -> nn.Module:
        embedding = config.embedding_size
        return models.TransformerLM(
            vocab_size,
            embedding_size=embedding,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            seq_len=config.bptt,
            num_head=self.num_head,
            dim_head=embedding // self.num_head,
            dropout=config.dropout,
            device=device,
        )


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        MNISTTask(
            "mnist-mlp",
            "MLP (784-512-10) on MNIST",
            {"epochs": 4, "batch_size": 128, "lr": 1e-3, "optimizer": "adam"},
            model=lambda device: models.MLP(784, (512,), 10, device=device),
        ),
        MNISTTask(
            "mnist-cnn",
            "small ConvNet on MNIST",
            {"epochs": 2, "batch_size": 64, "lr": 2e-3, "optimizer": "adam"},
            model=lambda device: models.ConvNet(1, 10, width=16, hidden=128, device=device),
            input_shape=(1, 28, 28),
        ),
        CIFAR10Task(
            "cifar10-resnet9",
            "ResNet9 on CIFAR-10 (downloaded)",
            {
                "epochs": 10,
                "batch_size": 128,
                "lr": 1e-3,
                "optimizer": "adam",
                "weight_decay": 1e-3,
            },
            model=lambda device: models.ResNet9(10, device=device),
        ),
        RecurrentLMTask(
            "ptb-lstm",
            "LSTM language model on the PTB sample",
            {
                "epochs": 3,
                "batch_size": 32,
                "lr": 3e-3,
                "optimizer": "adam",
                "embedding_size": 128,
                "hidden_size": 256,
                "num_layers": 1,
                "bptt": 35,
                "clip": 5.0,
            },
            cell="lstm",
        ),
        TransformerLMTask(
            "ptb-transformer",
            "Transformer language model on the PTB sample",
            {
                "epochs": 5,
                "batch_size": 16,
                "lr": 3e-3,
                "optimizer": "adam",
                "embedding_size": 64,
                "hidden_size": 128,
                "num_layers": 2,
                "bptt": 35,
                "clip": 5.0,
                "dropout": 0.1,
            },
        ),
    ]
}


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        TrainConfigError: no task has that name (the message lists the tasks).
    """
    try:
        return TASKS[name]
    except KeyError:
        raise TrainConfigError(
            f"option 'task': no task named {name!r}; choose one of {', '.join(sorted(TASKS))}"
        ) from None
