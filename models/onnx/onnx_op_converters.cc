// The per-op part of GraphImporter (see onnx_graph_importer.h): what each ONNX op's inputs, outputs and
// attributes become in the engine's Node, and the table from ONNX op name to converter.
#include <optional>
#include <unordered_map>
#include <utility>

#include "models/onnx/onnx_graph_importer.h"
#include "models/onnx/onnx_messages.h"

namespace cnnserve::onnx_import {

const GraphImporter::ConverterEntry* GraphImporter::FindConverter(std::string_view op_type) {
  static const std::unordered_map<std::string_view, ConverterEntry> kConverters = {
      {"Conv", ConverterEntry{OpType::kConv, &GraphImporter::ConvertConv}},
      {"Relu", ConverterEntry{OpType::kRelu, &GraphImporter::ConvertUnary}},
      {"MaxPool", ConverterEntry{OpType::kMaxPool, &GraphImporter::ConvertMaxPool}},
      {"AveragePool", ConverterEntry{OpType::kAveragePool, &GraphImporter::ConvertAveragePool}},
      {"GlobalAveragePool", ConverterEntry{OpType::kGlobalAveragePool, &GraphImporter::ConvertUnary}},
      {"LRN", ConverterEntry{OpType::kLrn, &GraphImporter::ConvertLrn}},
      {"Gemm", ConverterEntry{OpType::kGemm, &GraphImporter::ConvertGemm}},
      {"MatMul", ConverterEntry{OpType::kMatMul, &GraphImporter::ConvertBinary}},
      {"Add", ConverterEntry{OpType::kAdd, &GraphImporter::ConvertBinary}},
      {"Flatten", ConverterEntry{OpType::kFlatten, &GraphImporter::ConvertFlatten}},
      {"Reshape", ConverterEntry{OpType::kReshape, &GraphImporter::ConvertReshape}},
      {"Dropout", ConverterEntry{OpType::kDropout, &GraphImporter::ConvertDropout}},
      {"Softmax", ConverterEntry{OpType::kSoftmax, &GraphImporter::ConvertSoftmax}},
      {"BatchNormalization", ConverterEntry{OpType::kBatchNormalization, &GraphImporter::ConvertBatchNorm}},
      {"Identity", ConverterEntry{OpType::kIdentity, &GraphImporter::ConvertUnary}},
  };
  auto it = kConverters.find(op_type);
  return it == kConverters.end() ? nullptr : &it->second;
}

Status GraphImporter::CheckInputCount(const NodeContext& ctx, const Node& node, size_t min, size_t max) {
  if (node.inputs.size() < min || node.inputs.size() > max) {
    const std::string want = min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
    return ctx.Error(StatusCode::kInvalidArgument,
                     "expects " + want + " inputs, got " + std::to_string(node.inputs.size()));
  }
  for (size_t i = 0; i < min; ++i) {
    if (node.inputs[i].empty()) {
      return ctx.Error(StatusCode::kInvalidArgument, "required input " + std::to_string(i) + " is empty");
    }
  }
  return OkStatus();
}

Status GraphImporter::CheckExtraOutputs(const NodeContext& ctx, int first, bool allow_unread) const {
  const onnx::NodeProto& proto = ctx.proto();
  for (int i = first; i < proto.output_size(); ++i) {
    const std::string& output = proto.output(i);
    if (output.empty() || (allow_unread && read_.count(output) == 0)) continue;
    return ctx.Error(StatusCode::kUnimplemented, "output " + std::to_string(i) + " (" + Quote(output) +
                                                     ") is not supported" +
                                                     (allow_unread ? " (only when nothing reads it)" : ""));
  }
  return OkStatus();
}

StatusOr<std::vector<int64_t>> GraphImporter::ConstantInt64Input(const NodeContext& ctx, const Node& node,
                                                                 size_t index, const std::string& role) {
  const std::string& name = node.inputs[index];
  const std::string label = "input " + std::to_string(index) + " (" + role + ", " + Quote(name) + ")";
  std::optional<ConstantSource> source = FindConstant(name);
  if (!source) {
    return ctx.Error(StatusCode::kUnimplemented,
                     label + " must be a constant (an initializer or a Constant node output)");
  }
  if (source->bound_int64 != nullptr) return *source->bound_int64;
  if (source->bound != nullptr)
    return ctx.Error(StatusCode::kInvalidArgument, label + " is bound to a float tensor");
  StatusOr<std::vector<int64_t>> values = Int64VectorFromProto(*source->proto, label);
  if (!values.ok()) return ctx.Error(values.status().code(), values.status().message());
  return values;
}

Status GraphImporter::ConvertUnary(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertBinary(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 2));
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertConv(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 3));
  ConvAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetAutoPad(&attrs.auto_pad));
  CNN_RETURN_IF_ERROR(ctx.GetInt("group", &attrs.group));
  CNN_RETURN_IF_ERROR(ctx.GetInts("kernel_shape", &attrs.kernel_shape));
  CNN_RETURN_IF_ERROR(ctx.GetInts("strides", &attrs.strides));
  CNN_RETURN_IF_ERROR(ctx.GetInts("pads", &attrs.pads));
  CNN_RETURN_IF_ERROR(ctx.GetInts("dilations", &attrs.dilations));
  node->attrs = std::move(attrs);
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::GetPoolCommon(NodeContext& ctx, PoolAttrs* attrs) {
  if (!ctx.Has("kernel_shape")) {
    return ctx.Error(StatusCode::kInvalidArgument, "attribute \"kernel_shape\" is required");
  }
  CNN_RETURN_IF_ERROR(ctx.GetAutoPad(&attrs->auto_pad));
  CNN_RETURN_IF_ERROR(ctx.GetInts("kernel_shape", &attrs->kernel_shape));
  CNN_RETURN_IF_ERROR(ctx.GetInts("strides", &attrs->strides));
  CNN_RETURN_IF_ERROR(ctx.GetInts("pads", &attrs->pads));
  return ctx.GetBool("ceil_mode", &attrs->ceil_mode, /*since=*/10);
}

