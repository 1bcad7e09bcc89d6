"""needle-torch-example: a needle backend whose kernels run on PyTorch CPU tensors.

An example of a backend written outside needle's repository: the plugin module is
:mod:`needle_torch_example.plugin`, the kernels are in :mod:`needle_torch_example.kernels`.
"""

__version__ = "0.1.0"
