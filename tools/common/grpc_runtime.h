// SkipMutexDeadlockChecks: turns off Abseil's mutex deadlock detection for this process. Debian builds Abseil
// without NDEBUG, so every absl::Mutex that gRPC takes also updates a lock graph (GraphCycles): 2-3% of the
// server's CPU under load in a perf profile (bench/RESULTS.md, overload). Our own code does not use absl::Mutex,
// and gRPC's locking is tested upstream with the checks on. Call it first in main(), before any gRPC object
// exists. Used by cnnserve, cnnload and the bare gRPC server (so that bench comparisons stay fair).
// Thread-safety: call once, before other threads start.
#ifndef CNNSERVE_TOOLS_COMMON_GRPC_RUNTIME_H_
#define CNNSERVE_TOOLS_COMMON_GRPC_RUNTIME_H_

namespace cnnserve {

void SkipMutexDeadlockChecks();

}  // namespace cnnserve

#endif  // CNNSERVE_TOOLS_COMMON_GRPC_RUNTIME_H_
