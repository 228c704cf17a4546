#include "engine/common/thread_name.h"

#include <pthread.h>

#include <string>

namespace cnnserve {

void SetCurrentThreadName(std::string_view name) {
  constexpr size_t kMaxNameBytes = 15;  // the kernel's TASK_COMM_LEN minus the terminating zero
  const std::string cut(name.substr(0, kMaxNameBytes));
  (void)pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace cnnserve
