"""needle-cuda: the CUDA array backend for needle.

Kernels are CUDA C++ sources (``needle_cuda/kernels/*.cu``) compiled at first use with
CuPy's ``RawModule`` (NVRTC); matmul goes through cuBLAS via ``cupy.matmul``. The plugin
module is :mod:`needle_cuda.plugin`; it never imports CuPy at import time. The kernel
table lives in :mod:`needle_cuda.table` and the argument checks, shared by every kernel,
in :mod:`needle_cuda.checks` (pure Python, testable without a GPU).
"""

__version__ = "0.1.0"
