"""Model-level benchmarks: one training step (forward, loss, backward, SGD update).

The needle models come from ``needle.models``; until a model exists there its benchmark
is skipped with the reason. The peer is the same architecture in PyTorch CPU
(``_torch_models``) with the same sizes, batch and optimizer. ``flops`` is the nominal
work of a step: three times the forward pass's matmul and convolution FLOPs.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ._common import Impl, needle_train_step, record, rng, rounds, size

pytestmark = pytest.mark.impls("needle", "torch")

LR = 0.01


@dataclass(frozen=True)
class ModelCase:
    """A model, its batch, and how to build it in needle and in PyTorch.

    ``needle_args`` are tried against the ``needle.models`` constructor: keyword
    arguments it does not take are dropped (``device`` and ``dtype`` included).
    """

    name: str
    attr: str
    needle_args: tuple[tuple[Any, ...], dict[str, Any]]
    torch_build: Callable[[], Any]
    batch: Callable[[], tuple[np.ndarray, np.ndarray]]
    flops: float
    rounds: int = 3
    """Timed steps, the same for every implementation: enough that the minimum is not one
    lucky or unlucky call on a noisy 2-core machine (two or three were, and the ratios of
    the 10 ms models swung by ±30% between runs); the slowest, needle-numpy eager, takes
    about a second per case."""


B = size(128, 4)  # batch of the classifiers
IMG = 32  # ResNet9's input side is fixed by its strides
LM = size(
    dict(vocab=1000, emb=64, hidden=128, layers=2, seq=20, batch=32),
    dict(vocab=17, emb=8, hidden=8, layers=1, seq=3, batch=2),
)
MLP = size(
    dict(dim=784, hidden=100, classes=10, blocks=3), dict(dim=12, hidden=8, classes=3, blocks=1)
)


def _images(c: int, side: int, classes: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def make() -> tuple[np.ndarray, np.ndarray]:
        shape = (B, c, side, side) if side else (B, c)
        x = rng(20).standard_normal(shape, dtype=np.float32)
        y = rng(21).integers(0, classes, B).astype(np.float32)
        return x, y

    return make


def _tokens() -> tuple[np.ndarray, np.ndarray]:
    ids = rng(22).integers(0, LM["vocab"], (LM["seq"] + 1, LM["batch"]))
    return ids[:-1].astype(np.float32), ids[1:].reshape(-1).astype(np.float32)


def _linear(*dims: int) -> float:
    return float(sum(a * b for a, b in itertools.pairwise(dims)))


def _resnet9_flops() -> float:
    layers = [  # (c_in, c_out, k, output side)
        (3, 16, 7, 8),
        (16, 32, 3, 4),
        (32, 32, 3, 4),
        (32, 32, 3, 4),
        (32, 64, 3, 2),
        (64, 128, 3, 1),
        (128, 128, 3, 1),
        (128, 128, 3, 1),
    ]
    conv = sum(ci * co * k * k * s * s for ci, co, k, s in layers)
    return 3 * 2.0 * B * (conv + _linear(128, 128, 10))


def _lm_flops(seq_model: str) -> float:
    t, b, e, h, v, n = (LM[k] for k in ("seq", "batch", "emb", "hidden", "vocab", "layers"))
    if seq_model == "lstm":
        body = 4 * h * (e + h) + (n - 1) * 4 * h * (h + h)
        head = h * v
    else:
        body = n * (4 * e * e + 2 * t * e + 2 * e * h)  # q, k, v, out; attention; MLP
        head = e * v
    return 3 * 2.0 * t * b * (body + head)


def _torch(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        from . import _torch_models

        return getattr(_torch_models, name)(*args, **kwargs)

    return build


LM_DESC = "vocab {vocab} emb {emb} hidden {hidden} x{layers} seq {seq} batch {batch}".format(**LM)

CASES = [
    ModelCase(
        f"MLP {MLP['dim']}-{MLP['hidden']}-{MLP['classes']} batch {B}",
        "MLP",
        ((MLP["dim"],), dict(hidden=(MLP["hidden"],), num_classes=MLP["classes"])),
        _torch("mlp", MLP["dim"], MLP["hidden"], MLP["classes"]),
        _images(MLP["dim"], 0, MLP["classes"]),
        3 * 2.0 * B * _linear(MLP["dim"], MLP["hidden"], MLP["classes"]),
        rounds=200,
    ),
    ModelCase(
        f"MLPResNet {MLP['dim']}-{MLP['hidden']} x{MLP['blocks']} batch {B}",
        "MLPResNet",
        (
            (MLP["dim"],),
            dict(
                hidden_dim=MLP["hidden"],
                num_blocks=MLP["blocks"],
                num_classes=MLP["classes"],
                drop_prob=0.1,
            ),
        ),
        _torch("mlp_resnet", MLP["dim"], MLP["hidden"], MLP["blocks"], MLP["classes"], 0.1),
        _images(MLP["dim"], 0, MLP["classes"]),
        3
        * 2.0
        * B
        * (
            _linear(MLP["dim"], MLP["hidden"])
            + MLP["hidden"] * MLP["classes"]
            + MLP["blocks"] * MLP["hidden"] ** 2
        ),
        rounds=50,
    ),
    ModelCase(
        f"ResNet9 3x{IMG}x{IMG} batch {B}",
        "ResNet9",
        ((), {}),
        _torch("resnet9", 10),
        _images(3, IMG, 10),
        _resnet9_flops(),
        rounds=20,
    ),
    ModelCase(
        f"LSTM LM {LM_DESC}",
        "LanguageModel",
        (
            (LM["emb"], LM["vocab"], LM["hidden"]),
            dict(num_layers=LM["layers"], seq_model="lstm", seq_len=LM["seq"]),
        ),
        _torch(
            "LanguageModel", LM["vocab"], LM["emb"], LM["hidden"], LM["layers"], "lstm", LM["seq"]
        ),
        _tokens,
        _lm_flops("lstm"),
        rounds=30,
    ),
    ModelCase(
        f"Transformer LM {LM_DESC}",
        "TransformerLM",
        (
            (LM["vocab"],),
            dict(
                embedding_size=LM["emb"],
                hidden_size=LM["hidden"],
                num_layers=LM["layers"],
                seq_len=LM["seq"],
                num_head=4,
                dim_head=LM["emb"] // 4,
            ),
        ),
        _torch(
            "LanguageModel",
            LM["vocab"],
            LM["emb"],
            LM["hidden"],
            LM["layers"],
            "transformer",
            LM["seq"],
        ),
        _tokens,
        _lm_flops("transformer"),
        rounds=30,
    ),
]


# --- one training step ----------------------------------------------------------------
def _needle_step(
    impl: Impl, case: ModelCase, x_np: np.ndarray, y_np: np.ndarray, replay: bool = False
) -> Callable:
    """One training step; ``replay`` runs it through ``needle.compile`` (captured once,
    then replayed), warmed up here so the timed calls are replays."""
    import needle

    try:
        import needle.models as models
    except ImportError as exc:
        pytest.skip(f"needle.models does not exist yet ({exc})")
    cls = getattr(models, case.attr, None)
    if cls is None:
        pytest.skip(f"needle.models.{case.attr} does not exist yet")
    args, kwargs = case.needle_args
    kwargs = {**kwargs, "device": impl.device, "dtype": "float32"}
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    try:
        model = cls(*args, **kwargs)
    except TypeError as exc:
        pytest.skip(
            f"needle.models.{case.attr}{inspect.signature(cls)} does not take "
            f"{args} {kwargs}: {exc}"
        )
    model.train()
    opt = needle.optim.SGD(model.parameters(), lr=LR)
    loss_fn = needle.nn.SoftmaxLoss()
    x = needle.Tensor(x_np, device=impl.device, requires_grad=False)
    y = needle.Tensor(y_np, device=impl.device, requires_grad=False)
    sync = impl.sync()

    update = needle_train_step(model, opt, loss_fn)  # LMs: the loss of (logits, state)[0]
    run = update
    if replay:
        run = needle.compile(update, state=(model, opt))
        try:
            for _ in range(3):  # warm-up, capture, one replay
                run(x, y)
        except needle.CaptureError as exc:
            pytest.skip(f"{case.attr} cannot be captured yet: {exc}")

    def step() -> float:
        loss = run(x, y)
        sync()
        return loss.numpy().item()

    return step


def _torch_step(case: ModelCase, x_np: np.ndarray, y_np: np.ndarray) -> Callable:
    import torch

    torch.manual_seed(0)
    model = case.torch_build()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    lm = case.attr in ("LanguageModel", "TransformerLM")
    x = torch.tensor(x_np.astype(np.int64) if lm else x_np)
    y = torch.tensor(y_np.astype(np.int64))

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.split(" ")[0])
def bench_train_step(
    benchmark: Any, impl: Impl, case: ModelCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    x_np, y_np = case.batch()
    if impl.kind == "torch":
        step = _torch_step(case, x_np, y_np)
    else:
        # Anything a model builds without an explicit device lands on the one under test.
        monkeypatch.setitem(os.environ, "NEEDLE_BACKEND", impl.backend)
        step = _needle_step(impl, case, x_np, y_np)
    record(benchmark, impl, "models", f"{case.name} train step", flops=case.flops)
    n = rounds(case.rounds)
    loss = benchmark.pedantic(step, rounds=n, warmup_rounds=0 if n == 1 else 1)
    assert np.isfinite(loss) and loss > 0, f"{case.name} on {impl.name}: loss {loss}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.split(" ")[0])
def bench_train_step_replayed(
    benchmark: Any, impl: Impl, case: ModelCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same step through ``needle.compile``: reported as ``<impl> replayed`` beside the
    eager rows of :func:`bench_train_step` (PyTorch, the peer, runs eagerly there)."""
    if impl.kind == "torch":
        pytest.skip("PyTorch runs eagerly: its time is in bench_train_step")
    x_np, y_np = case.batch()
    monkeypatch.setitem(os.environ, "NEEDLE_BACKEND", impl.backend)
    step = _needle_step(impl, case, x_np, y_np, replay=True)
    record(benchmark, impl, "models", f"{case.name} train step", flops=case.flops)
    benchmark.extra_info["impl"] = f"{impl.name} replayed"
    n = rounds(case.rounds)
    loss = benchmark.pedantic(step, rounds=n, warmup_rounds=0 if n == 1 else 1)
    assert np.isfinite(loss) and loss > 0, f"{case.name} on {impl.name} replayed: loss {loss}"


