"""The tasks of ``needle train``: data, model and default hyper-parameters for each."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import models, nn


@dataclass
class Task:
    """A named training recipe.

    Attributes:
        kind: ``"classification"`` (DataLoader of images) or ``"language-model"`` (PTB).
        defaults: values for options the user leaves out (epochs, batch_size, lr...).
        build_model: ``(args, device, vocab_size) -> Module``.
    """

    name: str
    kind: str
    description: str
    build_model: Callable[[argparse.Namespace, Any, int], nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()


def _lm(seq_model: str) -> Callable[[argparse.Namespace, Any, int], nn.Module]:
    def build(args: argparse.Namespace, device: Any, vocab: int) -> nn.Module:
        if seq_model == "transformer":
            return models.TransformerLM(
                vocab,
                embedding_size=args.embedding_size,
                hidden_size=args.hidden_size,
                num_layers=args.num_layers,
                seq_len=args.bptt,
                num_head=4,
                dim_head=args.embedding_size // 4,
                dropout=args.dropout,
                device=device,
            )
        return models.LanguageModel(
            args.embedding_size, vocab, args.hidden_size, args.num_layers, seq_model, device=device
        )

    return build


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "mnist-mlp",
            "classification",
            "MLP (784-512-10) on MNIST",
            lambda a, d, _: models.MLP(784, (512,), 10, device=d),
            {"epochs": 4, "batch_size": 128, "lr": 1e-3, "optimizer": "adam"},
        ),
        Task(
            "mnist-cnn",
            "classification",
            "small ConvNet on MNIST",
            lambda a, d, _: models.ConvNet(1, 10, width=16, hidden=128, device=d),
            {"epochs": 2, "batch_size": 64, "lr": 2e-3, "optimizer": "adam"},
            input_shape=(1, 28, 28),
        ),
        Task(
            "cifar10-resnet9",
            "classification",
            "ResNet9 on CIFAR-10 (downloaded)",
            lambda a, d, _: models.ResNet9(10, device=d),
            {
                "epochs": 10,
                "batch_size": 128,
                "lr": 1e-3,
                "optimizer": "adam",
                "weight_decay": 1e-3,
            },
        ),
        Task(
            "ptb-lstm",
            "language-model",
            "LSTM language model on the PTB sample",
            _lm("lstm"),
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
        ),
        Task(
            "ptb-transformer",
            "language-model",
            "Transformer language model on the PTB sample",
            _lm("transformer"),
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
