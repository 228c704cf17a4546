#include "server/ensemble/ensemble_servable.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <span>
#include <utility>

#include "engine/common/strings.h"
#include "engine/common/units.h"
#include "models/repository/model_repository.h"
#include "server/ensemble/deadline_timer.h"
#include "server/servables/classification.h"
#include "server/preprocess/image_input.h"

namespace cnnserve {
namespace {

using Config = v1::EnsembleConfig;

// member_timeout_ms above a day is a typo, not a timeout.
constexpr int64_t kMaxMemberTimeoutMs = kSecondsPerDay * kMillisPerSecond;

// A duration in microseconds (negative: 0) as the nanoseconds DurationStat counts.
uint64_t MicrosToNanos(int64_t us) { return static_cast<uint64_t>(std::max<int64_t>(0, us) * kNanosPerMicro); }

std::string FormatFloat(float value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", static_cast<double>(value));
  return buffer;
}

Status InItem(const RunRequest& request, int64_t item, const Status& status) {
  return Status(status.code(), request.ItemName(item) + ": " + status.message());
}

// True when every one of the row's values is finite and >= 0 and they sum to more than 0 (what CombineVotes can
// vote with).
bool UsableRow(std::span<const float> row) {
  double sum = 0.0;
  for (float p : row) {
    if (!std::isfinite(p) || p < 0.0f) return false;
    sum += p;
  }
  return sum > 0.0 && std::isfinite(sum);
}

size_t AgreementBucket(double agreement) {
  for (size_t b = 0; b < kAgreementBucketBounds.size(); ++b) {
    if (agreement <= kAgreementBucketBounds[b]) return b;
  }
  return kAgreementBucketBounds.size();
}

}  // namespace

// Everything one Run needs until its last member has answered. Shared by the member callbacks, the timer and the
// servable's list of Runs in flight.
struct EnsembleServable::RunState {
  struct Member {
    std::shared_ptr<Servable> servable;  // null when it could not be resolved
    int64_t version = 0;                 // the resolved version (else the configured one)
    bool settled = false;                // answered, failed, given up or never launched; guarded by mu
    Status status;                       // final once settled
    RunResult result;                    // written by the member until its `done`; read only when status is OK
  };

  std::shared_ptr<const RunRequest> request;
  RunResult* result = nullptr;
  std::function<void(Status)> done;
  int64_t start_us = 0;                                 // SteadyNowMicros at Run
  int64_t preprocess_us = 0;                            // decode + preprocess
  int64_t member_deadline_us = Clock::kInfiniteFuture;  // on the servable's clock
  bool deadline_is_request_deadline = false;            // the member deadline is the request's own deadline
  DeadlineTimer::Id timer_id = 0;
  // The members' inputs, alive until the last member is done: per preprocessing group, num_items x item size
  // floats (rows of non-image items unused); per kTensor item, a copy of its bytes.
  std::vector<std::vector<float>> group_inputs;
  std::vector<int> member_group;  // per member: its preprocessing group, -1 when it has none (or no image came)
  std::vector<std::string> tensor_copies;
  std::vector<Member> members;

