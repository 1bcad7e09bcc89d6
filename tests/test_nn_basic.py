"""Module bookkeeping and basic layers, checked against NumPy formulas."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import nn


def t(a: np.ndarray, **kw: object) -> ndl.Tensor:
    return ndl.Tensor(np.asarray(a, dtype=np.float32), **kw)


def test_linear_forward_matches_numpy(rng: np.random.Generator) -> None:
    ndl.manual_seed(0)
    layer = nn.Linear(5, 3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert w.shape == (5, 3) and b.shape == (1, 3)
    np.testing.assert_allclose(layer(t(x)).numpy(), x @ w + b, rtol=1e-5, atol=1e-6)


def test_linear_batched_leading_axes_and_no_bias(rng: np.random.Generator) -> None:
    layer = nn.Linear(4, 2, bias=False)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(t(x)).numpy(), x @ layer.weight.numpy(), rtol=1e-5, atol=1e-6)
    assert len(layer.parameters()) == 1


def test_linear_init_bounds() -> None:
    ndl.manual_seed(1)
    layer = nn.Linear(600, 400)
    bound = np.sqrt(2) * np.sqrt(3 / 600)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_linear_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="in_features=3"):
        nn.Linear(3, 2)(t(np.ones((2, 4))))


def test_softmax_loss_matches_numpy(rng: np.random.Generator) -> None:
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2, 0])
    shifted = logits - logits.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -logp[np.arange(6), y].mean()
    x = t(logits)
    loss = nn.SoftmaxLoss()(x, t(y))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    loss.backward()
    probs = np.exp(logp)
    probs[np.arange(6), y] -= 1
    np.testing.assert_allclose(x.grad.numpy(), probs / 6, rtol=1e-4, atol=1e-6)


def test_activations_and_flatten(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(nn.ReLU()(t(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Tanh()(t(x)).numpy(), np.tanh(x), rtol=1e-5)
    np.testing.assert_allclose(nn.Sigmoid()(t(x)).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-5)
    assert nn.Flatten()(t(x)).shape == (2, 12)
    np.testing.assert_allclose(nn.Identity()(t(x)).numpy(), x)


def test_residual_and_sequential(rng: np.random.Generator) -> None:
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w, b = seq[0].weight.numpy(), seq[0].bias.numpy()
    np.testing.assert_allclose(
        nn.Residual(seq)(t(x)).numpy(), np.maximum(x @ w + b, 0) + x, rtol=1e-5, atol=1e-6
    )


def test_dropout_train_and_eval() -> None:
    ndl.manual_seed(0)
    d = nn.Dropout(0.25)
    x = t(np.ones((200, 50)))
    y = d(x).numpy()
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    np.testing.assert_allclose(d(x).numpy(), 1.0)


def test_embedding_is_row_lookup(rng: np.random.Generator) -> None:
    emb = nn.Embedding(10, 4)
    ids = np.array([[1, 9], [0, 1], [3, 3]])
    out = emb(t(ids))
    assert out.shape == (3, 2, 4)
    np.testing.assert_allclose(out.numpy(), emb.weight.numpy()[ids])
    out.sum().backward()
    counts = np.bincount(ids.ravel(), minlength=10).astype(np.float32)
    np.testing.assert_allclose(emb.weight.grad.numpy(), np.repeat(counts[:, None], 4, 1))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        self.heads = [nn.Linear(3, 1), nn.Linear(3, 1)]
        self.scale = nn.Parameter(t(np.ones(1)))


def test_parameters_children_names_and_modes() -> None:
    net = _Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "body.0.weight",
        "body.0.bias",
        "body.1.weight",
        "body.1.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "heads.1.bias",
        "scale",
    ]
    assert len(net.parameters()) == 9
    assert len(net.children()) == 3 and len(net._children()) == 5
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    keys = set(net.state_dict())
    assert {"body.1.running_mean", "body.1.running_var"} <= keys


def test_repr_is_readable() -> None:
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert text == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"
    )


def test_load_state_dict_roundtrip_and_errors() -> None:
    a, b = _Net(), _Net()
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    state = a.state_dict()
    del state["heads.1.bias"]
    with pytest.raises(KeyError, match=r"heads\.1\.bias"):
        b.load_state_dict(state)
    b.load_state_dict(state, strict=False)
    state = a.state_dict()
    state["extra.weight"] = state["scale"]
    with pytest.raises(KeyError, match=r"extra\.weight"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["body.0.weight"] = t(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"body\.0\.weight.*\(3, 2\).*\(2, 3\)"):
        b.load_state_dict(state)


@pytest.mark.parametrize("name", [d.name for d in ndl.all_devices()])
def test_linear_bias_inside_the_product(name: str, rng: np.random.Generator) -> None:
    """A wide Linear (the decoder case) puts its bias inside the product
    (ops.linalg.MatMulBias): same values and gradients as x @ W + b, finite differences,
    and second derivatives equal to the composed form's."""
    from gradcheck import check_gradients
    from needle import ops
    from needle.ops.linalg import MatMulBias

    def matmul_bias(x, w, b):
        return MatMulBias()(x, w, b)

    dev = ndl.device(name)
    lin = nn.Linear(3, 40, device=dev, dtype="float64")
    assert lin._fold_bias(2 * 5)
    x = rng.standard_normal((2, 5, 3))
    xt = ndl.Tensor(x, device=dev, dtype="float64", requires_grad=True)
    y = lin(xt)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    np.testing.assert_allclose(y.numpy(), x @ w + b, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    (y * ndl.Tensor(g, device=dev, dtype="float64")).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), g @ w.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.weight.grad.numpy(), x.reshape(10, 3).T @ g.reshape(10, 40))
    np.testing.assert_allclose(lin.bias.grad.numpy(), g.reshape(10, 40).sum(0, keepdims=True))
    data = [rng.standard_normal(s) for s in ((4, 3), (3, 6), (1, 6))]
    check_gradients(matmul_bias, *data, device=dev)
    second = []
    for fused in (True, False):
        a, w_, c = (ndl.Tensor(v, device=dev, dtype="float64", requires_grad=True) for v in data)
        out = matmul_bias(a, w_, c) if fused else a @ w_ + ops.broadcast_to(c, (4, 6))
        (out * out).sum().backward(create_graph=True)
        (a.grad * a.grad).sum().backward()
        second.append([v.grad.numpy() for v in (a, w_, c)])
    for got, want in zip(*second):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
