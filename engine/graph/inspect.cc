#include "engine/graph/inspect.h"

#include <algorithm>
#include <cstdio>
#include <unordered_map>

#include "engine/common/units.h"

namespace cnnserve {
namespace {

struct Field {
  int64_t rf_h = 1, rf_w = 1;      // receptive field
  int64_t jump_h = 1, jump_w = 1;  // input pixels between adjacent outputs
  bool global = false;
};

std::string WithCommas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string JsonDims(const Dims& d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); ++i) out += (i ? "," : "") + std::to_string(d[i]);
  return out + "]";
}

// "61.1 MB", "36.5 kB" (decimal units, as the weights' "MB").
std::string BytesLabel(int64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  constexpr double kMB = static_cast<double>(kBytesPerMB);
  constexpr double kKB = kMB / 1000;  // decimal kilobytes, as the MB
  if (b >= kMB) {
    std::snprintf(buf, sizeof(buf), "%.1f MB", b / kMB);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f kB", b / kKB);
  }
  return buf;
}

// Applies a sliding window (kernel, stride, dilation per spatial axis) to a receptive field.
Field Slide(const Field& in, const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
            const std::vector<int64_t>& dilations) {
  Field f = in;
  if (in.global || kernel.size() != 2) {
    f.global = in.global || kernel.size() != 2;
    return f;
  }
  auto eff = [&](size_t i) { return (kernel[i] - 1) * (dilations.size() > i ? dilations[i] : 1) + 1; };
  auto stride = [&](size_t i) { return strides.size() > i ? strides[i] : 1; };
  f.rf_h = in.rf_h + (eff(0) - 1) * in.jump_h;
  f.rf_w = in.rf_w + (eff(1) - 1) * in.jump_w;
  f.jump_h = in.jump_h * stride(0);
  f.jump_w = in.jump_w * stride(1);
  return f;
}

// Whether `type` writes a new activation tensor (see LayerStats).
bool WritesNewActivation(OpType type) {
  switch (type) {
    case OpType::kRelu:
    case OpType::kFlatten:
    case OpType::kReshape:
    case OpType::kIdentity:
    case OpType::kDropout:
      return false;
    default:
      return true;
  }
}

}  // namespace

std::string ShapeLabel(const Dims& d) {
  if (d.size() == 3) {  // C, H, W -> textbook H x W x C
    return std::to_string(d[1]) + "x" + std::to_string(d[2]) + "x" + std::to_string(d[0]);
  }
  return DimsToString(d);
}

GraphStats ComputeGraphStats(const Graph& graph) {
  GraphStats stats;
  stats.name = graph.name();
  stats.input_dims.assign(graph.input_dims().begin() + 1, graph.input_dims().end());
  std::unordered_map<std::string, Field> fields;
  fields[graph.input_name()] = Field{};
  for (const auto& [name, t] : graph.constants()) stats.weight_bytes += static_cast<int64_t>(t->bytes());
  stats.input_values = NumElements(stats.input_dims);
  stats.total_activation_values = stats.input_values;
  for (const Node& node : graph.nodes()) {
    LayerStats layer;
    layer.name = node.name;
    layer.output_name = node.outputs[0];
    layer.op = std::string(OpTypeName(node.type));
    const Dims& out = graph.dims(node.outputs[0]);
    layer.output_dims.assign(out.begin() + (out.empty() ? 0 : 1), out.end());
    for (const std::string& in : node.inputs) {
      if (const Tensor* t = graph.constant(in)) layer.params += t->size();
    }
    // Receptive field of the first non-constant input (max over them for elementwise ops).
    Field in_field;
    bool have_input = false;
    for (const std::string& in : node.inputs) {
      auto it = fields.find(in);
      if (it == fields.end()) continue;
      if (!have_input) {
        in_field = it->second;
        have_input = true;
      } else {
        in_field.rf_h = std::max(in_field.rf_h, it->second.rf_h);
        in_field.rf_w = std::max(in_field.rf_w, it->second.rf_w);
        in_field.global = in_field.global || it->second.global;
      }
    }
    Field f = in_field;
    const int64_t out_per_image = NumElements(layer.output_dims);
    switch (node.type) {
      case OpType::kConv: {
        const auto& a = std::get<ConvAttrs>(node.attrs);
        const Tensor* w = graph.constant(node.inputs[1]);
        int64_t per_output = 1;
        if (w != nullptr) {
          for (size_t i = 1; i < w->dims().size(); ++i) per_output *= w->dims()[i];
        }
        layer.macs = out_per_image * per_output;
        f = Slide(in_field, a.kernel_shape, a.strides, a.dilations);
        break;
      }
      case OpType::kMaxPool:
      case OpType::kAveragePool: {
        const auto& a = std::get<PoolAttrs>(node.attrs);
        f = Slide(in_field, a.kernel_shape, a.strides, a.dilations);
        break;
      }
      case OpType::kGemm: {
        const auto& a = std::get<GemmAttrs>(node.attrs);
        const Dims& ad = graph.is_constant(node.inputs[0]) ? graph.constant(node.inputs[0])->dims()
                                                           : graph.dims(node.inputs[0]);
        const int64_t k = ad.size() == 2 ? (a.trans_a ? ad[0] : ad[1]) : 0;
        layer.macs = out_per_image * k;
        f.global = true;
        break;
      }
      case OpType::kMatMul: {
        const Dims& ad = graph.is_constant(node.inputs[0]) ? graph.constant(node.inputs[0])->dims()
                                                           : graph.dims(node.inputs[0]);
        layer.macs = ad.empty() ? 0 : out_per_image * ad.back();
        f.global = true;
        break;
      }
      case OpType::kGlobalAveragePool:
      case OpType::kFlatten:
      case OpType::kReshape:
        f.global = true;
        break;
      default:
        break;
    }
    layer.global_receptive_field = f.global;
    layer.receptive_h = f.global ? 0 : f.rf_h;
    layer.receptive_w = f.global ? 0 : f.rf_w;
    for (const std::string& o : node.outputs) fields[o] = f;
    if (WritesNewActivation(node.type)) layer.activation_values = out_per_image;
    stats.total_activation_values += layer.activation_values;
    stats.total_params += layer.params;
    stats.total_macs += layer.macs;
    stats.layers.push_back(std::move(layer));
  }
  stats.total_activation_bytes = stats.total_activation_values * static_cast<int64_t>(sizeof(float));
  return stats;
}

