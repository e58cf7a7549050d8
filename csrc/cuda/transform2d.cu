// CUDA kernel for freqalign::transform2d: y[p] = left @ x[p] @ right^T for every (H, W) plane.
//
// One block owns NP planes at a time (persistent grid, the matrices staged in shared memory once
// per block): the planes are read once, coalesced, into shared memory; stage 1 gives each
// thread one plane row and computes t = x @ right^T (the row in registers, right read as
// warp-wide broadcasts, 16 bytes at a time); stage 2 gives each thread one plane column and computes y = left @ t;
// the result is written back once, coalesced. Arithmetic is exact fp32 (fp64 for fp64) on the
// CUDA cores, with no padding waste at 7x7 or 14x14. Planes wider than 64 are computed by ATen
// matmuls (cuBLAS) instead, where the work is compute-bound anyway.
//
// NP: enough planes that both stages have about 256 row/column tasks, capped so the block's
// shared memory stays within 96 KB (two blocks per SM); when that leaves fewer rows (columns)
// than threads (56x56, 64x64), 2, 4 ... threads share a row (column). Plane rows are padded to
// an odd stride so the per-row accesses of a warp hit distinct banks.
#include "common.cuh"

#include <algorithm>

#include <torch/library.h>

namespace freqalign {
namespace gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxSide = 64;
constexpr int64_t kSmemBudget = 96 * 1024;

struct PlaneGeom {
  int64_t P, C;                  // planes, and the channel count that splits p into (b, c)
  int64_t sb, sc, sh, sw;        // element strides of x viewed as (B, C, H, W)
  int H, W, WS, NP;              // WS: padded shared-memory row stride; NP: planes per block
  int LS, RS;                    // row strides of the staged matrices: H and W rounded up to 16 bytes
  int split1, split2;            // log2 of the threads sharing one row (stage 1) / one column (stage 2)
  bool contiguous;               // planes dense and consecutive: plane p starts at p * H * W
  at::cuda::detail::IntDivider<unsigned int> divW, divH;
};

template <typename T, typename A, int MAXN>
__global__ void __launch_bounds__(kThreads)
    transform2d_kernel(const T* __restrict__ x, const A* __restrict__ left, const A* __restrict__ right,
                       T* __restrict__ y, PlaneGeom g) {
  constexpr int VA = 16 / sizeof(A);  // matrix entries per 16-byte shared-memory load
  using Row = Vec<A, VA>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int H = g.H, W = g.W, WS = g.WS, HW = H * W, LS = g.LS, RS = g.RS;
  A* Ls = reinterpret_cast<A*>(smem_raw);  // left, H rows of stride LS, zero-padded
  A* Rs = Ls + H * LS;                     // right, W rows of stride RS, zero-padded
  A* Xs = Rs + W * RS;                     // NP * H rows of stride WS: x, then y
  A* Ts = Xs + g.NP * H * WS;              // t = x @ right^T
  for (int e = threadIdx.x; e < H * LS; e += kThreads) Ls[e] = e % LS < H ? left[(e / LS) * H + e % LS] : A(0);
  for (int e = threadIdx.x; e < W * RS; e += kThreads) Rs[e] = e % RS < W ? right[(e / RS) * W + e % RS] : A(0);

  const int64_t blocks = (g.P + g.NP - 1) / g.NP;
  for (int64_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
    const int64_t p0 = blk * g.NP;
    const int np = static_cast<int>(min64(g.NP, g.P - p0));
    const int n = np * HW;
    __syncthreads();  // the matrices are staged / the previous block's stores have read Xs
    for (int e = threadIdx.x; e < n; e += kThreads) {
      const auto rw = g.divW.divmod(static_cast<unsigned>(e));  // rw.div = plane row (pl * H + h)
      T value;
      if (g.contiguous) {
        value = x[p0 * HW + e];
      } else {
        const auto ph = g.divH.divmod(rw.div);
        const int64_t p = p0 + ph.div;
        value = x[(p / g.C) * g.sb + (p % g.C) * g.sc + ph.mod * g.sh + static_cast<int64_t>(rw.mod) * g.sw];
      }
      Xs[rw.div * WS + rw.mod] = static_cast<A>(value);
    }
    __syncthreads();
    // stage 1: t[row, v] = sum_w x[row, w] * right[v, w]; 2^split1 threads share a row
    for (int task = threadIdx.x; task < (np * H) << g.split1; task += kThreads) {
      const int r = task >> g.split1, part = task & ((1 << g.split1) - 1);
      A xr[MAXN];
#pragma unroll
      for (int w = 0; w < MAXN; ++w) xr[w] = w < W ? Xs[r * WS + w] : A(0);
      for (int v = part; v < W; v += 1 << g.split1) {
        const Row* row = reinterpret_cast<const Row*>(Rs + v * RS);
        A acc = A(0);
#pragma unroll
        for (int q = 0; q < MAXN / VA; ++q) {
          if (q * VA < W) {  // the padding of xr and of the row is zero
            const Row r = row[q];
#pragma unroll
            for (int t = 0; t < VA; ++t) acc += xr[q * VA + t] * r.v[t];
          }
        }
        Ts[r * WS + v] = acc;
      }
    }
    __syncthreads();
    // stage 2: y[pl, u, v] = sum_h left[u, h] * t[pl, h, v], written over x in Xs; 2^split2 threads
    // share a column
    for (int task = threadIdx.x; task < (np * W) << g.split2; task += kThreads) {
      const int part = task & ((1 << g.split2) - 1);
      const auto pv = g.divW.divmod(static_cast<unsigned>(task >> g.split2));
      const int base = pv.div * H * WS + pv.mod;
      A tc[MAXN];
#pragma unroll
      for (int h = 0; h < MAXN; ++h) tc[h] = h < H ? Ts[base + h * WS] : A(0);
      for (int u = part; u < H; u += 1 << g.split2) {
        const Row* row = reinterpret_cast<const Row*>(Ls + u * LS);
        A acc = A(0);
#pragma unroll
        for (int q = 0; q < MAXN / VA; ++q) {
          if (q * VA < H) {
            const Row l = row[q];
#pragma unroll
            for (int t = 0; t < VA; ++t) acc += l.v[t] * tc[q * VA + t];
          }
        }
        Xs[base + u * WS] = acc;
      }
    }
    __syncthreads();
    T* yb = y + p0 * HW;
    for (int e = threadIdx.x; e < n; e += kThreads) {
      const auto rw = g.divW.divmod(static_cast<unsigned>(e));
      yb[e] = static_cast<T>(Xs[rw.div * WS + rw.mod]);
    }
  }
}

template <typename T, int MAXN>
void launch(const at::Tensor& x4, const at::Tensor& left, const at::Tensor& right, at::Tensor& y,
            const PlaneGeom& g, int64_t smem) {
  using A = acc_t<T>;
  auto kernel = transform2d_kernel<T, A, MAXN>;
  if (smem > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  int per_sm = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, static_cast<size_t>(smem)));
  const int64_t blocks = ceil_div(g.P, g.NP);
  const int64_t grid = std::max<int64_t>(1, min64(blocks, static_cast<int64_t>(std::max(per_sm, 1)) * sm_count()));
  kernel<<<static_cast<unsigned>(grid), kThreads, static_cast<size_t>(smem), current_stream()>>>(
      x4.const_data_ptr<T>(), left.const_data_ptr<A>(), right.const_data_ptr<A>(), y.mutable_data_ptr<T>(), g);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor transform2d_cuda(const at::Tensor& x, const at::Tensor& left, const at::Tensor& right) {
  check_cuda_float(x, "transform2d", "x");
  check_transform2d(x, left, right);
  const int64_t nd = x.dim(), H = x.size(nd - 2), W = x.size(nd - 1);
  const c10::cuda::CUDAGuard guard(x.device());
  if (std::max(H, W) > kMaxSide) {  // large planes: two cuBLAS matmuls
    return at::matmul(at::matmul(left, x.to(left.scalar_type())), right.t()).to(x.scalar_type()).contiguous();
  }
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  // view x as (B, C, H, W) without copying when possible
  at::Tensor x4 = x;
  if (nd == 2) x4 = x4.unsqueeze(0);
  if (x4.dim() > 4) x4 = x4.reshape({-1, H, W});
  if (x4.dim() == 3) x4 = x4.unsqueeze(0);

  const int acc_bytes = x.scalar_type() == at::kDouble ? 8 : 4, per_load = 16 / acc_bytes;
  const int WS = W % 2 == 0 ? static_cast<int>(W) + 1 : static_cast<int>(W);
  const int LS = static_cast<int>(ceil_div(H, per_load) * per_load);
  const int RS = static_cast<int>(ceil_div(W, per_load) * per_load);
  const int64_t fixed = (H * LS + W * RS) * acc_bytes, per_plane = 2 * H * WS * acc_bytes;
  int64_t np = ceil_div(kThreads, std::min(H, W));
  np = std::max<int64_t>(1, std::min(np, (kSmemBudget - fixed) / per_plane));
  // when NP planes have fewer rows (columns) than threads, threads share a row (column)
  int split1 = 0, split2 = 0;
  while ((np * H << (split1 + 1)) <= kThreads && (1 << (split1 + 1)) <= W) ++split1;
  while ((np * W << (split2 + 1)) <= kThreads && (1 << (split2 + 1)) <= H) ++split2;
  PlaneGeom g{x4.size(0) * x4.size(1), x4.size(1), x4.stride(0), x4.stride(1), x4.stride(2), x4.stride(3),
              static_cast<int>(H), static_cast<int>(W), WS, static_cast<int>(np), LS, RS, split1, split2,
              x4.is_contiguous(),
              at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned>(W)),
              at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned>(H))};
  const int64_t smem = fixed + np * per_plane;
  const int side = next_pow2(std::max<int64_t>(std::max(H, W), 8));
  FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "transform2d_cuda", [&] {
    switch (side) {
      case 8: launch<scalar_t, 8>(x4, left, right, y, g, smem); break;
      case 16: launch<scalar_t, 16>(x4, left, right, y, g, smem); break;
      case 32: launch<scalar_t, 32>(x4, left, right, y, g, smem); break;
      default: launch<scalar_t, 64>(x4, left, right, y, g, smem); break;
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CUDA, m) { m.impl("transform2d", &transform2d_cuda); }

}  // namespace gpu
}  // namespace freqalign
