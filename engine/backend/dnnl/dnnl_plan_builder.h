// PlanBuilder: compiles one DnnlPlan from a backend's lowered ops at one batch size (private to
// engine/backend/dnnl).
//
// Activations live in logical buffers (one per produced tensor, shared by its reinterpretations); each value
// keeps the layout its producer chose and is reordered (once per layout) only where a consumer needs another.
// After all primitives exist, buffers get offsets in one arena by lifetime (dnnl_arena.h). The Emit* functions
// are defined per op family: dnnl_emit_conv.cc, dnnl_emit_fc.cc (inner product, matmul), dnnl_emit_pool.cc
// (pooling, LRN), dnnl_emit_elementwise.cc (ReLU, softmax, batch norm, add, views).
// Errors: Emit* and Finalize return Status or throw dnnl::error / std::bad_alloc; Build turns every one into a
// Status naming the node. Thread-safety: one builder per Compile call; builders of one backend may run at once
// (they share only the ModelState, which locks).
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_BUILDER_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/backend/dnnl/dnnl_lower.h"
#include "engine/backend/dnnl/dnnl_model_state.h"
#include "engine/backend/dnnl/dnnl_plan.h"
#include "engine/backend/dnnl/dnnl_util.h"

namespace cnnserve::dnnl_internal {

class PlanBuilder {
 public:
  PlanBuilder(std::shared_ptr<ModelState> model, int64_t batch)
      : model_(std::move(model)),
        graph_(model_->graph()),
        engine_(model_->engine()),
        batch_(batch),
        compute_type_(ComputeType(model_->options().precision)),
        int8_(model_->options().precision == Precision::kInt8) {}

  // Emits every lowered op, then lays out the arena and fills the plan.
  StatusOr<std::unique_ptr<Plan>> Build();

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
    float scale = 1.0f;  // u8/s8 memories: stored value = real value x scale (1 for f32 and bf16)
  };
  // How an int8 tensor is stored (from its calibrated range).
  struct Quant {
    memory::data_type type;  // u8 when the range has no negative value, else s8
    float scale;             // 255 / max (u8) or 127 / max(|min|, |max|) (s8)
  };
  // A convolution's geometry in oneDNN's terms.
  struct ConvShape {
    memory::dims strides, dilates, pad_l, pad_r;
    Dims weights_dims;  // with the group dimension first when groups > 1
    int64_t groups = 1;
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
  // How an inner product sees its operands (EmitFc).
  struct FcOperands {
    std::string src_value;  // op.src, or the N-D value a Flatten came from (its blocked layout needs no reorder)
    Dims src_dims;          // [M, K], or that N-D value's dims
    Dims weights_dims;      // src_dims with N in place of the batch
    Md user_weights;        // the graph's weights viewed with weights_dims
  };

  // Precision (dnnl_plan_builder.cc): fills fp32_values_ when the plan computes in a lower precision.
  void MarkFp32Outputs();
  // The data type a convolution or inner product producing `value` writes: fp32 for the graph's output (and
  // what a ReLU or softmax turns into it), compute_type_ otherwise.
  memory::data_type DstType(const std::string& value) const;

  // INT8 (dnnl_emit_int8.cc). The int8 storage of `value` from its calibrated range; nullopt without one.
  std::optional<Quant> QuantOf(const std::string& value) const;
  // Whether every op reading `value` takes it in int8 (convolutions and inner products as their source, with a
  // calibrated range, and pooling, views and aliases whose own outputs qualify); false for an unread value (the
  // graph's output).
  bool Int8Consumers(const std::string& value) const;
  // The int8 storage a convolution or inner product writes `value` in; nullopt for fp32.
  std::optional<Quant> Int8Dst(const std::string& value) const;
  // One scale per output channel of `op`'s weights (127 / largest |weight| of the channel), cached per model.
  const std::vector<float>& WeightScales(const LoweredOp& op, int64_t out_channels);
  // The primitive attributes of an int8 layer reading `src_scale` and writing `dst_scale` (fp32: 1), and its
  // bias rescaled into the accumulator's units (nullptr without a bias).
  dnnl::primitive_attr Int8Attr(const LoweredOp& op, const std::vector<float>& weight_scales, float src_scale,
                                float dst_scale);
  const float* Int8Bias(const LoweredOp& op, const std::vector<float>& weight_scales, float src_scale);
  // The int8 source of `value` in the layouts to offer: its own when it is int8 already, else oneDNN's choice.
  StatusOr<std::vector<Md>> Int8SourceCandidates(const std::string& value, const Dims& dims, Quant& quant);
  // What AddInt8Step needs besides the primitive: the source value and its scale, the graph's weights (their
  // layout and the oneDNN mask of their output-channel dims), the scale of the destination (fp32: 1).
  struct Int8Operands {
    std::string src_value;
    float src_scale;
    Md user_weights;
    int weights_scale_mask;
    float dst_scale;
    Dims bias_dims;  // empty: [output channels]
  };
  // Binds the source (bound by the caller in the layout of `pd`), the quantized weights (shared per model), the
  // rescaled bias and a new destination to an int8 convolution, inner product or matmul `pd`, adds the step and
  // returns the destination.
  StatusOr<MemRef> AddInt8Step(const LoweredOp& op, const dnnl::primitive_desc_base& pd, const MemRef& src,
                               const Md& weights_md, const Md& dst_md, const std::vector<float>& weight_scales,
                               const Int8Operands& operands);
  // Emit the op in int8; false (nothing emitted) when it stays fp32: no calibrated range for its source or no
  // int8 kernel better than the reference one.
  StatusOr<bool> EmitConvInt8(const LoweredOp& op, const ConvShape& shape);
  StatusOr<bool> EmitFcInt8(const LoweredOp& op, const FcOperands& operands, int64_t n);
  // An int8 FC as a oneDNN matmul [M, K] x [K, N] (tried first by EmitFcInt8; the inner product is its fallback).
  StatusOr<bool> EmitFcInt8AsMatmul(const LoweredOp& op, const FcOperands& operands, int64_t n,
                                    const Quant& src_quant);
  // Defines an FC's output: the 2-D result as it is, else its plain layout viewed with the graph's dims.
  Status DefineFcOutput(const LoweredOp& op, const MemRef& dst);

