// Counts heap allocations (global operator new) made by the calling thread between Start and Stop. Linking
// alloc_counter.cc replaces the global operator new/delete of the test binary.
#ifndef CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_ALLOC_COUNTER_H_
#define CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_ALLOC_COUNTER_H_

#include <cstdint>

namespace cnnserve::dnnl_test {

void StartCountingAllocations();
// Allocations by this thread since StartCountingAllocations(); -1 when not available (AddressSanitizer builds).
int64_t StopCountingAllocations();

}  // namespace cnnserve::dnnl_test

#endif  // CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_ALLOC_COUNTER_H_
