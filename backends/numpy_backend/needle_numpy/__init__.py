"""needle-numpy: the NumPy reference backend for needle.

The plugin module is :mod:`needle_numpy.plugin`; the kernels are in
:mod:`needle_numpy.kernels`.
"""

__version__ = "0.1.0"
