// CUDA kernels for freqalign::pool_forward and freqalign::pool_backward (fused, one pass).
//
// Forward reads x exactly once, in place, with its own strides, and accumulates in fp32
// (fp64 for fp64 input). Two layouts:
// - rows (NCHW-like, H*W contiguous or at least mergeable): G lanes of a warp share one
//   (b, c) row and stride over it, with 16-byte vector loads when the rows are aligned;
//   G = 4 for rows of <= 16 vectors (7x7 in 4 passes), else 32; butterfly shuffles add the lanes.
// - channels (channels_last, the channel stride is 1): each lane owns V consecutive channels
//   (a 16-byte vector), the 8 warps of a block split the H*W positions, and shared memory adds
//   the warps.
// When the (b, c) tiles cannot fill the GPU (large H*W, few channels), H*W is split over
// blockIdx.z and the fp32 partial sums are added by one small ATen sum (deterministic).
// Ungrouped pooling keeps up to 16 filters per pass in registers (blockIdx.y walks the rest).
//
// Backward writes (B, C, H, W) contiguous, vectorised: grouped g[b, c] * filters[k(c)], ungrouped
// sum_k g[b, c, k] * filters[k]; never a (B, C, K, H, W) intermediate.
#include "common.cuh"

#include <algorithm>

#include <torch/library.h>

