#include "engine/backend/dnnl/dnnl_lower.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace cnnserve::dnnl_internal {
namespace {

std::string NodeLabel(const Node& node) {
  return "node '" + node.name + "' (" + std::string(OpTypeName(node.type)) + ")";
}

Status Unsupported(const Node& node, const std::string& what) {
  return UnimplementedError(NodeLabel(node) + ": " + what + " is not supported by the oneDNN backend");
}

// True when a constant of `dims`, broadcast (right-aligned) against a value of rank `rank`, varies at most
// along `axis`, where it has extent `channels` or 1: it is then a per-channel bias.
bool IsPerChannel(const Dims& dims, size_t rank, size_t axis, int64_t channels) {
  if (dims.size() > rank) return false;
  const size_t offset = rank - dims.size();
  for (size_t i = 0; i < dims.size(); ++i) {
    const size_t pos = offset + i;
    if (dims[i] == 1) continue;
    if (pos != axis || dims[i] != channels) return false;
  }
  return true;
}

class Lowerer {
 public:
  explicit Lowerer(const Graph& graph) : graph_(graph) {
    for (const Node& node : graph_.nodes()) {
      for (const std::string& input : node.inputs) {
        if (!input.empty()) consumers_[input].push_back(&node);
      }
    }
  }

  StatusOr<std::vector<LoweredOp>> Run() {
    std::vector<LoweredOp> ops;
    for (const Node& node : graph_.nodes()) {
      if (absorbed_.count(&node) != 0) continue;
      LoweredOp op;
      op.node = &node;
      op.name = node.name;
      if (node.outputs.empty() || node.outputs[0].empty()) return Unsupported(node, "a node without output");
      op.dst = node.outputs[0];
      if (node.inputs.empty() || node.inputs[0].empty()) return Unsupported(node, "a node without input");
      op.src = node.inputs[0];
      CNN_RETURN_IF_ERROR(Lower(node, op));
      ops.push_back(std::move(op));
    }
    return ops;
  }

 private:
  const Dims& DimsOf(const std::string& value) const {
    const Tensor* constant = graph_.constant(value);
    return constant != nullptr ? constant->dims() : graph_.dims(value);
  }

  // The node that is the only reader of `value` (and reads it once), or nullptr; never the graph output.
  const Node* SoleConsumer(const std::string& value) const {
    if (value == graph_.output_name()) return nullptr;
    auto it = consumers_.find(value);
    if (it == consumers_.end() || it->second.size() != 1) return nullptr;
    return it->second[0];
  }

  void Absorb(const Node& node, LoweredOp& op) {
    absorbed_.insert(&node);
    op.name += "+" + node.name;
    op.dst = node.outputs[0];
  }

  // Folds what follows `op`'s main node: a constant per-channel Add into `op.bias` (when `allow_bias`), then a
  // Relu as a post-op. `channel_axis`/`channels` locate the bias axis in the output.
  void FuseEpilogue(LoweredOp& op, size_t channel_axis, int64_t channels, bool allow_bias) {
    const Node* next = SoleConsumer(op.dst);
    if (allow_bias && next != nullptr && next->type == OpType::kAdd && next->inputs.size() == 2 &&
        next->outputs.size() == 1) {
      const std::string& other = next->inputs[0] == op.dst ? next->inputs[1] : next->inputs[0];
      const Tensor* constant = graph_.constant(other);
      const size_t rank = graph_.dims(op.dst).size();
      if (constant != nullptr && IsPerChannel(constant->dims(), rank, channel_axis, channels)) {
        if (op.bias.empty()) op.bias.assign(static_cast<size_t>(channels), 0.0f);
        const bool scalar = constant->size() == 1;
        for (int64_t c = 0; c < channels; ++c) op.bias[c] += scalar ? (*constant)[0] : (*constant)[c];
        Absorb(*next, op);
        next = SoleConsumer(op.dst);
      }
    }
    if (next != nullptr && next->type == OpType::kRelu && next->outputs.size() == 1) {
      op.relu = true;
      Absorb(*next, op);
    }
  }

