"""Word-level language models: embedding, a sequence model, a linear decoder (hw4)."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..autograd import Tensor


class LanguageModel(nn.Module):
    """Predict the next token at every position of ``(T, B)`` id sequences.

    Args:
        embedding_size: width of the word vectors.
        output_size: the vocabulary size.
        hidden_size: width of the sequence model's states.
        num_layers: depth of the sequence model.
        seq_model: ``"rnn"``, ``"lstm"`` or ``"transformer"``.
        seq_len: the longest sequence (the Transformer's positional table).

    ``forward(x, h)`` returns logits ``(T * B, output_size)`` and the new hidden state.
    """

    def __init__(
        self,
        embedding_size: int,
        output_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seq_model: str = "rnn",
        seq_len: int = 40,
        device: Any = None,
        dtype: str = "float32",
        num_head: int = 4,
        dim_head: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.seq_model_name = seq_model
        self.final_norm: nn.Module | None = None
        self.embedding = nn.Embedding(output_size, embedding_size, **kw)
        if seq_model == "rnn":
            self.seq_model: nn.Module = nn.RNN(embedding_size, hidden_size, num_layers, **kw)
        elif seq_model == "lstm":
            self.seq_model = nn.LSTM(embedding_size, hidden_size, num_layers, **kw)
        elif seq_model == "transformer":
            self.seq_model = nn.Transformer(
                embedding_size,
                hidden_size,
                num_layers,
                num_head=num_head,
                dim_head=dim_head,
                dropout=dropout,
                sequence_len=seq_len,
                **kw,
            )
            hidden_size = embedding_size
            # pre-norm layers leave the residual stream unnormalised: normalise it once
            # more before the decoder (as GPT-2 does), else the first logits are huge
            self.final_norm = nn.LayerNorm1d(embedding_size, **kw)
        else:
            raise ValueError(
                f"LanguageModel: seq_model must be 'rnn', 'lstm' or 'transformer', "
                f"got {seq_model!r}"
            )
        self.linear = nn.Linear(hidden_size, output_size, **kw)

    def extra_repr(self) -> str:
        return f"seq_model={self.seq_model_name!r}"

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Any]:
        t, b = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        out = out.reshape((t * b, out.shape[-1]))
        if self.final_norm is not None:
            out = self.final_norm(out)
        return self.linear(out), h


def TransformerLM(
    vocab_size: int,
    embedding_size: int = 64,
    hidden_size: int = 128,
    num_layers: int = 2,
    seq_len: int = 40,
    num_head: int = 4,
    dim_head: int = 16,
    dropout: float = 0.0,
    device: Any = None,
    dtype: str = "float32",
) -> LanguageModel:
    """A :class:`LanguageModel` whose sequence model is a causal Transformer."""
    return LanguageModel(
        embedding_size,
        vocab_size,
        hidden_size,
        num_layers,
        "transformer",
        seq_len,
        device=device,
        dtype=dtype,
        num_head=num_head,
        dim_head=dim_head,
        dropout=dropout,
    )
