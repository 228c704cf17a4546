#include "engine/backend/dnnl/dnnl_backend.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dnnl.hpp"
#include "dnnl_debug.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/backend/dnnl/dnnl_lower.h"

namespace cnnserve {
namespace {

using dnnl::memory;
using Md = dnnl::memory::desc;
using Tag = dnnl::memory::format_tag;
using dnnl_internal::BackendCounters;
using dnnl_internal::LoweredKind;
using dnnl_internal::LoweredOp;
using dnnl_internal::PlanInfo;
using dnnl_internal::StepInfo;

constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr dnnl::prop_kind kInference = dnnl::prop_kind::forward_inference;
constexpr size_t kArenaAlignment = 4096;
constexpr size_t kBufferAlignment = 64;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Row-major ("abcd...") descriptor; a scalar is viewed as one element.
Md PlainMd(const Dims& dims) {
  const Dims d = dims.empty() ? Dims{1} : dims;
  memory::dims strides(d.size());
  int64_t stride = 1;
  for (size_t i = d.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= d[i];
  }
  return Md(d, kF32, strides);
}

Md AnyMd(const Dims& dims) { return Md(dims, kF32, Tag::any); }

dnnl::primitive_attr ScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The layout of `md` in oneDNN's letter notation: dims outermost first by stride, blocked dims upper-case,
// then the inner blocks ("aBcd16b" is nChw16c).
std::string MdToString(const Md& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims == 0) return "";
  switch (d.format_kind) {
    case dnnl_format_kind_any:
      return "any";
    case dnnl_format_kind_wino:
      return "wino";
    case dnnl_format_kind_rnn_packed:
      return "rnn_packed";
    case dnnl_blocked:
      break;
    default:
      return "opaque";
  }
  const dnnl_blocking_desc_t& blk = d.format_desc.blocking;
  std::vector<int> order(d.ndims);
  for (int i = 0; i < d.ndims; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return blk.strides[a] > blk.strides[b]; });
  std::vector<bool> blocked(d.ndims, false);
  for (int i = 0; i < blk.inner_nblks; ++i) blocked[blk.inner_idxs[i]] = true;
  std::string out;
  for (int i : order) out += static_cast<char>((blocked[i] ? 'A' : 'a') + i);
  for (int i = 0; i < blk.inner_nblks; ++i) {
    out += std::to_string(blk.inner_blks[i]) + static_cast<char>('a' + blk.inner_idxs[i]);
  }
  return out;
}

Status DnnlStatus(const std::string& node, const dnnl::error& e) {
  std::string message =
      "oneDNN failed on node '" + node + "': " + e.what() + " (" + dnnl_status2str(e.status) + ")";
  if (e.status == dnnl_unimplemented) return UnimplementedError(std::move(message));
  if (e.status == dnnl_out_of_memory) return ResourceExhaustedError(std::move(message));
  return InternalError(std::move(message));
}

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

bool IsReference(const dnnl::primitive_desc_base& pd) {
  return std::string(pd.impl_info_str()).find("ref") != std::string::npos;
}

// Reference and im2col+GEMM convolutions: worth a reorder to get a direct JIT kernel instead.
bool IsSlowConvolution(const dnnl::primitive_desc_base& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.find("ref") != std::string::npos || impl.rfind("gemm", 0) == 0;
}

// The algorithm to try first for a Winograd-eligible convolution producing `dst_pixels` (minibatch x output
// pixels) under `policy`, or nullopt for direct.
std::optional<dnnl::algorithm> WinogradAlgorithm(WinogradPolicy policy, int64_t dst_pixels) {
  switch (policy) {
    case WinogradPolicy::kHeuristic:
      if (dst_pixels < dnnl_internal::kWinogradMinPixels) return std::nullopt;
      return dnnl::algorithm::convolution_winograd;
    case WinogradPolicy::kLibraryAuto:
      return dnnl::algorithm::convolution_auto;
    case WinogradPolicy::kAlways:
      return dnnl::algorithm::convolution_winograd;
  }
  return std::nullopt;
}

int ResolveThreads(int num_threads) { return num_threads > 0 ? num_threads : std::max(1, omp_get_num_procs()); }

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

// What every plan of one backend shares: the graph, the lowered ops and the weights in primitive layouts.
class ModelState {
 public:
  ModelState(std::shared_ptr<const Graph> graph, const BackendOptions& options, dnnl::engine engine,
             std::vector<LoweredOp> ops)
      : graph_(std::move(graph)), options_(options), engine_(std::move(engine)), ops_(std::move(ops)) {}

  const Graph& graph() const { return *graph_; }
  const BackendOptions& options() const { return options_; }
  const dnnl::engine& engine() const { return engine_; }
  const std::vector<LoweredOp>& ops() const { return ops_; }

  // The weights of `key` laid out as `want`. The first call reorders `user_data` (laid out as `user_md`) into
  // a buffer the cache owns (or, when the layouts match, wraps `user_data` itself); later calls with the same
  // key and layout return the same memory. Thread-safe. Throws dnnl::error.
  memory Weights(const std::string& key, const Md& user_md, const float* user_data, const Md& want) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const WeightEntry& entry : weights_) {
      if (entry.key == key && entry.md == want) {
        ++counters_.weight_cache_hits;
        return entry.mem;
      }
    }
    memory user(user_md, engine_, const_cast<float*>(user_data));
    memory prepared = user;
    if (!(want == user_md)) {
      prepared = memory(want, engine_);
      dnnl::stream stream(engine_);
      dnnl::reorder(user, prepared).execute(stream, user, prepared);
      stream.wait();
      ++counters_.weight_reorders;
      counters_.weight_bytes_copied += static_cast<int64_t>(want.get_size());
    }
    ++counters_.weight_preparations;
    weights_.push_back({key, want, prepared});
    return prepared;
  }

  // The layout the first plan prepared `key`'s weights in (so that later plans can share them), if any.
  // The layout of the first weights prepared for `key` (other than `exclude`, when given).
  std::optional<Md> PreferredWeights(const std::string& key, const Md* exclude = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const WeightEntry& entry : weights_) {
      if (entry.key == key && (exclude == nullptr || !(entry.md == *exclude))) return entry.md;
    }
    return std::nullopt;
  }

  void CountPlan(int64_t primitives, int64_t memories) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counters_.plans_compiled;
    counters_.primitives_created += primitives;
    counters_.memories_created += memories;
  }

  BackendCounters counters() {
    std::lock_guard<std::mutex> lock(mu_);
    return counters_;
  }

 private:
  struct WeightEntry {
    std::string key;
    Md md;
    memory mem;
  };

  const std::shared_ptr<const Graph> graph_;
  const BackendOptions options_;
  const dnnl::engine engine_;
  const std::vector<LoweredOp> ops_;
  std::mutex mu_;
  std::vector<WeightEntry> weights_;  // a few dozen entries: linear search
  BackendCounters counters_;
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

class DnnlPlan : public Plan {
 public:
  int64_t batch() const override { return batch_; }
  const Dims& input_dims() const override { return input_dims_; }
  const Dims& output_dims() const override { return output_dims_; }

