#include "models/onnx/onnx_graph_importer.h"

#include <set>
#include <utility>

#include "models/onnx/onnx_messages.h"

namespace cnnserve::onnx_import {

StatusOr<GraphDef> GraphImporter::Import() {
  CNN_RETURN_IF_ERROR(CheckModel());
  CNN_RETURN_IF_ERROR(IndexValues());
  CNN_RETURN_IF_ERROR(ImportInputAndOutput());
  for (int i = 0; i < graph_.node_size(); ++i) {
    CNN_RETURN_IF_ERROR(ImportNode(i, graph_.mutable_node(i)));
  }
  CNN_RETURN_IF_ERROR(AddConstants());
  return std::move(def_);
}

Status GraphImporter::CheckModel() {
  if (model_.ir_version() < 3) {
    return UnimplementedError("IR version " + std::to_string(model_.ir_version()) +
                              " is not supported (IR version 3 or later, i.e. ONNX 1.0+, with opset imports)");
  }
  int64_t default_opset = -1;
  for (const onnx::OperatorSetIdProto& opset : model_.opset_import()) {
    if (opset.domain() != "" && opset.domain() != "ai.onnx") continue;  // checked where a node uses it
    if (default_opset >= 0 && default_opset != opset.version()) {
      return InvalidArgumentError("the default ONNX domain is imported twice (opsets " +
                                  std::to_string(default_opset) + " and " + std::to_string(opset.version()) + ")");
    }
    default_opset = opset.version();
  }
  if (default_opset < 0) return InvalidArgumentError("the model imports no opset of the default ONNX domain");
  if (default_opset < kMinOnnxOpset || default_opset > kMaxOnnxOpset) {
    return UnimplementedError(
        "opset " + std::to_string(default_opset) +
        " of the default ONNX domain is not supported (supported: " + std::to_string(kMinOnnxOpset) + " to " +
        std::to_string(kMaxOnnxOpset) + "); re-export the model with an opset in that range");
  }
  opset_ = default_opset;
  if (graph_.sparse_initializer_size() > 0) {
    return UnimplementedError("sparse initializer " + Quote(graph_.sparse_initializer(0).values().name()) +
                              " is not supported");
  }
  return OkStatus();
}

Status GraphImporter::IndexValues() {
  for (int i = 0; i < graph_.initializer_size(); ++i) {
    onnx::TensorProto* init = graph_.mutable_initializer(i);
    if (init->name().empty()) return InvalidArgumentError("initializer " + std::to_string(i) + " has no name");
    if (!initializers_.emplace(init->name(), init).second) {
      return InvalidArgumentError("initializer " + Quote(init->name()) + " is defined twice");
    }
  }
  std::unordered_map<std::string, const onnx::ValueInfoProto*> inputs;
  for (const onnx::ValueInfoProto& input : graph_.input()) {
    if (!inputs.emplace(input.name(), &input).second) {
      return InvalidArgumentError("graph input " + Quote(input.name()) + " is listed twice");
    }
  }
  for (const auto& [name, tensor] : options_.bind_inputs) {
    if (tensor == nullptr) return InvalidArgumentError("cannot bind " + Quote(name) + ": null tensor");
    CNN_RETURN_IF_ERROR(CheckBinding(inputs, name, tensor->dims(), onnx::TensorProto::FLOAT));
  }
  for (const auto& [name, values] : options_.bind_int64_inputs) {
    if (options_.bind_inputs.count(name) != 0) {
      return InvalidArgumentError("bind_inputs and bind_int64_inputs both bind " + Quote(name));
    }
    CNN_RETURN_IF_ERROR(
        CheckBinding(inputs, name, Dims{static_cast<int64_t>(values.size())}, onnx::TensorProto::INT64));
  }
  for (const onnx::NodeProto& node : graph_.node()) {
    for (const std::string& input : node.input()) read_.insert(input);
  }
  for (const onnx::ValueInfoProto& output : graph_.output()) read_.insert(output.name());
  return OkStatus();
}

Status GraphImporter::CheckBinding(const std::unordered_map<std::string, const onnx::ValueInfoProto*>& inputs,
                                   const std::string& name, const Dims& dims, int32_t data_type) const {
  auto it = inputs.find(name);
  if (it == inputs.end()) {
    std::vector<std::string> names;
    for (const onnx::ValueInfoProto& input : graph_.input()) names.push_back(input.name());
    return InvalidArgumentError("cannot bind " + Quote(name) +
                                ": not a graph input (inputs: " + JoinQuoted(names) + ")");
  }
  const onnx::TypeProto& type = it->second->type();
  if (!type.has_tensor_type()) return OkStatus();
  const onnx::TypeProto::Tensor& tensor_type = type.tensor_type();
  if (tensor_type.elem_type() != 0 && tensor_type.elem_type() != data_type) {
    return InvalidArgumentError("cannot bind " + Quote(name) + ": the input has element type " +
                                DataTypeName(tensor_type.elem_type()) + ", the bound tensor " +
                                DataTypeName(data_type));
  }
  if (!tensor_type.has_shape()) return OkStatus();
  bool static_dims = true;
  Dims declared;
  for (const onnx::TensorShapeProto::Dimension& dim : tensor_type.shape().dim()) {
    static_dims = static_dims && dim.has_dim_value();
    declared.push_back(dim.dim_value());
  }
  // A declared scalar matches a one-element bound vector (bind_int64_inputs cannot express rank 0).
  const bool scalar_match = declared.empty() && NumElements(dims) == 1;
  if (static_dims && declared != dims && !scalar_match) {
    return InvalidArgumentError("cannot bind " + Quote(name) + ": the input has dims " + DimsToString(declared) +
                                ", the bound tensor " + DimsToString(dims));
  }
  return OkStatus();
}

bool GraphImporter::IsBound(const std::string& name) const {
  return options_.bind_inputs.count(name) != 0 || options_.bind_int64_inputs.count(name) != 0;
}

Status GraphImporter::ImportInputAndOutput() {
  def_.name = graph_.name();
  CNN_RETURN_IF_ERROR(ImportInput());
  CNN_RETURN_IF_ERROR(ImportOutput());
  defined_.insert(def_.input);
  for (const auto& [name, init] : initializers_) defined_.insert(name);
  for (const auto& [name, tensor] : options_.bind_inputs) defined_.insert(name);
  for (const auto& [name, values] : options_.bind_int64_inputs) defined_.insert(name);
  return OkStatus();
}

Status GraphImporter::ImportInput() {
  std::vector<const onnx::ValueInfoProto*> runtime;
  for (const onnx::ValueInfoProto& input : graph_.input()) {
    if (initializers_.count(input.name()) == 0 && !IsBound(input.name())) runtime.push_back(&input);
  }
  if (runtime.size() != 1) {
    std::vector<std::string> names;
    for (const onnx::ValueInfoProto* input : runtime) names.push_back(input->name());
    return UnimplementedError(
        "the graph must have exactly one runtime input (not an initializer, not bound), "
        "it has " +
        std::to_string(runtime.size()) + (names.empty() ? "" : ": " + JoinQuoted(names)));
  }
  const onnx::ValueInfoProto& input = *runtime[0];
  const std::string label = "graph input " + Quote(input.name());
  if (input.name().empty()) return InvalidArgumentError("the graph input has no name");
  if (!input.type().has_tensor_type()) {
    return UnimplementedError(label + " is not a tensor (sequence, map and optional types are not supported)");
  }
  const onnx::TypeProto::Tensor& type = input.type().tensor_type();
  if (type.elem_type() != onnx::TensorProto::FLOAT) {
    return UnimplementedError(label + " has element type " + DataTypeName(type.elem_type()) +
                              "; only FLOAT inputs are supported");
  }
  if (!type.has_shape()) return UnimplementedError(label + " has no declared shape");
  if (type.shape().dim_size() == 0) return UnimplementedError(label + " is a scalar; inputs need rank >= 1");
  for (int i = 0; i < type.shape().dim_size(); ++i) {
    const onnx::TensorShapeProto::Dimension& dim = type.shape().dim(i);
    const bool known = dim.has_dim_value() && dim.dim_value() > 0;
    if (i == 0) {
      def_.input_dims.push_back(known ? dim.dim_value() : -1);
      continue;
    }
    if (!known) {
      const std::string what = dim.has_dim_param()   ? "symbolic (" + Quote(dim.dim_param()) + ")"
                               : dim.has_dim_value() ? std::to_string(dim.dim_value())
                                                     : "unknown";
      return UnimplementedError(label + ": dimension " + std::to_string(i) + " is " + what +
                                "; only dimension 0 (the batch) may be dynamic");
    }
    def_.input_dims.push_back(dim.dim_value());
  }
  Dims check = def_.input_dims;
  check[0] = 1;
  CNN_RETURN_IF_ERROR(ValidateDims(check).WithContext(label));
  def_.input = input.name();
  return OkStatus();
}

Status GraphImporter::ImportOutput() {
  if (graph_.output_size() != 1) {
    std::vector<std::string> names;
    for (const onnx::ValueInfoProto& output : graph_.output()) names.push_back(output.name());
    return UnimplementedError("the graph must have exactly one output, it has " +
                              std::to_string(graph_.output_size()) +
                              (names.empty() ? "" : ": " + JoinQuoted(names)));
  }
  const onnx::ValueInfoProto& output = graph_.output(0);
  if (output.name().empty()) return InvalidArgumentError("the graph output has no name");
  if (output.type().has_tensor_type() && output.type().tensor_type().elem_type() != onnx::TensorProto::FLOAT) {
    return UnimplementedError("graph output " + Quote(output.name()) + " has element type " +
                              DataTypeName(output.type().tensor_type().elem_type()) +
                              "; only FLOAT outputs are supported");
  }
  if (output.type().has_sequence_type() || output.type().has_optional_type() || output.type().has_map_type()) {
    return UnimplementedError("graph output " + Quote(output.name()) + " is not a tensor");
  }
  def_.output = output.name();
  return OkStatus();
}

std::string GraphImporter::UniqueNodeName(const onnx::NodeProto& proto, int index) {
  std::string base = proto.name().empty() ? proto.op_type() + "_" + std::to_string(index) : proto.name();
  std::string name = base;
  for (int k = 2; !node_names_.insert(name).second; ++k) name = base + "#" + std::to_string(k);
  return name;
}

Status GraphImporter::ImportNode(int index, onnx::NodeProto* proto) {
  NodeContext ctx(UniqueNodeName(*proto, index), *proto, opset_);
  if (!proto->domain().empty() && proto->domain() != "ai.onnx") {
    return ctx.Error(StatusCode::kUnimplemented,
                     "domain " + Quote(proto->domain()) + " is not supported (only the default ONNX domain)");
  }
  CNN_RETURN_IF_ERROR(ctx.Init());
  if (proto->output_size() < 1 || proto->output(0).empty()) {
    return ctx.Error(StatusCode::kInvalidArgument, "has no output");
  }
  for (const std::string& output : proto->output()) {
    if (!output.empty() && !defined_.insert(output).second) {
      return ctx.Error(StatusCode::kInvalidArgument, "output " + Quote(output) + " is already defined");
    }
  }
  if (proto->op_type() == "Constant") {
    CNN_RETURN_IF_ERROR(ImportConstantNode(ctx, proto));
    return ctx.CheckAllUsed();
  }
  if (FoldConstantIdentity(*proto)) return ctx.CheckAllUsed();
  const ConverterEntry* converter = FindConverter(proto->op_type());
  if (converter == nullptr) {
    return ctx.Error(StatusCode::kUnimplemented,
                     "op " + Quote(proto->op_type()) +
                         " is not supported (supported: Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, LRN, "
                         "Gemm, MatMul, Add, Flatten, Reshape, Dropout, Softmax, BatchNormalization, Identity, "
                         "Constant)");
  }
  Node node;
  node.name = ctx.name();
  node.type = converter->type;
  for (const std::string& input : proto->input()) {
    auto alias = constant_aliases_.find(input);
    node.inputs.push_back(alias == constant_aliases_.end() ? input : alias->second);
  }
  // Trailing empty names are absent optional inputs: drop them.
  while (!node.inputs.empty() && node.inputs.back().empty()) node.inputs.pop_back();
  node.outputs.push_back(proto->output(0));
  CNN_RETURN_IF_ERROR((this->*(converter->convert))(ctx, &node));
  CNN_RETURN_IF_ERROR(ctx.CheckAllUsed());
  def_.nodes.push_back(std::move(node));
  return OkStatus();
}

bool GraphImporter::FoldConstantIdentity(const onnx::NodeProto& proto) {
  if (proto.op_type() != "Identity" || proto.input_size() != 1 || proto.output_size() != 1) return false;
  if (proto.output(0) == def_.output) return false;  // the graph needs a node that produces its output
  std::string source = proto.input(0);
  if (auto alias = constant_aliases_.find(source); alias != constant_aliases_.end()) source = alias->second;
  if (!FindConstant(source)) return false;
  constant_aliases_[proto.output(0)] = source;
  return true;
}

Status GraphImporter::ImportConstantNode(NodeContext& ctx, onnx::NodeProto* proto) {
  if (proto->input_size() != 0) return ctx.Error(StatusCode::kInvalidArgument, "a Constant takes no inputs");
  CNN_RETURN_IF_ERROR(CheckExtraOutputs(ctx, 1, false));
  const std::string& output = proto->output(0);
  int given = 0;
  for (const onnx::AttributeProto& attr : proto->attribute()) {
    given += attr.name().rfind("value", 0) == 0 || attr.name() == "sparse_value" ? 1 : 0;
  }
  if (given != 1) {
    return ctx.Error(StatusCode::kInvalidArgument,
                     "needs exactly one value attribute, has " + std::to_string(given));
  }
  onnx::TensorProto value;
  const bool dense = !ctx.Has("sparse_value") && !ctx.Has("value_string") && !ctx.Has("value_strings");
  if (ctx.Has("value")) {
    const onnx::AttributeProto* attr = ctx.Take("value");
    if (attr->type() != onnx::AttributeProto::TENSOR && attr->type() != onnx::AttributeProto::UNDEFINED) {
      return ctx.Error(StatusCode::kInvalidArgument,
                       "attribute \"value\" has type " + AttrTypeName(attr->type()) + ", expected TENSOR");
    }
    if (!attr->has_t()) return ctx.Error(StatusCode::kInvalidArgument, "attribute \"value\" holds no tensor");
    // Move the tensor out of the model (nothing reads it again) instead of copying it.
    for (onnx::AttributeProto& mutable_attr : *proto->mutable_attribute()) {
      if (&mutable_attr == attr) value.Swap(mutable_attr.mutable_t());
    }
  } else if (ctx.Has("value_float")) {
    float v = 0;
    CNN_RETURN_IF_ERROR(ctx.GetFloat("value_float", &v, /*since=*/12));
    value.set_data_type(onnx::TensorProto::FLOAT);
    value.add_float_data(v);
  } else if (ctx.Has("value_floats")) {
    std::vector<float> values;
    CNN_RETURN_IF_ERROR(ctx.GetFloats("value_floats", &values, /*since=*/12));
    value.set_data_type(onnx::TensorProto::FLOAT);
    value.add_dims(static_cast<int64_t>(values.size()));
    for (float v : values) value.add_float_data(v);
  } else if (ctx.Has("value_int")) {
    int64_t v = 0;
    CNN_RETURN_IF_ERROR(ctx.GetInt("value_int", &v, /*since=*/12));
    value.set_data_type(onnx::TensorProto::INT64);
    value.add_int64_data(v);
  } else if (ctx.Has("value_ints")) {
    std::vector<int64_t> values;
    CNN_RETURN_IF_ERROR(ctx.GetInts("value_ints", &values, /*since=*/12));
    value.set_data_type(onnx::TensorProto::INT64);
    value.add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) value.add_int64_data(v);
  }
  // Anything else (sparse_value, value_string(s)) stays unread and is reported by CheckAllUsed.
  if (dense) constant_outputs_.emplace(output, std::move(value));
  return OkStatus();
}

