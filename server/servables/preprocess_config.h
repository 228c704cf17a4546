// A model config's preprocessing (cnnserve.v1.PreprocessConfig) as the PreprocessOptions of server/preprocess.
// Thread-safety: a pure function.
#ifndef CNNSERVE_SERVER_SERVABLES_PREPROCESS_CONFIG_H_
#define CNNSERVE_SERVER_SERVABLES_PREPROCESS_CONFIG_H_

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve {

// The PreprocessOptions of a model whose config has been validated by the repository (input.dims set, colour
// consistent with the channels): colour (unset: GRAY for 1 channel, else RGB), target size from input.dims,
// resize mode, bilinear interpolation, scale (0: 1/255), mean, std, and `limits`. INVALID_ARGUMENT naming the
// model when they are not valid PreprocessOptions.
StatusOr<PreprocessOptions> PreprocessOptionsFromConfig(const v1::ModelConfig& config, const DecodeLimits& limits);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_PREPROCESS_CONFIG_H_
