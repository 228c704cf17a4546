// EnsembleServable: a repository entry with platform "ensemble" served as one Servable (servable.h). A request is
// fanned out to the member servables (found through a resolver, not owned), their answers are combined per image
// by the configured voting strategy (voting.h), and the result carries the ensemble's rows, each member's status
// (and rows on request), the members' agreement and how many members answered. Clients address it like a model.
//
// One Run, step by step:
//   1. Resolve every member (model, version; 0 = newest ready) through the resolver, at every Run, so that a
//      reloaded or newly loaded member version is picked up. A member that cannot be resolved, is itself an
//      ensemble or now has a different class count does not answer (its status says why).
//   2. Prepare every item once with PrepareItem (server/preprocess/image_input.h, the path a model servable
//      takes too): each image is decoded (kEncoded) or built (kPixels) once and preprocessed once per distinct
//      preprocessing among the members (PreprocessOptions ==) into a float buffer per group. An item that cannot
//      be decoded fails the whole Run at once with INVALID_ARGUMENT "<item name>: ..." (no member runs). A group
//      whose preprocessing fails (e.g. an extreme aspect ratio for a centre crop) makes only its members not
//      answer. kTensor items are checked for finite values, copied once and go to every member unchanged (each
//      member checks the size).
//   3. Run every member concurrently (Servable::Run is asynchronous) with kTensor items pointing into those
//      buffers, which live until the last member is done, so members batch ensemble traffic like any other.
//      Member deadline: min(request deadline, now + member_timeout_ms) (0: none). A member that has not answered
//      by then is given up (DEADLINE_EXCEEDED) and is told to cancel what it still has queued; its late answer
//      is ignored.
//   4. When every member has answered or been given up: if at least `quorum` members (0: all) answered, combine
//      each image's rows (CombineVotes) and fill RunResult: scores / probabilities / tie_break per the strategy,
//      agreement per image, members in config order (status; probabilities when want_member_results),
//      members_answered / members_total (a result from fewer than all members says so there), preprocess_us,
//      queue_us (the longest member wait), compute_us (summed over members). A member whose rows contain
//      unusable values (NaN, infinities, negatives, all zeros) counts as not answering (INTERNAL).
//      Otherwise the Run fails, naming each member that did not answer and why:
//        'ensemble "E": 1 of 3 members answered (quorum 2); "m2" version 1: DEADLINE_EXCEEDED: ...; "m3": ...'
//      with the code CANCELLED if the request was cancelled, else DEADLINE_EXCEEDED if its own deadline passed,
//      else INVALID_ARGUMENT if members that rejected the request as invalid (e.g. a tensor of the wrong size)
//      alone make the quorum unreachable, else UNAVAILABLE.
//
// Statistics (Stats): success / fail per Run with its duration, execution_count (+1 per Run fanned out),
// inference_count (+items per successful Run), preprocess (decode + preprocess per Run), queue (the longest member
// wait per successful Run), agreement per image (kAgreementBucketBounds), queue_depth (Runs in flight).
//
// Thread-safety: as Servable: Run, Stats, info and Shutdown may be called concurrently from any thread. `done`
// runs on the calling thread (validation and decode errors, or when every member answers synchronously), on a
// member's thread, or on the ensemble's timer thread. Ownership: the ensemble does not own its members; it keeps
// a resolved member alive for the Runs it is used in. The resolver is called from Run (on the caller's thread)
// and must not block on anything held by Run's caller.
#ifndef CNNSERVE_SERVER_ENSEMBLE_ENSEMBLE_SERVABLE_H_
#define CNNSERVE_SERVER_ENSEMBLE_ENSEMBLE_SERVABLE_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "server/batching/clock.h"
#include "server/ensemble/voting.h"
#include "server/preprocess/preprocess.h"
#include "server/servables/servable.h"

