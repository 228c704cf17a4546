#include "server/transport/classifier_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>

#include "server/transport/grpc_status.h"
#include "server/native/native_metadata.h"
#include "server/native/native_request.h"

namespace cnnserve {
namespace {

// Deadlines further away than this are treated as "none" (and keep the arithmetic far from overflow).
constexpr int64_t kMaxDeadlineMicros = int64_t{10} * 365 * 24 * 3600 * 1'000'000;

// Logs a failed call at debug level (InferenceService logs the errors it produces itself).
void LogFailure(const char* method, const grpc::CallbackServerContext* context, const std::string& request_id,
                const Status& status) {
  if (status.ok()) return;
  spdlog::debug("{} from {} (request id '{}'): {}", method, context->peer(), request_id, status.ToString());
}

// The reactor of one ClassifyStream call. Requests start as soon as they are read; responses are written in
// request order. All decisions are taken under `mu_`; the gRPC operations they lead to (StartRead, StartWrite,
// Finish) are started after `mu_` is released, because gRPC may run OnReadDone/OnWriteDone inline on the thread
// that starts an operation. Lifetime: gRPC calls OnDone once the call is over and no operation is outstanding; the
// reactor is only finished when no InferenceService call of it is outstanding either, so it is deleted only when
// nothing can reach it any more.
class ClassifyStreamReactor final : public grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse> {
 public:
  ClassifyStreamReactor(grpc::CallbackServerContext* context, InferenceService* inference, int max_in_flight)
      : context_(context), inference_(inference), max_in_flight_(std::max(1, max_in_flight)) {
    reading_ = true;
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed, or the call is over
      Actions actions;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reading_ = false;
        reads_done_ = true;
        actions = NextActionsLocked();
      }
      Run(actions);
      return;
    }
    auto slot = std::make_unique<Slot>();
    slot->request.Swap(&incoming_);
    Slot* const raw = slot.get();
    bool start = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      if (!failed_) {  // after a failure nothing more is answered: drop what is still read
        slots_.push_back(std::move(slot));
        ++in_flight_;
        start = true;
      }
    }
    if (start) {
      ClassifyNative(
          *inference_, raw->request, &raw->response, DeadlineToSteadyMicros(context_->deadline()),
          [context = context_] { return context->IsCancelled(); },
          [this, raw](Status status) { OnClassified(raw, std::move(status)); });
    }
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (ok) {
        slots_.pop_front();
      } else if (!failed_) {  // the client went away; finish once the outstanding classifications return
        failed_ = true;
        failure_ = grpc::Status(grpc::StatusCode::CANCELLED, "ClassifyStream: writing a response failed");
      }
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  void OnDone() override { delete this; }

 private:
  struct Slot {
    v1::ClassifyRequest request;
    v1::ClassifyResponse response;
    bool done = false;
    Status status;
  };

  // What to do after the lock is released; `finish` comes last because the reactor may be gone after it.
  struct Actions {
    const v1::ClassifyResponse* write = nullptr;
    bool read = false;
    bool finish = false;
    grpc::Status finish_status;
  };

  void OnClassified(Slot* slot, Status status) {
    LogFailure("ClassifyStream", context_, slot->request.request_id(), status);
    Actions actions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot->done = true;
      slot->status = std::move(status);
      --in_flight_;
      actions = NextActionsLocked();
    }
    Run(actions);
  }

  Actions NextActionsLocked() {
    Actions actions;
    if (finished_) return actions;
    if (!failed_ && !writing_ && !slots_.empty() && slots_.front()->done) {
      Slot& front = *slots_.front();
      if (front.status.ok()) {
        writing_ = true;
        actions.write = &front.response;
      } else {
        failed_ = true;
        failure_ = ToGrpcStatus(front.status);
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

  void Run(const Actions& actions) {
    if (actions.write != nullptr) StartWrite(actions.write);
    if (actions.read) StartRead(&incoming_);
    if (actions.finish) Finish(actions.finish_status);  // last: `this` may be deleted from here on
  }

  grpc::CallbackServerContext* const context_;
  InferenceService* const inference_;
  const int max_in_flight_;

  v1::ClassifyRequest incoming_;  // the target of the outstanding read; touched only by gRPC and OnReadDone

  std::mutex mu_;
  std::deque<std::unique_ptr<Slot>> slots_;  // read and not yet written, oldest first
  int in_flight_ = 0;                        // InferenceService::Classify calls whose `done` is pending
  bool reading_ = false;                     // a read is outstanding
  bool reads_done_ = false;                  // no more requests will come
  bool writing_ = false;                     // a write is outstanding (of slots_.front())
  bool failed_ = false;                      // a request failed or a write failed: answer nothing more
  grpc::Status failure_;
  bool finished_ = false;
};

}  // namespace

int64_t DeadlineToSteadyMicros(std::chrono::system_clock::time_point deadline) {
  using std::chrono::system_clock;
  if (deadline == system_clock::time_point::max()) return 0;
  const system_clock::time_point now = system_clock::now();
  const int64_t steady_now_us = SteadyNowMicros();
  if (deadline <= now) return std::max<int64_t>(1, steady_now_us);
  const int64_t remaining_us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  if (remaining_us > kMaxDeadlineMicros) return 0;
  return steady_now_us + remaining_us;
}

ClassifierService::ClassifierService(InferenceService* inference, const ClassifierServiceOptions& options,
                                     std::shared_ptr<const auth::Authorizer> authorizer)
    : inference_(inference), options_(options), auth_(std::move(authorizer)) {}

grpc::ServerUnaryReactor* ClassifierService::Classify(grpc::CallbackServerContext* context,
                                                      const v1::ClassifyRequest* request,
                                                      v1::ClassifyResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/Classify")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // `context`, `request` and `response` stay valid until the reactor is finished, i.e. until `done` returns.
  ClassifyNative(
      *inference_, *request, response, DeadlineToSteadyMicros(context->deadline()),
      [context] { return context->IsCancelled(); },
      [reactor, context, request](Status status) {
        LogFailure("Classify", context, request->request_id(), status);
        reactor->Finish(ToGrpcStatus(status));
      });
  return reactor;
}

grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>* ClassifierService::ClassifyStream(
    grpc::CallbackServerContext* context) {
  if (auto* refused = auth_.RefuseStream<v1::ClassifyRequest, v1::ClassifyResponse>(
          context, "/cnnserve.v1.Classifier/ClassifyStream")) {
    return refused;
  }
  return new ClassifyStreamReactor(context, inference_, options_.max_in_flight_per_stream);
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(grpc::CallbackServerContext* context,
                                                        const v1::ListModelsRequest* /*request*/,
                                                        v1::ListModelsResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/ListModels")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ListModelsNative(*inference_, response);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::DescribeModel(grpc::CallbackServerContext* context,
                                                           const v1::DescribeModelRequest* request,
                                                           v1::DescribeModelResponse* response) {
  if (auto* refused = auth_.RefuseUnary(context, "/cnnserve.v1.Classifier/DescribeModel")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(DescribeModelNative(*inference_, *request, response)));
  return reactor;
}

}  // namespace cnnserve
