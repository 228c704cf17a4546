#include "server/native/native_request.h"

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/preprocess/preprocess.h"
#include "server/servables/classification.h"

namespace cnnserve {
namespace {

void FillClasses(const std::vector<ScoredClass>& ranked, const std::vector<std::string>& labels,
                 google::protobuf::RepeatedPtrField<v1::Class>* out) {
  for (const ScoredClass& c : ranked) {
    v1::Class* cls = out->Add();
    cls->set_index(c.index);
    if (static_cast<size_t>(c.index) < labels.size()) cls->set_label(labels[static_cast<size_t>(c.index)]);
    cls->set_score(c.score);
    cls->set_probability(c.probability);
  }
}

}  // namespace

void FillClassifyResponse(const RunResult& result, const ServableInfo& info, int top_k, bool members,
                          v1::ClassifyResponse* response) {
  response->clear_results();
  const bool ensemble = result.members_total > 0;
  const int k = static_cast<int>(std::min<int64_t>(top_k, result.num_classes));
  for (int64_t i = 0; i < result.num_items; ++i) {
    v1::Classification* out = response->add_results();
    const std::vector<ScoredClass> ranked = result.Ranked(i, std::max(k, 2));
    FillClasses(std::vector<ScoredClass>(ranked.begin(), ranked.begin() + std::min<size_t>(ranked.size(), k)),
                info.labels, out->mutable_classes());
    if (!ensemble) continue;
    if (static_cast<size_t>(i) < result.agreement.size())
      out->set_agreement(result.agreement[static_cast<size_t>(i)]);
    if (ranked.size() >= 2) out->set_margin(ranked[0].probability - ranked[1].probability);
    if (!members) continue;
    const size_t n = static_cast<size_t>(result.num_classes);
    for (const MemberResult& m : result.members) {
      v1::MemberClassification* member = out->add_members();
      member->set_model(m.model);
      member->set_version(m.version);
      if (!m.status.ok()) {
        member->set_error(m.status.ToString());
        continue;
      }
      if (m.probabilities.size() < (static_cast<size_t>(i) + 1) * n) continue;
      std::span<const float> row(m.probabilities.data() + static_cast<size_t>(i) * n, n);
      std::vector<ScoredClass> member_top = TopK(row, k);
      for (ScoredClass& c : member_top) c.probability = c.score;  // the member row is already probabilities
      FillClasses(member_top, info.labels, member->mutable_classes());
    }
  }
  if (ensemble) {
    response->set_members_answered(result.members_answered);
    response->set_members_total(result.members_total);
    response->set_partial(result.members_answered < result.members_total);
  }
}

Status BuildNativeItems(const v1::ClassifyRequest& request, const ServableInfo& info,
                        int64_t max_images_per_request, RunRequest* run) {
  return BuildNativeItems(request.inputs(), info, max_images_per_request, run);
}

Status BuildNativeItems(const google::protobuf::RepeatedPtrField<v1::Input>& inputs, const ServableInfo& info,
                        int64_t max_images_per_request, RunRequest* run) {
  const auto where = [](int i) { return "inputs[" + std::to_string(i) + "]"; };
  // Pass 1: count the images (a raw tensor may carry N of them) and check the tensors' shapes and sizes.
  int64_t num_images = 0;
  for (int i = 0; i < inputs.size(); ++i) {
    const v1::Input& input = inputs.Get(i);
    switch (input.kind_case()) {
      case v1::Input::kImage:
        ++num_images;
        break;
      case v1::Input::kTensor: {
        const Dims shape(input.tensor().shape().begin(), input.tensor().shape().end());
        if (Status status = ValidateRawTensor(shape, input.tensor().data().size(), info.item_input_dims);
            !status.ok()) {
          return InvalidArgumentError(where(i) + ".tensor: " + status.message());
        }
        num_images += shape.size() == 4 ? shape[0] : 1;
        break;
      }
      case v1::Input::KIND_NOT_SET:
        return InvalidArgumentError(where(i) + ": neither image nor tensor is set");
    }
    if (num_images > max_images_per_request) {
      return InvalidArgumentError("inputs: more than max_images_per_request (" +
                                  std::to_string(max_images_per_request) +
                                  ") images (counting each raw tensor's batch)");
    }
  }
  // Pass 2: one item per image, viewing the request's bytes.
  run->items.reserve(static_cast<size_t>(num_images));
  auto names = std::make_shared<std::vector<std::string>>();
  names->reserve(static_cast<size_t>(num_images));
  for (int i = 0; i < inputs.size(); ++i) {
    const v1::Input& input = inputs.Get(i);
    if (input.kind_case() == v1::Input::kImage) {
      run->items.push_back({ImageItem::Kind::kEncoded, input.image()});
      names->push_back(where(i) + ".image");
      continue;
    }
    const std::string& data = input.tensor().data();
    const int64_t count = input.tensor().shape_size() == 4 ? input.tensor().shape(0) : 1;
    const size_t item_bytes = data.size() / static_cast<size_t>(count);
    for (int64_t n = 0; n < count; ++n) {
      run->items.push_back({ImageItem::Kind::kTensor,
                            std::string_view(data).substr(static_cast<size_t>(n) * item_bytes, item_bytes)});
      names->push_back(where(i) + ".tensor" + (count > 1 ? "[" + std::to_string(n) + "]" : ""));
    }
  }
  run->item_name = [names](int64_t item) {
    return item >= 0 && static_cast<size_t>(item) < names->size() ? (*names)[static_cast<size_t>(item)]
                                                                  : "items[" + std::to_string(item) + "]";
  };
  return OkStatus();
}

Status BuildClassifyItems(const v1::ClassifyRequest& request, const ServableInfo& info,
                          int64_t max_images_per_request, RunRequest* run) {
  if (request.top_k() < 0) {
    return InvalidArgumentError("field top_k: " + std::to_string(request.top_k()) + " must be >= 0 (0 means " +
                                std::to_string(kDefaultTopK) + ")");
  }
  if (request.inputs_size() == 0) {
    return InvalidArgumentError("field inputs: the request has no inputs (send 1 to " +
                                std::to_string(max_images_per_request) + " images)");
  }
  if (request.inputs_size() > max_images_per_request) {
    return InvalidArgumentError("field inputs: " + std::to_string(request.inputs_size()) +
                                " inputs, more than max_images_per_request (" +
                                std::to_string(max_images_per_request) + ")");
  }
  return BuildNativeItems(request, info, max_images_per_request, run);
}

void ClassifyNative(InferenceService& service, const v1::ClassifyRequest& request, v1::ClassifyResponse* response,
                    int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  InferRequest infer;
  infer.model = request.model();
  infer.version = request.version();
  infer.request_id = request.request_id();
  infer.deadline_us = deadline_us;
  infer.cancelled = std::move(cancelled);
  infer.want_member_results = request.include_member_results();
  const int64_t max_images = service.options().max_images_per_request;
  infer.build_items = [&request, max_images](const ServableInfo& info, RunRequest* run) {
    return BuildClassifyItems(request, info, max_images, run);
  };
  auto outcome = std::make_shared<InferOutcome>();
  // What the answer needs from the request is copied: the request may be gone once Run has returned.
  const int top_k = request.top_k() == 0 ? kDefaultTopK : request.top_k();
  const bool members = request.include_member_results();
  const bool timings = request.include_timings();
  service.Infer(std::move(infer), outcome,
                [response, outcome, top_k, members, timings, done = std::move(done)](Status status) {
                  if (!status.ok()) return done(std::move(status));
                  const RunResult& r = outcome->result;
                  response->set_model(r.model);
                  response->set_version(r.version);
                  response->set_request_id(outcome->request_id);
                  FillClassifyResponse(r, outcome->servable->info(), top_k, members, response);
                  if (timings) {
                    v1::Timings* out = response->mutable_timings();
                    out->set_decode_us(r.preprocess_us);
                    out->set_queue_us(r.queue_us);
                    out->set_inference_us(r.compute_us);
                    out->set_total_us(SteadyNowMicros() - outcome->start_us);
                  }
                  done(OkStatus());
                });
}

}  // namespace cnnserve
