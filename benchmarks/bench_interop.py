"""Handing a tensor to PyTorch and back: DLPack (shared memory) against the copies.

* ``dlpack``: ``torch.from_dlpack(t)`` then ``needle.from_dlpack(tt, device=...)``: no
  byte of data moves, so the time does not grow with the size.
* ``copy``: ``torch.from_numpy(t.numpy())`` then ``needle.Tensor(tt.numpy(), ...)``: the
  way without DLPack, one copy out of needle and one copy back in.

The tensor is 256 MB of float32 (64 Mi elements; 1 MB in quick mode). The report shows
microseconds per round trip. On a GPU backend the ``copy`` path also crosses the bus.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ._common import Impl, record, rounds, size

pytestmark = pytest.mark.impls("needle")

NBYTES = size(256 * 2**20, 2**20)
N = NBYTES // 4


def _torch() -> Any:
    return pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")


@pytest.mark.parametrize("path", ["dlpack", "copy"])
def bench_torch_round_trip(benchmark: Any, impl: Impl, path: str) -> None:
    torch = _torch()
    import needle

    dev = impl.device
    if dev.name == "cuda" and path == "dlpack" and not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here: it cannot take a CUDA capsule")
    x = np.arange(N, dtype=np.float32) % 251.0
    t = needle.Tensor(x.reshape(-1, 1024), device=dev, requires_grad=False)
    sync = impl.sync()

    if path == "dlpack":

        def run() -> Any:
            back = needle.from_dlpack(torch.from_dlpack(t), device=dev)
            sync()
            return back
    else:

        def run() -> Any:
            tt = torch.from_numpy(t.numpy())
            back = needle.Tensor(tt.numpy(), device=dev, requires_grad=False)
            sync()
            return back

    how = "DLPack (shared)" if path == "dlpack" else ".numpy() + torch.from_numpy + Tensor (copies)"
    record(
        benchmark,
        impl,
        "interop",
        f"needle -> torch -> needle, {NBYTES // 2**20} MB float32, {how}",
        nbytes=2 * NBYTES if path == "copy" else 0,
        unit="us",
    )
    back = benchmark.pedantic(run, rounds=rounds(20 if path == "dlpack" else 5), iterations=1)
    assert back.shape == t.shape and back.dtype == "float32"
    probe = back.realize_cached_data()[-1:, -3:].numpy().reshape(-1)
    np.testing.assert_array_equal(probe, x[-3:], err_msg=f"{path} round trip on {impl.name}")
    shares = dev.has_kernel("dlpack_export") and dev.has_kernel("dlpack_import")
    if path == "dlpack" and shares and dev.name != "cuda":  # the same memory, not a copy
        assert np.asarray(back, copy=False).ctypes.data == np.asarray(t, copy=False).ctypes.data