namespace freqalign {
namespace gpu {
namespace {

constexpr int kWarps = 8;     // warps per block
constexpr int kFilters = 16;  // filters per pass of the ungrouped forward
using Divider = at::cuda::detail::IntDivider<unsigned int>;  // multiply-shift division, operands < 2^31

// A pooling call's geometry (PoolGeom, ../shared.h) and what the launch derives from it.
struct PoolPlan : PoolGeom {
  int64_t HW;          // H * W
  bool merged;         // (H, W) flatten to one axis of stride sw
  int64_t span;        // H*W positions per split (blockIdx.z)
  Divider divC, divG;  // row -> (b, c) and c -> filter, without 64-bit divisions
};

__device__ __forceinline__ int64_t hw_offset(int64_t i, const PoolPlan& g) {
  return g.merged ? i * g.sw : (i / g.W) * g.sh + (i % g.W) * g.sw;
}

template <typename T, typename A, int V>
__device__ __forceinline__ void load_vec(const T* p, A (&out)[V]) {
  if constexpr (V > 1) {
    const Vec<T, V> v = *reinterpret_cast<const Vec<T, V>*>(p);
#pragma unroll
    for (int t = 0; t < V; ++t) out[t] = static_cast<A>(v.v[t]);
  } else {
    out[0] = static_cast<A>(*p);
  }
}

// Writes one pooled value: straight to `out`, or to this split's fp32/fp64 partial sums.
template <typename T, typename A>
__device__ __forceinline__ void emit(T* out, A* partial, int64_t index, int64_t per_split, A value) {
  if (partial != nullptr) {
    partial[blockIdx.z * per_split + index] = value;
  } else {
    out[index] = static_cast<T>(value);
  }
}

template <typename T, typename A, int V, int G, bool GROUPED>
__global__ void __launch_bounds__(kWarps * 32)
    pool_forward_rows(const T* __restrict__ x, const A* __restrict__ f, T* __restrict__ out,
                      A* __restrict__ partial, PoolPlan g) {
  constexpr int KC = GROUPED ? 1 : kFilters;
  const int lane = threadIdx.x & 31;
  const int j = lane % G;
  const int64_t rows = g.B * g.C;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * (32 / G) + lane / G;
  const bool live = row < rows;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * KC;
  const int64_t start = static_cast<int64_t>(blockIdx.z) * g.span;
  const int64_t stop = min64(start + g.span, g.HW);
  const int kn = GROUPED ? 1 : static_cast<int>(min64(KC, g.K - k0));
  A acc[KC];
#pragma unroll
  for (int t = 0; t < KC; ++t) acc[t] = A(0);
  if (live) {
    const auto bc = g.divC.divmod(static_cast<unsigned>(row));
    const T* xr = x + static_cast<int64_t>(bc.div) * g.sb + static_cast<int64_t>(bc.mod) * g.sc;
    const A* fr = f + (GROUPED ? static_cast<int64_t>(g.divG.div(bc.mod)) : k0) * g.HW;
#pragma unroll 2
    for (int64_t i = start + j * V; i < stop; i += G * V) {
      A xv[V];
      if constexpr (V > 1) {
        load_vec<T, A, V>(xr + i, xv);  // V > 1 only when rows are contiguous and aligned
      } else {
        xv[0] = static_cast<A>(xr[hw_offset(i, g)]);
      }
#pragma unroll
      for (int kk = 0; kk < KC; ++kk) {
        if (kk < kn) {
#pragma unroll
          for (int t = 0; t < V; ++t) acc[kk] += xv[t] * __ldg(fr + kk * g.HW + i + t);
        }
      }
    }
  }
#pragma unroll
  for (int kk = 0; kk < KC; ++kk) acc[kk] = warp_sum(acc[kk], G);
  if (live && j == 0) {
    const int64_t per_row = GROUPED ? 1 : g.K;
#pragma unroll
    for (int kk = 0; kk < KC; ++kk) {  // static indices keep acc in registers
      if (kk < kn) emit(out, partial, row * per_row + k0 + kk, rows * per_row, acc[kk]);
    }
  }
}

template <typename T, typename A, int V, bool GROUPED>
__global__ void __launch_bounds__(kWarps * 32)
    pool_forward_channels(const T* __restrict__ x, const A* __restrict__ f, T* __restrict__ out,
                          A* __restrict__ partial, PoolPlan g, int64_t channel_tiles) {
  constexpr int S = GROUPED ? V : kFilters;  // accumulators per lane
  __shared__ A red[kWarps][S][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = blockIdx.x / channel_tiles;
  const int64_t c0 = (blockIdx.x % channel_tiles) * (32 * V) + lane * V;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * kFilters;
  const int64_t start = static_cast<int64_t>(blockIdx.z) * g.span;
  const int64_t stop = min64(start + g.span, g.HW);
  const int kn = GROUPED ? V : static_cast<int>(min64(kFilters, g.K - k0));
  A acc[S];
#pragma unroll
  for (int s = 0; s < S; ++s) acc[s] = A(0);
  if (c0 < g.C) {  // with V > 1 the host guarantees C % V == 0, so all V channels exist
    const T* xb = x + b * g.sb + c0;
    int64_t bank[V];
#pragma unroll
    for (int t = 0; t < V; ++t) bank[t] = GROUPED ? ((c0 + t) / g.G) * g.HW : (k0 + t) * g.HW;
    for (int64_t i = start + warp; i < stop; i += kWarps) {
      A xv[V];
      load_vec<T, A, V>(xb + hw_offset(i, g), xv);
      if constexpr (GROUPED) {
#pragma unroll
        for (int t = 0; t < V; ++t) acc[t] += xv[t] * __ldg(f + bank[t] + i);
      } else {
#pragma unroll
        for (int kk = 0; kk < S; ++kk) {
          if (kk < kn) acc[kk] += xv[0] * __ldg(f + (k0 + kk) * g.HW + i);
        }
      }
    }
  }
#pragma unroll
  for (int s = 0; s < S; ++s) red[warp][s][lane] = acc[s];
  __syncthreads();
  if (warp != 0 || c0 >= g.C) return;
  const int64_t rows = g.B * g.C;
#pragma unroll
  for (int s = 0; s < S; ++s) {
    A total = A(0);
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += red[w][s][lane];
    if (GROUPED) {
      emit(out, partial, b * g.C + c0 + s, rows, total);
    } else if (s < kn) {
      emit(out, partial, (b * g.C + c0) * g.K + k0 + s, rows * g.K, total);
    }
  }
}

template <typename T, typename A, int V, bool GROUPED>
__global__ void __launch_bounds__(kWarps * 32)
    pool_backward_rows(const T* __restrict__ grad, const A* __restrict__ f, T* __restrict__ out, int64_t rows,
                       int64_t HW, int64_t K, Divider divC, Divider divG) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;  // one warp per row
  if (row >= rows) return;
  T* orow = out + row * HW;
  for (int64_t i = lane * V; i < HW; i += 32 * V) {
    A acc[V];
    if constexpr (GROUPED) {
      const A gv = static_cast<A>(grad[row]);
      const A* fr = f + static_cast<int64_t>(divG.div(divC.mod(static_cast<unsigned>(row)))) * HW + i;
#pragma unroll
      for (int t = 0; t < V; ++t) acc[t] = gv * __ldg(fr + t);
    } else {
#pragma unroll
      for (int t = 0; t < V; ++t) acc[t] = A(0);
      for (int64_t k = 0; k < K; ++k) {
        const A gk = static_cast<A>(grad[row * K + k]);
        const A* fr = f + k * HW + i;
#pragma unroll
        for (int t = 0; t < V; ++t) acc[t] += gk * __ldg(fr + t);
      }
    }
    Vec<T, V> v;
#pragma unroll
    for (int t = 0; t < V; ++t) v.v[t] = static_cast<T>(acc[t]);
    *reinterpret_cast<Vec<T, V>*>(orow + i) = v;
  }
}

PoolPlan geometry(const at::Tensor& x, const at::Tensor& filters, bool grouped) {
  const PoolGeom base = pool_geometry(x, filters, grouped, "pool_forward");
  PoolPlan g{base, base.H * base.W, false, 0, Divider(1), Divider(1)};
  if (g.C == 1) g.sc = g.HW;
  g.merged = g.sh == g.W * g.sw;
  TORCH_CHECK(g.B * g.C <= INT32_MAX, "pool_forward: B * C must be below 2^31, got B=", g.B, ", C=", g.C);
  g.divC = Divider(static_cast<unsigned>(std::max<int64_t>(g.C, 1)));
  g.divG = Divider(static_cast<unsigned>(std::max<int64_t>(g.G, 1)));
  return g;
}

// Splits H*W over blockIdx.z when `blocks` programs cannot fill the GPU; returns the split count.
int64_t choose_split(PoolPlan& g, int64_t blocks, int64_t step) {
  const int64_t target = 4 * static_cast<int64_t>(sm_count());
  int64_t split = 1;
  if (blocks < target) split = std::min(ceil_div(target, blocks), std::max<int64_t>(1, g.HW / (4 * step)));
  g.span = ceil_div(ceil_div(g.HW, split), step) * step;
  return min64(ceil_div(g.HW, g.span), 65535);
}

template <typename T>
void launch_forward(const at::Tensor& x, const at::Tensor& filters, bool grouped, PoolPlan g, at::Tensor& out) {
  using A = acc_t<T>;
  constexpr int VN = 16 / sizeof(T);
  const int64_t rows = g.B * g.C;
  const int64_t k_chunks = grouped ? 1 : ceil_div(g.K, kFilters);
  TORCH_CHECK(k_chunks <= 65535, "pool_forward: too many filters (K=", g.K, ")");
  const bool channels = g.sc == 1 && g.C > 1 && !(g.merged && g.sw == 1);
  const bool x_aligned = aligned(x.const_data_ptr<T>(), 16);
  const T* xp = x.const_data_ptr<T>();
  const A* fp = filters.const_data_ptr<A>();
  auto stream = current_stream();
  const dim3 block(kWarps * 32);

  int V = 1, G = 32;
  int64_t tiles, step;
  if (channels) {
    const bool vec = grouped && x_aligned && g.C % VN == 0 && g.sb % VN == 0 && g.sw % VN == 0 &&
                     (g.merged || g.sh % VN == 0);
    V = vec ? VN : 1;
    tiles = ceil_div(g.C, 32 * V);
    step = kWarps;
  } else {
    const bool vec = g.merged && g.sw == 1 && x_aligned && g.HW % VN == 0 && g.sb % VN == 0 && g.sc % VN == 0;
    V = vec ? VN : 1;
    G = ceil_div(g.HW, V) <= 16 ? 4 : 32;
    tiles = ceil_div(rows, kWarps * (32 / G));
    step = static_cast<int64_t>(G) * V;
  }
  const int64_t blocks = (channels ? g.B * tiles : tiles) * k_chunks;
  const int64_t split = choose_split(g, blocks, step);
  at::Tensor partial;
  A* pp = nullptr;
  if (split > 1) {
    partial = at::empty({split, out.numel()}, x.options().dtype(accumulation_dtype(x.scalar_type())));
    pp = partial.mutable_data_ptr<A>();
  }
  T* op = out.mutable_data_ptr<T>();
  const dim3 grid(static_cast<unsigned>(channels ? g.B * tiles : tiles), static_cast<unsigned>(k_chunks),
                  static_cast<unsigned>(split));

#define FA_ROWS(VV, GG, GR) pool_forward_rows<T, A, VV, GG, GR><<<grid, block, 0, stream>>>(xp, fp, op, pp, g)
#define FA_ROWS_G(VV, GG) \
  if (grouped) FA_ROWS(VV, GG, true); else FA_ROWS(VV, GG, false)
  if (channels) {
    if (!grouped) {
      pool_forward_channels<T, A, 1, false><<<grid, block, 0, stream>>>(xp, fp, op, pp, g, tiles);
    } else if (V > 1) {
      pool_forward_channels<T, A, VN, true><<<grid, block, 0, stream>>>(xp, fp, op, pp, g, tiles);
    } else {
      pool_forward_channels<T, A, 1, true><<<grid, block, 0, stream>>>(xp, fp, op, pp, g, tiles);
    }
  } else if (V > 1) {
    if (G == 4) { FA_ROWS_G(VN, 4); } else { FA_ROWS_G(VN, 32); }
  } else {
    if (G == 4) { FA_ROWS_G(1, 4); } else { FA_ROWS_G(1, 32); }
  }
#undef FA_ROWS_G
#undef FA_ROWS
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (split > 1) out.copy_(partial.sum(0).view(out.sizes()));
}

at::Tensor pool_forward_cuda(const at::Tensor& x, const at::Tensor& filters, bool grouped) {
  check_cuda_float(x, "pool_forward", "x");
  const PoolPlan g = geometry(x, filters, grouped);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = grouped ? at::empty({g.B, g.C}, x.options()) : at::empty({g.B, g.C, g.K}, x.options());
  if (out.numel() == 0) return out;
  if (g.HW == 0) return out.zero_();
  FREQALIGN_DISPATCH_FLOATING(x.scalar_type(), "pool_forward_cuda",
                          [&] { launch_forward<scalar_t>(x, filters, grouped, g, out); });
  return out;
}

at::Tensor pool_backward_cuda(const at::Tensor& grad_in, const at::Tensor& filters, bool grouped) {
  check_cuda_float(grad_in, "pool_backward", "grad");
  const PoolGeom g = pool_backward_geometry(grad_in, filters, grouped);
  const int64_t B = g.B, C = g.C, K = g.K, HW = g.H * g.W;
  const c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor out = at::empty({B, C, filters.size(1), filters.size(2)}, grad_in.options());
  if (out.numel() == 0) return out;
  const at::Tensor grad = grad_in.contiguous();  // (B, C[, K]): small next to the output
  const int64_t rows = B * C, group = g.G;
  TORCH_CHECK(rows <= INT32_MAX, "pool_backward: B * C must be below 2^31, got B=", B, ", C=", C);
  const Divider divC(static_cast<unsigned>(std::max<int64_t>(C, 1)));
  const Divider divG(static_cast<unsigned>(std::max<int64_t>(group, 1)));
  const dim3 grid(static_cast<unsigned>(ceil_div(rows, kWarps))), block(kWarps * 32);
  auto stream = current_stream();
  FREQALIGN_DISPATCH_FLOATING(grad.scalar_type(), "pool_backward_cuda", [&] {
    using A = acc_t<scalar_t>;
    constexpr int VN = 16 / sizeof(scalar_t);
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const A* fp = filters.const_data_ptr<A>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const bool vec = HW % VN == 0 && aligned(op, 16);
    if (grouped) {
      if (vec) {
        pool_backward_rows<scalar_t, A, VN, true><<<grid, block, 0, stream>>>(gp, fp, op, rows, HW, K, divC, divG);
      } else {
        pool_backward_rows<scalar_t, A, 1, true><<<grid, block, 0, stream>>>(gp, fp, op, rows, HW, K, divC, divG);
      }
    } else {
      if (vec) {
        pool_backward_rows<scalar_t, A, VN, false><<<grid, block, 0, stream>>>(gp, fp, op, rows, HW, K, divC, divG);
      } else {
        pool_backward_rows<scalar_t, A, 1, false><<<grid, block, 0, stream>>>(gp, fp, op, rows, HW, K, divC, divG);
      }
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(freqalign, CUDA, m) {
  m.impl("pool_forward", &pool_forward_cuda);
  m.impl("pool_backward", &pool_backward_cuda);
}

}  // namespace gpu
}  // namespace freqalign
