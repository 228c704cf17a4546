#include "server/service/load_log.h"

#include <spdlog/spdlog.h>

#include "engine/common/units.h"

namespace cnnserve {

std::string JoinSizes(const std::vector<int64_t>& sizes) {
  std::string out;
  for (int64_t s : sizes) out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

void LogModelReady(const ModelEntry& entry, const VersionEntry& version, const ModelServable& servable,
                   int64_t warm_start_us, size_t cache_bytes) {
  const bool cache = entry.config.response_cache().enable();
  spdlog::info(
      "model {} version {}: READY, platform {}, precision {}, input {}, {} classes, batch sizes {} (max {}), {} "
      "instance(s) x {} thread(s){}; loaded in {:.1f} ms, warmed up in {:.1f} ms",
      entry.name, version.version, entry.config.platform(), v1::Precision_Name(entry.config.precision()),
      DimsToString(version.item_input_dims), version.num_classes, JoinSizes(servable.plan_sizes()),
      servable.info().max_batch_size, servable.num_instances(), entry.config.instance_group().threads(),
      cache && cache_bytes > 0 ? ", response cache" : "", static_cast<double>(version.load_time_us) / kMicrosPerMilli,
      static_cast<double>(SteadyNowMicros() - warm_start_us) / kMicrosPerMilli);
  if (cache && cache_bytes == 0) {
    spdlog::warn("model {}: response_cache is enabled but --cache-size-mb is 0: its answers are not cached",
                 entry.name);
  }
}

void LogEnsembleReady(const ModelEntry& entry) {
  const v1::EnsembleConfig& config = entry.config.ensemble();
  std::string members;
  for (const v1::EnsembleConfig::Member& m : config.members()) members += (members.empty() ? "" : ", ") + m.model();
  spdlog::info("model {} version 1: READY, ensemble of {} member(s) ({}), strategy {}, quorum {}{}", entry.name,
               config.members_size(), members,
               v1::EnsembleConfig::Strategy_Name(config.strategy() == v1::EnsembleConfig::STRATEGY_UNSPECIFIED
                                                     ? v1::EnsembleConfig::SOFT_MEAN
                                                     : config.strategy()),
               config.quorum() == 0 ? config.members_size() : config.quorum(),
               entry.config.response_cache().enable() ? ", response cache" : "");
}

}  // namespace cnnserve
