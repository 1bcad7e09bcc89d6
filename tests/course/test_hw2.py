"""hw2: initialisers, modules, optimizers and the data pipeline, with the course's stream.

Every random draw comes from NumPy's global generator with the course's calls, so after
``np.random.seed(s)`` the expected values are the same calls replayed in NumPy.
"""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
import pytest
from course.helpers import mnist_dir, read_idx_bytes
from needle import data, init, nn, optim


def test_kaiming_uniform_first_row_after_seed_42() -> None:
    """The issue's check: the course's numbers for np.random.seed(42)."""
    np.random.seed(42)
    w = init.kaiming_uniform(3, 5).numpy()
    np.testing.assert_allclose(
        w[0], [-0.35485414, 1.2748126, 0.65617794, 0.27904832, -0.9729262], rtol=1e-6
    )


def test_shuffled_dataloader_order_after_seed_0() -> None:
    """The issue's check: a shuffled loader draws np.random.permutation(len(dataset))."""
    np.random.seed(0)
    loader = data.DataLoader(data.NDArrayDataset(np.arange(100)), 1, shuffle=True)
    first = [int(batch[0].numpy().reshape(-1)[0]) for batch in loader][:5]
    assert first == [26, 86, 2, 55, 75]


@pytest.mark.parametrize(
    "name, args, formula",
    [
        ("xavier_uniform", (5, 7), lambda: (np.random.rand(5, 7) * 2 - 1) * math.sqrt(6 / 12)),
        (
            "xavier_uniform",
            (5, 7, 1.5),
            lambda: (np.random.rand(5, 7) * 2 - 1) * 1.5 * math.sqrt(6 / 12),
        ),
        ("xavier_normal", (5, 7), lambda: np.random.randn(5, 7) * math.sqrt(2 / 12)),
        ("kaiming_uniform", (5, 7), lambda: (np.random.rand(5, 7) * 2 - 1) * math.sqrt(6 / 5)),
        ("kaiming_normal", (5, 7), lambda: np.random.randn(5, 7) * math.sqrt(2 / 5)),
    ],
)
def test_initialisers_replay_the_course_draws(name, args, formula) -> None:  # type: ignore[no-untyped-def]
    np.random.seed(0)
    got = getattr(init, name)(*args).numpy()
    np.random.seed(0)
    np.testing.assert_allclose(got, formula(), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32


def test_basic_random_constructors() -> None:
    np.random.seed(3)
    r = init.rand(4, 3, low=-2.0, high=5.0).numpy()
    n = init.randn(4, 3, mean=1.0, std=0.5).numpy()
    b = init.randb(4, 3, p=0.3).numpy()
    np.random.seed(3)
    np.testing.assert_allclose(r, np.random.rand(4, 3) * 7 - 2, rtol=1e-6)
    np.testing.assert_allclose(n, np.random.randn(4, 3) * 0.5 + 1, rtol=1e-6)
    np.testing.assert_array_equal(b, (np.random.rand(4, 3) <= 0.3).astype(np.float32))
    np.testing.assert_array_equal(init.one_hot(4, ndl.Tensor([3, 0])).numpy(), np.eye(4)[[3, 0]])
    np.testing.assert_array_equal(init.constant(2, 2, c=7).numpy(), np.full((2, 2), 7.0))


def test_manual_seed_is_np_random_seed() -> None:
    ndl.manual_seed(7)
    a = init.randn(3).numpy()
    np.random.seed(7)
    np.testing.assert_allclose(a, np.random.randn(3), rtol=1e-6)
    np.random.seed(7)
    np.testing.assert_array_equal(init.randn(3).numpy(), a)


def test_linear_draws_weight_then_bias() -> None:
    np.random.seed(1)
    layer = nn.Linear(7, 3)
    np.random.seed(1)
    w = (np.random.rand(7, 3) * 2 - 1) * math.sqrt(6 / 7)
    b = ((np.random.rand(3, 1) * 2 - 1) * math.sqrt(6 / 3)).reshape(1, 3)
    np.testing.assert_allclose(layer.weight.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), b, rtol=1e-5, atol=1e-6)
    x = np.random.randn(4, 7).astype(np.float32)
    np.testing.assert_allclose(layer(ndl.Tensor(x)).numpy(), x @ w + b, rtol=1e-5, atol=1e-5)