  std::mutex mu;
  int unsettled = 0;      // guarded by mu: members not settled, plus one while Run is still launching
  bool answered = false;  // guarded by mu: Finish has been claimed (exactly once)
};

StatusOr<std::unique_ptr<EnsembleServable>> EnsembleServable::Create(const v1::ModelConfig& config,
                                                                     std::vector<std::string> labels,
                                                                     ServableResolver resolver,
                                                                     const DecodeLimits& limits) {
  EnsembleServableOptions options;
  options.decode_limits = limits;
  return Create(config, std::move(labels), std::move(resolver), options);
}

StatusOr<std::unique_ptr<EnsembleServable>> EnsembleServable::Create(const v1::ModelConfig& config,
                                                                     std::vector<std::string> labels,
                                                                     ServableResolver resolver,
                                                                     const EnsembleServableOptions& options) {
  const std::string& name = config.name();
  const auto bad = [&name](const std::string& field, const std::string& what) {
    return InvalidArgumentError("ensemble " + Quoted(name) + ": " + field + " " + what);
  };
  if (config.platform() != kPlatformEnsemble) {
    return bad("platform", Quoted(config.platform()) + " is not " + Quoted(kPlatformEnsemble));
  }
  if (!resolver) return InvalidArgumentError("ensemble " + Quoted(name) + ": no member resolver");
  const Config& ensemble = config.ensemble();
  const int32_t count = ensemble.members_size();
  if (count == 0) return bad("ensemble.members", "is empty: an ensemble needs at least one member");

  auto servable = std::unique_ptr<EnsembleServable>(new EnsembleServable());
  if (ensemble.strategy() == Config::STRATEGY_UNSPECIFIED) {
    servable->strategy_ = Config::SOFT_MEAN;
  } else if (Config::Strategy_IsValid(ensemble.strategy())) {
    servable->strategy_ = ensemble.strategy();
  } else {
    return bad("ensemble.strategy", std::to_string(static_cast<int>(ensemble.strategy())) +
                                        " is not one of HARD_MAJORITY, SOFT_MEAN, WEIGHTED_SOFT, GEOMETRIC_MEAN, "
                                        "BORDA, MAX_CONFIDENCE");
  }
  if (ensemble.quorum() < 0 || ensemble.quorum() > count) {
    return bad("ensemble.quorum", std::to_string(ensemble.quorum()) + " must be in [0, " + std::to_string(count) +
                                      "] (the member count; 0 means all members)");
  }
  servable->quorum_ = ensemble.quorum();
  if (ensemble.member_timeout_ms() < 0 || ensemble.member_timeout_ms() > kMaxMemberTimeoutMs) {
    return bad("ensemble.member_timeout_ms", std::to_string(ensemble.member_timeout_ms()) + " must be in [0, " +
                                                 std::to_string(kMaxMemberTimeoutMs) + "] (0: no timeout)");
  }
  servable->member_timeout_us_ = ensemble.member_timeout_ms() * kMicrosPerMilli;

  ServableInfo& info = servable->info_;
  for (int32_t i = 0; i < count; ++i) {
    const Config::Member& member = ensemble.members(i);
    const std::string field = "ensemble.members[" + std::to_string(i) + "]";
    if (member.model().empty()) return bad(field + ".model", "is empty");
    if (member.model() == name) return bad(field + ".model", Quoted(name) + " is the ensemble itself");
    if (member.version() < 0) return bad(field + ".version", std::to_string(member.version()) + " must be >= 0");
    if (!std::isfinite(member.weight()) || member.weight() < 0.0f) {
      return bad(field + ".weight", FormatFloat(member.weight()) + " must be finite and >= 0 (0 means 1)");
    }
    servable->members_.push_back(
        MemberSpec{member.model(), member.version(), member.weight() > 0.0f ? member.weight() : 1.0f});

    StatusOr<std::shared_ptr<Servable>> resolved = resolver(member.model(), member.version());
    if (!resolved.ok()) {
      return Status(resolved.status().code(), "ensemble " + Quoted(name) + ": " + field + " " +
                                                  Quoted(member.model()) + ": " + resolved.status().message());
    }
    if (*resolved == nullptr) {
      return InternalError("ensemble " + Quoted(name) + ": " + field + " " + Quoted(member.model()) +
                           ": the resolver returned no servable");
    }
    const ServableInfo& member_info = (*resolved)->info();
    if (member_info.platform == kPlatformEnsemble) {
      return bad(field + ".model", Quoted(member.model()) +
                                       " is an ensemble; ensembles cannot be members of "
                                       "ensembles (list its members instead)");
    }
    if (i == 0) {
      info.num_classes = member_info.num_classes;
      info.item_input_dims = member_info.item_input_dims;
      info.preprocess = member_info.preprocess;
      info.input_name = member_info.input_name;
      info.output_name = member_info.output_name;
      info.max_batch_size = member_info.max_batch_size;
      if (labels.empty()) labels = member_info.labels;
    } else {
      if (member_info.num_classes != info.num_classes) {
        return bad(field + ".model",
                   Quoted(member.model()) + " has " + std::to_string(member_info.num_classes) +
                       " classes but ensemble.members[0] " + Quoted(ensemble.members(0).model()) + " has " +
                       std::to_string(info.num_classes) + "; every member must have the same classes");
      }
      info.max_batch_size = std::min(info.max_batch_size, member_info.max_batch_size);
      if (member_info.item_input_dims != info.item_input_dims || member_info.preprocess != info.preprocess) {
        info.members_share_input = false;
      }
    }
  }
  if (info.num_classes < 1) return bad("ensemble.members[0].model", "has no classes");
  if (config.max_batch_size() > 0) {
    info.max_batch_size = std::min<int64_t>(info.max_batch_size, config.max_batch_size());
  }
  info.max_batch_size = std::max<int64_t>(1, info.max_batch_size);
  info.name = name;
  info.version = 1;
  info.platform = kPlatformEnsemble;
  info.labels = std::move(labels);
  info.config = config;

  servable->resolver_ = std::move(resolver);
  servable->options_ = options;
  servable->clock_ = options.clock != nullptr ? options.clock : Clock::Real();
  servable->stats_.name = info.name;
  servable->stats_.version = info.version;
  servable->stats_.platform = info.platform;
  servable->timer_ = DeadlineTimer::Start(servable->clock_);
  return servable;
}

EnsembleServable::~EnsembleServable() {
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    shutting_down_ = true;
  }
  (void)GiveUpAll(
      UnavailableError("ensemble " + Quoted(info_.name) + " was unloaded before this member answered"));
  {
    // Runs answered on other threads right now leave runs_ before their `done` runs.
    std::unique_lock<std::mutex> lock(runs_mu_);
    runs_cv_.wait(lock, [this] { return runs_.empty(); });
  }
  if (timer_ != nullptr) timer_->Stop();
}

