#include "server/service/model_control.h"

#include <string>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

constexpr unsigned char kFirstPrintable = 0x20;
constexpr unsigned char kDelete = 0x7f;

bool IsControl(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < kFirstPrintable || byte == kDelete;
}

}  // namespace

std::string_view ModelControlModeName(ModelControlMode mode) {
  switch (mode) {
    case ModelControlMode::kNone:
      return "none";
    case ModelControlMode::kExplicit:
      return "explicit";
    case ModelControlMode::kPoll:
      return "poll";
  }
  return "unknown";
}

std::optional<ModelControlMode> ParseModelControlMode(std::string_view text) {
  for (ModelControlMode mode : {ModelControlMode::kNone, ModelControlMode::kExplicit, ModelControlMode::kPoll}) {
    if (text == ModelControlModeName(mode)) return mode;
  }
  return std::nullopt;
}

Status CheckModelControlAllowed(ModelControlMode mode, std::string_view operation) {
  switch (mode) {
    case ModelControlMode::kExplicit:
      return OkStatus();
    case ModelControlMode::kNone:
      return FailedPreconditionError("model control is disabled (--model-control-mode none): cannot " +
                                     std::string(operation) +
                                     " models; start cnnserve with --model-control-mode explicit to load and "
                                     "unload models");
    case ModelControlMode::kPoll:
      return FailedPreconditionError(
          "model control follows the repository folder (--model-control-mode poll): "
          "cannot " +
          std::string(operation) + " models by request; add, change or remove the model's files instead");
  }
  return FailedPreconditionError("unknown model control mode");
}

std::string QuotedModelName(std::string_view name) { return Quoted(name, kMaxQuotedNameBytes); }

Status CheckModelName(std::string_view name) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgumentError("model name " + QuotedModelName(name) + " " + why +
                                " (a model name is the name of a folder of the model repository, not a path)");
  };
  if (name.empty()) return InvalidArgumentError("model name is empty: name a model of the repository");
  if (name.size() > kMaxModelNameBytes) {
    return bad("is longer than " + std::to_string(kMaxModelNameBytes) + " bytes");
  }
  if (name == "." || name == "..") return bad("is a relative path");
  for (char c : name) {
    if (c == '/' || c == '\\') return bad("contains a path separator");
    if (c == '\0') return bad("contains a NUL byte");
    if (IsControl(c)) return bad("contains a control character");
  }
  if (name.front() == '.') return bad("starts with '.' (hidden folders are not models)");
  return OkStatus();
}

}  // namespace cnnserve
