// Model control: who may change which models a server serves, and what a model name in a load or unload request
// may look like. Pure policy, no state, used by InferenceService (so every front end, gRPC now and HTTP later,
// gets the same answers).
//
// Modes (Triton's names, the --model-control-mode flag):
//   none      the models found at start-up are served until exit; load/unload requests get FAILED_PRECONDITION.
//   explicit  load/unload requests change the served models (to the `model-control` scope when tokens are on).
//   poll      the server watches the repository (repository_poller.h); load/unload requests get
//             FAILED_PRECONDITION (the folder is the truth, as in Triton).
//
// Names: a model name is the name of a folder directly inside the repository, never a path. CheckModelName
// refuses (INVALID_ARGUMENT) empty names, names longer than kMaxModelNameBytes, "." and "..", names with '/',
// '\\', NUL or another control character, and names starting with '.' (hidden folders are never models). Its
// messages quote at most kMaxQuotedNameBytes of the name, with control bytes escaped.
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_SERVICE_MODEL_CONTROL_H_
#define CNNSERVE_SERVER_SERVICE_MODEL_CONTROL_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/status.h"

namespace cnnserve {

enum class ModelControlMode { kNone, kExplicit, kPoll };

inline constexpr size_t kMaxModelNameBytes = 256;
inline constexpr size_t kMaxQuotedNameBytes = 64;

// "none", "explicit", "poll".
std::string_view ModelControlModeName(ModelControlMode mode);
// The mode spelled as ModelControlModeName does; nullopt for anything else.
std::optional<ModelControlMode> ParseModelControlMode(std::string_view text);

// OK when a load or unload request (`operation`: "load" or "unload") may run in `mode`; else FAILED_PRECONDITION
// naming the mode and what to do instead.
Status CheckModelControlAllowed(ModelControlMode mode, std::string_view operation);

// OK for a plain model name (see above); INVALID_ARGUMENT with a bounded message otherwise.
Status CheckModelName(std::string_view name);

// `name` quoted for a message: Quoted (engine/common/strings.h) with at most kMaxQuotedNameBytes bytes (then
// "..." and the full length), quotes and backslashes escaped, bytes below 0x20 and 0x7f as \xHH.
std::string QuotedModelName(std::string_view name);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_MODEL_CONTROL_H_