std::string EnsembleServable::MemberName(size_t member, int64_t resolved_version) const {
  const int64_t version = resolved_version > 0 ? resolved_version : members_[member].version;
  return Quoted(members_[member].model) + (version > 0 ? " version " + std::to_string(version) : "");
}

StatusOr<std::shared_ptr<Servable>> EnsembleServable::ResolveMember(const MemberSpec& member) const {
  StatusOr<std::shared_ptr<Servable>> resolved = resolver_(member.model, member.version);
  if (!resolved.ok()) return resolved.status();
  if (*resolved == nullptr) return InternalError("the resolver returned no servable");
  const ServableInfo& member_info = (*resolved)->info();
  if (member_info.platform == kPlatformEnsemble) {
    return InvalidArgumentError("it is an ensemble now; ensembles cannot be members of ensembles");
  }
  if (member_info.num_classes != info_.num_classes) {
    return FailedPreconditionError("it has " + std::to_string(member_info.num_classes) +
                                   " classes now; the ensemble " + "has " + std::to_string(info_.num_classes));
  }
  return resolved;
}

void EnsembleServable::FailRun(int64_t start_us, const Status& status, const std::function<void(Status)>& done) {
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.fail.Add(MicrosToNanos(SteadyNowMicros() - start_us));
  }
  done(status);
}

Status EnsembleServable::CheckRun(const RunRequest* request, const RunResult* result, int64_t now_us) const {
  if (request == nullptr || result == nullptr) return InvalidArgumentError("Run: request or result is null");
  if (request->items.empty()) return InvalidArgumentError("the request has no images");
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    if (shutting_down_) return UnavailableError("ensemble " + Quoted(info_.name) + " is shutting down");
  }
  if (request->deadline_us > 0 && now_us >= request->deadline_us) {
    return DeadlineExceededError("the deadline passed before the request was scheduled");
  }
  if (request->cancelled && request->cancelled()) return CancelledError("the request was cancelled");
  return OkStatus();
}

void EnsembleServable::ResolveMembers(RunState& state, int64_t now_us) const {
  state.members.resize(members_.size());
  for (size_t m = 0; m < members_.size(); ++m) {
    RunState::Member& member = state.members[m];
    member.version = members_[m].version;
    StatusOr<std::shared_ptr<Servable>> resolved = ResolveMember(members_[m]);
    if (resolved.ok()) {
      member.servable = *std::move(resolved);
      member.version = member.servable->info().version;
    } else {
      member.status = resolved.status();
      member.settled = true;
    }
  }
  if (member_timeout_us_ > 0) state.member_deadline_us = AddMicros(now_us, member_timeout_us_);
  const int64_t request_deadline_us = state.request->deadline_us;
  if (request_deadline_us > 0 && request_deadline_us <= state.member_deadline_us) {
    state.member_deadline_us = request_deadline_us;
    state.deadline_is_request_deadline = true;
  }
}

std::vector<PreprocessOptions> EnsembleServable::GroupMembers(RunState& state, int64_t first_image) const {
  std::vector<PreprocessOptions> groups;
  state.member_group.assign(members_.size(), -1);
  if (first_image < 0) return groups;
  for (size_t m = 0; m < members_.size(); ++m) {
    RunState::Member& member = state.members[m];
    if (member.settled) continue;
    const std::optional<PreprocessOptions>& preprocess = member.servable->info().preprocess;
    if (!preprocess.has_value()) {
      member.status = InItem(*state.request, first_image,
                             InvalidArgumentError("model " + Quoted(members_[m].model) +
                                                  " has no image preprocessing (its input is not C x H x W)"));
      member.settled = true;
      continue;
    }
    const auto same = std::find(groups.begin(), groups.end(), *preprocess);
    state.member_group[m] = static_cast<int>(same - groups.begin());
    if (same == groups.end()) groups.push_back(*preprocess);
  }
  return groups;
}

