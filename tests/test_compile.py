"""``needle.compile``: replayed steps equal eager steps bit for bit, and every guard fires."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import nn
from train_steps import softmax_step

# ``dev``: each CPU backend's device (tests/conftest.py)


def _batches(n, shape, classes, seed=1):
    rng = np.random.RandomState(seed)
    xs = [rng.randn(*shape).astype("float32") for _ in range(n)]
    ys = [rng.randint(0, classes, shape[0]).astype("float32") for _ in range(n)]
    return xs, ys


def _train(make, xs, ys, dev, compiled, opt_name="sgd"):
    """Train a fresh model (same seed) on the batches; parameters, losses, the step."""
    np.random.seed(0)
    model = make(dev)
    if opt_name == "sgd":
        opt = ndl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        opt = ndl.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    step = softmax_step(model, opt)
    fn = ndl.compile(step, state=(model, opt)) if compiled else step
    losses = []
    for x, y in zip(xs, ys):
        out = fn(
            ndl.Tensor(x, device=dev, requires_grad=False),
            ndl.Tensor(y, device=dev, requires_grad=False),
        )
        losses.append(out.numpy().copy())
    return [p.numpy() for p in model.parameters()], losses, fn, model, opt


def _assert_identical(a, b):
    pa, la = a[:2]
    pb, lb = b[:2]
    assert len(pa) == len(pb)
    for i, (x, y) in enumerate(zip(pa, pb)):
        np.testing.assert_array_equal(x, y, err_msg=f"parameter {i} differs")
    np.testing.assert_array_equal(np.array(la), np.array(lb))


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mlp_replay_is_bit_identical(dev, opt_name):
    xs, ys = _batches(22, (16, 20), 5)
    make = lambda d: ndl.models.MLP(20, (32, 32), 5, device=d)  # noqa: E731
    eager = _train(make, xs, ys, dev, False, opt_name)
    replay = _train(make, xs, ys, dev, True, opt_name)
    assert replay[2].captures == 1 and replay[2].replays == 20
    _assert_identical(eager, replay)


def test_resnet9_with_batchnorm_replay_is_bit_identical(dev):
    xs, ys = _batches(22, (2, 3, 32, 32), 10)
    make = lambda d: ndl.models.ResNet9(10, device=d)  # noqa: E731
    eager = _train(make, xs, ys, dev, False)
    replay = _train(make, xs, ys, dev, True)
    assert replay[2].replays == 20
    _assert_identical(eager, replay)
    # the running statistics are state too
    bn_e = [b.numpy() for _, b in eager[3].named_buffers()]
    bn_r = [b.numpy() for _, b in replay[3].named_buffers()]
    assert bn_e and all(np.array_equal(a, b) for a, b in zip(bn_e, bn_r))


class _DropNet(nn.Module):
    def __init__(self, device):
        super().__init__()
        self.a = nn.Linear(20, 32, device=device)
        self.drop = nn.Dropout(0.5)
        self.b = nn.Linear(32, 5, device=device)

    def forward(self, x):
        return self.b(self.drop(nn.ReLU()(self.a(x))))


def test_dropout_replay_matches_eager_and_masks_change(dev):
    xs, ys = _batches(12, (8, 20), 5)
    eager = _train(_DropNet, xs, ys, dev, False)
    replay = _train(_DropNet, xs, ys, dev, True)
    _assert_identical(eager, replay)
    # masks differ between replays: the same input twice gives two different losses
    fn = replay[2]
    x = ndl.Tensor(xs[0], device=dev, requires_grad=False)
    y = ndl.Tensor(ys[0], device=dev, requires_grad=False)
    before = fn.replays
    l1, l2 = fn(x, y).numpy(), fn(x, y).numpy()
    assert fn.replays == before + 2
    assert l1 != l2


def test_shape_change_captures_again(dev):
    xs, ys = _batches(6, (8, 20), 5)
    xs2, ys2 = _batches(6, (4, 20), 5, seed=2)
    make = lambda d: ndl.models.MLP(20, (16,), 5, device=d)  # noqa: E731
    _, _, fn, _, _ = _train(make, xs, ys, dev, True)
    assert fn.captures == 1
    for x, y in zip(xs2, ys2):
        fn(ndl.Tensor(x, device=dev), ndl.Tensor(y, device=dev))
    assert fn.captures == 2  # a new batch size is a new signature: warm-up, capture, replays


def test_alternating_signatures_replay_without_capturing_again(dev):
    # An epoch whose last batch is short: two signatures replayed in turn. Each writes
    # the gradients into its own buffers; the other's replay must not count as the state
    # changing from outside (that captured both again in every epoch).
    xs, ys = _batches(12, (8, 20), 5)
    for i in range(2, 12, 3):  # batches 2, 5, 8, 11: 3 rows
        xs[i], ys[i] = xs[i][:3], ys[i][:3]
    make = lambda d: ndl.models.MLP(20, (16,), 5, device=d)  # noqa: E731
    eager = _train(make, xs, ys, dev, False)
    replay = _train(make, xs, ys, dev, True)
    _assert_identical(eager, replay)
    fn = replay[2]
    assert fn.captures <= 3  # two signatures (one more: the short one's eager warm-up)
    captured = fn.captures
    steps = [
        (
            ndl.Tensor(x, device=dev, requires_grad=False),
            ndl.Tensor(y, device=dev, requires_grad=False),
        )
        for x, y in zip(xs[:6], ys[:6])
    ]
    for x, y in steps:  # two more epochs, both ways
        fn(x, y)
        eager[2](x, y)
        # each replay leaves the gradients of its own step in p.grad
        for p_r, p_e in zip(replay[3].parameters(), eager[3].parameters()):
            np.testing.assert_array_equal(p_r.grad.numpy(), p_e.grad.numpy())
    assert fn.captures == captured


def test_learning_rate_change_reaches_replays(dev):
    xs, ys = _batches(8, (8, 20), 5)
    make = lambda d: ndl.models.MLP(20, (16,), 5, device=d)  # noqa: E731

    def run(compiled):
        np.random.seed(0)
        model = make(dev)
        opt = ndl.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = nn.SoftmaxLoss()

        def step(x, y):
            opt.reset_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            return model(x).sum()

        fn = ndl.compile(step, state=(model, opt)) if compiled else step
        for i, (x, y) in enumerate(zip(xs, ys)):
            opt.lr = 0.1 / (i + 1)
            fn(ndl.Tensor(x, device=dev), ndl.Tensor(y, device=dev))
        if compiled and dev.has_kernel("program_set_scalars"):
            # the learning rate does not split the program: one compiled run per step
            (program,) = [e.program for e in fn._cache.values()]
            assert [kind for kind, _ in program._segments] == ["native"]
        return [p.numpy() for p in model.parameters()]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


def test_host_read_inside_the_step_refuses_naming_op_and_line(dev):
    model = ndl.models.MLP(4, (8,), 2, device=dev)

    def step(x):
        out = model(x).sum()
        if out.numpy() > 0:  # a Python branch on a tensor value
            out = out * 2.0
        return out

    fn = ndl.compile(step, state=(model,))
    x = ndl.Tensor(np.ones((3, 4), dtype="float32"), device=dev)
    fn(x)  # warm-up runs eagerly
    with pytest.raises(ndl.CaptureError, match=r"reads device data on the host") as info:
        fn(x)
    assert "test_compile.py" in str(info.value)
    assert "if out.numpy() > 0" in str(info.value)


def test_replaced_state_captures_again(dev):
    xs, ys = _batches(5, (8, 20), 5)
    make = lambda d: ndl.models.MLP(20, (16,), 5, device=d)  # noqa: E731
    _, _, fn, model, _ = _train(make, xs, ys, dev, True)
    assert fn.captures == 1
    p = model.parameters()[0]
    old = np.abs(p.numpy()).max()
    p.data = ndl.Tensor(np.zeros(p.shape, dtype="float32"), device=dev)  # from outside
    x = ndl.Tensor(xs[0], device=dev, requires_grad=False)
    y = ndl.Tensor(ys[0], device=dev, requires_grad=False)
    fn(x, y)
    assert fn.captures == 2  # same signature, but the state moved: captured again
    # one step from zeros moves the weights a little; a stale replay would have
    # continued from the old weights (largest |w| = old)
    assert np.abs(p.numpy()).max() < old / 5


def test_outputs_are_fresh_tensors(dev):
    xs, ys = _batches(6, (8, 20), 5)
    make = lambda d: ndl.models.MLP(20, (16,), 5, device=d)  # noqa: E731
    _, _, fn, _, _ = _train(make, xs, ys, dev, True)
    a = fn(ndl.Tensor(xs[0], device=dev), ndl.Tensor(ys[0], device=dev))
    kept = a.numpy().copy()
    fn(ndl.Tensor(xs[1], device=dev), ndl.Tensor(ys[1], device=dev))
    np.testing.assert_array_equal(a.numpy(), kept)  # the next replay did not overwrite it


def test_bad_arguments():
    with pytest.raises(ValueError, match="cache_size"):
        ndl.compile(lambda: None, cache_size=0)
    with pytest.raises(TypeError, match="state must hold"):
        ndl.compile(lambda x: x, state=(3,), warmup=0)(ndl.Tensor([1.0]))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mnist-mlp", "mnist-cnn"])
def test_needle_train_compile_matches_eager(tmp_path, dev, task):
    """``needle train --compile`` (the default) and ``--no-compile`` give the same run."""
    import json

    from needle import training

    runs = {}
    for flag in ("--compile", "--no-compile"):
        out, ckpt = tmp_path / f"m{flag}.json", tmp_path / f"c{flag}.st"
        argv = [task, "--epochs", "2", "--limit-batches", "4", "--batch-size", "16"]
        argv += ["--backend", dev.name, "--no-progress", flag]
        argv += ["--metrics-json", str(out), "--checkpoint", str(ckpt)]
        assert training.main(argv) == 0
        metrics = json.loads(out.read_text())
        metrics.pop("seconds")
        runs[flag] = (metrics, {k: v.numpy() for k, v in ndl.load(ckpt)["model"].items()})
    (m_c, p_c), (m_e, p_e) = runs["--compile"], runs["--no-compile"]
    assert m_c == m_e
    assert p_c.keys() == p_e.keys()
    for k in p_c:
        np.testing.assert_array_equal(p_c[k], p_e[k], err_msg=k)


def _train_lm(kind, dev, compiled, steps=22, dropout=0.3):
    """A small language model trained on random ids; the recurrent state flows from one
    step into the next as an argument and an output of the step."""
    np.random.seed(0)
    vocab, t, b = 50, 6, 4
    if kind == "lstm":
        model = ndl.models.LanguageModel(8, vocab, 12, 2, "lstm", device=dev)
    else:
        model = ndl.models.TransformerLM(
            vocab, embedding_size=8, hidden_size=16, num_layers=2, seq_len=t,
            num_head=2, dim_head=4, dropout=dropout, device=dev,
        )  # fmt: skip
    opt = ndl.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.SoftmaxLoss()

    def step(x, y, h):
        opt.reset_grad()
        logits, h = model(x, h)
        loss = loss_fn(logits, y)
        loss.backward()
        ndl.optim.clip_grad_norm(opt.params, 0.5)
        opt.step()
        h = None if h is None else tuple(s.detach() for s in h)
        return loss, h

    fn = ndl.compile(step, state=(model, opt)) if compiled else step
    rng = np.random.RandomState(3)
    h, losses = None, []
    for _ in range(steps):
        ids = rng.randint(0, vocab, (t + 1, b)).astype("float32")
        x = ndl.Tensor(ids[:-1], device=dev, requires_grad=False)
        y = ndl.Tensor(ids[1:].reshape(-1), device=dev, requires_grad=False)
        loss, h = fn(x, y, h if kind == "lstm" else None)
        losses.append(loss.numpy().copy())
    # where the step left NumPy's global stream (dropout draws move it, p = 0 too)
    return [p.numpy() for p in model.parameters()], losses, fn, np.random.rand()


@pytest.mark.parametrize(
    ("kind", "dropout"), [("lstm", 0.0), ("transformer", 0.3), ("transformer", 0.0)]
)
def test_language_models_replay_is_bit_identical(dev, kind, dropout):
    """LSTM LM (state carried through the step) and Transformer LM with dropout, clipped;
    the random stream ends where the eager steps leave it."""
    eager = _train_lm(kind, dev, False, dropout=dropout)
    replay = _train_lm(kind, dev, True, dropout=dropout)
    assert replay[2].replays >= 18
    _assert_identical(eager, replay)
    assert replay[3] == eager[3]
