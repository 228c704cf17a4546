#include "tests/engine/backend/dnnl/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace {
thread_local bool g_counting = false;
thread_local int64_t g_allocations = 0;
}  // namespace

// AddressSanitizer replaces operator new itself; counting is then unavailable.
#if !defined(__SANITIZE_ADDRESS__)
void* operator new(size_t size) {
  if (g_counting) ++g_allocations;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#endif

namespace cnnserve::dnnl_test {

void StartCountingAllocations() {
  g_allocations = 0;
  g_counting = true;
}

int64_t StopCountingAllocations() {
  g_counting = false;
#if defined(__SANITIZE_ADDRESS__)
  return -1;
#else
  return g_allocations;
#endif
}

}  // namespace cnnserve::dnnl_test