Status EnsembleServable::PrepareInputs(RunState& state) const {
  const RunRequest& request = *state.request;
  const int64_t num_items = static_cast<int64_t>(request.items.size());
  const auto image_item = [](const ImageItem& item) { return item.kind != ImageItem::Kind::kTensor; };
  const auto first = std::find_if(request.items.begin(), request.items.end(), image_item);
  const int64_t first_image = first == request.items.end() ? -1 : first - request.items.begin();
  const std::vector<PreprocessOptions> groups = GroupMembers(state, first_image);
  std::vector<int64_t> group_item_size(groups.size());
  state.group_inputs.resize(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    group_item_size[g] = NumElements(PreprocessedDims(groups[g]));
    state.group_inputs[g].resize(static_cast<size_t>(num_items * group_item_size[g]));
  }
  state.tensor_copies.resize(static_cast<size_t>(num_items));
  std::vector<Status> group_status(groups.size());  // the first failure of each group
  std::vector<ItemTarget> targets(groups.size());
  std::vector<Status> target_status(groups.size());
  for (int64_t i = 0; i < num_items; ++i) {
    const ImageItem& item = request.items[static_cast<size_t>(i)];
    const bool image = image_item(item);
    for (size_t g = 0; g < groups.size(); ++g) {  // a group that has failed is not written again
      targets[g].preprocess = &groups[g];
      targets[g].dst = image && group_status[g].ok() ? state.group_inputs[g].data() + i * group_item_size[g] : nullptr;
    }
    const size_t count = image ? targets.size() : 0;  // tensors are only checked: each member sizes its own
    const Status status = PrepareItem(item, options_.decode_limits, std::span<const ItemTarget>(targets.data(), count),
                                      std::span<Status>(target_status.data(), count));
    if (!status.ok()) return InItem(request, i, status);
    if (!image) state.tensor_copies[static_cast<size_t>(i)] = std::string(item.data);
    for (size_t g = 0; g < count; ++g) {
      if (group_status[g].ok() && !target_status[g].ok()) group_status[g] = InItem(request, i, target_status[g]);
    }
  }
  for (size_t m = 0; m < members_.size(); ++m) {  // a failed group's members do not answer
    const int g = state.member_group[m];
    if (g < 0 || group_status[static_cast<size_t>(g)].ok()) continue;
    state.members[m].status = group_status[static_cast<size_t>(g)];
    state.members[m].settled = true;
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!group_status[g].ok()) state.group_inputs[g] = {};
  }
  return OkStatus();
}

Status EnsembleServable::Admit(const std::shared_ptr<RunState>& state, std::function<void(Status)>& done) {
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    if (shutting_down_) return UnavailableError("ensemble " + Quoted(info_.name) + " is shutting down");
    runs_.emplace(state.get(), state);
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.preprocess.Add(MicrosToNanos(state->preprocess_us));
    ++stats_.execution_count;
  }
  state->done = std::move(done);
  int launch = 0;
  for (const RunState::Member& member : state->members) launch += member.settled ? 0 : 1;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->unsettled = launch + 1;  // + 1: FanOut, until it has launched every member
  }
  if (state->member_deadline_us != Clock::kInfiniteFuture) {
    const Status timeout = state->deadline_is_request_deadline
                               ? DeadlineExceededError("did not answer before the request's deadline")
                               : DeadlineExceededError("did not answer within member_timeout_ms " +
                                                       std::to_string(member_timeout_us_ / kMicrosPerMilli));
    const std::weak_ptr<RunState> weak = state;
    state->timer_id = timer_->Schedule(state->member_deadline_us, [this, weak, timeout] {
      if (std::shared_ptr<RunState> s = weak.lock()) GiveUp(s, timeout);
    });
  }
  return OkStatus();
}

