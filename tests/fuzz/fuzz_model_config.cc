// Fuzz target: config.pbtxt text through what loading a model folder runs on it: the text-format parser
// (ParseModelConfig), the field checks (ValidateModelConfig), the check against an imported model's input and
// classes (CheckConfigAgainstModel, here a 1x32x32 input with 10 classes and 10 labels) and, for a config that
// passes, the server's preprocessing options (PreprocessOptionsFromConfig).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/repository/model_repository.h"
#include "server/servables/preprocess_config.h"
#include "tests/fuzz/fuzz_models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr char kPath[] = "fuzz/config.pbtxt";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cnnserve::StatusOr<cnnserve::v1::ModelConfig> config = cnnserve::ParseModelConfig(text, kPath);
  if (!config.ok()) return 0;
  if (!cnnserve::ValidateModelConfig(*config, kPath, config->name()).ok()) return 0;
  const cnnserve::Dims dims = {1, 32, 32};
  if (!cnnserve::CheckConfigAgainstModel(*config, kPath, "fuzz/1/model.onnx", dims, 10, 10, "fuzz/labels.txt").ok()) {
    return 0;
  }
  if (config->has_preprocess()) {
    (void)cnnserve::PreprocessOptionsFromConfig(*config, cnnserve::fuzz::FuzzDecodeLimits());
  }
  return 0;
}
