"""Seeded test inputs, and the worst-case rounding-error bounds the tolerances are derived from.

Error model (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., ch. 2-3, 24).
With unit roundoff u (2^-53, 2^-24, 2^-11, 2^-8 for float64, float32, float16, bfloat16):

- an inner product of n products, accumulated in any order (blocked, pairwise, SIMD lanes,
  split over threads or programs, with or without FMA), errs by at most
  ``gamma(n) * sum_i |a_i b_i|``, ``gamma(n) = n u / (1 - n u)`` (eq. 3.5);
- chained products compound: the separable DCT ``y = L (x R^T)`` errs by at most
  ``gamma(H + W) * (|L| |x| |R|^T)`` (Lemma 3.3: gamma(a) + gamma(b) + gamma(a) gamma(b) <= gamma(a + b));
- factors that are themselves rounded (a basis stored in float32, or rounded to float16 when a
  kernel multiplies in it) multiply each product by at most ``1 + gamma(k)`` for k roundings;
- the result, rounded once to the output dtype, adds ``u_out * |result|`` (``2 u_out`` where
  the conversion truncates, as the Triton interpreter's fp32 -> bf16 does), and where it
  underflows, half the subnormal spacing ``u_out * tiny`` (float16's: 3e-8);
- the float64 oracle errs too: ``gamma(n)`` of float64 for a matrix formula, and for
  ``scipy.fft`` (an FFT) at most ``10 log2(2N) u * ||plane||_2`` per element (Theorem 24.2's
  normwise bound with room for the DCT's extra twiddles).

Every bound is elementwise and worst case (no "typical sqrt(n)" factor), so a test that
respects it cannot fail from summation order, BLAS, SIMD width or thread count.
"""
import math

import numpy as np
import torch

UNIT_ROUNDOFF = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11,
                 torch.bfloat16: 2.0 ** -8}
# tl.dot's "tf32" rounds each fp32 factor to TF32's 10-bit mantissa: relative error <= 2^-10
# even if truncated. "tf32x3" splits a = hi + lo into two TF32 parts and drops lo * lo: each
# product errs by at most 3 * 2^-20 (three terms of 2^-10 * 2^-10).
TF32 = 2.0 ** -10
TF32X3 = 3 * 2.0 ** -20


def randn(*shape, seed: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Standard normal values from a generator seeded by ``seed`` (drawn in float64, then cast)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)


def gamma(n: int, u: float) -> float:
    assert n * u < 1, "the bound needs n u < 1"
    return n * u / (1 - n * u)


def accumulation(dtype: torch.dtype) -> torch.dtype:
    """The kernels' accumulation dtype: float64 for float64 input, float32 for the rest."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def relative_error(terms: int, acc: torch.dtype, factors=()) -> float:
    """Largest relative error of a computed sum of products, relative to ``sum |products|``.

    ``terms``: the accumulation chain (n for one inner product, H + W for the separable DCT);
    ``factors``: ``(k, u)`` pairs, k roundings of unit roundoff u in every product.
    """
    growth = 1 + gamma(terms, UNIT_ROUNDOFF[acc])
    for k, u in factors:
        growth *= 1 + gamma(k, u)
    return growth - 1


def bound(magnitude: np.ndarray, exact: np.ndarray, rel: float, out: torch.dtype, truncates: bool = False,
          oracle: np.ndarray = 0.0) -> np.ndarray:
    """Elementwise worst case of ``|output - oracle|``: the computation's error ``rel * magnitude``,
    the output's conversion to ``out`` (``u |computed|``, or ``2u`` where it ``truncates``, plus
    as much of the subnormal spacing where it underflows) and the oracle's own error."""
    computed = rel * magnitude
    roundoff = UNIT_ROUNDOFF[out] * (2 if truncates else 1)
    limit = computed + roundoff * (np.abs(exact) + computed + torch.finfo(out).tiny) + oracle
    return limit * (1 + 2.0 ** -40)  # the bound itself is evaluated in float64 (error ~1e-14)


def assert_within(out, exact: np.ndarray, limit: np.ndarray, what: str) -> None:
    """``|out - exact| <= limit`` everywhere (and finite), else report the worst element."""
    got = out.detach().double().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    assert got.shape == exact.shape, f"{what}: shape {got.shape} != reference {exact.shape}"
    assert np.isfinite(got).all(), f"{what}: non-finite values in the output"
    ratio = np.abs(got - exact) / np.maximum(limit, np.finfo(np.float64).tiny)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(ratio), ratio.shape))
    assert ratio[worst] <= 1.0, (f"{what}: error {abs(got[worst] - exact[worst]):.3e} at {worst} exceeds "
                                 f"its bound {limit[worst]:.3e} ({ratio[worst]:.2f}x)")


def mean_difference_bound(n: int) -> float:
    """Largest difference, relative to ``mean |x|``, between two fp32 means of the same n values
    (``freq_pool`` at (0, 0) with ``norm="mean"``, ``x.mean()``, global average pooling).

    Each sums n terms (gamma(n)) and applies one rounded weight 1/n or one division (one more
    rounding; the weight's float64 construction adds <= 4 float64 roundings); their difference
    is at most twice one side's error: about 2 n 2^-24, 3.7e-4 at 56x56. Typical errors are
    ~sqrt(n) 2^-24, but a bound that tight fails on another BLAS's summation order.
    """
    return 2 * relative_error(n, torch.float32, [(1, UNIT_ROUNDOFF[torch.float32]),
                                                  (4, UNIT_ROUNDOFF[torch.float64])])


# -- magnitudes: sum |a_i b_i| of the exact computations ---------------------------------------

def dct_matrix64(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix from its cosine formula (docs/design.md section 1), in float64."""
    u, t = np.arange(n)[:, None], np.arange(n)[None, :]
    scale = np.where(u == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
    return scale * np.cos(np.pi * (2 * t + 1) * u / (2 * n))


def transform_magnitude(x: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``|left| |x| |right|^T`` per (H, W) plane."""
    return np.abs(left) @ np.abs(x) @ np.abs(right).T


def dct_magnitude(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """``|C_H| |x| |C_W|^T`` for ``dct2d(x)`` (``|C_H|^T |x| |C_W|`` for ``idct2d``)."""
    rows, cols = dct_matrix64(x.shape[-2]), dct_matrix64(x.shape[-1])
    return transform_magnitude(x, rows.T, cols.T) if inverse else transform_magnitude(x, rows, cols)


def oracle_error(a: np.ndarray) -> np.ndarray:
    """Absolute bound, per element, on the float64 side of a comparison for a DCT of the planes
    of ``a``: the oracle's own error (scipy's FFT: ``10 log2(2N) u ||plane||_2``; the cosine
    formula's two matmuls where scipy is missing: ``gamma(H + W) sum |plane|``, entries <= 1)
    plus the float64 bases' construction (a cosine of an argument below pi N carrying 4
    roundings: ``|B - B_exact| <= 16 N u`` per entry, reaching ``2 * 16 N u * sum |plane|``),
    on both sides."""
    u = UNIT_ROUNDOFF[torch.float64]
    height, width = a.shape[-2], a.shape[-1]
    norm = np.sqrt((a * a).sum(axis=(-2, -1), keepdims=True))
    total = np.abs(a).sum(axis=(-2, -1), keepdims=True)
    fft = 10 * math.log2(2 * height * width) * u * norm
    matrix_formula = gamma(height + width, u) * total
    construction = 2 * 2 * 16 * max(height, width) * u * total
    return np.broadcast_to(fft + matrix_formula + construction, a.shape)
