// Activation arena planning of the oneDNN backend (private to engine/backend/dnnl).
//
// A plan keeps all its activations in one arena. Buffers whose lifetimes (first to last step that touches them)
// do not overlap share space, so a deep network needs about two of its largest activations, not the sum of all.
// No oneDNN type appears here. Thread-safety: reentrant functions.
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_ARENA_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_ARENA_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "engine/backend/dnnl/dnnl_util.h"

namespace cnnserve::dnnl_internal {

inline constexpr size_t kArenaAlignment = 4096;  // of the arena itself (a page)
inline constexpr size_t kBufferAlignment = 64;   // of every buffer in it (a cache line, an AVX-512 vector)

// One buffer: its size and the steps (indices in execution order, first <= last) that first and last use it.
struct BufferLifetime {
  size_t bytes = 0;
  int first_step = 0;
  int last_step = 0;
};

struct ArenaLayout {
  std::vector<size_t> offsets;  // one per BufferLifetime, multiples of kBufferAlignment
  size_t bytes = 0;             // the extent of all offsets + sizes
};

// Assigns offsets step by step: the buffers that start at a step (in the order given) take the smallest free
// region that fits, else grow the largest free region, else open a new one; the buffers that end at the step
// then free their regions. Steps are in [0, num_steps).
ArenaLayout PlanSharedArena(const std::vector<BufferLifetime>& buffers, size_t num_steps);

// An uninitialised kArenaAlignment-aligned block of at least max(bytes, 1) bytes. Throws std::bad_alloc.
std::unique_ptr<char, FreeDeleter> AllocateArena(size_t bytes);

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_ARENA_H_
