#include "engine/tensor/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace cnnserve {
namespace {
constexpr size_t kAlignmentBytes = 64;
}  // namespace

int64_t NumElements(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string DimsToString(const Dims& dims) {
  if (dims.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(dims[i]);
  }
  return out;
}

Status ValidateDims(const Dims& dims, int64_t max_elements) {
  int64_t n = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] <= 0) {
      return InvalidArgumentError("dimension " + std::to_string(i) + " of shape [" + DimsToString(dims) + "] is " +
                                  std::to_string(dims[i]) + "; every dimension must be positive");
    }
    if (n > max_elements / dims[i]) {
      return ResourceExhaustedError("shape [" + DimsToString(dims) + "] has more than " +
                                    std::to_string(max_elements) + " elements");
    }
    n *= dims[i];
  }
  return OkStatus();
}

void DropMappedPages(const void* data, size_t bytes) {
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + page - 1) / page * page;  // whole pages only: neighbours may share the edges
  const uintptr_t last = (begin + bytes) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void Tensor::AlignedFree::operator()(float* p) const {
  if (owned) std::free(p);
}

Tensor::Tensor(Dims dims) : dims_(std::move(dims)), size_(NumElements(dims_)) {
  size_t bytes = static_cast<size_t>(size_) * sizeof(float);
  size_t rounded = (bytes + kAlignmentBytes - 1) / kAlignmentBytes * kAlignmentBytes;
  if (rounded == 0) rounded = kAlignmentBytes;
  void* p = std::aligned_alloc(kAlignmentBytes, rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  data_.reset(static_cast<float*>(p));
}

StatusOr<Tensor> Tensor::FromVector(Dims dims, const std::vector<float>& values) {
  CNN_RETURN_IF_ERROR(ValidateDims(dims));
  if (static_cast<int64_t>(values.size()) != NumElements(dims)) {
    return InvalidArgumentError("shape [" + DimsToString(dims) + "] needs " + std::to_string(NumElements(dims)) +
                                " values, got " + std::to_string(values.size()));
  }
  Tensor t(std::move(dims));
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

std::shared_ptr<const Tensor> Tensor::View(Dims dims, const float* data, std::shared_ptr<const void> mapping) {
  auto view = std::make_shared<Tensor>();
  view->dims_ = std::move(dims);
  view->size_ = NumElements(view->dims_);
  view->data_ = std::unique_ptr<float[], AlignedFree>(const_cast<float*>(data), AlignedFree{false});
  view->mapping_ = std::move(mapping);
  return view;
}

void Tensor::ReleasePages(int64_t begin, int64_t end) const {
  if (!is_view()) return;
  begin = std::clamp<int64_t>(begin, 0, size_);
  end = std::clamp<int64_t>(end, begin, size_);
  DropMappedPages(data() + begin, static_cast<size_t>(end - begin) * sizeof(float));
}

Tensor Tensor::Clone() const {
  Tensor t(dims_);
  if (size_ > 0) std::memcpy(t.data(), data(), bytes());
  return t;
}

Status Tensor::Reshape(Dims dims) {
  if (NumElements(dims) != size_) {
    return InvalidArgumentError("cannot reshape [" + DimsToString(dims_) + "] to [" + DimsToString(dims) + "]");
  }
  dims_ = std::move(dims);
  return OkStatus();
}

}  // namespace cnnserve