std::shared_ptr<RunRequest> EnsembleServable::MemberRequest(const std::shared_ptr<RunState>& state, size_t m) const {
  const RunRequest& request = *state->request;
  const int64_t num_items = static_cast<int64_t>(request.items.size());
  auto member_request = std::make_shared<RunRequest>();
  member_request->items.resize(static_cast<size_t>(num_items));
  const int group = state->member_group[m];
  const int64_t group_item_size =
      group >= 0 ? static_cast<int64_t>(state->group_inputs[static_cast<size_t>(group)].size()) / num_items : 0;
  for (int64_t i = 0; i < num_items; ++i) {
    ImageItem& item = member_request->items[static_cast<size_t>(i)];
    item.kind = ImageItem::Kind::kTensor;
    if (request.items[static_cast<size_t>(i)].kind == ImageItem::Kind::kTensor) {
      item.data = state->tensor_copies[static_cast<size_t>(i)];
    } else {
      const float* row = state->group_inputs[static_cast<size_t>(group)].data() + i * group_item_size;
      item.data = std::string_view(reinterpret_cast<const char*>(row),
                                   static_cast<size_t>(group_item_size) * sizeof(float));
    }
  }
  member_request->deadline_us = state->member_deadline_us == Clock::kInfiniteFuture ? 0 : state->member_deadline_us;
  member_request->request_id = request.request_id;
  const std::weak_ptr<RunState> weak = state;
  // Cancelled once the ensemble has given up on this member or answered; the client's check is never called
  // after the ensemble's `done`.
  member_request->cancelled = [weak, m] {
    const std::shared_ptr<RunState> s = weak.lock();
    if (s == nullptr) return true;
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->answered || s->members[m].settled) return true;
    return s->request->cancelled && s->request->cancelled();
  };
  member_request->item_name = [weak](int64_t i) {
    if (const std::shared_ptr<RunState> s = weak.lock()) {
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->answered) return s->request->ItemName(i);
    }
    return "items[" + std::to_string(i) + "]";
  };
  return member_request;
}

void EnsembleServable::FanOut(const std::shared_ptr<RunState>& state) {
  for (size_t m = 0; m < state->members.size(); ++m) {
    std::shared_ptr<Servable> servable;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->members[m].settled) continue;  // failed before the fan-out, or already given up
      servable = state->members[m].servable;
    }
    RunResult* member_result = &state->members[m].result;
    servable->Run(MemberRequest(state, m), member_result, [self = this, state, m](Status status) {
      bool claim = false;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        RunState::Member& member = state->members[m];
        if (member.settled) return;  // given up on: a late answer, ignored (the servable may be gone)
        member.settled = true;
        member.status = std::move(status);
        claim = --state->unsettled == 0 && !state->answered;
        if (claim) state->answered = true;
      }
      if (claim) self->Finish(state);
    });
  }
  bool claim = false;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    claim = --state->unsettled == 0 && !state->answered;
    if (claim) state->answered = true;
  }
  if (claim) Finish(state);
}

void EnsembleServable::Run(std::shared_ptr<const RunRequest> request, RunResult* result,
                           std::function<void(Status)> done) {
  const int64_t start_us = SteadyNowMicros();
  const int64_t now_us = clock_->NowMicros();
  if (Status status = CheckRun(request.get(), result, now_us); !status.ok()) return FailRun(start_us, status, done);
  auto state = std::make_shared<RunState>();
  state->request = request;
  state->result = result;
  state->start_us = start_us;
  // 1. Members, resolved now so that a reloaded member is picked up. 2. Their deadline: the request's, or
  // member_timeout_ms from now if that comes first.
  ResolveMembers(*state, now_us);
  // 3. Admission: refuse at once, before decoding, when too few members can take the request now.
  const int64_t num_items = static_cast<int64_t>(request->items.size());
  if (Status refused = AdmitMembers(*state, num_items); !refused.ok()) return FailRun(start_us, refused, done);
  // 4. Decode every image once and preprocess it once per distinct preprocessing among the members; check and
  // copy every tensor once.
  if (Status status = PrepareInputs(*state); !status.ok()) return FailRun(start_us, status, done);
  state->preprocess_us = SteadyNowMicros() - start_us;
  // 5. In flight: listed for Shutdown, the member deadline armed.
  if (Status status = Admit(state, done); !status.ok()) return FailRun(start_us, status, done);
  // 6. Fan out. Every member gets kTensor items pointing into the state's buffers.
  FanOut(state);
}

