// Counts calls to the global operator new in a test binary that links alloc_count.cc (which replaces it; array
// new forwards to it by default). Aligned and nothrow forms are not counted.
#ifndef CNNSERVE_TESTS_ENGINE_BACKEND_REFERENCE_ALLOC_COUNT_H_
#define CNNSERVE_TESTS_ENGINE_BACKEND_REFERENCE_ALLOC_COUNT_H_

#include <cstdint>

namespace cnnserve::reference_test {

// Allocations by all threads since the program started.
int64_t AllocationCount();

}  // namespace cnnserve::reference_test

#endif  // CNNSERVE_TESTS_ENGINE_BACKEND_REFERENCE_ALLOC_COUNT_H_
