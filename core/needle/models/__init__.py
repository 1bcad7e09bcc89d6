"""needle.models: the model zoo used by the examples, ``needle train`` and the benchmarks."""

from __future__ import annotations

from .cnn import ConvBN, ConvNet, ResNet9
from .language import LanguageModel, TransformerLM
from .mlp import MLP, MLPResNet, ResidualBlock, SoftmaxRegression

__all__ = [
    "MLP",
    "ConvBN",
    "ConvNet",
    "LanguageModel",
    "MLPResNet",
    "ResNet9",
    "ResidualBlock",
    "SoftmaxRegression",
    "TransformerLM",
]