  // Buffers and values (dnnl_plan_builder.cc).
  int NewBuffer(BufKind kind, size_t bytes, const void* data = nullptr);
  MemRef NewActivation(const Md& md) { return MemRef{NewBuffer(BufKind::kSlot, md.get_size()), md}; }
  MemRef Constant(const float* data, const Md& md) { return MemRef{NewBuffer(BufKind::kConst, 0, data), md}; }
  // The weights of `op` in layout `want`, from the backend's shared cache.
  MemRef Weights(const LoweredOp& op, const Md& user_md, const Md& want);
  const Dims& DimsOf(const std::string& value);
  // Defines `value` as living in `mem` (whose dims match the value's).
  void Define(const std::string& value, const MemRef& mem);
  // Defines `value` (of any rank) from a `mem` holding the same elements, reordered to plain when it is not.
  Status DefinePlain(const std::string& value, const MemRef& mem, const std::string& name);
  StatusOr<ValueInfo*> Value(const std::string& name);
  // The value's memory in whatever layout it has (materialising a lazy view).
  StatusOr<MemRef> Get(const std::string& name);
  // The value in layout `md`, reordered (once) when it lives in another one.
  StatusOr<MemRef> GetAs(const std::string& name, const Md& md);
  StatusOr<MemRef> GetPlain(const std::string& name);
  StatusOr<MemRef> Reorder(const MemRef& src, const Md& md, const std::string& value);
  void AddStep(const std::string& node, const dnnl::primitive_desc_base& pd,
               std::vector<std::pair<int, MemRef>> args);

  Status Emit(const LoweredOp& op);
  Status EmitConv(const LoweredOp& op);  // dnnl_emit_conv.cc
  ConvShape ConvShapeOf(const LoweredOp& op, size_t spatial) const;
  Status EmitFc(const LoweredOp& op);  // dnnl_emit_fc.cc
  StatusOr<FcOperands> FcOperandsOf(const LoweredOp& op, int64_t n, int64_t k);
  StatusOr<std::vector<Md>> FcSourceCandidates(const LoweredOp& op, const FcOperands& operands, MemRef& bound);
  std::vector<Md> FcWeightCandidates(const LoweredOp& op, const FcOperands& operands);
  Status EmitMatMul(const LoweredOp& op);
  Status EmitPool(const LoweredOp& op);  // dnnl_emit_pool.cc
  Status EmitLrn(const LoweredOp& op);
  Status EmitRelu(const LoweredOp& op);  // dnnl_emit_elementwise.cc
  Status EmitSoftmax(const LoweredOp& op);
  Status EmitBatchNorm(const LoweredOp& op);
  Status EmitAdd(const LoweredOp& op);
  Status EmitView(const LoweredOp& op);
  Status EmitAlias(const LoweredOp& op);

  // Binds the output, assigns arena offsets by buffer lifetime and creates the memories and argument lists.
  Status Finalize(DnnlPlan& plan);
  // Gives every slot, zeroed and scratchpad buffer its arena offset and allocates the plan's arena.
  void AssignOffsets(DnnlPlan& plan);

  std::shared_ptr<ModelState> model_;
  const Graph& graph_;
  const dnnl::engine& engine_;
  const int64_t batch_;
  const memory::data_type compute_type_;  // of convolutions, inner products and their weights
  const bool int8_;
  std::unordered_set<std::string> fp32_values_;
  // INT8: the ops reading each value (as any input).
  std::unordered_map<std::string, std::vector<const LoweredOp*>> consumers_;
  std::unordered_map<std::string, Dims> shapes_;
  std::unordered_map<std::string, ValueInfo> values_;
  std::vector<Buffer> buffers_ = {Buffer{BufKind::kScratch}};
  const int scratchpad_buffer_ = 0;
  size_t scratchpad_bytes_ = 0;
  std::vector<Step> steps_;
};

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_BUILDER_H_
