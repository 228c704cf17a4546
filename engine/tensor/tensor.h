// Dense float32 tensors and their dimensions.
//
// Dims is a plain vector of extents, outermost first (NCHW for images). Tensor owns a 64-byte aligned,
// contiguous row-major float buffer. It is move-only; copies are explicit via Clone().
// A View is the exception: a read-only tensor over floats in a read-only memory-mapped file (4-byte aligned),
// handed out only as shared_ptr<const Tensor>; its resident pages can be dropped (ReleasePages) and are read
// back from the file when touched again.
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

// Drops the process's resident pages that lie wholly inside [data, data + bytes) of a read-only file mapping;
// they are read back from the file, unchanged, when touched again (madvise MADV_DONTNEED).
void DropMappedPages(const void* data, size_t bytes);

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor. Precondition: ValidateDims(dims).ok().
  explicit Tensor(Dims dims);
  // Takes `values` (must hold NumElements(dims) floats).
  static StatusOr<Tensor> FromVector(Dims dims, const std::vector<float>& values);
  // A read-only view of NumElements(dims) floats at `data` (4-byte aligned) in a read-only shared or private
  // file mapping that `mapping` keeps alive. Precondition: ValidateDims(dims).ok().
  static std::shared_ptr<const Tensor> View(Dims dims, const float* data, std::shared_ptr<const void> mapping);

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

  // True for a View (its floats lie in a mapped file).
  bool is_view() const { return mapping_ != nullptr; }
  // For a View: drops the process's resident pages that lie wholly inside elements [begin, end) (clamped to the
  // tensor); the contents do not change (they are read back from the file when touched). Nothing otherwise.
  void ReleasePages(int64_t begin, int64_t end) const;

 private:
  struct AlignedFree {
    AlignedFree() : owned(true) {}
    explicit AlignedFree(bool owns) : owned(owns) {}
    bool owned;  // false for a View: the mapping owns the bytes
    void operator()(float* p) const;
  };
  Dims dims_;
  int64_t size_ = 0;
  std::unique_ptr<float[], AlignedFree> data_;
  std::shared_ptr<const void> mapping_;  // a View's file mapping
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_TENSOR_TENSOR_H_