# --- one MNIST epoch: data loading included --------------------------------------------
EPOCH_IMAGES = size(60_000, 512)
MNIST_BATCH = 128


@pytest.fixture(scope="module")
def mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training split as arrays (found through NEEDLE_DATA or data/)."""
    try:
        return load_mnist_train()
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"MNIST not found: {exc}")


def load_mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The first ``EPOCH_IMAGES`` training images (flattened float32) and labels."""
    from needle.data import MNISTDataset

    x, y = MNISTDataset(train=True)[np.arange(EPOCH_IMAGES)]
    return np.asarray(x, np.float32).reshape(EPOCH_IMAGES, -1), np.asarray(y)


def bench_mnist_epoch(
    benchmark: Any, impl: Impl, mnist_train: tuple[np.ndarray, np.ndarray]
) -> None:
    """One epoch of the 784-100-10 MLP, batch 128, SGD: needle's DataLoader vs a torch loop."""
    _mnist_epoch(benchmark, impl, mnist_train, replay=False)


def bench_mnist_epoch_replayed(
    benchmark: Any, impl: Impl, mnist_train: tuple[np.ndarray, np.ndarray]
) -> None:
    """The same epoch with the step through ``needle.compile`` (``<impl> replayed``)."""
    if impl.kind == "torch":
        pytest.skip("PyTorch runs eagerly: its time is in bench_mnist_epoch")
    _mnist_epoch(benchmark, impl, mnist_train, replay=True)


