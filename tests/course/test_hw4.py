"""hw4: sequence models, convolutions, the extra operators and the hw4 data sets."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients
from needle import data, nn


def T(a: np.ndarray, **kw: object) -> ndl.Tensor:
    return ndl.Tensor(np.asarray(a, dtype=np.float32), **kw)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# --- operators ------------------------------------------------------------------------
def test_stack_and_split() -> None:
    np.random.seed(0)
    arrays = [np.random.randn(3, 4) for _ in range(5)]
    for axis in (0, 1, 2):
        out = ndl.stack([T(a) for a in arrays], axis=axis)
        np.testing.assert_allclose(out.numpy(), np.stack(arrays, axis=axis), rtol=1e-6)
    parts = ndl.split(T(np.stack(arrays, 1)), axis=1)
    assert len(parts) == 5
    for p, a in zip(parts, arrays):
        np.testing.assert_allclose(p.numpy(), a, rtol=1e-6)
    check_gradients(lambda a, b: ndl.stack([a, b], axis=1), arrays[0], arrays[1])


def test_flip_dilate_undilate() -> None:
    np.random.seed(1)
    a = np.random.randn(2, 3, 4)
    np.testing.assert_allclose(ndl.flip(T(a), (0, 2)).numpy(), np.flip(a, (0, 2)), rtol=1e-6)
    d = ndl.dilate(T(a), (1,), 2).numpy()
    expected = np.zeros((2, 9, 4))
    expected[:, ::3] = a
    np.testing.assert_allclose(d, expected, rtol=1e-6)
    np.testing.assert_allclose(ndl.undilate(T(expected), (1,), 2).numpy(), a, rtol=1e-6)
    check_gradients(lambda x: ndl.flip(x, (1,)), a)
    check_gradients(lambda x: ndl.dilate(x, (0, 2), 1), a)


def _conv_reference(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    # NHWC input, (K, K, C_in, C_out) weights: the course's layout, written as loops
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h, wd, _ = x.shape
    k, _, _, c_out = w.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1)])
def test_conv_op_forward_and_gradient(stride: int, padding: int) -> None:
    np.random.seed(2)
    x = np.random.randn(2, 5, 5, 3)
    w = np.random.randn(3, 3, 3, 4)
    out = ndl.conv(T(x), T(w), stride=stride, padding=padding)
    np.testing.assert_allclose(
        out.numpy(), _conv_reference(x, w, stride, padding), rtol=1e-4, atol=1e-4
    )
    check_gradients(
        lambda a, b: ndl.conv(a, b, stride=stride, padding=padding), x, w, rtol=1e-4, atol=1e-5
    )


def test_conv_module_draws_and_layout() -> None:
    np.random.seed(3)
    conv = nn.Conv(3, 4, 3, stride=1)
    np.random.seed(3)
    bound = math.sqrt(6 / (3 * 9))
    w = (np.random.rand(3, 3, 3, 4) * 2 - 1) * bound
    b_bound = 1 / math.sqrt(3 * 9)
    b = np.random.rand(4) * 2 * b_bound - b_bound
    np.testing.assert_allclose(conv.weight.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv.bias.numpy(), b, rtol=1e-5, atol=1e-6)
    x = np.random.randn(2, 3, 6, 6)  # NCHW in and out, "same" padding k // 2
    out = conv(T(x)).numpy()
    ref = _conv_reference(x.transpose(0, 2, 3, 1), w, 1, 1) + b
    np.testing.assert_allclose(out, ref.transpose(0, 3, 1, 2), rtol=1e-4, atol=1e-4)


def test_batchnorm2d_normalises_each_channel() -> None:
    np.random.seed(4)
    x = np.random.randn(2, 3, 4, 4).astype(np.float32)
    out = nn.BatchNorm2d(3)(T(x)).numpy()
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)


# --- sequence models ------------------------------------------------------------------
def _rnn_reference(x, h0, cells):  # type: ignore[no-untyped-def]
    hs = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(cells):
        h = h0[layer]
        outs = []
        for x_t in x:
            h = np.tanh(x_t @ w_ih + b_ih + h @ w_hh + b_hh)
            outs.append(h)
        x = np.stack(outs)
        hs.append(h)
    return x, np.stack(hs)


def _lstm_reference(x, h0, c0, cells):  # type: ignore[no-untyped-def]
    hs, cs = [], []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(cells):
        h, c = h0[layer], c0[layer]
        outs = []
        for x_t in x:
            gates = x_t @ w_ih + b_ih + h @ w_hh + b_hh
            i, f, g, o = np.split(gates, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        x = np.stack(outs)
        hs.append(h)
        cs.append(c)
    return x, np.stack(hs), np.stack(cs)


def _weights(cells: list) -> list:  # type: ignore[type-arg]
    return [
        tuple(p.numpy().astype(np.float64) for p in (c.W_ih, c.W_hh, c.bias_ih, c.bias_hh))
        for c in cells
    ]


def test_rnn_cell_draw_order_and_formula() -> None:
    np.random.seed(5)
    cell = nn.RNNCell(4, 3)
    np.random.seed(5)
    k = 1 / math.sqrt(3)
    for p, shape in zip(
        (cell.W_ih, cell.W_hh, cell.bias_ih, cell.bias_hh), [(4, 3), (3, 3), (3,), (3,)]
    ):
        np.testing.assert_allclose(
            p.numpy(), np.random.rand(*shape) * 2 * k - k, rtol=1e-5, atol=1e-6
        )
    x, h = np.random.randn(2, 4), np.random.randn(2, 3)
    w = _weights([cell])[0]
    np.testing.assert_allclose(
        cell(T(x), T(h)).numpy(), np.tanh(x @ w[0] + w[2] + h @ w[1] + w[3]), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_h0", [False, True])
def test_rnn_forward_matches_formula(num_layers: int, with_h0: bool) -> None:
    np.random.seed(6)
    model = nn.RNN(4, 3, num_layers=num_layers)
    x = np.random.randn(5, 2, 4)
    h0 = np.random.randn(num_layers, 2, 3) if with_h0 else np.zeros((num_layers, 2, 3))
    out, h_n = model(T(x), T(h0) if with_h0 else None)
    ref_out, ref_h = _rnn_reference(x, h0, _weights(model.rnn_cells))
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), ref_h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_h0", [False, True])
def test_lstm_forward_matches_formula(num_layers: int, with_h0: bool) -> None:
    np.random.seed(7)
    model = nn.LSTM(4, 3, num_layers=num_layers)
    x = np.random.randn(5, 2, 4)
    shape = (num_layers, 2, 3)
    h0, c0 = (
        (np.random.randn(*shape), np.random.randn(*shape)) if with_h0 else (np.zeros(shape),) * 2
    )
    out, (h_n, c_n) = model(T(x), (T(h0), T(c0)) if with_h0 else None)
    ref_out, ref_h, ref_c = _lstm_reference(x, h0, c0, _weights(model.lstm_cells))
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), ref_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c_n.numpy(), ref_c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.RNNCell(4, 3),
        lambda: nn.LSTMCell(4, 3),
        lambda: nn.RNN(4, 3, num_layers=2),
        lambda: nn.LSTM(4, 3, num_layers=2),
    ],
    ids=["RNNCell", "LSTMCell", "RNN", "LSTM"],
)
def test_every_parameter_has_a_gradient_when_h0_is_none(make) -> None:  # type: ignore[no-untyped-def]
    """The course starts from zeros: W_hh gets a gradient (zeros here), never None."""
    np.random.seed(8)
    model = make()
    # one step (a cell, or a sequence of length 1): h0 never meets W_hh but zeros would
    x = T(np.random.randn(2, 4)) if "Cell" in type(model).__name__ else T(np.random.randn(1, 2, 4))
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape, name
        if name.endswith("W_hh"):
            np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape), err_msg=name)


def test_embedding_draws_randn_and_looks_up_rows() -> None:
    np.random.seed(9)
    emb = nn.Embedding(10, 4)
    np.random.seed(9)
    table = np.random.randn(10, 4)
    np.testing.assert_allclose(emb.weight.numpy(), table, rtol=1e-6)
    ids = np.array([[1, 5], [9, 0], [3, 3]])
    np.testing.assert_allclose(emb(T(ids)).numpy(), table[ids], rtol=1e-6)


@pytest.mark.parametrize("seq_model", ["rnn", "lstm"])
def test_language_model_shapes(seq_model: str) -> None:
    from needle.models import LanguageModel

    np.random.seed(10)
    model = LanguageModel(6, 20, 5, num_layers=2, seq_model=seq_model)
    x = T(np.random.randint(0, 20, (7, 3)))
    logits, h = model(x)
    assert logits.shape == (7 * 3, 20)
    h_n = h[0] if seq_model == "lstm" else h
    assert h_n.shape == (2, 3, 5)


# --- data sets ------------------------------------------------------------------------
def test_ptb_corpus_batchify_and_get_batch() -> None:
    from needle.data._paths import find_data_dir

    folder = find_data_dir("ptb", ("train.txt", "test.txt"))
    corpus = data.Corpus(max_lines=50)
    # the course's Dictionary: ids in order of first appearance, train then test
    vocab: dict[str, int] = {}
    ids = {}
    for split in ("train", "test"):
        with open(folder / f"{split}.txt", encoding="utf-8") as f:
            words = [w for line in f.readlines()[:50] for w in [*line.split(), "<eos>"]]
        ids[split] = [vocab.setdefault(w, len(vocab)) for w in words]
    assert corpus.train == ids["train"] and corpus.test == ids["test"]
    for w, i in vocab.items():
        assert corpus.dictionary.word2idx[w] == i and corpus.dictionary.idx2word[i] == w
    assert len(corpus.dictionary) >= len(vocab)

    batches = data.batchify(corpus.train, batch_size=4, device=None, dtype="float32")
    nrow = len(corpus.train) // 4
    expected = np.array(corpus.train[: nrow * 4]).reshape(4, nrow).T
    np.testing.assert_array_equal(batches, expected)
    X, y = data.get_batch(batches, 2, bptt=5)
    assert isinstance(X, ndl.Tensor) and X.shape == (5, 4) and y.shape == (20,)
    assert X.dtype == "float32"
    np.testing.assert_array_equal(X.numpy(), expected[2:7])
    np.testing.assert_array_equal(y.numpy(), expected[3:8].reshape(-1))


def test_ptb_ntokens_is_the_vocabulary_of_the_files() -> None:
    from needle.data._paths import find_data_dir

    folder = find_data_dir("ptb", ("train.txt", "valid.txt", "test.txt"))
    words = {"<eos>"}
    for split in ("train", "test", "valid"):
        with open(folder / f"{split}.txt", encoding="utf-8") as f:
            words.update(w for line in f for w in line.split())
    assert len(data.Corpus().dictionary) == len(words)


def test_cifar10_dataset_layout_and_normalisation(tmp_path: Path) -> None:
    np.random.seed(11)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    raw = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = np.random.randint(0, 256, (4, 3072), dtype=np.uint8)
        y = list(np.random.randint(0, 10, 4).tolist())
        raw[name] = (x, y)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": y}, f)
    ds = data.CIFAR10Dataset(str(folder), train=True, download=False)
    assert len(ds) == 20
    X, y = ds[5]
    assert isinstance(X, np.ndarray) and X.shape == (3, 32, 32)
    expected = raw["data_batch_2"][0][1].reshape(3, 32, 32) / 255.0
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    assert y == raw["data_batch_2"][1][1]
    test = data.CIFAR10Dataset(str(folder), train=False, download=False)
    assert len(test) == 4
