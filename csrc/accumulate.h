// Accumulation type shared by the CPU and CUDA kernels: float64 for float64 inputs, float32 for
// everything else (fp16/bf16 included).
#pragma once

namespace freqalign {

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccOf<T>::type;

}  // namespace freqalign
