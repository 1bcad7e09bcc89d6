"""needle.distributed without a launcher: world size 1, in this process."""

from __future__ import annotations

import needle as ndl
import needle.distributed as dist
import numpy as np
import pytest
from needle import nn, optim
from needle.distributed._collective import DistributedTimeoutError, Work, host_view

BACKENDS = ["numpy", "cpp"]


def test_world_of_one():
    assert not dist.launched_by_mpi()
    dist.init()
    assert (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
    assert dist.backend() == "local"
    dist.barrier()
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_collectives_are_identities(backend):
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), device=ndl.device(backend))
    for op in ("sum", "mean", "max", "min"):
        y = dist.all_reduce(x, op)
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        assert y is not x
    np.testing.assert_array_equal(dist.broadcast(x).numpy(), x.numpy())
    g = dist.all_gather(x.transpose())
    assert g.shape == (1, 3, 2)
    np.testing.assert_array_equal(g.numpy()[0], x.numpy().T)
    (dist.all_reduce(x) * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_bad_input():
    x = ndl.Tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(x, "prod")
    with pytest.raises(TypeError, match="expected a needle Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match=r"src must be a rank in 0\.\.0"):
        dist.broadcast(x, src=1)
    with pytest.raises(ValueError, match="backend must be"):
        dist.init(backend="gloo")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        dist.init(timeout=0)
    with pytest.raises(TypeError, match="expected a needle Module"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0"):
        dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)


def test_wait_is_bounded():
    work = Work(lambda: False, "all_reduce of 4 bytes", 0, 0.05)
    with pytest.raises(DistributedTimeoutError, match=r"did not complete within 0\.05 s"):
        work.wait()


@pytest.mark.parametrize("backend", BACKENDS)
def test_host_view_shares_memory(backend):
    a = ndl.Tensor(np.zeros((2, 3)), device=ndl.device(backend)).realize_cached_data()
    view = host_view(a)
    assert view is not None and view.shape == (2, 3)
    view[1, 2] = 5.0
    assert a.numpy()[1, 2] == 5.0
    assert host_view(a.permute((1, 0))) is None  # not compact: staged


def _mlp(seed: int, device) -> nn.Module:
    ndl.manual_seed(seed)
    np.random.seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16, device=device), nn.ReLU(), nn.Linear(16, 3, device=device)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_ddp_world_of_one_matches_plain_model(backend, rng):
    dev = ndl.device(backend)
    plain, wrapped = _mlp(3, dev), _mlp(3, dev)
    ddp = dist.DistributedDataParallel(wrapped, bucket_cap_mb=0.0002)
    assert len(ddp.bucket_sizes) > 1 and sum(ddp.bucket_sizes) == 4
    assert list(ddp.state_dict()) == list(plain.state_dict())
    opt_a = optim.SGD(plain.parameters(), lr=0.1, momentum=0.5)
    opt_b = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.5)
    for _ in range(3):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        y = rng.integers(0, 3, 8)
        for model, opt in ((plain, opt_a), (ddp, opt_b)):
            opt.reset_grad()
            loss = nn.SoftmaxLoss()(model(ndl.Tensor(x, device=dev)), ndl.Tensor(y, device=dev))
            loss.backward()
            opt.step()
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-7)
        assert isinstance(q, nn.Parameter)


def test_ddp_no_sync_accumulates(rng):
    ddp = dist.DistributedDataParallel(_mlp(0, None))
    x = ndl.Tensor(rng.standard_normal((4, 6)).astype(np.float32))
    with ddp.no_sync():
        ddp(x).sum().backward()
    first = [p.grad.numpy() for p in ddp.parameters()]
    ddp(x).sum().backward()  # synchronised: the accumulated gradient (twice the first)
    for f, p in zip(first, ddp.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), 2 * f, rtol=1e-6)


def test_ddp_unused_parameter_keeps_none_and_double_backward_is_an_error(rng):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.a(x)

    ddp = dist.DistributedDataParallel(TwoHeads())
    ddp(ndl.Tensor(rng.standard_normal((4, 3)).astype(np.float32))).sum().backward()
    assert ddp.module.b.weight.grad is None  # flushed with zeros, no rank had one
    assert ddp.module.a.weight.grad is not None
    assert not ddp._reducer.armed
    # b gets no gradient, so the step stays open; a second backward would be silently
    # wrong across ranks (a's first gradient already went out): it is an error
    loss = ddp(ndl.Tensor(rng.standard_normal((4, 3)).astype(np.float32))).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="received a gradient twice in one step"):
        loss.backward()


@pytest.mark.parametrize("shape", [(16, 4), (4, 4, 3, 3)])
def test_sync_batchnorm_world_of_one_is_batchnorm(shape, rng):
    x_np = rng.standard_normal(shape).astype(np.float32)
    bn = nn.BatchNorm1d(4) if len(shape) == 2 else nn.BatchNorm2d(4)
    sbn = nn.SyncBatchNorm(4)
    outs = []
    for m in (bn, sbn):
        x = ndl.Tensor(x_np)
        y = m(x)
        (y * y).sum().backward()
        outs.append((y.numpy(), x.grad.numpy(), m.weight.grad.numpy(), m.running_var.numpy()))
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="expected \\(N, C\\) or \\(N, C, H, W\\)"):
        sbn(ndl.Tensor(np.zeros((2, 4, 3))))


def test_convert_sync_batchnorm_keeps_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    weight = model.modules[1].weight if isinstance(model.modules, list) else None
    params = model.parameters()
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert out is model
    kinds = [type(m).__name__ for m in model.modules() if m is not model]
    assert "SyncBatchNorm" in kinds and "BatchNorm1d" not in kinds
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    if weight is not None:
        assert model.modules[1].weight is weight
