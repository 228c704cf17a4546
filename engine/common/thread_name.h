// SetCurrentThreadName: names the calling thread for `top -H`, `ps -T`, perf and gdb (Linux keeps 15 bytes; a
// longer name is cut there). The server's own long-lived threads are named so that an operator can tell the
// engine's workers from the transport's: "batch:<model>", "lane", "reply:<model>", "decode", "timer".
// Thread-safety: affects only the calling thread.
#ifndef CNNSERVE_ENGINE_COMMON_THREAD_NAME_H_
#define CNNSERVE_ENGINE_COMMON_THREAD_NAME_H_

#include <string_view>

namespace cnnserve {

void SetCurrentThreadName(std::string_view name);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_THREAD_NAME_H_
