"""Hook implementations that register the NumPy backend with needle."""

from __future__ import annotations

from types import ModuleType

from needle.backends import BackendInfo, BackendStatus, hookimpl

from . import __version__

_OPTIONAL = (
    "batched_matmul",
    "logsumexp_last",
    "softmax_last",
    "ewise_where",
    "reduce_argmax",
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
    "conv2d_nhwc_pad",
    "conv2d_nhwc_backward_input",
    "conv2d_nhwc_backward_weight",
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


@hookimpl
def needle_backend_info() -> BackendInfo:
    """Describe the NumPy reference backend."""
    return BackendInfo(
        name="numpy",
        version=__version__,
        contract_version=(1, 7),
        dtypes=("float32", "float64"),
        optional_kernels=_OPTIONAL,
        description="NumPy reference backend (CPU)",
    )


@hookimpl
def needle_backend_status() -> BackendStatus:
    """NumPy runs everywhere needle does."""
    return BackendStatus(usable=True, device_count=1)


@hookimpl
def needle_backend_load(index: int) -> ModuleType:
    """Return the kernel module (one CPU device, index 0)."""
    from . import kernels

    return kernels