namespace cnnserve {

class DeadlineTimer;

struct EnsembleServableOptions {
  // Caps for decoding kEncoded items and building kPixels items.
  DecodeLimits decode_limits;
  // The timeline of request deadlines, member timeouts and Shutdown's drain deadline. Null: Clock::Real(), whose
  // timeline is SteadyNowMicros()'s. Tests inject a FakeClock. Not owned; must outlive the servable.
  Clock* clock = nullptr;
};

class EnsembleServable final : public Servable {
 public:
  // `config`: an entry with platform "ensemble" and its `ensemble` field; `labels`: the entry's labels (empty: the
  // first member's). Resolves every member once to learn the class count and input. Errors: INVALID_ARGUMENT for
  // a bad config (no members, a member without a model name or naming the ensemble itself, a negative version,
  // weight or member_timeout_ms, a non-finite weight, quorum outside [0, members], an unknown strategy), for a
  // member that is itself an ensemble (ensembles do not nest), and for members with different class counts (naming
  // the member and both counts); the resolver's error (NOT_FOUND, UNAVAILABLE) naming the member when a member
  // cannot be resolved. STRATEGY_UNSPECIFIED means SOFT_MEAN.
  static StatusOr<std::unique_ptr<EnsembleServable>> Create(const v1::ModelConfig& config,
                                                            std::vector<std::string> labels,
                                                            ServableResolver resolver,
                                                            const EnsembleServableOptions& options);
  static StatusOr<std::unique_ptr<EnsembleServable>> Create(const v1::ModelConfig& config,
                                                            std::vector<std::string> labels,
                                                            ServableResolver resolver, const DecodeLimits& limits);

  // Stops admitting; Runs still waiting for members are answered at once as if those members had failed with
  // UNAVAILABLE (the quorum rule decides); then stops the timer thread. Blocks only for `done` callbacks already
  // running elsewhere. May be called from a `done` callback.
  ~EnsembleServable() override;

  EnsembleServable(const EnsembleServable&) = delete;
  EnsembleServable& operator=(const EnsembleServable&) = delete;

  // name, version 1, platform "ensemble", num_classes, labels, max_batch_size (the smallest of the members' and,
  // when set, the config's), item_input_dims / preprocess / input and output names of the first member, config.
  const ServableInfo& info() const override { return info_; }

  // See the header comment. Errors before any member runs: INVALID_ARGUMENT (no items, a null request or result,
  // an item that cannot be decoded), UNAVAILABLE (shutting down), DEADLINE_EXCEEDED (deadline already passed),
  // CANCELLED.
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
           std::function<void(Status)> done) override;

  ServableStats Stats() const override;

  // Whether a Run of `items` with this deadline would be admitted now: resolves the members and asks them as Run
  // does before it decodes anything (AdmitMembers): UNAVAILABLE when shutting down or when fewer than quorum
  // members could take it (naming them). Reserves nothing.
  Status CheckAdmission(int64_t items, int64_t deadline_us) override;
  // The sum of the members' (they take turns on the same compute lanes).
  int64_t ExpectedWorkMicros(int64_t items) const override;
  // One handle on each member that resolves now.
  std::shared_ptr<void> ExpectIncoming(int64_t items) override;

  // Stops admitting (Run then fails with UNAVAILABLE) and waits until the Runs in flight have answered or the
  // clock reaches drain_deadline_us; Runs still waiting then are answered as if their missing members had failed
  // with UNAVAILABLE. Members are not owned and are not shut down. OK when every Run answered in time,
  // DEADLINE_EXCEEDED saying how many were cut short otherwise. Idempotent.
  Status Shutdown(int64_t drain_deadline_us) override;

  // The strategy in use (STRATEGY_UNSPECIFIED resolved to SOFT_MEAN), and the quorum as configured (0: all).
  EnsembleStrategy strategy() const { return strategy_; }
  int32_t quorum() const { return quorum_; }

 private:
  struct MemberSpec {
    std::string model;
    int64_t version = 0;  // 0: the newest ready
    float weight = 1.0f;  // 0 in the config means 1
  };
  struct RunState;

  EnsembleServable() = default;