std::string FormatStatsTable(const GraphStats& s) {
  std::string out;
  char line[640];
  std::snprintf(line, sizeof(line), "model %s, input %s (C x H x W)\n", s.name.c_str(),
                DimsToString(s.input_dims).c_str());
  out += line;
  size_t name_w = 5;
  for (const LayerStats& l : s.layers) name_w = std::max(name_w, l.name.size());
  name_w = std::min<size_t>(name_w, 48);
  const int w = static_cast<int>(name_w);
  const char* const row = "%-*s  %-18s  %-14s  %13s  %15s  %9s  %12s\n";
  const std::string rule(name_w + 18 + 14 + 13 + 15 + 9 + 12 + 12, '-');
  std::snprintf(line, sizeof(line), row, w, "layer", "op", "output HxWxC", "params", "mult-adds", "receptive",
                "activations");
  out += line + rule + "\n";
  std::snprintf(line, sizeof(line), row, w, "(input)", "", ShapeLabel(s.input_dims).c_str(), "", "", "",
                WithCommas(s.input_values).c_str());
  out += line;
  for (const LayerStats& l : s.layers) {
    std::string rf = l.global_receptive_field ? "global"
                                              : std::to_string(l.receptive_h) + "x" + std::to_string(l.receptive_w);
    const std::string act = l.activation_values ? WithCommas(l.activation_values)
                            : l.op == "Relu"    ? "(in place)"
                                                : "(view)";
    std::snprintf(line, sizeof(line), row, w, l.name.c_str(), l.op.c_str(), ShapeLabel(l.output_dims).c_str(),
                  WithCommas(l.params).c_str(), WithCommas(l.macs).c_str(), rf.c_str(), act.c_str());
    out += line;
  }
  out += rule + "\n";
  std::snprintf(line, sizeof(line), "total: %zu layers, %s parameters, %s mult-adds per image, %.1f MB of weights\n",
                s.layers.size(), WithCommas(s.total_params).c_str(), WithCommas(s.total_macs).c_str(),
                static_cast<double>(s.weight_bytes) / static_cast<double>(kBytesPerMB));
  out += line;
  std::snprintf(line, sizeof(line),
                "activations: %s values, %s per image in fp32 (the input and each new tensor once; ReLU in "
                "place, Flatten/Reshape/Dropout are views)\n",
                WithCommas(s.total_activation_values).c_str(), BytesLabel(s.total_activation_bytes).c_str());
  out += line;
  return out;
}

std::string FormatStatsJson(const GraphStats& s) {
  std::string out = "{\"model\":\"" + JsonEscape(s.name) + "\",\"input\":" + JsonDims(s.input_dims) + ",\"layers\":[";
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerStats& l = s.layers[i];
    out += i ? "," : "";
    out += "{\"name\":\"" + JsonEscape(l.name) + "\",\"output_name\":\"" + JsonEscape(l.output_name) + "\",\"op\":\"" + l.op + "\",\"output\":" + JsonDims(l.output_dims) +
           ",\"output_hwc\":\"" + ShapeLabel(l.output_dims) + "\",\"params\":" + std::to_string(l.params) +
           ",\"macs\":" + std::to_string(l.macs) + ",\"activation_values\":" + std::to_string(l.activation_values) +
           ",\"receptive_field\":";
    out += l.global_receptive_field ? std::string("null")
                                    : "[" + std::to_string(l.receptive_h) + "," + std::to_string(l.receptive_w) + "]";
    out += "}";
  }
  out += "],\"total_params\":" + std::to_string(s.total_params) + ",\"total_macs\":" + std::to_string(s.total_macs) +
         ",\"weight_bytes\":" + std::to_string(s.weight_bytes) + ",\"input_values\":" +
         std::to_string(s.input_values) + ",\"total_activation_values\":" +
         std::to_string(s.total_activation_values) + ",\"total_activation_bytes\":" +
         std::to_string(s.total_activation_bytes) + "}";
  return out;
}

}  // namespace cnnserve