  Status Run(const float* src, float* dst) override {
    if (src == nullptr || dst == nullptr) return InvalidArgumentError("Run: src and dst must not be null");
    omp_set_num_threads(num_threads_);
    for (dnnl_memory_t mem : src_memories_) {
      if (dnnl_memory_set_data_handle_v2(mem, const_cast<float*>(src), nullptr) != dnnl_success) {
        return InternalError("oneDNN could not bind the input buffer");
      }
    }
    for (dnnl_memory_t mem : dst_memories_) {
      if (dnnl_memory_set_data_handle_v2(mem, dst, nullptr) != dnnl_success) {
        return InternalError("oneDNN could not bind the output buffer");
      }
    }
    for (size_t i = 0; i < primitives_.size(); ++i) {
      const std::vector<dnnl_exec_arg_t>& args = args_[i];
      const dnnl_status_t status =
          dnnl_primitive_execute(primitives_[i].get(), stream_.get(), static_cast<int>(args.size()), args.data());
      if (status != dnnl_success) {
        return InternalError("oneDNN execution failed at node '" + info_.steps[i].node + "' (" +
                             info_.steps[i].kind + "): " + dnnl_status2str(status));
      }
    }
    const dnnl_status_t status = dnnl_stream_wait(stream_.get());
    if (status != dnnl_success)
      return InternalError(std::string("oneDNN stream wait: ") + dnnl_status2str(status));
    return OkStatus();
  }

  const PlanInfo& info() const { return info_; }

 private:
  friend class PlanBuilder;

  std::shared_ptr<ModelState> model_;  // keeps shared weights alive for the plan's lifetime
  int64_t batch_ = 0;
  Dims input_dims_;
  Dims output_dims_;
  int num_threads_ = 1;
  dnnl::stream stream_;
  std::unique_ptr<char, FreeDeleter> arena_;
  std::vector<dnnl::memory> memories_;
  std::vector<dnnl::primitive> primitives_;
  std::vector<std::vector<dnnl_exec_arg_t>> args_;
  std::vector<dnnl_memory_t> src_memories_;
  std::vector<dnnl_memory_t> dst_memories_;
  PlanInfo info_;
};

// Builds one DnnlPlan. Activations live in logical buffers (one per produced tensor, shared by its
// reinterpretations); after all primitives exist, buffers get offsets in one arena by lifetime.
class PlanBuilder {
 public:
  PlanBuilder(std::shared_ptr<ModelState> model, int64_t batch)
      : model_(std::move(model)), graph_(model_->graph()), engine_(model_->engine()), batch_(batch) {}

  StatusOr<std::unique_ptr<Plan>> Build() {
    CNN_ASSIGN_OR_RETURN(shapes_, graph_.InferShapes(batch_));
    const std::string& input = graph_.input_name();
    ValueInfo& in = values_[input];
    in.dims = shapes_.at(input);
    in.ready = true;
    in.mem = MemRef{NewBuffer(BufKind::kUserIn, 0), PlainMd(in.dims)};
    for (const LoweredOp& op : model_->ops()) {
      CNN_RETURN_IF_ERROR(Guarded(op.name, [&] { return Emit(op); }));
    }
    auto plan = std::make_unique<DnnlPlan>();
    CNN_RETURN_IF_ERROR(Guarded(graph_.output_name(), [&] { return Finalize(*plan); }));
    return std::unique_ptr<Plan>(std::move(plan));
  }

 private:
  enum class BufKind { kSlot, kUserIn, kUserOut, kConst, kScratch, kZeroed };
  struct Buffer {
    BufKind kind;
    size_t bytes = 0;
    const void* data = nullptr;  // kConst
    size_t offset = 0;           // in the arena (kSlot, kZeroed, kScratch)
  };
  struct MemRef {
    int buffer = -1;
    Md md;
  };
  struct ValueInfo {
    Dims dims;
    bool ready = false;
    MemRef mem;
    std::vector<MemRef> converted;  // copies of `mem` in other layouts, made on demand
    std::string view_of;            // lazy: the plain layout of this value reinterpreted with `dims`
    std::string flat_of;            // this value is [N, rest] flattened from that N-D value (FC fusion)
  };
  struct Step {
    dnnl::primitive primitive;
    std::vector<std::pair<int, MemRef>> args;
    StepInfo info;
  };

  int NewBuffer(BufKind kind, size_t bytes, const void* data = nullptr) {
    buffers_.push_back(Buffer{kind, bytes, data, 0});
    return static_cast<int>(buffers_.size()) - 1;
  }
  MemRef NewActivation(const Md& md) { return MemRef{NewBuffer(BufKind::kSlot, md.get_size()), md}; }
  MemRef Constant(const float* data, const Md& md) { return MemRef{NewBuffer(BufKind::kConst, 0, data), md}; }

  const Dims& DimsOf(const std::string& value) {
    const Tensor* constant = graph_.constant(value);
    if (constant != nullptr) return constant->dims();
    auto it = values_.find(value);
    if (it != values_.end()) return it->second.dims;
    return shapes_.at(value);
  }

  // Defines `value` as living in `mem` (whose dims match the value's).
  void Define(const std::string& value, const MemRef& mem) {
    ValueInfo& v = values_[value];
    v.dims = shapes_.at(value);
    v.ready = true;
    v.mem = mem;
  }

  StatusOr<ValueInfo*> Value(const std::string& name) {
    auto it = values_.find(name);
    if (it != values_.end()) return &it->second;
    const Tensor* constant = graph_.constant(name);
    if (constant == nullptr) return InternalError("value '" + name + "' is used before it is computed");
    ValueInfo& v = values_[name];
    v.dims = constant->dims();
    v.ready = true;
    v.mem = Constant(constant->data(), PlainMd(v.dims));
    return &v;
  }

  // The value's memory in whatever layout it has (materialising a lazy view).
  StatusOr<MemRef> Get(const std::string& name) {
    CNN_ASSIGN_OR_RETURN(ValueInfo * v, Value(name));
    if (v->ready) return v->mem;
    CNN_ASSIGN_OR_RETURN(MemRef src, GetPlain(v->view_of));
    v->mem = MemRef{src.buffer, PlainMd(v->dims)};
    v->ready = true;
    return v->mem;
  }

  // The value in layout `md`, reordered (once) when it lives in another one.
  StatusOr<MemRef> GetAs(const std::string& name, const Md& md) {
    CNN_ASSIGN_OR_RETURN(MemRef mem, Get(name));
    if (mem.md == md) return mem;
    ValueInfo& v = values_.at(name);
    for (const MemRef& c : v.converted) {
      if (c.md == md) return c;
    }
    CNN_ASSIGN_OR_RETURN(MemRef converted, Reorder(mem, md, name));
    v.converted.push_back(converted);
    return converted;
  }

  StatusOr<MemRef> GetPlain(const std::string& name) {
    CNN_ASSIGN_OR_RETURN(ValueInfo * v, Value(name));
    return GetAs(name, PlainMd(v->dims));
  }

