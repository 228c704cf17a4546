// Backend and Plan: how an engine backend turns a Graph into something runnable.
//
// A Backend is created once per model from an (optimised) Graph. It prepares what plans share (weights in the
// backend's preferred layout) and compiles Plans, one per batch size. A Plan owns every buffer a run needs, so
// Run allocates nothing in the steady state.
// Thread-safety: Backend::Compile may be called from several threads at once. A Plan is used by one thread at a
// time (it owns scratch memory); give each worker thread its own Plan.
#ifndef CNNSERVE_ENGINE_BACKEND_BACKEND_H_
#define CNNSERVE_ENGINE_BACKEND_BACKEND_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

class Plan {
 public:
  virtual ~Plan() = default;
  virtual int64_t batch() const = 0;
  // Plain row-major (NCHW) dims of the input and output, batch first.
  virtual const Dims& input_dims() const = 0;
  virtual const Dims& output_dims() const = 0;
  // Runs one batch: reads NumElements(input_dims()) floats from `src`, writes NumElements(output_dims()) floats
  // to `dst`. Both are caller-owned and must not overlap. Blocks until done; returns INTERNAL on a backend fault.
  virtual Status Run(const float* src, float* dst) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Compiles a plan for `batch` (> 0). INVALID_ARGUMENT when the graph cannot run at that batch size.
  virtual StatusOr<std::unique_ptr<Plan>> Compile(int64_t batch) = 0;
};

// How a backend that allows Winograd (BackendOptions::allow_winograd) picks the algorithm of an eligible
// convolution (3x3, stride 1, no dilation, one group; the oneDNN backend also needs input and output channels
// that are multiples of 16).
enum class WinogradPolicy {
  // Winograd when minibatch x output pixels reaches the backend's threshold (oneDNN: kWinogradMinPixels in
  // dnnl_backend_internal.h, chosen with bench/engine_micro), direct below.
  kHeuristic,
  // The library's own choice (oneDNN convolution_auto; oneDNN 2.6 takes Winograd only from minibatch 16 on).
  kLibraryAuto,
  // Winograd wherever the library implements it.
  kAlways,
};

// The data type a backend computes in. Inputs and outputs of a Plan are fp32 whatever the precision.
enum class Precision {
  kFp32,
  // bfloat16 activations and weights where the backend has bf16 kernels (oneDNN: convolution, inner product,
  // pooling, LRN, ReLU, batch normalisation), fp32 accumulation, fp32 bias; the layer that produces the graph's
  // output (and the softmax or ReLU after it) writes fp32, so logits keep their precision.
  kBf16,
  // Convolutions and inner products with u8/s8 activations (u8 when the calibrated range has no negative value,
  // s8 otherwise; one scale per tensor from BackendOptions::ranges) and s8 weights (one scale per output
  // channel), s32 accumulation, bias, ReLU and the rescaling to the next layer's scale fused; pooling stays in
  // int8. Layers without a fast int8 kernel (oneDNN: LRN, a layer whose only int8 kernel is the reference one),
  // tensors without a calibrated range and the layer producing the output compute in fp32.
  kInt8,
};

// "fp32" / "bf16" / "int8".
inline const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kBf16:
      return "bf16";
    case Precision::kInt8:
      return "int8";
    case Precision::kFp32:
      break;
  }
  return "fp32";
}

// The float range [min, max] a tensor took over calibration data (engine/runtime/calibration.h makes them).
struct TensorRange {
  float min = 0.0f;
  float max = 0.0f;
};
// Ranges by tensor name (the graph's input and node outputs, names as imported).
using TensorRanges = std::map<std::string, TensorRange>;

// Per-backend algorithm and threading choices, fixed at CreateXBackend and applied to every Plan it compiles.
// Backends ignore the options they have no use for (the reference backend ignores all of them).
struct BackendOptions {
  // Threads used inside one Plan::Run (0: all cores). Applied to the calling thread at each Run.
  int num_threads = 0;
  // Let the backend use Winograd convolutions where `winograd_policy` picks them (false: always direct).
  bool allow_winograd = false;
  // Which eligible convolutions get Winograd when allow_winograd is set.
  WinogradPolicy winograd_policy = WinogradPolicy::kHeuristic;
  // Plans for batches of at least this size give fully connected layers oneDNN's blocked weight layout (one extra
  // copy of the FC weights, shared by those plans); smaller batches read the model's plain weights in place.
  int64_t fc_blocked_weights_min_batch = 8;
  // The data type of the plan's layers (the reference backend computes in fp32 only; see Model::Create).
  Precision precision = Precision::kFp32;
  // kInt8: the calibrated range of each activation; tensors missing from it stay fp32. Shared, immutable.
  std::shared_ptr<const TensorRanges> ranges = nullptr;
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_BACKEND_BACKEND_H_
