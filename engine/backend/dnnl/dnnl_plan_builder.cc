#include "engine/backend/dnnl/dnnl_plan_builder.h"

#include <algorithm>
#include <cstring>

#include "dnnl_debug.h"
#include "engine/backend/dnnl/dnnl_arena.h"

namespace cnnserve::dnnl_internal {

StatusOr<std::unique_ptr<Plan>> PlanBuilder::Build() {
  CNN_ASSIGN_OR_RETURN(shapes_, graph_.InferShapes(batch_));
  const std::string& input = graph_.input_name();
  ValueInfo& in = values_[input];
  in.dims = shapes_.at(input);
  in.ready = true;
  in.mem = MemRef{NewBuffer(BufKind::kUserIn, 0), PlainMd(in.dims)};
  MarkFp32Outputs();
  if (int8_) {
    for (const LoweredOp& op : model_->ops()) {
      for (const std::string* in : {&op.src, &op.src2, &op.c_value}) {
        if (!in->empty()) consumers_[*in].push_back(&op);
      }
    }
  }
  for (const LoweredOp& op : model_->ops()) {
    CNN_RETURN_IF_ERROR(Guarded(op.name, [&] { return Emit(op); }));
  }
  auto plan = std::make_unique<DnnlPlan>();
  CNN_RETURN_IF_ERROR(Guarded(graph_.output_name(), [&] { return Finalize(*plan); }));
  return std::unique_ptr<Plan>(std::move(plan));
}

void PlanBuilder::MarkFp32Outputs() {
  if (compute_type_ == kF32 && !int8_) return;
  // Walk back from the graph's output through the ops that keep their input's data type (ReLU, softmax,
  // views, aliases) to the layer that computes it: that layer writes fp32.
  std::unordered_map<std::string, const LoweredOp*> producer;
  for (const LoweredOp& op : model_->ops()) producer[op.dst] = &op;
  std::string value = graph_.output_name();
  while (fp32_values_.insert(value).second) {
    auto it = producer.find(value);
    if (it == producer.end()) break;
    const LoweredKind kind = it->second->kind;
    if (kind != LoweredKind::kRelu && kind != LoweredKind::kSoftmax && kind != LoweredKind::kView &&
        kind != LoweredKind::kAlias) {
      break;
    }
    value = it->second->src;
  }
}

memory::data_type PlanBuilder::DstType(const std::string& value) const {
  return fp32_values_.count(value) > 0 ? kF32 : compute_type_;
}

int PlanBuilder::NewBuffer(BufKind kind, size_t bytes, const void* data) {
  buffers_.push_back(Buffer{kind, bytes, data, 0});
  return static_cast<int>(buffers_.size()) - 1;
}

PlanBuilder::MemRef PlanBuilder::Weights(const LoweredOp& op, const Md& user_md, const Md& want) {
  memory mem = model_->Weights(op.name, user_md, op.weights_data(), want, op.weights_view());
  return MemRef{NewBuffer(BufKind::kConst, 0, mem.get_data_handle()), want};
}

const Dims& PlanBuilder::DimsOf(const std::string& value) {
  const Tensor* constant = graph_.constant(value);
  if (constant != nullptr) return constant->dims();
  auto it = values_.find(value);
  if (it != values_.end()) return it->second.dims;
  return shapes_.at(value);
}

void PlanBuilder::Define(const std::string& value, const MemRef& mem) {
  ValueInfo& v = values_[value];
  v.dims = shapes_.at(value);
  v.ready = true;
  v.mem = mem;
}

Status PlanBuilder::DefinePlain(const std::string& value, const MemRef& mem, const std::string& name) {
  const Dims& dims = shapes_.at(value);
  if (mem.md == PlainMd(mem.md.dims())) {
    Define(value, MemRef{mem.buffer, PlainMd(dims)});
    return OkStatus();
  }
  CNN_ASSIGN_OR_RETURN(MemRef plain, Reorder(mem, PlainMd(mem.md.dims()), name));
  Define(value, MemRef{plain.buffer, PlainMd(dims)});
  return OkStatus();
}

StatusOr<PlanBuilder::ValueInfo*> PlanBuilder::Value(const std::string& name) {
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

StatusOr<PlanBuilder::MemRef> PlanBuilder::Get(const std::string& name) {
  CNN_ASSIGN_OR_RETURN(ValueInfo * v, Value(name));
  if (v->ready) return v->mem;
  CNN_ASSIGN_OR_RETURN(MemRef src, GetPlain(v->view_of));
  v->mem = MemRef{src.buffer, PlainMd(v->dims)};
  v->ready = true;
  return v->mem;
}

StatusOr<PlanBuilder::MemRef> PlanBuilder::GetAs(const std::string& name, const Md& md) {
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

StatusOr<PlanBuilder::MemRef> PlanBuilder::GetPlain(const std::string& name) {
  CNN_ASSIGN_OR_RETURN(ValueInfo * v, Value(name));
  return GetAs(name, PlainMd(v->dims));
}

StatusOr<PlanBuilder::MemRef> PlanBuilder::Reorder(const MemRef& src, const Md& md, const std::string& value) {
  // Into int8: quantize to the value's calibrated scale (int8 to int8: keep the scale, adjusted to the other
  // type's range); from int8: dequantize.
  float dst_scale = 1.0f;
  if (IsInt8(md) && IsInt8(src.md)) {
    const auto type_max = [](const Md& m) { return m.data_type() == kU8 ? 255.0f : 127.0f; };
    dst_scale = src.scale * type_max(md) / type_max(src.md);
  } else if (IsInt8(md)) {
    const std::optional<Quant> quant = QuantOf(value);
    if (!quant) return InternalError("value '" + value + "' has no calibrated range for int8");
    dst_scale = quant->scale;
  }
  dnnl::primitive_attr attr = ScratchpadAttr();
  if (dst_scale != src.scale) attr.set_output_scales(0, {dst_scale / src.scale});
  dnnl::reorder::primitive_desc pd(engine_, src.md, engine_, md, attr);
  MemRef dst = NewActivation(md);
  dst.scale = dst_scale;
  AddStep("reorder " + value, pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
  return dst;
}

void PlanBuilder::AddStep(const std::string& node, const dnnl::primitive_desc_base& pd,
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
    if (arg == DNNL_ARG_SRC || arg == DNNL_ARG_FROM) {
      step.info.src = MdToString(mem.md);
      step.info.src_type = DataTypeName(mem.md);
    }
    if (arg == DNNL_ARG_WEIGHTS) {
      step.info.weights = MdToString(mem.md);
      step.info.weights_type = DataTypeName(mem.md);
      step.info.weights_data = buffers_[mem.buffer].data;
      step.info.weights_bytes = mem.md.get_size();
    }
    if (arg == DNNL_ARG_DST || arg == DNNL_ARG_TO) {
      step.info.dst = MdToString(mem.md);
      step.info.dst_type = DataTypeName(mem.md);
    }
  }
  step.args = std::move(args);
  steps_.push_back(std::move(step));
}

Status PlanBuilder::Emit(const LoweredOp& op) {
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

Status PlanBuilder::Finalize(DnnlPlan& plan) {
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

void PlanBuilder::AssignOffsets(DnnlPlan& plan) {
  std::vector<int> first(buffers_.size(), -1), last(buffers_.size(), -1);
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (const auto& [arg, ref] : steps_[i].args) {
      if (buffers_[ref.buffer].kind != BufKind::kSlot) continue;
      if (first[ref.buffer] < 0) first[ref.buffer] = static_cast<int>(i);
      last[ref.buffer] = static_cast<int>(i);
    }
  }
  std::vector<BufferLifetime> lifetimes;
  std::vector<int> slots;  // the buffer of each lifetime
  for (size_t b = 0; b < buffers_.size(); ++b) {
    if (first[b] < 0) continue;
    lifetimes.push_back(BufferLifetime{buffers_[b].bytes, first[b], last[b]});
    slots.push_back(static_cast<int>(b));
  }
  const ArenaLayout layout = PlanSharedArena(lifetimes, steps_.size());
  for (size_t s = 0; s < slots.size(); ++s) buffers_[slots[s]].offset = layout.offsets[s];
  size_t total = layout.bytes;
  plan.info_.activation_bytes = total;
  // Zero-bordered buffers and the scratchpad follow the shared part: their contents must not be overwritten.
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
  plan.arena_ = AllocateArena(total);
  for (const auto& [offset, bytes] : zeroed) std::memset(plan.arena_.get() + offset, 0, bytes);
}

}  // namespace cnnserve::dnnl_internal