Status EnsembleServable::CheckAdmission(int64_t items, int64_t deadline_us) {
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    if (shutting_down_) return UnavailableError("ensemble " + Quoted(info_.name) + " is shutting down");
  }
  if (items < 1) return OkStatus();  // Run answers INVALID_ARGUMENT itself
  auto request = std::make_shared<RunRequest>();
  request->deadline_us = deadline_us;
  RunState state;
  state.request = request;
  ResolveMembers(state, clock_->NowMicros());
  return AdmitMembers(state, items);
}

Status EnsembleServable::AdmitMembers(RunState& state, int64_t num_items) const {
  const int64_t deadline_us = state.member_deadline_us == Clock::kInfiniteFuture ? 0 : state.member_deadline_us;
  int32_t admitted = 0;
  for (RunState::Member& member : state.members) {
    if (member.settled) continue;
    member.status = member.servable->CheckAdmission(num_items, deadline_us);
    member.settled = !member.status.ok();
    admitted += member.settled ? 0 : 1;
  }
  const int32_t total = static_cast<int32_t>(members_.size());
  if (admitted < (quorum_ == 0 ? total : quorum_)) {
    return UnavailableError(QuorumMessage(state, admitted, "could take the request now"));
  }
  return CheckMembersWork(state, num_items, deadline_us);
}

Status EnsembleServable::CheckMembersWork(const RunState& state, int64_t num_items, int64_t deadline_us) const {
  if (deadline_us <= 0) return OkStatus();
  int64_t work_us = 0;
  for (const RunState::Member& member : state.members) {
    if (!member.settled) work_us = AddMicros(work_us, member.servable->ExpectedWorkMicros(num_items));
  }
  const int64_t now_us = clock_->NowMicros();
  if (AddMicros(now_us, work_us) <= deadline_us) return OkStatus();
  return UnavailableError("ensemble " + Quoted(info_.name) + " is overloaded: its members' queues, which share the "
                          "compute lanes, hold about " + std::to_string(work_us / kMicrosPerMilli) +
                          " ms of work with this request, past the deadline in " +
                          std::to_string(std::max<int64_t>(0, deadline_us - now_us) / kMicrosPerMilli) +
                          " ms; retry later or with a longer deadline");
}

std::shared_ptr<void> EnsembleServable::ExpectIncoming(int64_t items) {
  auto handles = std::make_shared<std::vector<std::shared_ptr<void>>>();
  for (const MemberSpec& spec : members_) {
    StatusOr<std::shared_ptr<Servable>> member = ResolveMember(spec);
    // The member servable is kept with its handle: a reload may retire it meanwhile.
    if (member.ok()) handles->push_back(std::make_shared<std::pair<std::shared_ptr<Servable>, std::shared_ptr<void>>>(
                         *member, (*member)->ExpectIncoming(items)));
  }
  return handles;
}

int64_t EnsembleServable::ExpectedWorkMicros(int64_t items) const {
  int64_t work_us = 0;
  for (const MemberSpec& spec : members_) {
    StatusOr<std::shared_ptr<Servable>> member = ResolveMember(spec);
    if (member.ok()) work_us = AddMicros(work_us, (*member)->ExpectedWorkMicros(items));
  }
  return work_us;
}

std::string EnsembleServable::QuorumMessage(const RunState& state, int32_t answered, std::string_view verb) const {
  const int32_t total = static_cast<int32_t>(members_.size());
  std::string message = "ensemble " + Quoted(info_.name) + ": " + std::to_string(answered) + " of " +
                        std::to_string(total) + " members " + std::string(verb) + " (quorum " +
                        std::to_string(quorum_ == 0 ? total : quorum_) + ")";
  for (size_t m = 0; m < state.members.size(); ++m) {
    const Status& member_status = state.members[m].status;
    if (member_status.ok()) continue;
    message += "; " + MemberName(m, state.members[m].version) + ": " + member_status.ToString();
  }
  return message;
}

void EnsembleServable::GiveUp(const std::shared_ptr<RunState>& state, const Status& status) {
  bool claim = false;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->answered) return;
    for (RunState::Member& member : state->members) {
      if (member.settled) continue;
      member.settled = true;
      member.status = status;
      --state->unsettled;
    }
    claim = state->unsettled == 0;
    if (claim) state->answered = true;
  }
  if (claim) Finish(state);
}

int64_t EnsembleServable::GiveUpAll(const Status& status) {
  std::vector<std::shared_ptr<RunState>> runs;
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    for (const auto& [key, state] : runs_) runs.push_back(state);
  }
  int64_t cut_short = 0;
  for (const std::shared_ptr<RunState>& state : runs) {
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->answered) continue;
    }
    ++cut_short;
    GiveUp(state, status);
  }
  return cut_short;
}

