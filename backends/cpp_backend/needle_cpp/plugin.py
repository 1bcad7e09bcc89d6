"""Hook implementations that register the C++ backend with needle."""

from __future__ import annotations

from types import ModuleType

from needle.backends import BackendInfo, BackendStatus, hookimpl

from . import __version__

OPTIONAL_KERNELS = (
    "batched_matmul",
    "logsumexp_last",
    "softmax_last",
    "reduce_argmax",
    "ewise_where",
    "conv2d_nhwc",
    "conv2d_nhwc_pad",
    "conv2d_nhwc_backward_input",
    "conv2d_nhwc_backward_weight",
    "synchronize",
    # issue 12: copy-free backward passes and replay
    "matmul_t",
    "batched_matmul_t",
    "reduce_sum_mid",
    "reduce_max_mid",
    "program_compile",
    "program_run",
    "program_set_scalars",
    # issue 12: fused layers
    "batchnorm_forward",
    "batchnorm_backward",
    "layernorm_forward",
    "layernorm_backward",
    "softmax_xent",
    "softmax_xent_backward",
    # issue 12: sequence layers
    "take_rows",
    "scatter_add_rows",
    "lstm_cell",
    "lstm_cell_backward",
    "lstm_layer",
    "lstm_layer_backward",
    "rnn_layer",
    "rnn_layer_backward",
    "attention_softmax",
    "attention_forward",
    "attention_backward",
    # issue 17: DLPack interop
    "dlpack_export",
    "dlpack_import",
    # issue 12: replay memory planning
    "buffer_view",
    # dropout masks drawn from NumPy's generator state
    "bernoulli_mt19937",
)
"""The optional kernels of the contract that ``needle_cpp._core`` provides."""


@hookimpl
def needle_backend_info() -> BackendInfo:
    """Describe the C++ backend (cheap: does not import the compiled module)."""
    return BackendInfo(
        name="cpp",
        version=__version__,
        contract_version=(1, 7),
        dtypes=("float32", "float64"),
        optional_kernels=OPTIONAL_KERNELS,
        description="C++ backend (CPU; OpenMP, AVX2/AVX-512 chosen at run time)",
    )


@hookimpl
def needle_backend_status() -> BackendStatus:
    """Usable when the compiled module imports on this machine."""
    try:
        from . import _core  # noqa: F401
    except ImportError as exc:  # a broken or foreign build: report, do not raise
        return BackendStatus(
            usable=False, reason=f"needle_cpp._core failed to import: {exc}", device_count=0
        )
    return BackendStatus(usable=True, device_count=1)


@hookimpl
def needle_backend_load(index: int) -> ModuleType:
    """Return the kernel module for the one CPU device (index 0)."""
    if index != 0:
        raise IndexError(f"cpp backend: device index {index} out of range; it has one device (0)")
    from . import _core, dlpack

    return dlpack.install(_core)
