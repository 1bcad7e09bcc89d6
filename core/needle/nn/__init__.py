"""needle.nn: modules (layers, losses, models' building blocks), course-compatible."""

from __future__ import annotations

from .attention import AttentionLayer, MultiHeadAttention, Transformer, TransformerLayer
from .basic import Dropout, Embedding, Flatten, Linear, ReLU, Sigmoid, SoftmaxLoss, Tanh
from .conv import AvgPool2d, Conv, MaxPool2d
from .module import Identity, Module, Parameter, Residual, Sequential
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm1d
from .recurrent import LSTM, RNN, LSTMCell, RNNCell
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "LSTM",
    "RNN",
    "AttentionLayer",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv",
    "Dropout",
    "Embedding",
    "Flatten",
    "Identity",
    "LSTMCell",
    "LayerNorm1d",
    "Linear",
    "MaxPool2d",
    "Module",
    "MultiHeadAttention",
    "Parameter",
    "RNNCell",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SoftmaxLoss",
    "SyncBatchNorm",
    "Tanh",
    "Transformer",
    "TransformerLayer",
]
