#include "engine/backend/dnnl/dnnl_model_state.h"

#include <algorithm>
#include <cstring>

namespace cnnserve::dnnl_internal {

namespace {

constexpr size_t kSliceBytes = 16 << 20;  // fp32 bytes of a mapped tensor converted (and dropped) at a time

// oneDNN output scales: `scales` with `mask`; when the mask is the sliced dimension's alone (a scale per row), the
// scales of rows first .. first + count - 1 (sliced_mask -1: nothing is sliced).
dnnl::primitive_attr ScalesAttr(const std::vector<float>* scales, int mask, int sliced_mask, size_t first,
                                size_t count) {
  dnnl::primitive_attr attr;
  if (scales == nullptr) return attr;
  if (mask != sliced_mask) {
    attr.set_output_scales(mask, *scales);
  } else {
    attr.set_output_scales(mask, std::vector<float>(scales->begin() + first, scales->begin() + first + count));
  }
  return attr;
}

// One reorder of the rows [first, first + count) of the sliced dimension from `user` into `prepared`; the rows
// are the source's elements [begin, end).
struct Slice {
  int64_t begin = 0;
  int64_t end = 0;
  dnnl::reorder::primitive_desc pd;
};

// The dimension of `user` (of `dims`) whose rows are contiguous in memory (the largest stride, equal to the size
// of a row), or -1: a slice of it owns its file pages.
int OuterDimension(const Md& user, const Dims& dims) {
  const auto& blocking = user.data.format_desc.blocking;
  if (dims.empty() || user.data.format_kind != dnnl_blocked || blocking.inner_nblks != 0) return -1;
  int outer = 0;
  for (int d = 1; d < static_cast<int>(dims.size()); ++d) {
    if (blocking.strides[d] > blocking.strides[outer]) outer = d;
  }
  return blocking.strides[outer] == NumElements(dims) / dims[outer] ? outer : -1;
}

// Reorders of `user` into `want` by slices of its outer dimension (the output channels of a conv's or inner
// product's weights, the rows of a matmul's transposed ones) that hold at most kSliceBytes of the source each,
// aligned to the blocking of `want`; empty when one slice would do or the layout cannot be sliced (scales per
// that dimension and another, a compensation buffer after the weights, a cut oneDNN does not make there).
std::vector<Slice> PlanSlices(const dnnl::engine& engine, const Md& user, const Md& want,
                              const std::vector<float>* scales, int mask) {
  const Dims dims = user.dims();
  const int axis = OuterDimension(user, dims);
  if (axis < 0) return {};
  const int sliced_mask = 1 << axis;
  if (want.data.extra.flags != 0 || ((mask & sliced_mask) != 0 && mask != sliced_mask)) return {};
  const int64_t row = NumElements(dims) / dims[axis];
  const size_t row_bytes = user.get_size() / static_cast<size_t>(dims[axis]);
  // A multiple of the blocks oneDNN 2.6 puts along output channels (16, 64); a cut it rejects means one reorder.
  constexpr int64_t kRowAlign = 64;
  const int64_t rows =
      std::max<int64_t>(kRowAlign, static_cast<int64_t>(kSliceBytes / row_bytes) / kRowAlign * kRowAlign);
  if (rows >= dims[axis]) return {};
  std::vector<Slice> slices;
  try {
    for (int64_t first = 0; first < dims[axis]; first += rows) {
      Dims sub = dims;
      sub[axis] = std::min(rows, dims[axis] - first);
      Dims offsets(dims.size(), 0);
      offsets[axis] = first;
      const dnnl::primitive_attr attr =
          ScalesAttr(scales, mask, sliced_mask, static_cast<size_t>(first), static_cast<size_t>(sub[axis]));
      slices.push_back(Slice{first * row, (first + sub[axis]) * row,
                             dnnl::reorder::primitive_desc(engine, user.submemory_desc(sub, offsets), engine,
                                                           want.submemory_desc(sub, offsets), attr)});
    }
  } catch (const dnnl::error&) {
    return {};
  }
  return slices;
}

// Runs `slices` from `user_data` (which lies in `view`) into `prepared`, dropping each slice's file pages.
void ReorderSlices(const std::vector<Slice>& slices, const float* user_data, const Tensor& view,
                   memory& prepared) {
  const dnnl::engine engine = prepared.get_engine();
  dnnl::stream stream(engine);
  // Slices do not write the layout's padding: zero it first, as the whole reorder does.
  std::memset(prepared.get_data_handle(), 0, prepared.get_desc().get_size());
  const int64_t base = user_data - view.data();
  for (const Slice& slice : slices) {
    memory src(slice.pd.src_desc(), engine, const_cast<float*>(user_data));
    memory dst(slice.pd.dst_desc(), engine, prepared.get_data_handle());
    dnnl::reorder(slice.pd).execute(stream, src, dst);
    stream.wait();
    view.ReleasePages(base + slice.begin, base + slice.end);
  }
}

}  // namespace

memory ModelState::Weights(const std::string& key, const Md& user_md, const float* user_data, const Md& want,
                           const Tensor* view) {
  std::lock_guard<std::mutex> lock(mu_);
  return PrepareLocked(key, user_md, user_data, want, Scaling{}, view);
}

memory ModelState::QuantizedWeights(const std::string& key, const Md& user_md, const float* user_data,
                                    const Md& want, const std::vector<float>& scales, int mask,
                                    const Tensor* view) {
  std::lock_guard<std::mutex> lock(mu_);
  return PrepareLocked(key, user_md, user_data, want, Scaling{&scales, mask}, view);
}

memory ModelState::PrepareLocked(const std::string& key, const Md& user_md, const float* user_data, const Md& want,
                                 Scaling scaling, const Tensor* view) {
  for (const WeightEntry& entry : weights_) {
    if (entry.key == key && entry.md == want) {
      ++counters_.weight_cache_hits;
      return entry.mem;
    }
  }
  memory user(user_md, engine_, const_cast<float*>(user_data));
  memory prepared = user;
  if (!(want == user_md) || view != nullptr) {
    prepared = memory(want, engine_);
    std::vector<Slice> slices;
    if (view != nullptr) slices = PlanSlices(engine_, user_md, want, scaling.scales, scaling.mask);
    if (slices.empty()) {
      const dnnl::reorder::primitive_desc pd(engine_, user_md, engine_, want,
                                             ScalesAttr(scaling.scales, scaling.mask, /*sliced_mask=*/-1, 0,
                                                        scaling.scales ? scaling.scales->size() : 0));
      dnnl::stream stream(engine_);
      dnnl::reorder(pd).execute(stream, user, prepared);
      stream.wait();
      if (view != nullptr) view->ReleasePages(0, view->size());
    } else {
      ReorderSlices(slices, user_data, *view, prepared);
    }
    ++counters_.weight_reorders;
    counters_.weight_bytes_copied += static_cast<int64_t>(want.get_size());
  }
  ++counters_.weight_preparations;
  weights_.push_back({key, want, prepared});
  return prepared;
}

const std::vector<float>& ModelState::Derived(const std::string& key,
                                              const std::function<std::vector<float>()>& make) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = derived_.find(key);
  if (it == derived_.end()) it = derived_.emplace(key, make()).first;
  return it->second;
}

std::optional<Md> ModelState::PreferredWeights(const std::string& key, const Md* exclude) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const WeightEntry& entry : weights_) {
    if (entry.key == key && (exclude == nullptr || !(entry.md == *exclude))) return entry.md;
  }
  return std::nullopt;
}

void ModelState::CountPlan(int64_t primitives, int64_t memories) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.plans_compiled;
  counters_.primitives_created += primitives;
  counters_.memories_created += memories;
}

BackendCounters ModelState::counters() {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace cnnserve::dnnl_internal