  StatusOr<MemRef> Reorder(const MemRef& src, const Md& md, const std::string& value) {
    dnnl::reorder::primitive_desc pd(engine_, src.md, engine_, md, ScratchpadAttr());
    MemRef dst = NewActivation(md);
    AddStep("reorder " + value, pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
    return dst;
  }

  void AddStep(const std::string& node, const dnnl::primitive_desc_base& pd,
               std::vector<std::pair<int, MemRef>> args) {
    Step step;
    step.primitive = dnnl::primitive(pd.get());
    const Md scratchpad = pd.scratchpad_desc();
    if (scratchpad.get_size() > 0) {
      scratchpad_bytes_ = std::max(scratchpad_bytes_, scratchpad.get_size());
      args.push_back({DNNL_ARG_SCRATCHPAD, MemRef{scratchpad_buffer_, scratchpad}});
    }
    step.info.node = node;
    step.info.kind = dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(pd.get_kind()));
    step.info.impl = pd.impl_info_str();
    for (const auto& [arg, mem] : args) {
      if (arg == DNNL_ARG_SRC || arg == DNNL_ARG_FROM) step.info.src = MdToString(mem.md);
      if (arg == DNNL_ARG_WEIGHTS) step.info.weights = MdToString(mem.md);
      if (arg == DNNL_ARG_DST || arg == DNNL_ARG_TO) step.info.dst = MdToString(mem.md);
      if (arg == DNNL_ARG_WEIGHTS) step.info.weights_data = buffers_[mem.buffer].data;
    }
    step.args = std::move(args);
    steps_.push_back(std::move(step));
  }

  Status Emit(const LoweredOp& op) {
    switch (op.kind) {
      case LoweredKind::kConv:
        return EmitConv(op);
      case LoweredKind::kFc:
        return EmitFc(op);
      case LoweredKind::kMatMul:
        return EmitMatMul(op);
      case LoweredKind::kRelu:
        return EmitRelu(op);
      case LoweredKind::kPool:
        return EmitPool(op);
      case LoweredKind::kLrn:
        return EmitLrn(op);
      case LoweredKind::kSoftmax:
        return EmitSoftmax(op);
      case LoweredKind::kBatchNorm:
        return EmitBatchNorm(op);
      case LoweredKind::kAdd:
        return EmitAdd(op);
      case LoweredKind::kView:
        return EmitView(op);
      case LoweredKind::kAlias:
        return EmitAlias(op);
    }
    return InternalError("unknown lowered op");
  }

  dnnl::primitive_attr Attr(bool relu) const {
    dnnl::primitive_attr attr = ScratchpadAttr();
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    return attr;
  }

  MemRef Weights(const LoweredOp& op, const Md& user_md, const Md& want) {
    memory mem = model_->Weights(op.name, user_md, op.weights_data(), want);
    return MemRef{NewBuffer(BufKind::kConst, 0, mem.get_data_handle()), want};
  }

