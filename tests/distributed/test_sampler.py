"""DistributedSampler: disjoint equal shards of one seeded per-epoch permutation."""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
import pytest
from needle.data import DataLoader, DistributedSampler, NDArrayDataset


@pytest.mark.parametrize("n", [0, 1, 7, 10, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards(n, world, drop_last):
    shards = [
        list(DistributedSampler(n, world, r, seed=5, drop_last=drop_last)) for r in range(world)
    ]
    per = n // world if drop_last else math.ceil(n / world)
    assert all(len(s) == per for s in shards)
    assert all(
        len(DistributedSampler(n, world, r, drop_last=drop_last)) == per for r in range(world)
    )
    flat = [i for s in shards for i in s]
    assert all(0 <= i < n for i in flat)
    if drop_last or n % world == 0:  # nothing padded: disjoint
        assert len(set(flat)) == len(flat)
    else:  # padded: everything covered, at most world - 1 repeats
        assert set(flat) == set(range(n)) and len(flat) - n < world
    # the shards interleave one permutation that every rank computes the same way
    perm = np.random.default_rng(5).permutation(n)
    for r, s in enumerate(shards):
        np.testing.assert_array_equal(s, np.resize(perm, world * per)[r::world][:per] if n else [])


def test_epochs_and_seeds():
    a = DistributedSampler(100, 2, 0, seed=1)
    first = list(a)
    assert list(a) == first  # same epoch, same order
    a.set_epoch(1)
    assert list(a) != first
    b = DistributedSampler(100, 2, 0, seed=1)
    b.set_epoch(1)
    assert list(b) == list(a)  # another process, same seed and epoch
    assert list(DistributedSampler(100, 2, 0, seed=2)) != first
    assert list(DistributedSampler(10, 2, 1, shuffle=False)) == [1, 3, 5, 7, 9]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"rank must be in 0\.\.1"):
        DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be an int >= 1"):
        DistributedSampler(10, 0, 0)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        DistributedSampler(10, 1, 0).set_epoch(-1)
    ds = NDArrayDataset(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="either shuffle=True or a sampler"):
        DataLoader(ds, shuffle=True, sampler=DistributedSampler(ds, 1, 0))


def test_dataloader_uses_the_sampler():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    ds = NDArrayDataset(x, np.arange(10))
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=0)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, device=ndl.device("numpy"))
    assert len(loader) == 3
    got = np.concatenate([b[1].numpy() for b in loader]).astype(int)
    np.testing.assert_array_equal(got, sampler.indices())
    np.testing.assert_array_equal(
        np.concatenate([b[0].numpy() for b in loader]), x[sampler.indices()]
    )
