// The log lines of a model version that became ready (what it serves with), kept out of the service's code.
// Thread-safety: free functions; spdlog is thread-safe.
#ifndef CNNSERVE_SERVER_SERVICE_LOAD_LOG_H_
#define CNNSERVE_SERVER_SERVICE_LOAD_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/repository/model_repository.h"
#include "server/servables/model_servable.h"

namespace cnnserve {

// "1,8,32".
std::string JoinSizes(const std::vector<int64_t>& sizes);

// "model M version V: READY, platform, precision, input, classes, batch sizes, instances; load and warm-up
// times" (warm-up since `warm_start_us`, steady clock), and a warning when its config enables the response cache
// but the server has none (`cache_bytes` 0).
void LogModelReady(const ModelEntry& entry, const VersionEntry& version, const ModelServable& servable,
                   int64_t warm_start_us, size_t cache_bytes);

// "model E version 1: READY, ensemble of N member(s) (...), strategy S, quorum Q".
void LogEnsembleReady(const ModelEntry& entry);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_LOAD_LOG_H_