Status GraphImporter::AddConstants() {
  std::set<std::string> needed;
  for (const Node& node : def_.nodes) {
    for (const std::string& input : node.inputs) {
      if (!input.empty()) needed.insert(input);
    }
  }
  needed.insert(def_.output);
  for (const std::string& name : needed) {
    std::optional<ConstantSource> source = FindConstant(name);
    if (!source) continue;
    if (source->bound != nullptr) {
      def_.constants.emplace(name, *source->bound);
      continue;
    }
    if (source->bound_int64 != nullptr) {
      return InvalidArgumentError("value " + Quote(name) + " is bound to INT64 values but is read as a tensor");
    }
    const bool is_initializer = initializers_.count(name) != 0 && constant_outputs_.count(name) == 0;
    const std::string label = (is_initializer ? "initializer " : "constant ") + Quote(name);
    CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Tensor> tensor,
                         FloatConstantFromProto(source->proto, label, external_));
    def_.constants.emplace(name, std::move(tensor));
  }
  return OkStatus();
}

std::optional<GraphImporter::ConstantSource> GraphImporter::FindConstant(const std::string& name) {
  ConstantSource source;
  if (auto it = options_.bind_inputs.find(name); it != options_.bind_inputs.end()) {
    source.bound = &it->second;
  } else if (auto it2 = options_.bind_int64_inputs.find(name); it2 != options_.bind_int64_inputs.end()) {
    source.bound_int64 = &it2->second;
  } else if (auto it3 = constant_outputs_.find(name); it3 != constant_outputs_.end()) {
    source.proto = &it3->second;
  } else if (auto it4 = initializers_.find(name); it4 != initializers_.end()) {
    source.proto = it4->second;
  } else {
    return std::nullopt;
  }
  return source;
}

}  // namespace cnnserve::onnx_import
