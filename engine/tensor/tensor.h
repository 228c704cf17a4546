// Dense float32 tensors and their dimensions.
//
// Dims is a plain vector of extents, outermost first (NCHW for images). Tensor owns a 64-byte aligned,
// contiguous row-major float buffer. It is move-only; copies are explicit via Clone().
// Thread-safety: a Tensor is a value; concurrent reads are safe, writes need external synchronisation.
#ifndef CNNSERVE_ENGINE_TENSOR_TENSOR_H_
#define CNNSERVE_ENGINE_TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve {

using Dims = std::vector<int64_t>;

// Product of the extents (1 for a scalar). Precondition: all extents >= 0.
int64_t NumElements(const Dims& dims);
// "1x3x224x224" ("scalar" for rank 0).
std::string DimsToString(const Dims& dims);
// Checks that every extent is positive and the element count fits `max_elements`.
Status ValidateDims(const Dims& dims, int64_t max_elements = int64_t{1} << 34);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor. Precondition: ValidateDims(dims).ok().
  explicit Tensor(Dims dims);
  // Takes `values` (must hold NumElements(dims) floats).
  static StatusOr<Tensor> FromVector(Dims dims, const std::vector<float>& values);

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  Tensor Clone() const;

  const Dims& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t size() const { return size_; }
  size_t bytes() const { return static_cast<size_t>(size_) * sizeof(float); }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float& operator[](int64_t i) { return data_.get()[i]; }
  float operator[](int64_t i) const { return data_.get()[i]; }

  // Changes the dims to `dims`, which must have the same element count.
  Status Reshape(Dims dims);

 private:
  struct AlignedFree {
    void operator()(float* p) const;
  };
  Dims dims_;
  int64_t size_ = 0;
  std::unique_ptr<float[], AlignedFree> data_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_TENSOR_TENSOR_H_