int32_t EnsembleServable::CheckAnswers(RunState& state) const {
  const int64_t num_items = static_cast<int64_t>(state.request->items.size());
  const int64_t num_classes = info_.num_classes;
  const size_t row_size = static_cast<size_t>(num_classes);
  const size_t rows_size = static_cast<size_t>(num_items) * row_size;
  int32_t answered = 0;
  for (RunState::Member& member : state.members) {
    if (!member.status.ok()) continue;
    RunResult& r = member.result;
    if (r.probabilities.size() != rows_size && r.scores.size() == rows_size) {
      r.probabilities.resize(rows_size);
      for (size_t i = 0; i < static_cast<size_t>(num_items); ++i) {
        Softmax(std::span<const float>(r.scores.data() + i * row_size, row_size),
                std::span<float>(r.probabilities.data() + i * row_size, row_size));
      }
    }
    if (r.probabilities.size() != rows_size) {
      member.status =
          InternalError("it returned " + std::to_string(r.probabilities.size()) + " probabilities for " +
                        std::to_string(num_items) + " images x " + std::to_string(num_classes) + " classes");
      continue;
    }
    for (int64_t i = 0; i < num_items; ++i) {
      if (!UsableRow(std::span<const float>(r.probabilities.data() + i * num_classes, row_size))) {
        member.status = InternalError(state.request->ItemName(i) +
                                      ": it returned unusable probabilities (NaN, infinite, negative or all zero)");
        break;
      }
    }
    answered += member.status.ok() ? 1 : 0;
  }
  return answered;
}

void EnsembleServable::FillResultHeader(const RunState& state, int32_t answered) const {
  RunResult& out = *state.result;
  out.model = info_.name;
  out.version = info_.version;
  out.num_classes = info_.num_classes;
  out.num_items = static_cast<int64_t>(state.request->items.size());
  out.members.clear();
  out.members.resize(members_.size());
  out.members_answered = answered;
  out.members_total = static_cast<int32_t>(members_.size());
  out.preprocess_us = state.preprocess_us;
  out.queue_us = 0;
  out.compute_us = 0;
  for (const RunState::Member& member : state.members) {
    if (!member.status.ok()) continue;
    out.queue_us = std::max(out.queue_us, member.result.queue_us);
    out.compute_us += member.result.compute_us;
  }
  out.scores.clear();
  out.probabilities.clear();
  out.tie_break.clear();
  out.agreement.clear();
  for (size_t m = 0; m < members_.size(); ++m) {
    MemberResult& member = out.members[m];
    member.model = members_[m].model;
    member.version = state.members[m].version;
    member.weight = members_[m].weight;
    member.status = state.members[m].status;
    member.probabilities.clear();
  }
}

Status EnsembleServable::QuorumFailure(const RunState& state, int32_t answered) const {
  const RunRequest& request = *state.request;
  const int32_t total = static_cast<int32_t>(members_.size());
  const int32_t needed = quorum_ == 0 ? total : quorum_;
  int32_t invalid = 0;
  for (const RunState::Member& member : state.members) {
    invalid += member.status.code() == StatusCode::kInvalidArgument ? 1 : 0;
  }
  std::string message = QuorumMessage(state, answered, "answered");
  if (request.cancelled && request.cancelled()) return CancelledError(std::move(message));
  if (request.deadline_us > 0 && clock_->NowMicros() >= request.deadline_us) {
    return DeadlineExceededError(std::move(message));
  }
  if (total - invalid < needed) return InvalidArgumentError(std::move(message));  // no retry can reach the quorum
  return UnavailableError(std::move(message));
}