Status GraphImporter::ConvertMaxPool(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  PoolAttrs attrs;
  CNN_RETURN_IF_ERROR(GetPoolCommon(ctx, &attrs));
  CNN_RETURN_IF_ERROR(ctx.GetInts("dilations", &attrs.dilations, /*since=*/10));
  // storage_order only changes the Indices output, which must be unread (checked below).
  bool column_major = false;
  CNN_RETURN_IF_ERROR(ctx.GetBool("storage_order", &column_major, /*since=*/8));
  node->attrs = std::move(attrs);
  return CheckExtraOutputs(ctx, 1, /*allow_unread=*/true);
}

Status GraphImporter::ConvertAveragePool(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  PoolAttrs attrs;
  CNN_RETURN_IF_ERROR(GetPoolCommon(ctx, &attrs));
  CNN_RETURN_IF_ERROR(ctx.GetBool("count_include_pad", &attrs.count_include_pad));
  node->attrs = std::move(attrs);
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertLrn(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  if (!ctx.Has("size")) return ctx.Error(StatusCode::kInvalidArgument, "attribute \"size\" is required");
  LrnAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetInt("size", &attrs.size));
  CNN_RETURN_IF_ERROR(ctx.GetFloat("alpha", &attrs.alpha));
  CNN_RETURN_IF_ERROR(ctx.GetFloat("beta", &attrs.beta));
  CNN_RETURN_IF_ERROR(ctx.GetFloat("bias", &attrs.bias));
  node->attrs = attrs;
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertGemm(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 3));
  GemmAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetFloat("alpha", &attrs.alpha));
  CNN_RETURN_IF_ERROR(ctx.GetFloat("beta", &attrs.beta));
  CNN_RETURN_IF_ERROR(ctx.GetBool("transA", &attrs.trans_a));
  CNN_RETURN_IF_ERROR(ctx.GetBool("transB", &attrs.trans_b));
  node->attrs = attrs;
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertFlatten(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  FlattenAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetInt("axis", &attrs.axis));
  node->attrs = attrs;
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertReshape(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 2));
  ReshapeAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetBool("allowzero", &attrs.allow_zero, /*since=*/14));
  CNN_ASSIGN_OR_RETURN(attrs.shape, ConstantInt64Input(ctx, *node, 1, "shape"));
  node->inputs.resize(1);
  node->attrs = std::move(attrs);
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertDropout(NodeContext& ctx, Node* node) {
  constexpr int64_t kInputsSince = 12;  // ratio and training_mode became inputs in Dropout-12
  if (ctx.opset() < kInputsSince) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  } else {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 3));
  }
  // Neither changes inference results; they are read so that their types are checked.
  float ratio = 0.5f;
  CNN_RETURN_IF_ERROR(ctx.GetFloat("ratio", &ratio, kAnyOpset, /*until=*/kInputsSince - 1));
  int64_t seed = 0;
  CNN_RETURN_IF_ERROR(ctx.GetInt("seed", &seed, /*since=*/kInputsSince));
  if (node->inputs.size() > 1 && !node->inputs[1].empty()) {
    std::optional<ConstantSource> source = FindConstant(node->inputs[1]);
    if (!source) {
      return ctx.Error(StatusCode::kUnimplemented,
                       "input 1 (ratio, " + Quote(node->inputs[1]) + ") must be a constant or absent");
    }
  }
  if (node->inputs.size() > 2 && !node->inputs[2].empty()) {
    const std::string label = "input 2 (training_mode, " + Quote(node->inputs[2]) + ")";
    std::optional<ConstantSource> source = FindConstant(node->inputs[2]);
    if (!source || source->proto == nullptr) {
      return ctx.Error(StatusCode::kUnimplemented, label + " must be a constant BOOL or absent");
    }
    StatusOr<bool> training = BoolScalarFromProto(*source->proto, label);
    if (!training.ok()) return ctx.Error(training.status().code(), training.status().message());
    if (*training) {
      return ctx.Error(StatusCode::kUnimplemented, label + " is true: training mode is not supported");
    }
  }
  node->inputs.resize(1);
  return CheckExtraOutputs(ctx, 1, /*allow_unread=*/true);
}

