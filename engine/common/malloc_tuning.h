// TuneMallocForLargeMessages: keeps glibc malloc from giving large buffers back to the kernel after every request.
//
// A batch of raw tensors arrives as one large message (AlexNet at batch 32: 19.8 MB). gRPC reads it into small
// buffers and protobuf copies it into one block, the message's bytes field. With glibc's defaults that memory goes
// back to the kernel between requests (a thread's heap is shrunk once its free top passes a trim threshold that
// glibc sets to twice the largest block freed, and blocks above the mmap threshold are unmapped when freed), so
// each request faults in and zeroes it again. Measured on the server (bench/RESULTS.md, "The server's overhead"):
// 1,800-4,100 page faults per batch-32 request, and gRPC's threads at 0.21-0.39 cores of the two.
//
// The tuning maps only blocks above kMallocMmapThresholdBytes and shrinks a heap only when its free top passes
// kMallocTrimThresholdBytes, so the next message reuses the memory; the cost is free memory kept for reuse (6-9%
// more resident memory in the same measurement). It does not stop glibc from deleting a thread's heap (64 MiB at
// most) once all of it is free, so a thread holding three or more such messages at once still faults. An operator
// who sets any glibc.malloc tunable in GLIBC_TUNABLES keeps their settings: the tuning is skipped.
// Thread-safety: call once at the start of main, before other threads allocate.
#ifndef CNNSERVE_ENGINE_COMMON_MALLOC_TUNING_H_
#define CNNSERVE_ENGINE_COMMON_MALLOC_TUNING_H_

#include <string>

namespace cnnserve {

inline constexpr int kMallocMmapThresholdBytes = 32 << 20;  // glibc's upper limit for the threshold
inline constexpr int kMallocTrimThresholdBytes = 128 << 20;

// Whether the tuning applies under this value of GLIBC_TUNABLES (null: unset): not when it names a malloc tunable.
bool MallocTuningApplies(const char* glibc_tunables);

// Applies the tuning unless GLIBC_TUNABLES says otherwise; returns one line for the startup log saying which.
std::string TuneMallocForLargeMessages();

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_MALLOC_TUNING_H_