def test_dropout_mask_is_randb_of_one_minus_p() -> None:
    np.random.seed(4)
    x = np.random.randn(5, 6).astype(np.float32)
    state = np.random.get_state()
    out = nn.Dropout(0.3)(ndl.Tensor(x)).numpy()
    np.random.set_state(state)
    mask = np.random.rand(5, 6) <= 0.7
    np.testing.assert_allclose(out, x * mask / 0.7, rtol=1e-6)
    drop = nn.Dropout(0.3)
    drop.eval()
    np.testing.assert_array_equal(drop(ndl.Tensor(x)).numpy(), x)


def test_dropout_p0_still_draws_like_the_course() -> None:
    x = ndl.Tensor(np.ones((4, 5), dtype=np.float32))
    np.random.seed(0)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())
    after = np.random.rand()
    np.random.seed(0)
    np.random.rand(4, 5)
    assert after == np.random.rand()


def test_sequential_modules_is_the_list_of_layers() -> None:
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    model = nn.Sequential(*layers)
    assert list(model.modules) == layers and len(model.modules) == 3
    assert model.modules[1] is layers[1]
    # Module.modules() (every sub-module, this one first) still works on a Sequential
    assert model.modules()[0] is model and layers[2] in model.modules()
    model.eval()
    assert not any(m.training for m in layers)


