#include "engine/backend/dnnl/dnnl_arena.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace cnnserve::dnnl_internal {
namespace {

struct Region {
  size_t bytes = 0;
  bool free = true;
};

// The free region to give a buffer of `need` bytes: the smallest that fits, else the largest; -1 when none is
// free.
int BestRegion(const std::vector<Region>& regions, size_t need) {
  int best = -1;
  for (size_t r = 0; r < regions.size(); ++r) {
    if (!regions[r].free) continue;
    if (best < 0) {
      best = static_cast<int>(r);
      continue;
    }
    const Region& current = regions[best];
    const bool fits = regions[r].bytes >= need;
    const bool current_fits = current.bytes >= need;
    if ((fits && (!current_fits || regions[r].bytes < current.bytes)) ||
        (!fits && !current_fits && regions[r].bytes > current.bytes)) {
      best = static_cast<int>(r);
    }
  }
  return best;
}

}  // namespace

ArenaLayout PlanSharedArena(const std::vector<BufferLifetime>& buffers, size_t num_steps) {
  std::vector<std::vector<int>> starts(num_steps), ends(num_steps);
  for (size_t b = 0; b < buffers.size(); ++b) {
    starts[buffers[b].first_step].push_back(static_cast<int>(b));
    ends[buffers[b].last_step].push_back(static_cast<int>(b));
  }
  std::vector<Region> regions;
  std::vector<int> region_of(buffers.size(), -1);
  for (size_t i = 0; i < num_steps; ++i) {
    for (int b : starts[i]) {
      const size_t need = RoundUp(std::max<size_t>(buffers[b].bytes, 1), kBufferAlignment);
      int best = BestRegion(regions, need);
      if (best < 0) {
        regions.push_back(Region{});
        best = static_cast<int>(regions.size()) - 1;
      }
      regions[best].bytes = std::max(regions[best].bytes, need);
      regions[best].free = false;
      region_of[b] = best;
    }
    for (int b : ends[i]) regions[region_of[b]].free = true;
  }
  std::vector<size_t> region_offset(regions.size());
  ArenaLayout layout;
  for (size_t r = 0; r < regions.size(); ++r) {
    region_offset[r] = layout.bytes;
    layout.bytes += regions[r].bytes;
  }
  layout.offsets.resize(buffers.size());
  for (size_t b = 0; b < buffers.size(); ++b) layout.offsets[b] = region_offset[region_of[b]];
  return layout;
}

std::unique_ptr<char, FreeDeleter> AllocateArena(size_t bytes) {
  void* arena = std::aligned_alloc(kArenaAlignment, RoundUp(std::max<size_t>(bytes, 1), kArenaAlignment));
  if (arena == nullptr) throw std::bad_alloc();
  return std::unique_ptr<char, FreeDeleter>(static_cast<char*>(arena));
}

}  // namespace cnnserve::dnnl_internal
