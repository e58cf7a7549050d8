// The multi-spectral attention op's small parts, shared by the CPU and CUDA implementations
// (docs/design.md section 2, "Attention op"): argument checks, the working layout, and the two
// tiny FC layers with their backward, all on (B, C) tensors through ATen.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "shared.h"

namespace freqalign {

// The layout the passes run in and write: channels_last when x is exactly channels_last (and not
// also contiguous), else contiguous. Other strides are copied to it first (docs/design.md section 2).
inline at::MemoryFormat attention_layout(const at::Tensor& x) {
  return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous() ? at::MemoryFormat::ChannelsLast
                                                                                : at::MemoryFormat::Contiguous;
}

// Checks x (B, C, H, W), filters (K, H, W) and the FC weights w1 (hidden, C), w2 (C, hidden).
inline PoolGeom attention_geometry(const at::Tensor& x, const at::Tensor& filters, const at::Tensor& w1,
                                   const at::Tensor& w2, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D (B, C, H, W), got shape ", x.sizes());
  check_operand(filters, x, op, "filters");
  TORCH_CHECK(filters.dim() == 3 && filters.size(1) == x.size(2) && filters.size(2) == x.size(3), op,
              ": filters must be (K, H, W) with the spatial size of x (H=", x.size(2), ", W=", x.size(3),
              "), got shape ", filters.sizes());
  const int64_t C = x.size(1), K = filters.size(0);
  TORCH_CHECK(K >= 1 && C % K == 0, op, ": the K=", K, " filters split the C=", C,
              " channels into equal groups, so K must divide C");
  for (const at::Tensor* w : {&w1, &w2}) {
    TORCH_CHECK(w->device() == x.device(), op, ": the FC weights must be on ", x.device(), ", got ", w->device());
    check_float_dtype(*w, op, "the FC weights");
  }
  TORCH_CHECK(w1.dim() == 2 && w1.size(1) == C && w1.size(0) >= 1, op, ": w1 must be (hidden, C) with C=", C,
              ", got shape ", w1.sizes());
  TORCH_CHECK(w2.dim() == 2 && w2.size(0) == C && w2.size(1) == w1.size(0), op, ": w2 must be (C, hidden) = (",
              C, ", ", w1.size(0), "), got shape ", w2.sizes());
  return PoolGeom{x.size(0), C, x.size(2), x.size(3), K, C / K, 0, 0, 0, 0};
}

// hidden = relu(pooled @ w1^T), att = sigmoid(hidden @ w2^T), in the accumulation dtype.
inline std::tuple<at::Tensor, at::Tensor> attention_fc(const at::Tensor& pooled, const at::Tensor& w1,
                                                       const at::Tensor& w2) {
  const auto acc = pooled.scalar_type();
  at::Tensor hidden = at::relu(at::mm(pooled, w1.to(acc).t()));
  return {hidden, at::sigmoid(at::mm(hidden, w2.to(acc).t()))};
}

// From s = sum_hw grad * x (B, C): the pooled-input gradient and the weight gradients
// (in the weights' dtypes).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_fc_backward(
    const at::Tensor& s, const at::Tensor& pooled, const at::Tensor& hidden, const at::Tensor& att,
    const at::Tensor& w1, const at::Tensor& w2) {
  const auto acc = s.scalar_type();
  at::Tensor logit = s * att * (1 - att);
  at::Tensor grad_w2 = at::mm(logit.t(), hidden);
  at::Tensor grad_hidden = at::mm(logit, w2.to(acc)) * (hidden > 0);
  at::Tensor grad_w1 = at::mm(grad_hidden.t(), pooled);
  return {at::mm(grad_hidden, w1.to(acc)), grad_w1.to(w1.scalar_type()), grad_w2.to(w2.scalar_type())};
}

}  // namespace freqalign