def _mnist_epoch(
    benchmark: Any, impl: Impl, mnist_train: tuple[np.ndarray, np.ndarray], replay: bool
) -> None:
    epoch = mnist_epoch_fn(impl, mnist_train, replay)
    steps = -(-EPOCH_IMAGES // MNIST_BATCH)
    flops = steps * 3 * 2.0 * MNIST_BATCH * _linear(784, 100, 10)
    case = f"MNIST epoch MLP 784-100-10 batch {MNIST_BATCH}"
    record(benchmark, impl, "models", case, flops=flops)
    if replay:
        benchmark.extra_info["impl"] = f"{impl.name} replayed"
    # One untimed epoch first, for every implementation: a replayed one captures its two
    # signatures (128 and the last batch's 96 rows) there, and PyTorch warms its allocator.
    n = rounds(5)
    total = benchmark.pedantic(epoch, rounds=n, warmup_rounds=0 if n == 1 else 1)
    assert np.isfinite(total) and total > 0, f"MNIST epoch on {impl.name}: loss sum {total}"


def mnist_epoch_fn(
    impl: Impl, mnist_train: tuple[np.ndarray, np.ndarray], replay: bool
) -> Callable[[], float]:
    """``epoch()``: one pass of the 784-100-10 MLP over ``mnist_train`` (batch 128, SGD),
    returning the sum of the losses; needle through its DataLoader (replayed or eager),
    PyTorch slicing the arrays."""
    x_np, y_np = mnist_train
    batch, lr = MNIST_BATCH, 0.1
    if impl.kind == "torch":
        import torch

        torch.manual_seed(0)
        from . import _torch_models

        model = _torch_models.mlp(784, 100, 10)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np.astype(np.int64))

        def epoch() -> float:
            total = 0.0
            for i in range(0, len(xt), batch):
                opt.zero_grad()
                loss = loss_fn(model(xt[i : i + batch]), yt[i : i + batch])
                loss.backward()
                opt.step()
                total += loss.item()
            return total
    else:
        import needle
        from needle.data import DataLoader, NDArrayDataset

        needle.manual_seed(0)
        model = needle.models.MLP(784, hidden=(100,), num_classes=10, device=impl.device)
        opt = needle.optim.SGD(model.parameters(), lr=lr)
        loss_fn = needle.nn.SoftmaxLoss()
        loader = DataLoader(NDArrayDataset(x_np, y_np), batch_size=batch, device=impl.device)
        sync = impl.sync()

        update = needle_train_step(model, opt, loss_fn)
        run = needle.compile(update, state=(model, opt)) if replay else update

        def epoch() -> float:
            total = 0.0
            for xb, yb in loader:
                total += run(xb, yb).numpy().item()
            sync()
            return total

    return epoch