  Status EmitConv(const LoweredOp& op) {
    const auto& attrs = std::get<ConvAttrs>(op.node->attrs);
    const Dims& src_dims = DimsOf(op.src);
    const Dims& dst_dims = shapes_.at(op.dst);
    const size_t spatial = src_dims.size() - 2;
    const int64_t groups = attrs.group;
    memory::dims strides(spatial, 1), dilates(spatial, 0), pad_l(spatial, 0), pad_r(spatial, 0);
    for (size_t i = 0; i < spatial; ++i) {
      if (i < attrs.strides.size()) strides[i] = attrs.strides[i];
      if (i < attrs.dilations.size()) dilates[i] = attrs.dilations[i] - 1;
      if (attrs.pads.size() == 2 * spatial) {
        pad_l[i] = attrs.pads[i];
        pad_r[i] = attrs.pads[spatial + i];
      }
    }
    Dims weights_dims = op.weights_dims;
    if (groups > 1) {
      weights_dims.insert(weights_dims.begin(), groups);
      weights_dims[1] /= groups;
    }
    const Md user_weights = PlainMd(weights_dims);
    const Md bias_md = PlainMd({op.weights_dims[0]});
    bool winograd_eligible = model_->options().allow_winograd && groups == 1 && spatial == 2 &&
                             op.weights_dims[0] % 16 == 0 && op.weights_dims[1] % 16 == 0;
    for (size_t i = 0; i < spatial; ++i) {
      winograd_eligible = winograd_eligible && op.weights_dims[2 + i] == 3 && strides[i] == 1 && dilates[i] == 0;
    }
    const auto make_pd = [&](const Md& src_md, const Md& weights_md, dnnl::algorithm algorithm) {
      if (op.bias.empty()) {
        return dnnl::convolution_forward::primitive_desc(
            dnnl::convolution_forward::desc(kInference, algorithm, src_md, weights_md, AnyMd(dst_dims), strides,
                                            dilates, pad_l, pad_r),
            Attr(op.relu), engine_);
      }
      return dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(kInference, algorithm, src_md, weights_md, bias_md, AnyMd(dst_dims),
                                          strides, dilates, pad_l, pad_r),
          Attr(op.relu), engine_);
    };
    // Candidates, best first: keep the layout the source already has (no reorder) when a fast kernel takes
    // it; reuse the weight layout another plan already prepared (shared weights); else oneDNN's choice.
    CNN_ASSIGN_OR_RETURN(MemRef current, Get(op.src));
    const bool internal_src = buffers_[current.buffer].kind == BufKind::kSlot;
    std::vector<Md> src_candidates;
    if (internal_src) src_candidates.push_back(current.md);
    // A one-channel image straight from the input (LeNet-5): the plain NCHW source picks the first-layer direct
    // kernel (blocked output) instead of oneDNN's own choice, NHWC brgconv: the layer takes 0.20 instead of 0.29 ms
    // and the whole LeNet-5 runs 12% (batch 1) and 19% (batch 32) faster on 1 thread. With 3 channels (AlexNet,
    // VGG) it is no faster, so it is not tried there.
    if (!internal_src && src_dims[1] == 1) src_candidates.push_back(current.md);
    src_candidates.push_back(AnyMd(src_dims));
    std::vector<Md> weights_candidates;
    if (auto preferred = model_->PreferredWeights(op.name)) weights_candidates.push_back(*preferred);
    weights_candidates.push_back(AnyMd(weights_dims));
    std::vector<dnnl::algorithm> algorithms;
    if (winograd_eligible) {
      if (auto winograd = WinogradAlgorithm(model_->options().winograd_policy, NumElements(dst_dims) / dst_dims[1])) algorithms.push_back(*winograd);
    }
    algorithms.push_back(dnnl::algorithm::convolution_direct);
    std::optional<dnnl::convolution_forward::primitive_desc> chosen;
    for (size_t a = 0; a < algorithms.size() && !chosen; ++a) {
      for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
        for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
          auto pd = TryCreate([&] { return make_pd(src_candidates[s], weights_candidates[w], algorithms[a]); });
          const bool last_resort = s + 1 == src_candidates.size() && w + 1 == weights_candidates.size();
          if (pd && (last_resort || !IsSlowConvolution(*pd))) chosen = std::move(pd);
        }
      }
    }
    if (!chosen) chosen = make_pd(AnyMd(src_dims), AnyMd(weights_dims), dnnl::algorithm::convolution_direct);
    const dnnl::convolution_forward::primitive_desc& pd = *chosen;

    CNN_ASSIGN_OR_RETURN(MemRef src, GetAs(op.src, pd.src_desc()));
    std::vector<std::pair<int, MemRef>> args = {{DNNL_ARG_SRC, src},
                                                {DNNL_ARG_WEIGHTS, Weights(op, user_weights, pd.weights_desc())}};
    if (!op.bias.empty()) args.push_back({DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)});
    const MemRef dst = NewActivation(pd.dst_desc());
    args.push_back({DNNL_ARG_DST, dst});
    AddStep(op.name, pd, std::move(args));
    Define(op.dst, dst);
    return OkStatus();
  }

  // Defines `value` (of any rank) from a plain row-major `mem` holding the same elements.
  Status DefinePlain(const std::string& value, const MemRef& mem, const std::string& name) {
    const Dims& dims = shapes_.at(value);
    if (mem.md == PlainMd(mem.md.dims())) {
      Define(value, MemRef{mem.buffer, PlainMd(dims)});
      return OkStatus();
    }
    CNN_ASSIGN_OR_RETURN(MemRef plain, Reorder(mem, PlainMd(mem.md.dims()), name));
    Define(value, MemRef{plain.buffer, PlainMd(dims)});
    return OkStatus();
  }

  Status EmitFc(const LoweredOp& op) {
    const int64_t n = op.weights_kn ? op.weights_dims[1] : op.weights_dims[0];
    const int64_t k = op.weights_kn ? op.weights_dims[0] : op.weights_dims[1];
    const Md bias_md = PlainMd({n});
    CNN_ASSIGN_OR_RETURN(ValueInfo * a, Value(op.src));
    const std::string flat_of = a->flat_of;
    const Dims a_dims = a->dims;

    // The source as the primitive sees it: the N-D value a Flatten came from (so that its blocked layout
    // needs no reorder), else A viewed as [M, K].
    std::string src_value = op.src;
    Dims src_dims;
    Md user_weights;
    if (!flat_of.empty() && NumElements(DimsOf(flat_of)) / DimsOf(flat_of)[0] == k) {
      src_value = flat_of;
      src_dims = DimsOf(flat_of);
      Dims weights_dims = src_dims;
      weights_dims[0] = n;
      if (op.weights_kn) {
        // B is [K, N] with K = (c, spatial...) row-major: o has stride 1, the rest are strided by N.
        memory::dims strides(weights_dims.size());
        strides[0] = 1;
        int64_t stride = n;
        for (size_t i = weights_dims.size(); i-- > 1;) {
          strides[i] = stride;
          stride *= weights_dims[i];
        }
        user_weights = Md(weights_dims, kF32, strides);
      } else {
        user_weights = PlainMd(weights_dims);
      }
    } else {
      src_dims = {NumElements(a_dims) / k, k};
      user_weights = op.weights_kn ? Md({n, k}, kF32, Tag::ba) : PlainMd({n, k});
    }
    Dims weights_dims = src_dims;
    weights_dims[0] = n;
    const Dims dst_dims = {src_dims[0], n};

    const auto make_pd = [&](const Md& src_md, const Md& weights_md) {
      if (op.bias.empty()) {
        return dnnl::inner_product_forward::primitive_desc(
            dnnl::inner_product_forward::desc(kInference, src_md, weights_md, AnyMd(dst_dims)), Attr(op.relu),
            engine_);
      }
      return dnnl::inner_product_forward::primitive_desc(
          dnnl::inner_product_forward::desc(kInference, src_md, weights_md, bias_md, AnyMd(dst_dims)),
          Attr(op.relu), engine_);
    };
    // Weight candidates, best first: the layout other plans already prepared; the graph's own buffer (no copy:
    // FC weights are most of a VGG/AlexNet's bytes, and at serving batch sizes the FC is bound by reading them,
    // which a plain layout does as fast); oneDNN's choice. For each, the source's current layout (no reorder),
    // then plain, then oneDNN's choice (an activation reorder is cheap next to a copy of the weights).
    std::vector<Md> src_candidates;
    MemRef src;
    if (src_value == op.src && a_dims.size() != 2) {
      // An N-D MatMul input: its plain layout viewed as [M, K].
      CNN_ASSIGN_OR_RETURN(MemRef plain, GetPlain(op.src));
      src = MemRef{plain.buffer, PlainMd(src_dims)};
      src_candidates.push_back(src.md);
    } else {
      CNN_ASSIGN_OR_RETURN(MemRef current, Get(src_value));
      if (current.md.data.format_kind == dnnl_blocked) src_candidates.push_back(current.md);
      if (!(current.md == PlainMd(src_dims))) src_candidates.push_back(PlainMd(src_dims));
      src_candidates.push_back(AnyMd(src_dims));
    }
    // Below fc_blocked_weights_min_batch the FC is bound by reading its weights and the plain layout is as
    // fast; from there on oneDNN's blocked layout is much faster (AlexNet batch 32: +33%) at the price of a
    // blocked copy of the FC weights, made once and shared by every plan of that size class.
    std::vector<Md> weights_candidates;
    if (batch_ >= model_->options().fc_blocked_weights_min_batch) {
      if (auto blocked = model_->PreferredWeights(op.name, &user_weights)) weights_candidates.push_back(*blocked);
      weights_candidates.push_back(AnyMd(weights_dims));
      weights_candidates.push_back(user_weights);
    } else {
      weights_candidates.push_back(user_weights);
      if (auto prepared = model_->PreferredWeights(op.name)) weights_candidates.push_back(*prepared);
      weights_candidates.push_back(AnyMd(weights_dims));
    }
    std::optional<dnnl::inner_product_forward::primitive_desc> chosen;
    for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
      for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
        auto pd = TryCreate([&] { return make_pd(src_candidates[s], weights_candidates[w]); });
        const bool last_resort = s + 1 == src_candidates.size() && w + 1 == weights_candidates.size();
        if (pd && (last_resort || !IsReference(*pd))) chosen = std::move(pd);
      }
    }
    if (!chosen) chosen = make_pd(src_candidates.back(), weights_candidates.back());
    const dnnl::inner_product_forward::primitive_desc& pd = *chosen;
    if (src.buffer < 0) {
      CNN_ASSIGN_OR_RETURN(src, GetAs(src_value, pd.src_desc()));
    }
    std::vector<std::pair<int, MemRef>> args = {{DNNL_ARG_SRC, src},
                                                {DNNL_ARG_WEIGHTS, Weights(op, user_weights, pd.weights_desc())}};
    if (!op.bias.empty()) args.push_back({DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)});
    const MemRef dst = NewActivation(pd.dst_desc());
    args.push_back({DNNL_ARG_DST, dst});
    AddStep(op.name, pd, std::move(args));
    if (shapes_.at(op.dst).size() == 2) {
      Define(op.dst, dst);
      return OkStatus();
    }
    return DefinePlain(op.dst, dst, op.name);
  }

  Status EmitMatMul(const LoweredOp& op) {
    const Node& node = *op.node;
    const bool gemm = node.type == OpType::kGemm;
    const std::string& a_name = node.inputs[0];
    const std::string& b_name = node.inputs[1];
    const Dims a_dims = DimsOf(a_name);
    const Dims b_dims = op.weights != nullptr ? op.weights_dims : DimsOf(b_name);
    Md a_md, b_md;
    Dims dst_dims;
    if (gemm) {
      const int64_t m = op.trans_a ? a_dims[1] : a_dims[0];
      const int64_t k = op.trans_a ? a_dims[0] : a_dims[1];
      const int64_t n = op.trans_b ? b_dims[0] : b_dims[1];
      a_md = op.trans_a ? Md({m, k}, kF32, memory::dims{1, m}) : PlainMd({m, k});
      b_md = op.trans_b ? Md({k, n}, kF32, memory::dims{1, k}) : PlainMd({k, n});
      dst_dims = {m, n};
    } else {
      Dims pa = a_dims.size() == 1 ? Dims{1, a_dims[0]} : a_dims;
      Dims pb = b_dims.size() == 1 ? Dims{b_dims[0], 1} : b_dims;
      const size_t rank = std::max(pa.size(), pb.size());
      pa.insert(pa.begin(), rank - pa.size(), 1);
      pb.insert(pb.begin(), rank - pb.size(), 1);
      dst_dims.resize(rank);
      for (size_t i = 0; i + 2 < rank; ++i) dst_dims[i] = std::max(pa[i], pb[i]);
      dst_dims[rank - 2] = pa[rank - 2];
      dst_dims[rank - 1] = pb[rank - 1];
      a_md = PlainMd(pa);
      b_md = PlainMd(pb);
    }
    CNN_ASSIGN_OR_RETURN(MemRef a_plain, GetPlain(a_name));
    const MemRef src{a_plain.buffer, a_md};
    const bool has_c = !op.c_const.empty() || !op.c_value.empty();
    dnnl::primitive_attr attr = Attr(op.relu && !has_c);
    if (op.alpha != 1.0f) attr.set_output_scales(0, {op.alpha});
    const bool const_b = op.weights != nullptr;
    std::optional<dnnl::matmul::primitive_desc> chosen;
    if (const_b) {
      // As for inner products: weights already prepared by another plan, else the graph's buffer as it is.
      std::vector<Md> weights_candidates;
      if (auto preferred = model_->PreferredWeights(op.name)) weights_candidates.push_back(*preferred);
      weights_candidates.push_back(b_md);
      for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
        auto pd = TryCreate([&] {
          return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, weights_candidates[w], PlainMd(dst_dims)),
                                              attr, engine_);
        });
        if (pd && !IsReference(*pd)) chosen = std::move(pd);
      }
    }
    if (!chosen) {
      chosen = dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(a_md, const_b ? AnyMd(b_md.dims()) : b_md, PlainMd(dst_dims)), attr, engine_);
    }
    const dnnl::matmul::primitive_desc& pd = *chosen;
    MemRef weights;
    if (const_b) {
      weights = Weights(op, b_md, pd.weights_desc());
    } else {
      CNN_ASSIGN_OR_RETURN(MemRef b_plain, GetPlain(b_name));
      weights = MemRef{b_plain.buffer, b_md};
    }
    MemRef dst = NewActivation(pd.dst_desc());
    AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    if (has_c) {
      Dims c_dims = op.c_dims.empty() ? Dims{1} : op.c_dims;
      c_dims.insert(c_dims.begin(), dst_dims.size() - c_dims.size(), 1);
      MemRef c;
      if (!op.c_const.empty()) {
        c = Constant(op.c_const.data(), PlainMd(c_dims));
      } else {
        CNN_ASSIGN_OR_RETURN(MemRef c_plain, GetPlain(op.c_value));
        c = MemRef{c_plain.buffer, PlainMd(c_dims)};
      }
      const dnnl::binary::primitive_desc add_pd(
          dnnl::binary::desc(dnnl::algorithm::binary_add, dst.md, c.md, dst.md), Attr(op.relu), engine_);
      const MemRef sum = NewActivation(dst.md);
      AddStep(op.name + " (C)", add_pd, {{DNNL_ARG_SRC_0, dst}, {DNNL_ARG_SRC_1, c}, {DNNL_ARG_DST, sum}});
      dst = sum;
    }
    return DefinePlain(op.dst, dst, op.name);
  }

  Status EmitRelu(const LoweredOp& op) {
    CNN_ASSIGN_OR_RETURN(MemRef src, Get(op.src));
    const dnnl::eltwise_forward::primitive_desc pd(
        dnnl::eltwise_forward::desc(kInference, dnnl::algorithm::eltwise_relu, src.md, 0.0f, 0.0f),
        ScratchpadAttr(), engine_);
    const MemRef dst = NewActivation(pd.dst_desc());
    AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    Define(op.dst, dst);
    return OkStatus();
  }

  Status EmitPool(const LoweredOp& op) {
    const Node& node = *op.node;
    const Dims src_dims = DimsOf(op.src);
    const Dims& dst_dims = shapes_.at(op.dst);
    const size_t spatial = src_dims.size() - 2;
    memory::dims kernel(spatial), strides(spatial, 1), dilates(spatial, 0), pad_l(spatial, 0), pad_r(spatial, 0);
    dnnl::algorithm algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
    if (node.type == OpType::kGlobalAveragePool) {
      for (size_t i = 0; i < spatial; ++i) kernel[i] = src_dims[2 + i];
    } else {
      const auto& attrs = std::get<PoolAttrs>(node.attrs);
      if (attrs.kernel_shape.size() != spatial) {
        return InvalidArgumentError("node '" + op.name + "': kernel_shape has " +
                                    std::to_string(attrs.kernel_shape.size()) + " entries for " +
                                    std::to_string(spatial) + " spatial axes");
      }
      for (size_t i = 0; i < spatial; ++i) {
        kernel[i] = attrs.kernel_shape[i];
        if (i < attrs.strides.size()) strides[i] = attrs.strides[i];
        if (node.type == OpType::kMaxPool && i < attrs.dilations.size()) dilates[i] = attrs.dilations[i] - 1;
        if (attrs.pads.size() == 2 * spatial) {
          pad_l[i] = attrs.pads[i];
          pad_r[i] = attrs.pads[spatial + i];
        }
      }
      if (node.type == OpType::kMaxPool) {
        algorithm = dnnl::algorithm::pooling_max;
      } else if (attrs.count_include_pad) {
        algorithm = dnnl::algorithm::pooling_avg_include_padding;
      }
    }
    // ceil_mode: grow the right padding until oneDNN's (floor) output size matches the inferred one.
    memory::dims pad_r_eff = pad_r;
    bool overhang = false;
    for (size_t i = 0; i < spatial; ++i) {
      const int64_t extent = (kernel[i] - 1) * (dilates[i] + 1) + 1;
      const int64_t in = src_dims[2 + i];
      const int64_t out = dst_dims[2 + i];
      if ((in + pad_l[i] + pad_r[i] - extent) / strides[i] + 1 != out) {
        pad_r_eff[i] = (out - 1) * strides[i] + extent - in - pad_l[i];
        if (pad_r_eff[i] < 0) return InternalError("node '" + op.name + "': inconsistent pooling output size");
        overhang = overhang || pad_r_eff[i] > pad_r[i];
      }
    }
    CNN_ASSIGN_OR_RETURN(MemRef src, Get(op.src));
    if (algorithm == dnnl::algorithm::pooling_avg_include_padding && overhang) {
      // oneDNN divides by the whole kernel, but the ceil_mode overhang beyond the explicit pads must not count:
      // copy the input into a zero-bordered buffer (the explicit pads become real zeros) and average with
      // exclude_padding over the overhang only.
      Dims padded = src_dims;
      memory::dims offsets(src_dims.size(), 0);
      for (size_t i = 0; i < spatial; ++i) {
        padded[2 + i] += pad_l[i] + pad_r[i];
        offsets[2 + i] = pad_l[i];
        pad_r_eff[i] -= pad_r[i];
        pad_l[i] = 0;
      }
      const Md padded_md = PlainMd(padded);
      const int buffer = NewBuffer(BufKind::kZeroed, padded_md.get_size());
      const MemRef interior{buffer, padded_md.submemory_desc(src_dims, offsets)};
      const dnnl::reorder::primitive_desc copy_pd(engine_, src.md, engine_, interior.md, ScratchpadAttr());
      AddStep(op.name + " (pad)", copy_pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, interior}});
      src = MemRef{buffer, padded_md};
      algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
    }
    const dnnl::pooling_v2_forward::primitive_desc pd(
        dnnl::pooling_v2_forward::desc(kInference, algorithm, src.md, AnyMd(dst_dims), strides, kernel, dilates,
                                       pad_l, pad_r_eff),
        ScratchpadAttr(), engine_);
    if (!(pd.src_desc() == src.md))
      return InternalError("node '" + op.name + "': pooling changed its source layout");
    const MemRef dst = NewActivation(pd.dst_desc());
    AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    Define(op.dst, dst);
    return OkStatus();
  }

  Status EmitLrn(const LoweredOp& op) {
    const auto& attrs = std::get<LrnAttrs>(op.node->attrs);
    const Dims& dims = DimsOf(op.src);
    MemRef src;
    if (dims.size() == 2) {
      // [N, C]: LRN across channels of 1x1 images.
      CNN_ASSIGN_OR_RETURN(MemRef plain, GetPlain(op.src));
      src = MemRef{plain.buffer, PlainMd({dims[0], dims[1], 1, 1})};
    } else {
      CNN_ASSIGN_OR_RETURN(src, Get(op.src));
    }
    MemRef dst;
    if (op.owned_weights.empty()) {
      const dnnl::lrn_forward::primitive_desc pd(
          dnnl::lrn_forward::desc(kInference, dnnl::algorithm::lrn_across_channels, src.md, attrs.size,
                                  attrs.alpha, attrs.beta, attrs.bias),
          ScratchpadAttr(), engine_);
      dst = NewActivation(pd.dst_desc());
      AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    } else {
      // Even size (see LowerLrn): square, 1x1 banded conv + bias with a pow post-op, multiply by the input.
      const dnnl::eltwise_forward::primitive_desc square_pd(
          dnnl::eltwise_forward::desc(kInference, dnnl::algorithm::eltwise_square, src.md, 0.0f, 0.0f),
          ScratchpadAttr(), engine_);
      const MemRef squares = NewActivation(square_pd.dst_desc());
      AddStep(op.name + " (square)", square_pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, squares}});
      const int64_t channels = dims[1];
      Dims weights_dims = {channels, channels};
      weights_dims.resize(src.md.dims().size(), 1);
      dnnl::primitive_attr attr = ScratchpadAttr();
      dnnl::post_ops post_ops;
      post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_pow, 1.0f, -attrs.beta);
      attr.set_post_ops(post_ops);
      const memory::dims ones(weights_dims.size() - 2, 1), zeros(weights_dims.size() - 2, 0);
      const Md bias_md = PlainMd({channels});
      const dnnl::convolution_forward::primitive_desc conv_pd(
          dnnl::convolution_forward::desc(kInference, dnnl::algorithm::convolution_direct, squares.md,
                                          AnyMd(weights_dims), bias_md, squares.md, ones, zeros, zeros, zeros),
          attr, engine_);
      const MemRef scale = NewActivation(conv_pd.dst_desc());
      AddStep(op.name + " (window)", conv_pd,
              {{DNNL_ARG_SRC, squares},
               {DNNL_ARG_WEIGHTS, Weights(op, PlainMd(weights_dims), conv_pd.weights_desc())},
               {DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)},
               {DNNL_ARG_DST, scale}});
      const dnnl::binary::primitive_desc mul_pd(
          dnnl::binary::desc(dnnl::algorithm::binary_mul, src.md, scale.md, src.md), ScratchpadAttr(), engine_);
      dst = NewActivation(mul_pd.dst_desc());
      AddStep(op.name, mul_pd, {{DNNL_ARG_SRC_0, src}, {DNNL_ARG_SRC_1, scale}, {DNNL_ARG_DST, dst}});
    }
    if (dims.size() == 2) {
      Define(op.dst, MemRef{dst.buffer, PlainMd(dims)});
    } else {
      Define(op.dst, dst);
    }
    return OkStatus();
  }

  Status EmitSoftmax(const LoweredOp& op) {
    const auto& attrs = std::get<SoftmaxAttrs>(op.node->attrs);
    const Dims& dims = DimsOf(op.src);
    const int64_t rank = static_cast<int64_t>(dims.size());
    int64_t axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
    if (axis < 0 || axis >= std::max<int64_t>(rank, 1)) {
      return InvalidArgumentError("node '" + op.name + "': softmax axis " + std::to_string(attrs.axis));
    }
    CNN_ASSIGN_OR_RETURN(MemRef plain, GetPlain(op.src));
    Md md = plain.md;
    if (attrs.coerce_2d) {
      int64_t outer = 1;
      for (int64_t i = 0; i < axis; ++i) outer *= dims[i];
      md = PlainMd({outer, NumElements(dims) / outer});
      axis = 1;
    }
    const dnnl::softmax_forward::primitive_desc pd(
        dnnl::softmax_forward::desc(kInference, md, static_cast<int>(axis)), ScratchpadAttr(), engine_);
    const MemRef dst = NewActivation(md);
    AddStep(op.name, pd, {{DNNL_ARG_SRC, MemRef{plain.buffer, md}}, {DNNL_ARG_DST, dst}});
    Define(op.dst, MemRef{dst.buffer, PlainMd(shapes_.at(op.dst))});
    return OkStatus();
  }

  Status EmitBatchNorm(const LoweredOp& op) {
    CNN_ASSIGN_OR_RETURN(MemRef src, Get(op.src));
    const int64_t channels = DimsOf(op.src)[1];
    const auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
                       dnnl::normalization_flags::use_shift;
    const dnnl::batch_normalization_forward::primitive_desc pd(
        dnnl::batch_normalization_forward::desc(kInference, src.md, op.epsilon, flags), ScratchpadAttr(), engine_);
    const Md param_md = PlainMd({channels});
    const MemRef dst = NewActivation(pd.dst_desc());
    AddStep(op.name, pd,
            {{DNNL_ARG_SRC, src},
             {DNNL_ARG_MEAN, Constant(op.bn_mean, param_md)},
             {DNNL_ARG_VARIANCE, Constant(op.bn_var, param_md)},
             {DNNL_ARG_SCALE, Constant(op.bn_scale, param_md)},
             {DNNL_ARG_SHIFT, Constant(op.bn_shift, param_md)},
             {DNNL_ARG_DST, dst}});
    Define(op.dst, dst);
    return OkStatus();
  }

  Status EmitAdd(const LoweredOp& op) {
    const Dims& dst_dims = shapes_.at(op.dst);
    // src0 must have the output's dims (oneDNN broadcasts src1 only); Add commutes.
    std::string full = op.src, other = op.src2;
    if (DimsOf(full) != dst_dims || (graph_.is_constant(full) && DimsOf(other) == dst_dims))
      std::swap(full, other);
    if (DimsOf(full) != dst_dims) {
      return UnimplementedError("node '" + op.name + "' (Add): broadcasting both inputs (" +
                                DimsToString(DimsOf(op.src)) + " + " + DimsToString(DimsOf(op.src2)) +
                                ") is not supported by the oneDNN backend");
    }
    const auto emit = [&](bool plain) -> Status {
      CNN_ASSIGN_OR_RETURN(MemRef src0, plain ? GetPlain(full) : Get(full));
      MemRef src1;
      const Dims& other_dims = DimsOf(other);
      if (other_dims == dst_dims) {
        CNN_ASSIGN_OR_RETURN(src1, GetAs(other, src0.md));
      } else {
        Dims padded = other_dims;
        padded.insert(padded.begin(), dst_dims.size() - padded.size(), 1);
        CNN_ASSIGN_OR_RETURN(MemRef other_plain, GetPlain(other));
        src1 = MemRef{other_plain.buffer, PlainMd(padded)};
      }
      const dnnl::binary::primitive_desc pd(
          dnnl::binary::desc(dnnl::algorithm::binary_add, src0.md, src1.md, src0.md), Attr(op.relu), engine_);
      const MemRef dst = NewActivation(pd.dst_desc());
      AddStep(op.name, pd, {{DNNL_ARG_SRC_0, src0}, {DNNL_ARG_SRC_1, src1}, {DNNL_ARG_DST, dst}});
      Define(op.dst, dst);
      return OkStatus();
    };
    CNN_ASSIGN_OR_RETURN(MemRef current, Get(full));
    if (current.md == PlainMd(dst_dims)) return emit(true);
    try {
      return emit(false);
    } catch (const dnnl::error&) {
      return emit(true);  // blocked layout with this broadcast not supported: add in plain layout
    }
  }

  Status EmitView(const LoweredOp& op) {
    const Dims& src_dims = DimsOf(op.src);
    ValueInfo& v = values_[op.dst];
    v.dims = shapes_.at(op.dst);
    v.ready = false;
    v.view_of = op.src;
    if (v.dims.size() == 2 && src_dims.size() >= 3 && src_dims.size() <= 5 && v.dims[0] == src_dims[0] &&
        !graph_.is_constant(op.src)) {
      v.flat_of = op.src;
    }
    if (graph_.is_constant(op.src)) return Get(op.dst).status();
    return OkStatus();
  }

  Status EmitAlias(const LoweredOp& op) {
    CNN_ASSIGN_OR_RETURN(ValueInfo * src, Value(op.src));
    ValueInfo copy = *src;
    values_[op.dst] = std::move(copy);
    return OkStatus();
  }

  // Binds the output, assigns arena offsets by buffer lifetime and creates the memories and argument lists.
  Status Finalize(DnnlPlan& plan) {
    const Dims& output_dims = shapes_.at(graph_.output_name());
    const Md output_md = PlainMd(output_dims);
    CNN_ASSIGN_OR_RETURN(MemRef out, Get(graph_.output_name()));
    Buffer& out_buffer = buffers_[out.buffer];
    if (out.md == output_md && out_buffer.kind == BufKind::kSlot && out_buffer.bytes <= output_md.get_size()) {
      out_buffer.kind = BufKind::kUserOut;  // the producer writes straight into the caller's buffer
    } else {
      const dnnl::reorder::primitive_desc pd(engine_, out.md, engine_, output_md, ScratchpadAttr());
      AddStep("reorder " + graph_.output_name() + " (output)", pd,
              {{DNNL_ARG_FROM, out}, {DNNL_ARG_TO, MemRef{NewBuffer(BufKind::kUserOut, 0), output_md}}});
    }

    AssignOffsets(plan);

    // Memories: one per distinct (buffer, layout).
    struct Made {
      int buffer;
      Md md;
      dnnl_memory_t mem;
    };
    std::vector<Made> made;
    char* arena = plan.arena_.get();
    const auto memory_for = [&](const MemRef& ref) -> dnnl_memory_t {
      for (const Made& m : made) {
        if (m.buffer == ref.buffer && m.md == ref.md) return m.mem;
      }
      const Buffer& b = buffers_[ref.buffer];
      void* handle = nullptr;
      switch (b.kind) {
        case BufKind::kSlot:
        case BufKind::kZeroed:
        case BufKind::kScratch:
          handle = arena + b.offset;
          break;
        case BufKind::kConst:
          handle = const_cast<void*>(b.data);
          break;
        case BufKind::kUserIn:
        case BufKind::kUserOut:
          handle = nullptr;  // bound at each Run
          break;
      }
      plan.memories_.emplace_back(ref.md, engine_, handle);
      dnnl_memory_t mem = plan.memories_.back().get();
      if (b.kind == BufKind::kUserIn) plan.src_memories_.push_back(mem);
      if (b.kind == BufKind::kUserOut) plan.dst_memories_.push_back(mem);
      made.push_back({ref.buffer, ref.md, mem});
      return mem;
    };
    for (Step& step : steps_) {
      std::vector<dnnl_exec_arg_t> args;
      for (const auto& [arg, ref] : step.args) args.push_back({arg, memory_for(ref)});
      plan.primitives_.push_back(step.primitive);
      plan.args_.push_back(std::move(args));
      plan.info_.steps.push_back(std::move(step.info));
    }

    plan.model_ = model_;
    plan.batch_ = batch_;
    plan.input_dims_ = shapes_.at(graph_.input_name());
    plan.output_dims_ = output_dims;
    plan.num_threads_ = ResolveThreads(model_->options().num_threads);
    plan.stream_ = dnnl::stream(engine_);
    model_->CountPlan(static_cast<int64_t>(plan.primitives_.size()), static_cast<int64_t>(plan.memories_.size()));
    return OkStatus();
  }

  // Gives every slot buffer an arena offset: buffers whose lifetimes (first to last step that touches them) do
  // not overlap share space (best fit, growing the largest free region when none fits).
  void AssignOffsets(DnnlPlan& plan) {
    const size_t num_steps = steps_.size();
    std::vector<int> first(buffers_.size(), -1), last(buffers_.size(), -1);
    for (size_t i = 0; i < num_steps; ++i) {
      for (const auto& [arg, ref] : steps_[i].args) {
        if (buffers_[ref.buffer].kind != BufKind::kSlot) continue;
        if (first[ref.buffer] < 0) first[ref.buffer] = static_cast<int>(i);
        last[ref.buffer] = static_cast<int>(i);
      }
    }
    std::vector<std::vector<int>> starts(num_steps), ends(num_steps);
    for (size_t b = 0; b < buffers_.size(); ++b) {
      if (first[b] < 0) continue;
      starts[first[b]].push_back(static_cast<int>(b));
      ends[last[b]].push_back(static_cast<int>(b));
    }
    struct Region {
      size_t bytes = 0;
      bool free = true;
    };
    std::vector<Region> regions;
    std::vector<int> region_of(buffers_.size(), -1);
    for (size_t i = 0; i < num_steps; ++i) {
      for (int b : starts[i]) {
        const size_t need = RoundUp(std::max<size_t>(buffers_[b].bytes, 1), kBufferAlignment);
        int best = -1;
        for (size_t r = 0; r < regions.size(); ++r) {
          if (!regions[r].free) continue;
          if (best < 0) {
            best = static_cast<int>(r);
            continue;
          }
          const Region& current = regions[best];
          const bool fits = regions[r].bytes >= need;
          const bool current_fits = current.bytes >= need;
          if ((fits && (!current_fits || regions[r].bytes < current.bytes)) ||
              (!fits && !current_fits && regions[r].bytes > current.bytes)) {
            best = static_cast<int>(r);
          }
        }
        if (best < 0) {
          regions.push_back(Region{});
          best = static_cast<int>(regions.size()) - 1;
        }
        regions[best].bytes = std::max(regions[best].bytes, need);
        regions[best].free = false;
        region_of[b] = best;
      }
      for (int b : ends[i]) regions[region_of[b]].free = true;
    }
    std::vector<size_t> region_offset(regions.size());
    size_t total = 0;
    for (size_t r = 0; r < regions.size(); ++r) {
      region_offset[r] = total;
      total += regions[r].bytes;
    }
    plan.info_.activation_bytes = total;
    for (size_t b = 0; b < buffers_.size(); ++b) {
      if (region_of[b] >= 0) buffers_[b].offset = region_offset[region_of[b]];
    }
    std::vector<std::pair<size_t, size_t>> zeroed;
    for (Buffer& b : buffers_) {
      if (b.kind != BufKind::kZeroed) continue;
      b.offset = total;
      zeroed.push_back({total, b.bytes});
      total += RoundUp(b.bytes, kBufferAlignment);
    }
    buffers_[scratchpad_buffer_].offset = total;
    plan.info_.scratchpad_bytes = scratchpad_bytes_;
    total += RoundUp(scratchpad_bytes_, kBufferAlignment);
    void* arena = std::aligned_alloc(kArenaAlignment, RoundUp(std::max<size_t>(total, 1), kArenaAlignment));
    if (arena == nullptr) throw std::bad_alloc();
    plan.arena_.reset(static_cast<char*>(arena));
    for (const auto& [offset, bytes] : zeroed) std::memset(plan.arena_.get() + offset, 0, bytes);
  }

  std::shared_ptr<ModelState> model_;
  const Graph& graph_;
  const dnnl::engine& engine_;
  const int64_t batch_;
  std::unordered_map<std::string, Dims> shapes_;
  std::unordered_map<std::string, ValueInfo> values_;
  std::vector<Buffer> buffers_ = {Buffer{BufKind::kScratch}};
  const int scratchpad_buffer_ = 0;
  size_t scratchpad_bytes_ = 0;
  std::vector<Step> steps_;
};