  Status Lower(const Node& node, LoweredOp& op) {
    switch (node.type) {
      case OpType::kConv:
        return LowerConv(node, op);
      case OpType::kGemm:
        return LowerGemm(node, op);
      case OpType::kMatMul:
        return LowerMatMul(node, op);
      case OpType::kRelu:
        op.kind = LoweredKind::kRelu;
        return OkStatus();
      case OpType::kMaxPool:
      case OpType::kAveragePool:
      case OpType::kGlobalAveragePool:
        op.kind = LoweredKind::kPool;
        if (node.type != OpType::kGlobalAveragePool && !std::holds_alternative<PoolAttrs>(node.attrs)) {
          return Unsupported(node, "missing pooling attributes");
        }
        if (graph_.dims(op.src).size() < 3) return Unsupported(node, "pooling of a rank < 3 input");
        return OkStatus();
      case OpType::kLrn:
        op.kind = LoweredKind::kLrn;
        if (!std::holds_alternative<LrnAttrs>(node.attrs)) return Unsupported(node, "missing LRN attributes");
        if (graph_.dims(op.src).size() < 2) return Unsupported(node, "LRN of a rank < 2 input");
        return LowerLrn(node, op);
      case OpType::kSoftmax:
        op.kind = LoweredKind::kSoftmax;
        if (!std::holds_alternative<SoftmaxAttrs>(node.attrs)) {
          return Unsupported(node, "missing softmax attributes");
        }
        return OkStatus();
      case OpType::kBatchNormalization:
        return LowerBatchNorm(node, op);
      case OpType::kAdd:
        op.kind = LoweredKind::kAdd;
        if (node.inputs.size() != 2 || node.inputs[1].empty()) return Unsupported(node, "Add without 2 inputs");
        op.src2 = node.inputs[1];
        FuseEpilogue(op, 0, 0, /*allow_bias=*/false);
        return OkStatus();
      case OpType::kFlatten:
      case OpType::kReshape:
        op.kind = LoweredKind::kView;
        return OkStatus();
      case OpType::kIdentity:
      case OpType::kDropout:
        op.kind = LoweredKind::kAlias;
        for (size_t i = 1; i < node.outputs.size(); ++i) {
          if (!node.outputs[i].empty() &&
              (consumers_.count(node.outputs[i]) != 0 || node.outputs[i] == graph_.output_name())) {
            return Unsupported(node, "reading the Dropout mask output");
          }
        }
        return OkStatus();
    }
    return Unsupported(node, "this op");
  }

  Status LowerConv(const Node& node, LoweredOp& op) {
    op.kind = LoweredKind::kConv;
    if (!std::holds_alternative<ConvAttrs>(node.attrs)) return Unsupported(node, "missing Conv attributes");
    if (node.inputs.size() < 2) return Unsupported(node, "Conv without weights");
    const Tensor* weights = graph_.constant(node.inputs[1]);
    if (weights == nullptr) return Unsupported(node, "non-constant weights '" + node.inputs[1] + "'");
    if (graph_.is_constant(op.src)) return Unsupported(node, "a constant data input");
    const Dims& src_dims = graph_.dims(op.src);
    if (src_dims.size() < 3 || src_dims.size() > 5 || weights->rank() != static_cast<int64_t>(src_dims.size())) {
      return Unsupported(node, "Conv of rank " + std::to_string(src_dims.size()));
    }
    SetWeights(op, *weights);
    const int64_t out_channels = op.weights_dims[0];
    if (node.inputs.size() > 2 && !node.inputs[2].empty()) {
      const Tensor* bias = graph_.constant(node.inputs[2]);
      if (bias == nullptr) return Unsupported(node, "non-constant bias '" + node.inputs[2] + "'");
      if (bias->size() != out_channels) return Unsupported(node, "bias size " + std::to_string(bias->size()));
      op.bias.assign(bias->data(), bias->data() + bias->size());
    }
    FuseEpilogue(op, 1, out_channels, /*allow_bias=*/true);
    return OkStatus();
  }

  Status LowerGemm(const Node& node, LoweredOp& op) {
    const auto* attrs = std::get_if<GemmAttrs>(&node.attrs);
    if (attrs == nullptr) return Unsupported(node, "missing Gemm attributes");
    if (node.inputs.size() < 2 || node.inputs[1].empty()) return Unsupported(node, "Gemm without B");
    const std::string& b_name = node.inputs[1];
    const std::string c_name = node.inputs.size() > 2 ? node.inputs[2] : std::string();
    const Dims& a_dims = DimsOf(op.src);
    const Dims& b_dims = DimsOf(b_name);
    if (a_dims.size() != 2 || b_dims.size() != 2) return Unsupported(node, "Gemm with non 2-D A or B");
    const int64_t n = attrs->trans_b ? b_dims[0] : b_dims[1];
    const Tensor* b = graph_.constant(b_name);
    const Tensor* c = c_name.empty() ? nullptr : graph_.constant(c_name);
    const bool c_is_bias = c_name.empty() || (c != nullptr && IsPerChannel(c->dims(), 2, 1, n));
    if (b != nullptr && !attrs->trans_a && !graph_.is_constant(op.src) && c_is_bias) {
      op.kind = LoweredKind::kFc;
      SetWeights(op, *b);
      op.weights_kn = !attrs->trans_b;
      if (attrs->alpha != 1.0f) {
        op.owned_weights.assign(b->data(), b->data() + b->size());
        for (float& w : op.owned_weights) w *= attrs->alpha;
        b->ReleasePages(0, b->size());  // a mapped file's pages: the scaled copy is what the plans read
      }
      if (c != nullptr) {
        op.bias.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) op.bias[i] = attrs->beta * (*c)[c->size() == 1 ? 0 : i];
      }
      FuseEpilogue(op, 1, n, /*allow_bias=*/true);
      return OkStatus();
    }
    op.kind = LoweredKind::kMatMul;
    op.alpha = attrs->alpha;
    op.trans_a = attrs->trans_a;
    op.trans_b = attrs->trans_b;
    if (b != nullptr) {
      SetWeights(op, *b);
    } else {
      op.src2 = b_name;
    }
    if (!c_name.empty() && attrs->beta != 0.0f) {
      if (c != nullptr) {
        op.c_dims = c->dims();
        op.c_const.assign(c->data(), c->data() + c->size());
        for (float& v : op.c_const) v *= attrs->beta;
      } else if (attrs->beta == 1.0f) {
        op.c_value = c_name;
        op.c_dims = graph_.dims(c_name);
      } else {
        return Unsupported(node, "beta != 1 with a non-constant C");
      }
      if (op.c_dims.size() > 2) return Unsupported(node, "C of rank > 2");
    }
    FuseEpilogue(op, 0, 0, /*allow_bias=*/false);
    return OkStatus();
  }

