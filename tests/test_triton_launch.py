"""Launch-side properties of the Triton kernels that the op tests cannot see at their sizes.

- The grids stay within CUDA's limits for any map size (axes 1 and 2 take at most 65535
  programs): the ungrouped backward once had a ``cdiv(H*W, 64)`` axis, over the limit beyond
  about 2048x2048. Checked on the grid functions themselves at huge sizes, and by running the
  folded backward (each program looping over several H*W blocks) under the interpreter with
  the fold limit lowered to 2.
- The fp16/bf16 ungrouped dots split the fp32 filters into two TF32 parts (kernels/pool.py);
  the split's error model (``kernel_checks.TF32_SPLIT``) is checked on the real filters.
- Launches are wrapped in ``torch.cuda.device(x.device)`` (``device_guard``); a no-op on CPU.

Like tests/test_triton.py, the interpreter tests run in a ``TRITON_INTERPRET=1`` subprocess
started by ``test_interpreter_run`` (the flag must be set before triton is imported).
"""
import importlib.util
import os

import numpy as np
import pytest
import torch

import freqalign
from interpreter import IN_INTERPRETER, interpreted, run_interpreter_tests
from kernel_checks import TF32_SPLIT, check_pool

pytestmark = pytest.mark.triton
CUDA_GRID_YZ, CUDA_GRID_X = 65535, 2 ** 31 - 1


