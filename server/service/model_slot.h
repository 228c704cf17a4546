// VersionSlot and ModelSlot: how InferenceService holds one model name as served (its versions, their states and
// servables, why it is unavailable). Internal to server/service (inference_service.cc).
// Thread-safety: a ModelSlot is immutable once published; LoadModel/UnloadModel publish a new one.
#ifndef CNNSERVE_SERVER_SERVICE_MODEL_SLOT_H_
#define CNNSERVE_SERVER_SERVICE_MODEL_SLOT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/repository/model_repository.h"
#include "server/servables/servable.h"

namespace cnnserve {

// One version of a model as served: its state (warm-up can still fail) and its servable (non-null exactly
// when READY).
struct VersionSlot {
  int64_t version = 0;
  ModelState state = ModelState::kUnavailable;
  std::string reason;
  std::shared_ptr<Servable> servable;
};

// One model name. Immutable once published in the map: LoadModel/UnloadModel publish a new slot.
struct ModelSlot {
  std::shared_ptr<const ModelEntry> entry;
  std::vector<VersionSlot> versions;  // ascending
  std::string unavailable_reason;     // set when no version can exist (broken config, unloaded)
  std::string load_error;             // the last load failed (why); these versions are the previous load's

  const VersionSlot* DefaultVersion() const {
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
      if (it->state == ModelState::kReady) return &*it;
    }
    return nullptr;
  }
  const VersionSlot* FindVersion(int64_t version) const {
    for (const VersionSlot& v : versions) {
      if (v.version == version) return &v;
    }
    return nullptr;
  }
  std::string Reason() const {
    if (!unavailable_reason.empty()) return unavailable_reason;
    if (!versions.empty()) return versions.back().reason;
    return "no versions";
  }
  std::vector<std::shared_ptr<Servable>> Servables() const {
    std::vector<std::shared_ptr<Servable>> out;
    for (const VersionSlot& v : versions) {
      if (v.servable != nullptr) out.push_back(v.servable);
    }
    return out;
  }
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_MODEL_SLOT_H_
