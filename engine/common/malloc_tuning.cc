#include "engine/common/malloc_tuning.h"

#include <malloc.h>

#include <cstdlib>
#include <string_view>

namespace cnnserve {

bool MallocTuningApplies(const char* glibc_tunables) {
  return glibc_tunables == nullptr ||
         std::string_view(glibc_tunables).find("glibc.malloc.") == std::string_view::npos;
}

std::string TuneMallocForLargeMessages() {
  if (!MallocTuningApplies(std::getenv("GLIBC_TUNABLES"))) {
    return "malloc: GLIBC_TUNABLES sets glibc.malloc tunables; using them";
  }
  // mallopt returns 0 when it refuses a value (and does nothing under the sanitizers, which have their own
  // allocator).
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMallocMmapThresholdBytes) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, kMallocTrimThresholdBytes) == 1;
  if (!mmap_set || !trim_set) return "malloc: glibc defaults (mallopt refused the large-message settings)";
  return "malloc: blocks up to " + std::to_string(kMallocMmapThresholdBytes >> 20) +
         " MiB come from the heap, which keeps up to " + std::to_string(kMallocTrimThresholdBytes >> 20) +
         " MiB free (large messages reuse memory instead of faulting it in)";
}

}  // namespace cnnserve
