// StreamReactor: the one reactor of the bidirectional inference streams (the native ClassifyStream and KServe's
// ModelStreamInfer). Each request read starts at once (up to `max_in_flight` read and not yet written); each
// answer is written when its turn comes, in one of two orders:
//   kRequestOrder     the answer of the oldest unanswered request is written first (native ClassifyStream); a
//                     failed request ends the stream with its status once its turn comes (the earlier answers
//                     are written first), unless `error_response` turns failures into answers;
//   kCompletionOrder  answers are written as they complete (KServe; its `error_response` writes a failure into
//                     the stream and the stream goes on).
// A failed write (the client went away) ends the stream with CANCELLED "<method>: writing a response failed".
// After a failure, requests still read are dropped.
//
// All decisions are taken under `mu_`; the gRPC operations they lead to (StartRead, StartWrite, Finish) are
// started after `mu_` is released, because gRPC may run OnReadDone / OnWriteDone inline on the thread that starts
// an operation. Lifetime: gRPC calls OnDone once the call is over and no operation is outstanding; the reactor
// finishes only when no request of it is outstanding either, so it is deleted only when nothing can reach it.
// Thread-safety: the handler's `start` may call `done` on any thread, also inline.
#ifndef CNNSERVE_SERVER_TRANSPORT_STREAM_REACTOR_H_
#define CNNSERVE_SERVER_TRANSPORT_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <utility>

#include "engine/common/status.h"
#include "server/transport/grpc_status.h"

namespace cnnserve {

enum class StreamOrder { kRequestOrder, kCompletionOrder };

// What a stream does with each request.
template <typename Request, typename Response>
struct StreamHandler {
  const char* method = "";  // for log lines and the write-failure status, e.g. "ClassifyStream"
  StreamOrder order = StreamOrder::kRequestOrder;
  // Starts the work of `request`, filling `response`; `done` runs exactly once. Both stay alive until then.
  std::function<void(const Request& request, Response* response, std::function<void(Status)> done)> start;
  // The request's id for log lines (asked only for requests that failed).
  std::function<std::string(const Request& request)> request_id;
  // Optional: turns a failure into an answer written in the stream (which then goes on).
  std::function<void(const Request& request, const Status& status, Response* response)> error_response;
};

template <typename Request, typename Response>
class StreamReactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  // Starts reading at once. Deletes itself when gRPC is done with the call.
  StreamReactor(grpc::CallbackServerContext* context, StreamHandler<Request, Response> handler, int max_in_flight)
      : context_(context), handler_(std::move(handler)), max_in_flight_(std::max(1, max_in_flight)) {
    reading_ = true;
    this->StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed, or the call is over
      std::unique_lock<std::mutex> lock(mu_);
      reading_ = false;
      reads_done_ = true;
      Act(NextActionsLocked(), std::move(lock));
      return;
    }
    Slot* slot = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      if (!failed_) {  // after a failure nothing more is answered: drop what is still read
        slots_.emplace_back();
        slot = &slots_.back();
        slot->position = std::prev(slots_.end());
        slot->request.Swap(&incoming_);
        ++in_flight_;
      }
    }
    if (slot != nullptr) {
      handler_.start(slot->request, &slot->response,
                     [this, slot](Status status) { OnAnswered(slot, std::move(status)); });
    }
    std::unique_lock<std::mutex> lock(mu_);
    Act(NextActionsLocked(), std::move(lock));
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    if (ok) {
      slots_.erase(written_->position);
    } else if (!failed_) {  // the client went away; finish once the outstanding requests return
      failed_ = true;
      failure_ =
          grpc::Status(grpc::StatusCode::CANCELLED, std::string(handler_.method) + ": writing a response failed");
    }
    written_ = nullptr;
    Act(NextActionsLocked(), std::move(lock));
  }

  void OnDone() override { delete this; }

 private:
  struct Slot {
    Request request;
    Response response;
    bool done = false;
    Status status;
    typename std::list<Slot>::iterator position;
  };

  // What to do after the lock is released; `finish` comes last because the reactor may be gone after it.
  struct Actions {
    const Response* write = nullptr;
    bool read = false;
    bool finish = false;
    grpc::Status finish_status;
  };

  void OnAnswered(Slot* slot, Status status) {
    if (!status.ok()) LogCallFailure(handler_.method, context_, handler_.request_id(slot->request), status);
    if (!status.ok() && handler_.error_response) {
      handler_.error_response(slot->request, status, &slot->response);
      status = OkStatus();
    }
    std::unique_lock<std::mutex> lock(mu_);
    slot->done = true;
    slot->status = std::move(status);
    --in_flight_;
    if (handler_.order == StreamOrder::kCompletionOrder) completed_.push_back(slot);
    Act(NextActionsLocked(), std::move(lock));
  }

  // The answer whose turn it is, or null.
  Slot* NextToWriteLocked() {
    if (handler_.order == StreamOrder::kCompletionOrder) {
      if (completed_.empty()) return nullptr;
      Slot* next = completed_.front();
      completed_.pop_front();
      return next;
    }
    return !slots_.empty() && slots_.front().done ? &slots_.front() : nullptr;
  }

  Actions NextActionsLocked() {
    Actions actions;
    if (finished_) return actions;
    if (!failed_ && !writing_) {
      if (Slot* next = NextToWriteLocked(); next != nullptr) {
        if (next->status.ok()) {
          writing_ = true;
          written_ = next;
          actions.write = &next->response;
        } else {
          failed_ = true;
          failure_ = ToGrpcStatus(next->status);
        }
      }
    }
    if (!failed_ && !reads_done_ && !reading_ && static_cast<int>(slots_.size()) < max_in_flight_) {
      reading_ = true;
      actions.read = true;
    }
    // Finish once nothing of ours is outstanding. After a failure an outstanding read is allowed: the client may
    // keep its side open, and Finish makes that read complete.
    const bool answered_all = failed_ || (reads_done_ && slots_.empty());
    if (answered_all && in_flight_ == 0 && !writing_ && (failed_ || !reading_)) {
      finished_ = true;
      actions.finish = true;
      actions.finish_status = failed_ ? failure_ : grpc::Status::OK;
    }
    return actions;
  }

  void Act(const Actions& actions, std::unique_lock<std::mutex> lock) {
    lock.unlock();
    if (actions.write != nullptr) this->StartWrite(actions.write);
    if (actions.read) this->StartRead(&incoming_);
    if (actions.finish) this->Finish(actions.finish_status);  // last: `this` may be deleted from here on
  }

  grpc::CallbackServerContext* const context_;
  const StreamHandler<Request, Response> handler_;
  const int max_in_flight_;

  Request incoming_;  // the target of the outstanding read; touched only by gRPC and OnReadDone

  std::mutex mu_;
  std::list<Slot> slots_;        // read and not yet written, oldest first (stable addresses)
  std::deque<Slot*> completed_;  // kCompletionOrder: answered and not yet written, in completion order
  Slot* written_ = nullptr;      // the slot whose write is outstanding
  int in_flight_ = 0;            // requests whose `done` is pending
  bool reading_ = false;         // a read is outstanding
  bool reads_done_ = false;      // no more requests will come
  bool writing_ = false;         // a write is outstanding
  bool failed_ = false;          // a request or a write failed: answer nothing more
  grpc::Status failure_;
  bool finished_ = false;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_STREAM_REACTOR_H_
