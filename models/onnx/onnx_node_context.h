// Internal to the ONNX importer (not part of its API): typed access to one node's attributes.
//
// A NodeContext indexes a NodeProto's attributes and hands them out by name and type, checking the type and that
// the attribute exists in the op's version at the model's opset; it remembers which ones were read so that
// CheckAllUsed can reject any attribute that no converter asked for (none is silently ignored).
// Errors name the node and its op: `node "conv1" (Conv): attribute "group" has type FLOAT, expected INT`.
//
// Ownership: borrows the NodeProto, which must outlive the context. Thread-safety: one thread per context.
#ifndef CNNSERVE_MODELS_ONNX_ONNX_NODE_CONTEXT_H_
#define CNNSERVE_MODELS_ONNX_ONNX_NODE_CONTEXT_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"
#include "models/onnx/onnx_messages.h"

namespace cnnserve::onnx_import {

// Opset bounds of an attribute: one that exists in every supported opset has [kAnyOpset, kNoLimitOpset].
inline constexpr int64_t kAnyOpset = 0;
inline constexpr int64_t kNoLimitOpset = 1 << 20;

// Every getter leaves `*value` unchanged when the attribute is absent (callers preset the ONNX default) and
// returns UNIMPLEMENTED when the attribute is present but the model's opset is outside [since, until],
// INVALID_ARGUMENT when it has another type.
class NodeContext {
 public:
  NodeContext(std::string name, const onnx::NodeProto& proto, int64_t opset)
      : name_(std::move(name)), proto_(proto), opset_(opset) {}

  const std::string& name() const { return name_; }
  const std::string& op() const { return proto_.op_type(); }
  int64_t opset() const { return opset_; }
  const onnx::NodeProto& proto() const { return proto_; }

  // "node "conv1" (Conv): `message`" with `code`.
  Status Error(StatusCode code, const std::string& message) const;

  // Indexes the attributes; rejects duplicates and references to function attributes.
  Status Init();

  bool Has(const std::string& name) const { return attrs_.count(name) != 0; }

  Status GetInt(const std::string& name, int64_t* value, int64_t since = kAnyOpset, int64_t until = kNoLimitOpset);
  // An INT attribute that must be 0 or 1.
  Status GetBool(const std::string& name, bool* value, int64_t since = kAnyOpset, int64_t until = kNoLimitOpset);
  Status GetFloat(const std::string& name, float* value, int64_t since = kAnyOpset, int64_t until = kNoLimitOpset);
  Status GetInts(const std::string& name, std::vector<int64_t>* value, int64_t since = kAnyOpset,
                 int64_t until = kNoLimitOpset);
  Status GetFloats(const std::string& name, std::vector<float>* value, int64_t since = kAnyOpset,
                   int64_t until = kNoLimitOpset);
  Status GetString(const std::string& name, std::string* value, int64_t since = kAnyOpset,
                   int64_t until = kNoLimitOpset);
  // The "auto_pad" STRING attribute (default NOTSET); UNIMPLEMENTED for a value the engine does not know.
  Status GetAutoPad(AutoPad* value);

  // Marks an attribute handled whatever its type (for attributes taken apart by the caller, e.g. Constant).
  // nullptr when absent.
  const onnx::AttributeProto* Take(const std::string& name);

  // UNIMPLEMENTED naming the first attribute that no getter asked for.
  Status CheckAllUsed() const;

 private:
  // The attribute `name` (nullptr when absent) after checking its type and that it exists at this opset.
  StatusOr<const onnx::AttributeProto*> Find(const std::string& name, AttrType type, int64_t since, int64_t until);

  // For old files whose attributes carry no type: is the field for `type` set?
  static bool HasField(const onnx::AttributeProto& attr, AttrType type);

  std::string name_;
  const onnx::NodeProto& proto_;
  int64_t opset_;
  std::unordered_map<std::string, const onnx::AttributeProto*> attrs_;
  std::unordered_set<std::string> used_;
};

}  // namespace cnnserve::onnx_import

#endif  // CNNSERVE_MODELS_ONNX_ONNX_NODE_CONTEXT_H_