class DnnlBackend : public Backend {
 public:
  explicit DnnlBackend(std::shared_ptr<ModelState> model) : model_(std::move(model)) {}

  std::string name() const override { return "onednn"; }

  StatusOr<std::unique_ptr<Plan>> Compile(int64_t batch) override {
    if (batch <= 0) return InvalidArgumentError("batch must be positive, got " + std::to_string(batch));
    // Primitive descriptors size their scratchpads for the creating thread's OpenMP team: compile with the
    // thread count the plan runs with.
    ScopedOmpThreads threads(ResolveThreads(model_->options().num_threads));
    StatusOr<std::unique_ptr<Plan>> plan = InternalError("unreachable");
    const Status status = Guarded(model_->graph().name(), [&] {
      plan = PlanBuilder(model_, batch).Build();
      return OkStatus();
    });
    if (!status.ok()) return status;
    return plan;
  }

  ModelState& model() const { return *model_; }

 private:
  std::shared_ptr<ModelState> model_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateDnnlBackend(std::shared_ptr<const Graph> graph,
                                                     const BackendOptions& options) {
  if (graph == nullptr) return InvalidArgumentError("CreateDnnlBackend: graph is null");
  if (options.num_threads < 0) {
    return InvalidArgumentError("num_threads must be >= 0, got " + std::to_string(options.num_threads));
  }
  CNN_ASSIGN_OR_RETURN(std::vector<LoweredOp> ops, dnnl_internal::LowerGraph(*graph));
  std::unique_ptr<Backend> backend;
  CNN_RETURN_IF_ERROR(Guarded(graph->name(), [&] {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    backend = std::make_unique<DnnlBackend>(
        std::make_shared<ModelState>(std::move(graph), options, std::move(engine), std::move(ops)));
    return OkStatus();
  }));
  return backend;
}

std::string DnnlIsaName() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all:
      return "all";
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
  }
  return "unknown";
}

namespace dnnl_internal {

StatusOr<BackendCounters> GetBackendCounters(const Backend& backend) {
  const auto* dnnl_backend = dynamic_cast<const DnnlBackend*>(&backend);
  if (dnnl_backend == nullptr) return InvalidArgumentError("not a oneDNN backend: " + backend.name());
  return dnnl_backend->model().counters();
}

StatusOr<PlanInfo> DescribePlan(const Plan& plan) {
  const auto* dnnl_plan = dynamic_cast<const DnnlPlan*>(&plan);
  if (dnnl_plan == nullptr) return InvalidArgumentError("not a oneDNN plan");
  return dnnl_plan->info();
}

std::string FormatPlanInfo(const PlanInfo& info) {
  std::string out;
  for (const StepInfo& step : info.steps) {
    out += step.node + " | " + step.kind + " | " + step.impl + " | src " + step.src;
    if (!step.weights.empty()) out += " | wei " + step.weights;
    out += " | dst " + step.dst + "\n";
  }
  out += "activations " + std::to_string(info.activation_bytes) + " B, scratchpad " +
         std::to_string(info.scratchpad_bytes) + " B\n";
  return out;
}

}  // namespace dnnl_internal
}  // namespace cnnserve