def test_batchnorm1d_and_layernorm1d_formulas() -> None:
    np.random.seed(5)
    x = np.random.randn(6, 4).astype(np.float32)
    bn = nn.BatchNorm1d(4, momentum=0.1, eps=1e-5)
    out = bn(ndl.Tensor(x)).numpy()
    mu, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(out, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    # the course's running estimates use the unbiased-free batch variance
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    bn.eval()
    np.testing.assert_allclose(
        bn(ndl.Tensor(x)).numpy(),
        (x - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var + 1e-5),
        rtol=1e-4,
        atol=1e-5,
    )
    ln = nn.LayerNorm1d(4)
    m, v = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    np.testing.assert_allclose(
        ln(ndl.Tensor(x)).numpy(), (x - m) / np.sqrt(v + 1e-5), rtol=1e-4, atol=1e-5
    )


def test_flatten_and_residual() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(nn.Flatten()(ndl.Tensor(x)).numpy(), x.reshape(2, 12))
    r = nn.Residual(nn.ReLU())(ndl.Tensor(x - 10))
    np.testing.assert_array_equal(r.numpy(), np.maximum(x - 10, 0) + x - 10)


def _quadratic_grads(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    # d/dw of sum((x @ w)^2) / 2
    return x.T @ (x @ w)


def test_sgd_momentum_weight_decay_matches_the_course_update() -> None:
    np.random.seed(6)
    x = np.random.randn(5, 3).astype(np.float32)
    w0 = np.random.randn(3, 2).astype(np.float32)
    p = nn.Parameter(ndl.Tensor(w0))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    w, u = w0.astype(np.float64), np.zeros_like(w0, dtype=np.float64)
    for _ in range(3):
        opt.reset_grad()
        loss = ((ndl.Tensor(x) @ p) ** 2).sum() / 2
        loss.backward()
        opt.step()
        g = _quadratic_grads(w, x) + 0.01 * w
        u = 0.9 * u + (1 - 0.9) * g
        w = w - 0.1 * u
    np.testing.assert_allclose(p.numpy(), w, rtol=1e-4, atol=1e-5)


def test_adam_matches_the_course_update() -> None:
    np.random.seed(7)
    x = np.random.randn(5, 3).astype(np.float32)
    w0 = np.random.randn(3, 2).astype(np.float32)
    p = nn.Parameter(ndl.Tensor(w0))
    opt = optim.Adam([p], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
    w = w0.astype(np.float64)
    m = v = np.zeros_like(w)
    for t in range(1, 4):
        opt.reset_grad()
        (((ndl.Tensor(x) @ p) ** 2).sum() / 2).backward()
        opt.step()
        g = _quadratic_grads(w, x) + 0.01 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p.numpy(), w, rtol=1e-4, atol=1e-5)


def test_random_flip_horizontal_draws_one_rand() -> None:
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    flip = data.RandomFlipHorizontal(p=0.5)
    np.random.seed(0)
    outs = [flip(img) for _ in range(8)]
    np.random.seed(0)
    for out in outs:
        expected = img[:, ::-1, :] if np.random.rand() < 0.5 else img
        np.testing.assert_array_equal(out, expected)


def test_random_crop_draws_randint_shift() -> None:
    np.random.seed(1)
    img = np.random.rand(6, 6, 2).astype(np.float32)
    crop = data.RandomCrop(padding=2)
    state = np.random.get_state()
    outs = [crop(img) for _ in range(5)]
    np.random.set_state(state)
    for out in outs:
        sx, sy = np.random.randint(low=-2, high=3, size=2)
        padded = np.zeros((10, 10, 2), dtype=np.float32)
        padded[2:8, 2:8] = img
        np.testing.assert_array_equal(out, padded[2 + sx : 8 + sx, 2 + sy : 8 + sy])


def test_dataloader_batches_in_order_and_reshuffles_each_epoch() -> None:
    np.random.seed(0)
    X = np.random.rand(100, 10).astype(np.float32)
    dataset = data.NDArrayDataset(X)
    loader = data.DataLoader(dataset, batch_size=16, shuffle=False)
    batches = [b[0].numpy() for b in loader]
    assert len(batches) == 7 and batches[-1].shape == (4, 10)
    np.testing.assert_array_equal(np.concatenate(batches), X)
    np.testing.assert_array_equal(dataset[0:16][0], batches[0])

    shuffled = data.DataLoader(dataset, batch_size=16, shuffle=True)
    np.random.seed(2)
    epoch1 = np.concatenate([b[0].numpy() for b in shuffled])
    epoch2 = np.concatenate([b[0].numpy() for b in shuffled])
    np.random.seed(2)
    np.testing.assert_array_equal(epoch1, X[np.random.permutation(100)])
    np.testing.assert_array_equal(epoch2, X[np.random.permutation(100)])


def test_mnist_dataset_values_and_transforms() -> None:
    folder = mnist_dir()
    images = folder / "train-images-idx3-ubyte.gz"
    labels = folder / "train-labels-idx1-ubyte.gz"
    raw = read_idx_bytes(images, 16).reshape(60000, 784).astype(np.float32) / 255.0
    raw_y = read_idx_bytes(labels, 8)
    ds = data.MNISTDataset(str(images), str(labels))
    assert len(ds) == 60000
    idx = [1, 42, 1000, 2000, 3000, 4000, 5000, 5005]
    for i in idx:
        x, y = ds[i]
        assert x.dtype == np.float32 and x.shape == (784,)
        np.testing.assert_array_equal(x, raw[i])
        assert y == raw_y[i]
    x, y = ds[10:13]
    np.testing.assert_array_equal(x, raw[10:13])
    np.testing.assert_array_equal(y, raw_y[10:13])

    # with transforms: each image as (28, 28, 1), crop then flip, in the course's order
    ds = data.MNISTDataset(
        str(images), str(labels), transforms=[data.RandomCrop(12), data.RandomFlipHorizontal(0.4)]
    )
    np.random.seed(0)
    got = [ds[i][0] for i in idx]
    np.random.seed(0)
    for i, x in zip(idx, got):
        img = raw[i].reshape(28, 28, 1)
        sx, sy = np.random.randint(low=-12, high=13, size=2)
        padded = np.pad(img, ((12, 12), (12, 12), (0, 0)))
        img = padded[12 + sx : 40 + sx, 12 + sy : 40 + sy]
        if np.random.rand() < 0.4:
            img = img[:, ::-1, :]
        np.testing.assert_array_equal(x, img.reshape(784))


def test_mlp_resnet_draws_its_parameters_in_the_course_order() -> None:
    from needle.models import MLPResNet

    np.random.seed(0)
    model = MLPResNet(10, hidden_dim=8, num_blocks=2, num_classes=3, drop_prob=0.5)
    shapes = [tuple(p.shape) for p in model.parameters()]
    block = [(8, 4), (1, 4), (4,), (4,), (4, 8), (1, 8), (8,), (8,)]
    assert shapes == [(10, 8), (1, 8), *block, *block, (8, 3), (1, 3)]
    np.random.seed(0)
    w = (np.random.rand(10, 8) * 2 - 1) * math.sqrt(6 / 10)
    b = ((np.random.rand(8, 1) * 2 - 1) * math.sqrt(6 / 8)).reshape(1, 8)
    np.testing.assert_allclose(model.parameters()[0].numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.parameters()[1].numpy(), b, rtol=1e-5, atol=1e-6)
    assert sum(int(np.prod(s)) for s in shapes) == sum(p.numpy().size for p in model.parameters())
