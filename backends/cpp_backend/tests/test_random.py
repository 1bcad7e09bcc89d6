"""bernoulli_mt19937 on every instruction set: NumPy's legacy stream, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get
from needle.backends.contract import KERNELS

REFERENCE = KERNELS["bernoulli_mt19937"].reference  # f(key, pos, p, n, dtype), key advanced


@pytest.mark.parametrize("pos", [0, 1, 2, 300, 622, 623, 624])
def test_matches_random_sample(core, simd, dtype, pos):
    """Every start position (623: the first pair straddles a twist), sizes around a
    twist's 312 doubles and across several twists, probabilities 0, 1, NaN and between."""
    rng = np.random.RandomState(pos)
    for n in (0, 1, 2, 311, 312, 313, 625, 5000):
        for p in (0.0, 0.25, 1.0, float("nan"), -0.0):
            key = rng.randint(0, 2**32, size=624, dtype=np.uint64).astype(np.uint32)
            new_key = key.copy()
            values, new_pos = REFERENCE(new_key, pos, p, n, dtype)
            out = core.alloc(n + 3, dtype)
            core.fill(out, 7.0)
            assert core.bernoulli_mt19937(key, pos, p, out, n) == new_pos
            np.testing.assert_array_equal(get(out)[:n], values)
            np.testing.assert_array_equal(get(out)[n:], 7.0)  # past n: untouched
            np.testing.assert_array_equal(key, new_key)


def test_continues_numpys_global_stream(core):
    """Chained calls from NumPy's own state continue exactly where np.random.rand would."""
    np.random.seed(3)
    want = np.concatenate([np.random.rand(n) for n in (5, 700, 1)]) <= 0.5
    after = np.random.get_state()
    np.random.seed(3)
    _, key, pos, *_ = np.random.get_state()
    outs = []
    for n in (5, 700, 1):
        out = core.alloc(n, "float64")
        pos = core.bernoulli_mt19937(key, pos, 0.5, out, n)
        outs.append(get(out))
    np.testing.assert_array_equal(np.concatenate(outs), want)
    np.testing.assert_array_equal(key, after[1])
    assert pos == after[2]
