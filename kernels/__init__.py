"""Fused Triton kernels and their launchers; installed as ``freqalign.kernels``.

``transform2d.py`` defines ``freqalign::triton_transform2d`` (the kernel under dct2d/idct2d),
``pool.py`` ``freqalign::triton_pool_forward`` and ``freqalign::triton_pool_backward`` (the
kernels under freq_pool), each a ``torch.library.triton_op`` so that ``torch.compile`` traces
into them (triton_op also supplies the fake kernels); ``_utils.py`` holds the launch helpers.

This package imports nothing from ``freqalign``: ``freqalign/ops/triton_backend.py`` wires the
ops in as the ``triton`` backend (autograd, the autocast rule, float64 on the torch reference).
"""