Status GraphImporter::ConvertSoftmax(NodeContext& ctx, Node* node) {
  constexpr int64_t kPerAxisSince = 13;
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
  SoftmaxAttrs attrs;
  attrs.coerce_2d = ctx.opset() < kPerAxisSince;
  attrs.axis = attrs.coerce_2d ? 1 : -1;
  CNN_RETURN_IF_ERROR(ctx.GetInt("axis", &attrs.axis));
  node->attrs = attrs;
  return CheckExtraOutputs(ctx, 1, false);
}

Status GraphImporter::ConvertBatchNorm(NodeContext& ctx, Node* node) {
  CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 5, 5));
  BatchNormAttrs attrs;
  CNN_RETURN_IF_ERROR(ctx.GetFloat("epsilon", &attrs.epsilon));
  float momentum = 0.9f;  // training only; read for its type
  CNN_RETURN_IF_ERROR(ctx.GetFloat("momentum", &momentum));
  int64_t spatial = 1;
  CNN_RETURN_IF_ERROR(ctx.GetInt("spatial", &spatial, kAnyOpset, /*until=*/8));
  if (spatial != 1) {
    return ctx.Error(StatusCode::kUnimplemented,
                     "attribute \"spatial\" value " + std::to_string(spatial) + " is not supported (only 1)");
  }
  bool training = false;
  CNN_RETURN_IF_ERROR(ctx.GetBool("training_mode", &training, /*since=*/14));
  if (training) {
    return ctx.Error(StatusCode::kUnimplemented,
                     "attribute \"training_mode\" value 1 is not supported (inference only)");
  }
  node->attrs = attrs;
  return CheckExtraOutputs(ctx, 1, false);
}

}  // namespace cnnserve::onnx_import
