#include "server/batching/task.h"

namespace cnnserve {

void Task::Finish(Status status) {
  if (finished_) return;
  finished_ = true;
  DoneCallback done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(status));
}

}  // namespace cnnserve