Status EnsembleServable::CombineMembers(RunState& state) const {
  const RunRequest& request = *state.request;
  RunResult& out = *state.result;
  const int64_t num_items = static_cast<int64_t>(request.items.size());
  const int64_t num_classes = info_.num_classes;
  const size_t row_size = static_cast<size_t>(num_classes);
  const size_t rows_size = static_cast<size_t>(num_items) * row_size;
  out.scores.resize(rows_size);
  out.probabilities.resize(rows_size);
  out.tie_break.resize(rows_size);
  out.agreement.resize(static_cast<size_t>(num_items));
  std::vector<MemberVote> votes(members_.size());
  for (int64_t i = 0; i < num_items; ++i) {
    for (size_t m = 0; m < members_.size(); ++m) {
      const RunState::Member& member = state.members[m];
      votes[m].answered = member.status.ok();
      votes[m].weight = members_[m].weight;
      votes[m].probabilities =
          member.status.ok() ? std::span<const float>(member.result.probabilities.data() + i * num_classes, row_size)
                             : std::span<const float>();
    }
    StatusOr<Vote> vote = CombineVotes(strategy_, votes, num_classes, quorum_);
    if (!vote.ok()) return vote.status().WithContext("ensemble " + Quoted(info_.name) + ": " + request.ItemName(i));
    const size_t row = static_cast<size_t>(i) * row_size;
    std::copy(vote->scores.begin(), vote->scores.end(), out.scores.begin() + row);
    std::copy(vote->probabilities.begin(), vote->probabilities.end(), out.probabilities.begin() + row);
    std::copy(vote->tie_break.begin(), vote->tie_break.end(), out.tie_break.begin() + row);
    out.agreement[static_cast<size_t>(i)] = vote->agreement;
  }
  if (request.want_member_results) {
    for (size_t m = 0; m < members_.size(); ++m) {
      if (state.members[m].status.ok()) out.members[m].probabilities = std::move(state.members[m].result.probabilities);
    }
  }
  return OkStatus();
}

void EnsembleServable::RecordFinish(const RunState& state, const Status& status) {
  const uint64_t ns = MicrosToNanos(SteadyNowMicros() - state.start_us);
  const RunResult& out = *state.result;
  std::lock_guard<std::mutex> lock(stats_mu_);
  if (!status.ok()) {
    stats_.fail.Add(ns);
    return;
  }
  stats_.success.Add(ns);
  stats_.inference_count += static_cast<uint64_t>(out.num_items);
  stats_.queue.Add(MicrosToNanos(out.queue_us));
  stats_.last_inference_ms = WallNowMillis();
  for (float agreement : out.agreement) {
    ++stats_.agreement_buckets[AgreementBucket(agreement)];
    stats_.agreement_sum += agreement;
    ++stats_.agreement_count;
  }
}

void EnsembleServable::Finish(const std::shared_ptr<RunState>& state) {
  if (state->timer_id != 0) timer_->Cancel(state->timer_id);
  // Every member is settled and no longer written to, except the results of members given up on (not read).
  // 1. Check the answers' shape and values. 2. The result's header and members. 3. The quorum, then the vote.
  const int32_t answered = CheckAnswers(*state);
  FillResultHeader(*state, answered);
  const int32_t total = static_cast<int32_t>(members_.size());
  Status status = answered < (quorum_ == 0 ? total : quorum_) ? QuorumFailure(*state, answered)
                                                               : CombineMembers(*state);
  if (!status.ok()) {  // a failed vote leaves no half-filled rows
    state->result->scores.clear();
    state->result->probabilities.clear();
    state->result->tie_break.clear();
    state->result->agreement.clear();
  }
  // 4. Statistics, then the answer.
  RecordFinish(*state, status);
  std::function<void(Status)> done = std::move(state->done);
  {
    std::lock_guard<std::mutex> lock(runs_mu_);
    runs_.erase(state.get());
  }
  runs_cv_.notify_all();
  // From here on `this` may be destroyed (by `done`, or by a destructor waiting for runs_ to empty).
  done(std::move(status));
}

ServableStats EnsembleServable::Stats() const {
  ServableStats stats;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats = stats_;
  }
  std::lock_guard<std::mutex> lock(runs_mu_);
  stats.queue_depth = static_cast<int64_t>(runs_.size());
  return stats;
}

Status EnsembleServable::Shutdown(int64_t drain_deadline_us) {
  {
    std::unique_lock<std::mutex> lock(runs_mu_);
    shutting_down_ = true;
    while (!runs_.empty() && clock_->NowMicros() < drain_deadline_us) {
      clock_->WaitUntil(lock, runs_cv_, drain_deadline_us);
    }
    if (runs_.empty()) return OkStatus();
  }
  const int64_t cut_short = GiveUpAll(UnavailableError(
      "ensemble " + Quoted(info_.name) + " shut down before this member answered (drain deadline reached)"));
  {
    std::unique_lock<std::mutex> lock(runs_mu_);
    runs_cv_.wait(lock, [this] { return runs_.empty(); });
  }
  if (cut_short == 0) return OkStatus();
  return DeadlineExceededError("ensemble " + Quoted(info_.name) + ": " + std::to_string(cut_short) +
                               " requests were answered without their missing members at the drain deadline");
}

}  // namespace cnnserve
