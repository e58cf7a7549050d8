"""The ``triton`` backend (fused Triton kernels); importable as ``freqalign.kernels``."""


def load():
    raise ImportError("Triton kernels are not written yet")
