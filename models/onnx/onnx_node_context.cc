#include "models/onnx/onnx_node_context.h"

namespace cnnserve::onnx_import {

Status NodeContext::Error(StatusCode code, const std::string& message) const {
  return Status(code, "node " + Quote(name_) + " (" + Escape(op()) + "): " + message);
}

Status NodeContext::Init() {
  for (const onnx::AttributeProto& attr : proto_.attribute()) {
    if (!attrs_.emplace(attr.name(), &attr).second) {
      return Error(StatusCode::kInvalidArgument, "attribute " + Quote(attr.name()) + " is given twice");
    }
    if (!attr.ref_attr_name().empty()) {
      return Error(StatusCode::kUnimplemented,
                   "attribute " + Quote(attr.name()) + " refers to a function attribute (not supported)");
    }
  }
  return OkStatus();
}

Status NodeContext::GetInt(const std::string& name, int64_t* value, int64_t since, int64_t until) {
  CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::INT, since, until));
  if (attr != nullptr) *value = attr->i();
  return OkStatus();
}

Status NodeContext::GetBool(const std::string& name, bool* value, int64_t since, int64_t until) {
  int64_t v = *value ? 1 : 0;
  CNN_RETURN_IF_ERROR(GetInt(name, &v, since, until));
  if (v != 0 && v != 1) {
    return Error(StatusCode::kInvalidArgument,
                 "attribute " + Quote(name) + " must be 0 or 1, got " + std::to_string(v));
  }
  *value = v == 1;
  return OkStatus();
}

Status NodeContext::GetFloat(const std::string& name, float* value, int64_t since, int64_t until) {
  CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::FLOAT, since, until));
  if (attr != nullptr) *value = attr->f();
  return OkStatus();
}

Status NodeContext::GetInts(const std::string& name, std::vector<int64_t>* value, int64_t since, int64_t until) {
  CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::INTS, since, until));
  if (attr != nullptr) value->assign(attr->ints().begin(), attr->ints().end());
  return OkStatus();
}

Status NodeContext::GetFloats(const std::string& name, std::vector<float>* value, int64_t since, int64_t until) {
  CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::FLOATS, since, until));
  if (attr != nullptr) value->assign(attr->floats().begin(), attr->floats().end());
  return OkStatus();
}

Status NodeContext::GetString(const std::string& name, std::string* value, int64_t since, int64_t until) {
  CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::STRING, since, until));
  if (attr != nullptr) *value = attr->s();
  return OkStatus();
}

Status NodeContext::GetAutoPad(AutoPad* value) {
  std::string text = "NOTSET";
  CNN_RETURN_IF_ERROR(GetString("auto_pad", &text));
  if (text == "NOTSET") {
    *value = AutoPad::kNotSet;
  } else if (text == "SAME_UPPER") {
    *value = AutoPad::kSameUpper;
  } else if (text == "SAME_LOWER") {
    *value = AutoPad::kSameLower;
  } else if (text == "VALID") {
    *value = AutoPad::kValid;
  } else {
    return Error(StatusCode::kUnimplemented, "attribute \"auto_pad\" value " + Quote(text) +
                                                 " is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID)");
  }
  return OkStatus();
}

const onnx::AttributeProto* NodeContext::Take(const std::string& name) {
  auto it = attrs_.find(name);
  if (it == attrs_.end()) return nullptr;
  used_.insert(name);
  return it->second;
}

Status NodeContext::CheckAllUsed() const {
  for (const onnx::AttributeProto& attr : proto_.attribute()) {
    if (used_.count(attr.name()) == 0) {
      return Error(StatusCode::kUnimplemented, "attribute " + Quote(attr.name()) + " is not supported");
    }
  }
  return OkStatus();
}

StatusOr<const onnx::AttributeProto*> NodeContext::Find(const std::string& name, AttrType type, int64_t since,
                                                        int64_t until) {
  auto it = attrs_.find(name);
  if (it == attrs_.end()) return static_cast<const onnx::AttributeProto*>(nullptr);
  const onnx::AttributeProto* attr = it->second;
  if (opset_ < since || opset_ > until) {
    // Not part of this op's version at the model's opset: not something we know how to interpret.
    return Error(StatusCode::kUnimplemented,
                 "attribute " + Quote(name) + " is not supported at opset " + std::to_string(opset_) +
                     (opset_ < since ? " (it exists from opset " + std::to_string(since) + ")"
                                     : " (it was removed after opset " + std::to_string(until) + ")"));
  }
  if (attr->type() != type && !(attr->type() == onnx::AttributeProto::UNDEFINED && HasField(*attr, type))) {
    return Error(StatusCode::kInvalidArgument, "attribute " + Quote(name) + " has type " +
                                                   AttrTypeName(attr->type()) + ", expected " +
                                                   AttrTypeName(type));
  }
  used_.insert(name);
  return attr;
}

bool NodeContext::HasField(const onnx::AttributeProto& attr, AttrType type) {
  switch (type) {
    case onnx::AttributeProto::INT:
      return attr.has_i();
    case onnx::AttributeProto::FLOAT:
      return attr.has_f();
    case onnx::AttributeProto::STRING:
      return attr.has_s();
    case onnx::AttributeProto::INTS:
      return attr.ints_size() > 0;
    case onnx::AttributeProto::FLOATS:
      return attr.floats_size() > 0;
    default:
      return false;
  }
}

}  // namespace cnnserve::onnx_import
