"""An LSTM language model on the PTB sample with truncated BPTT and gradient clipping.

Run: python examples/lstm_language_model.py  (prints perplexities against the unigram one)
"""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
from needle import data, models, nn, optim


def evaluate(model: nn.Module, batches: np.ndarray, bptt: int) -> float:
    model.eval()
    total, count, h = 0.0, 0, None
    with ndl.no_grad():
        for i in range(0, len(batches) - 1, bptt):
            x, y = data.get_batch(batches, i, bptt)
            logits, h = model(x, h)
            total += nn.SoftmaxLoss()(logits, y).item() * y.shape[0]
            count += y.shape[0]
    return math.exp(total / count)


def main(seq_model: str = "lstm", epochs: int = 1, bptt: int = 35) -> None:
    ndl.manual_seed(0)
    corpus = data.Corpus()
    vocab = len(corpus.dictionary)
    train = data.batchify(corpus.train, 20)
    valid = data.batchify(corpus.valid, 10)
    if seq_model == "transformer":
        model: nn.Module = models.TransformerLM(
            vocab, embedding_size=64, hidden_size=128, num_layers=2, seq_len=bptt
        )
    else:
        model = models.LanguageModel(128, vocab, 128, num_layers=1, seq_model=seq_model)
    opt = optim.Adam(model.parameters(), lr=3e-3 if seq_model == "lstm" else 1e-3)
    for epoch in range(epochs):
        model.train()
        h = None
        for i in range(0, len(train) - 1, bptt):
            x, y = data.get_batch(train, i, bptt)
            logits, h = model(x, h)
            loss = nn.SoftmaxLoss()(logits, y)
            opt.reset_grad()
            loss.backward()
            optim.clip_grad_norm(model.parameters(), 5.0)
            opt.step()
            h = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()
        print(f"epoch {epoch + 1}: valid perplexity {evaluate(model, valid, bptt):.1f}")
    counts = np.bincount(corpus.train, minlength=vocab) + 1.0
    unigram = math.exp(-np.log(counts / counts.sum())[corpus.valid].mean())
    print(f"unigram valid perplexity: {unigram:.1f}")


if __name__ == "__main__":
    main()