def _kernels():
    """``(pool, _utils)`` of the Triton backend; skip without triton (it is optional)."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if os.environ.get("FREQALIGN_REQUIRE_EXT") != "1":
        pytest.importorskip("freqalign.kernels", reason="freqalign.kernels does not import")
    from freqalign.kernels import _utils, pool

    return pool, _utils


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("side", [7, 56, 2048, 2049, 8192, 46341])
def test_backward_grid_fits_cuda_limits_at_any_map_size(side, grouped):
    pool, _ = _kernels()
    hw = side * side
    config = pool.backward_config(64, hw, 16, grouped, torch.bfloat16)
    grid, c_blocks, hw_blocks = pool.backward_grid(8, 64, hw, config)
    assert len(grid) == 2 and 1 <= grid[0] <= CUDA_GRID_X and 1 <= grid[1] <= CUDA_GRID_YZ
    assert grid[0] == 8 * c_blocks and c_blocks * config["BLOCK_C"] >= 64
    assert hw_blocks * config["BLOCK_HW"] >= hw > (hw_blocks - 1) * config["BLOCK_HW"]
    # the programs of axis 1 walk blocks pid, pid + grid[1], ...: each block once
    assert grid[1] == min(hw_blocks, CUDA_GRID_YZ)
    if side >= 2049 and not grouped:
        assert hw_blocks > CUDA_GRID_YZ  # the unfolded axis would not have launched


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_backward_grid_fold_covers_every_block_once(limit):
    pool, _ = _kernels()
    config = pool.backward_config(13, 33 * 20, 5, False, torch.float32)
    grid, _, hw_blocks = pool.backward_grid(3, 13, 33 * 20, config, max_yz=limit)
    assert grid[1] == min(hw_blocks, limit)
    visited = [blk for pid in range(grid[1]) for blk in range(pid, hw_blocks, grid[1])]
    assert sorted(visited) == list(range(hw_blocks))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("shape", [(2, 4, 8192, 8192), (64, 262144, 7, 7), (1, 3, 46341, 46341)])
def test_forward_grid_fits_cuda_limits(shape, grouped, channels_last):
    pool, _ = _kernels()
    b, c, h, w = shape
    strides = (c * h * w, 1, w * c, c) if channels_last else (c * h * w, h * w, w, 1)
    k = 1 if grouped else 16
    config = pool.forward_config(shape, strides, grouped, k, torch.float32, 1056)
    k_blocks, split = config.pop("k_blocks"), config.pop("split")
    grid, c_blocks = pool.forward_grid(b, c, config, k_blocks, split)
    assert 1 <= grid[0] <= CUDA_GRID_X and 1 <= grid[1] <= CUDA_GRID_YZ
    assert grid == (b * c_blocks, split * k_blocks)


def test_half_precision_ungrouped_dots_split_the_filters():
    pool, _ = _kernels()
    shape, strides = (2, 64, 7, 7), (64 * 49, 49, 7, 1)
    for dtype, grouped, split in [(torch.bfloat16, False, True), (torch.float16, False, True),
                                  (torch.float32, False, False), (torch.bfloat16, True, False)]:
        assert pool.forward_config(shape, strides, grouped, 4, dtype, 1056)["SPLIT_FILTERS"] is split
        assert pool.backward_config(64, 49, 4, grouped, dtype)["SPLIT_FILTERS"] is split
    assert pool.forward_config(shape, strides, False, 4, torch.bfloat16, 1056)["PRECISION"] == "tf32"


def _tf32(a: np.ndarray, rounding: str) -> np.ndarray:
    """fp32 values as TF32 (10 mantissa bits): truncated, or rounded to nearest (ties away)."""
    bits = a.astype(np.float32).view(np.uint32)
    if rounding == "nearest":
        bits = bits + np.uint32(0x1000)
    return (bits & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_filter_split_error_model(rounding):
    """``f = hi + lo`` with hi exact in TF32 and ``|lo| < 2^-10 |f|``; reading lo as TF32 (either
    rounding the hardware may use) loses at most ``TF32_SPLIT = 2^-20`` of ``|f|`` (plus, for
    values near fp32's underflow, less than its smallest normal: negligible). On the real
    bases (every frequency of 7x7, 14x14 and 56x56, both norms) and on random values."""
    filters = [freqalign.basis.pool_filters([(u, v) for u in range(n) for v in range(n)], n, n, norm, torch.float32)
               for n in (7, 14, 56) for norm in ("ortho", "mean")]
    gen = torch.Generator().manual_seed(5)
    filters.append(torch.randn(100000, generator=gen) * torch.exp(5 * torch.randn(100000, generator=gen)))
    for f in filters:
        f = f.float().numpy().ravel()
        hi = (f.view(np.int32) & np.int32(-8192)).view(np.float32)  # the kernel's bit mask
        lo = f - hi
        assert np.array_equal(_tf32(hi, "truncate"), hi)
        assert np.all(np.abs(lo.astype(np.float64)) < 2.0 ** -10 * np.abs(f.astype(np.float64)) + 1e-300)
        assert np.array_equal(hi.astype(np.float64) + lo.astype(np.float64), f.astype(np.float64))  # lo exact
        err = np.abs(hi.astype(np.float64) + _tf32(lo, rounding).astype(np.float64) - f.astype(np.float64))
        # + 2^-126: where lo is subnormal (f below 2^-116) TF32 keeps fewer bits of it, or the
        # hardware flushes it to zero; either way less than fp32's smallest normal is lost
        assert np.all(err <= TF32_SPLIT * np.abs(f.astype(np.float64)) + 2.0 ** -126)
        # a single TF32 rounding of f, what a plain tf32 dot does, errs by up to 2^-10 (2^-11 nearest)
        plain = np.abs(_tf32(f, rounding).astype(np.float64) - f.astype(np.float64))
        assert plain.max() > 2 ** 8 * err.max()


def test_device_guard():
    _, utils = _kernels()
    with utils.device_guard(torch.device("cpu")):
        pass
    if torch.cuda.is_available():
        guard = utils.device_guard(torch.device("cuda", torch.cuda.device_count() - 1))
        with guard:
            assert torch.cuda.current_device() == torch.cuda.device_count() - 1


@pytest.mark.skipif(IN_INTERPRETER, reason="this process is the interpreter run")
def test_interpreter_run():
    """The interpreter tests below pass, none skipped (see tests/test_triton.py)."""
    _kernels()
    run_interpreter_tests(__file__, "in_interpreter")


@pytest.fixture
def folded(monkeypatch):
    """The triton backend with grid axis 1 capped at 2 programs: every backward program loops."""
    _, utils = _kernels()
    assert freqalign.backends()["triton"] == "available", freqalign.backends()["triton"]
    monkeypatch.setattr(utils, "MAX_GRID_YZ", 2)
    with freqalign.use_backend("triton"):
        yield


@interpreted
@pytest.mark.parametrize("grouped", [True, False])
def test_folded_backward_in_interpreter(folded, grouped):
    # ungrouped: 33x20 = 11 blocks of 64 positions; grouped: 40x60 = 3 blocks of 1024
    check_pool((2, 8, 33, 20), 4, grouped, "ortho", torch.float32, "cpu", "triton")
    check_pool((1, 4, 40, 60), 2, grouped, "mean", torch.float32, "cpu", "triton")
    check_pool((2, 8, 33, 20), 4, grouped, "ortho", torch.float32, "cpu", "triton", "channels_last")


@interpreted
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_split_filter_dots_in_interpreter(folded, dtype):
    """fp16/bf16 ungrouped pooling, forward and backward, within the split-dot bound (pool_error)."""
    check_pool((2, 12, 14, 14), 3, False, "ortho", dtype, "cpu", "triton")
    check_pool((2, 8, 33, 20), 5, False, "mean", dtype, "cpu", "triton")
