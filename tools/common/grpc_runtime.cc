#include "tools/common/grpc_runtime.h"

#include <absl/synchronization/mutex.h>

namespace cnnserve {

void SkipMutexDeadlockChecks() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace cnnserve