  // The answer of one member: the resolved servable, or why it cannot take part in this Run.
  StatusOr<std::shared_ptr<Servable>> ResolveMember(const MemberSpec& member) const;
  // Run's steps (the numbers of the header comment), in order.
  // Records a Run that failed before its fan-out and calls `done`.
  void FailRun(int64_t start_us, const Status& status, const std::function<void(Status)>& done);
  // The checks before any work: a request with items, not shutting down, deadline not passed, not cancelled.
  Status CheckRun(const RunRequest* request, const RunResult* result, int64_t now_us) const;
  // Step 1: resolves every member into state.members (a failure settles the member) and sets the members'
  // deadline.
  void ResolveMembers(RunState& state, int64_t now_us) const;
  // Step 2: decodes every image item once and preprocesses it once per group (GroupMembers) into
  // state.group_inputs with PrepareItem; checks and copies tensor items. The error of an item that cannot be
  // decoded (the whole Run fails); a group whose preprocessing fails settles its members.
  Status PrepareInputs(RunState& state) const;
  // The distinct preprocessings of the unsettled members (state.member_group maps members to them); a member
  // without preprocessing is settled with an error naming item `first_image`. None when first_image < 0.
  std::vector<PreprocessOptions> GroupMembers(RunState& state, int64_t first_image) const;
  // Lists the Run in flight, counts it, takes `done` (moved from only on success) and arms the member deadline.
  // UNAVAILABLE when shutting down.
  Status Admit(const std::shared_ptr<RunState>& state, std::function<void(Status)>& done);
  // Step 3: runs every unsettled member on its MemberRequest (kTensor items into the state's buffers).
  void FanOut(const std::shared_ptr<RunState>& state);
  std::shared_ptr<RunRequest> MemberRequest(const std::shared_ptr<RunState>& state, size_t member) const;

  // Finish's steps (step 4). Answers `state` if every member has settled and it has not been answered yet.
  // Called without state->mu held.
  void Finish(const std::shared_ptr<RunState>& state);
  // Turns members whose rows are missing or unusable into failures; returns how many answered.
  int32_t CheckAnswers(RunState& state) const;
  // The result's model, counts, timings and members (their status), with no rows.
  void FillResultHeader(const RunState& state, int32_t answered) const;
  // The error of a Run whose members did not reach the quorum (code as the header comment says).
  Status QuorumFailure(const RunState& state, int32_t answered) const;
  // Votes every item (CombineVotes) into the result's rows; moves member rows when want_member_results.
  Status CombineMembers(RunState& state) const;
  void RecordFinish(const RunState& state, const Status& status);
  // Asks every resolved member whether it would admit the run now (Servable::CheckAdmission) and settles those
  // that would not, with their refusal. UNAVAILABLE naming every refused or unresolved member when the quorum can
  // no longer be reached, or when the admitted members' work together misses the deadline (CheckMembersWork), so
  // the request is refused before anything is decoded.
  Status AdmitMembers(RunState& state, int64_t num_items) const;
  // UNAVAILABLE "overloaded" when the admitted members' expected work, added up (they share the compute lanes),
  // would carry the request past `deadline_us` (absolute; 0: none). Each member alone sees only its own queue.
  Status CheckMembersWork(const RunState& state, int64_t num_items, int64_t deadline_us) const;
  // "ensemble "x": A of T members answered (quorum Q); member: status; ..." for the members that failed.
  std::string QuorumMessage(const RunState& state, int32_t answered, std::string_view verb) const;
  // Gives up on every member of `state` that has not answered, with `status`, and finishes it if that settled it.
  void GiveUp(const std::shared_ptr<RunState>& state, const Status& status);
  // Gives up on every Run in flight; returns how many were cut short.
  int64_t GiveUpAll(const Status& status);
  // The member's name in messages: "m" or "m" version v.
  std::string MemberName(size_t member, int64_t resolved_version) const;

  ServableInfo info_;
  std::vector<MemberSpec> members_;
  EnsembleStrategy strategy_ = v1::EnsembleConfig::SOFT_MEAN;
  int32_t quorum_ = 0;
  int64_t member_timeout_us_ = 0;  // 0: none
  ServableResolver resolver_;
  EnsembleServableOptions options_;
  Clock* clock_ = nullptr;
  std::shared_ptr<DeadlineTimer> timer_;

  mutable std::mutex runs_mu_;
  std::condition_variable runs_cv_;                                // signalled when a Run leaves runs_
  bool shutting_down_ = false;                                     // guarded by runs_mu_
  std::unordered_map<RunState*, std::shared_ptr<RunState>> runs_;  // guarded by runs_mu_; Runs in flight

  mutable std::mutex stats_mu_;
  ServableStats stats_;  // guarded by stats_mu_
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_ENSEMBLE_ENSEMBLE_SERVABLE_H_