  Status LowerMatMul(const Node& node, LoweredOp& op) {
    if (node.inputs.size() != 2 || node.inputs[1].empty()) return Unsupported(node, "MatMul without 2 inputs");
    const std::string& b_name = node.inputs[1];
    const Tensor* b = graph_.constant(b_name);
    const Dims& a_dims = DimsOf(op.src);
    if (b != nullptr && b->rank() == 2 && a_dims.size() >= 2 && !graph_.is_constant(op.src)) {
      op.kind = LoweredKind::kFc;
      SetWeights(op, *b);
      op.weights_kn = true;
      FuseEpilogue(op, graph_.dims(op.dst).size() - 1, b->dims()[1], /*allow_bias=*/true);
      return OkStatus();
    }
    op.kind = LoweredKind::kMatMul;
    if (b != nullptr) {
      SetWeights(op, *b);
    } else {
      op.src2 = b_name;
    }
    FuseEpilogue(op, 0, 0, /*allow_bias=*/false);
    return OkStatus();
  }

  // oneDNN centres even-sized LRN windows differently from ONNX (c - floor((size-1)/2) .. c + ceil((size-1)/2)),
  // so an even size runs as x * (bias + W x^2)^-beta with W the banded [C, C] matrix of alpha/size (a 1x1 conv).
  Status LowerLrn(const Node& node, LoweredOp& op) {
    const auto& attrs = std::get<LrnAttrs>(node.attrs);
    if (attrs.size < 1) return Unsupported(node, "LRN size " + std::to_string(attrs.size));
    if (attrs.size % 2 == 1) return OkStatus();
    const int64_t channels = graph_.dims(op.src)[1];
    const int64_t before = (attrs.size - 1) / 2;
    const int64_t after = attrs.size - 1 - before;
    op.weights_dims = {channels, channels, 1, 1};
    op.owned_weights.assign(static_cast<size_t>(channels * channels), 0.0f);
    for (int64_t o = 0; o < channels; ++o) {
      for (int64_t i = std::max<int64_t>(0, o - before); i <= std::min(channels - 1, o + after); ++i) {
        op.owned_weights[o * channels + i] = attrs.alpha / static_cast<float>(attrs.size);
      }
    }
    op.bias.assign(static_cast<size_t>(channels), attrs.bias);
    return OkStatus();
  }

  Status LowerBatchNorm(const Node& node, LoweredOp& op) {
    op.kind = LoweredKind::kBatchNorm;
    if (node.inputs.size() != 5) return Unsupported(node, "BatchNormalization without 5 inputs");
    const Dims& src_dims = graph_.dims(op.src);
    if (src_dims.size() < 2) return Unsupported(node, "BatchNormalization of a rank < 2 input");
    const float* params[4];
    for (int i = 0; i < 4; ++i) {
      const Tensor* t = graph_.constant(node.inputs[i + 1]);
      if (t == nullptr) return Unsupported(node, "non-constant parameter '" + node.inputs[i + 1] + "'");
      if (t->size() != src_dims[1]) return Unsupported(node, "parameter size " + std::to_string(t->size()));
      params[i] = t->data();
    }
    op.bn_scale = params[0];
    op.bn_shift = params[1];
    op.bn_mean = params[2];
    op.bn_var = params[3];
    if (const auto* attrs = std::get_if<BatchNormAttrs>(&node.attrs)) op.epsilon = attrs->epsilon;
    return OkStatus();
  }

  const Graph& graph_;
  std::unordered_map<std::string, std::vector<const Node*>> consumers_;
  std::unordered_set<const Node*> absorbed_;
};

}  // namespace

void SetWeights(LoweredOp& op, const Tensor& tensor) {
  op.weights = tensor.data();
  op.weights_dims = tensor.dims();
  op.view = tensor.is_view() ? &tensor : nullptr;
}

StatusOr<std::vector<LoweredOp>> LowerGraph(const Graph& graph) { return Lowerer(graph).Run(); }

}  // namespace cnnserve::dnnl_internal
