// Small oneDNN helpers shared by the files of the oneDNN backend (private to engine/backend/dnnl): memory
// descriptors, primitive attributes, layout names, turning oneDNN exceptions into Status, OpenMP thread counts.
// Thread-safety: free functions without shared state; ScopedOmpThreads changes the calling thread's setting only.
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_UTIL_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_UTIL_H_

#include <omp.h>

#include <cstddef>
#include <cstdlib>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "dnnl.hpp"
#include "engine/backend/backend.h"
#include "engine/common/status.h"
#include "engine/tensor/tensor.h"

namespace cnnserve::dnnl_internal {

using dnnl::memory;
using Md = dnnl::memory::desc;
using Tag = dnnl::memory::format_tag;

inline constexpr memory::data_type kF32 = memory::data_type::f32;
inline constexpr memory::data_type kBf16 = memory::data_type::bf16;
inline constexpr memory::data_type kS8 = memory::data_type::s8;
inline constexpr memory::data_type kU8 = memory::data_type::u8;
inline constexpr dnnl::prop_kind kInference = dnnl::prop_kind::forward_inference;

inline size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Row-major ("abcd...") descriptor; a scalar is viewed as one element.
Md PlainMd(const Dims& dims, memory::data_type type = kF32);
// Descriptor that lets the primitive choose the layout (format_tag::any).
Md AnyMd(const Dims& dims, memory::data_type type = kF32);
// The oneDNN data type of the layers a plan of `precision` computes in.
memory::data_type ComputeType(Precision precision);
// True for u8 and s8 descriptors.
inline bool IsInt8(const Md& md) { return md.data_type() == kS8 || md.data_type() == kU8; }
// "f32", "bf16", ... ("" for an empty descriptor).
std::string DataTypeName(const Md& md);
// Attributes with a user-provided scratchpad (the plan owns one scratchpad for all its steps).
dnnl::primitive_attr ScratchpadAttr();
// `ScratchpadAttr()` plus, when `relu`, a ReLU fused as a post-op.
dnnl::primitive_attr FusedAttr(bool relu);

// The layout of `md` in oneDNN's letter notation: dims outermost first by stride, blocked dims upper-case,
// then the inner blocks ("aBcd16b" is nChw16c).
std::string MdToString(const Md& md);

// UNIMPLEMENTED, RESOURCE_EXHAUSTED or INTERNAL for a oneDNN error on `node`, naming the node.
Status DnnlStatus(const std::string& node, const dnnl::error& e);

// Runs `fn` (returning Status), turning every exception into a Status that names `node`.
template <typename Fn>
Status Guarded(const std::string& node, Fn&& fn) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    return DnnlStatus(node, e);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while compiling node '" + node + "'");
  } catch (const std::exception& e) {
    return InternalError("node '" + node + "': " + e.what());
  }
}

// Creates a primitive descriptor with `make`, or nullopt when oneDNN has no implementation for it.
template <typename Make>
auto TryCreate(Make&& make) -> std::optional<decltype(make())> {
  try {
    return make();
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

// True when oneDNN picked a reference (naive) implementation for `pd`.
bool IsReference(const dnnl::primitive_desc_base& pd);

// `num_threads`, or every core when it is 0.
int ResolveThreads(int num_threads);

// Sets the calling thread's OpenMP thread count for a scope and restores it afterwards.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_UTIL_H_
