// The freqalign operator schemas (declared once) and the Python module stub `freqalign._C`.
//
// Importing `freqalign._C` loads this library, which registers the schemas below and the kernels
// of csrc/cpu (and csrc/cuda when built with CUDA) with the dispatcher; the ops are then called
// as torch.ops.freqalign.*. Fake kernels and autograd are registered in Python
// (freqalign/ops/autograd.py). Contract: freqalign/backend.py.
#include <Python.h>

#include <torch/library.h>
#include <torch/version.h>

// The torch this library is built against, as a marker that freqalign/ops/compiled.py finds in
// the file's bytes before loading it: a library built for another torch is not loaded.
extern "C" __attribute__((used, visibility("default"))) const char freqalign_built_for_torch[] =
    "freqalign-built-for-torch=" TORCH_VERSION ";";

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "freqalign compiled kernels", -1,
                                      nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(freqalign, m) {
  // y[p] = left @ x[p] @ right^T for every (H, W) plane p of x (..., H, W).
  m.def("transform2d(Tensor x, Tensor left, Tensor right) -> Tensor");
  // x (B, C, H, W) against filters (K, H, W): grouped -> (B, C), else (B, C, K).
  m.def("pool_forward(Tensor x, Tensor filters, bool grouped) -> Tensor");
  // The adjoint of pool_forward: grad (B, C) or (B, C, K) -> (B, C, H, W).
  m.def("pool_backward(Tensor grad, Tensor filters, bool grouped) -> Tensor");
  // FcaNet attention, fused: y = x * sigmoid(w2 @ relu(w1 @ pool(x))); also returns the (B, C)
  // pooled input, (B, hidden) hidden layer and (B, C) attention that the backward reuses.
  m.def("ms_attention(Tensor x, Tensor filters, Tensor w1, Tensor w2) -> (Tensor, Tensor, Tensor, Tensor)");
  // Its backward: (grad_x, grad_w1, grad_w2) from grad, x and the forward's (B, C) tensors.
  m.def("ms_attention_backward(Tensor grad, Tensor x, Tensor filters, Tensor w1, Tensor w2, Tensor pooled, "
        "Tensor hidden, Tensor att) -> (Tensor, Tensor, Tensor)");
}
