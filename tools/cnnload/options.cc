#include "tools/cnnload/options.h"

#include <cstdint>
#include <limits>
#include <string_view>

#include "engine/common/flags.h"
#include "engine/common/strings.h"
#include "engine/common/units.h"

namespace cnnserve::cnnload {
namespace {

constexpr int kExitUsage = 2;
constexpr int kMaxBatch = 1 << 16;
constexpr int kMaxConcurrency = 1 << 16;
constexpr int kMaxThreads = 256;
constexpr double kMaxSeconds = 7 * kSecondsPerDay;
constexpr double kMinRate = 1e-3;  // requests/s
constexpr double kMaxRate = 1e7;
constexpr double kMinSeconds = 1e-3;
constexpr int64_t kMaxOutstanding = int64_t{1} << 30;

constexpr char kSynopsis[] = R"(usage: cnnload --model M (--synthetic | --images DIR|FILE[,...]) [flags]

Load generator for cnnserve: measures throughput and latency of Classify (or KServe ModelInfer) calls.
)";

constexpr char kFooter[] =
    R"(exit codes: 0 every row ran (errors are counted, not fatal), 1 the server could not be used (unreachable,
unknown model, refused credentials, ...), 2 bad command line or unreadable input (TLS files included).
)";

// Appends each comma-separated item of `text` to `out`, parsed by `parse`.
template <typename T, typename Parse>
Status AppendList(std::string_view text, std::vector<T>* out, Parse parse) {
  StatusOr<std::vector<T>> items = parse(text);
  if (!items.ok()) return items.status();
  out->insert(out->end(), items->begin(), items->end());
  return OkStatus();
}

void AddWhatFlags(FlagSet& flags, LoadOptions* o) {
  flags.Section("what to send:");
  flags.String("--server", &o->server, "HOST:PORT",
               "the server (default 127.0.0.1:8001); cnnload talks to nothing else");
  flags.Choice<Protocol>("--protocol", &o->protocol,
                         {{"native", Protocol::kNative}, {"kserve", Protocol::kKServe}}, "P",
                         "native (cnnserve.v1.Classifier/Classify, default) or kserve\n"
                         "(inference.GRPCInferenceService/ModelInfer)");
  flags.String("--model", &o->model, "M", "model name (required)");
  flags.Integer<int64_t>("--version", &o->version, 0, std::numeric_limits<int64_t>::max(), "V",
                         "model version (default 0: the server's default)");
  flags.Value("--images", "DIR|FILE[,...]",
              "JPEG/PNG files (a directory: its *.jpg, *.jpeg, *.png), sent as encoded bytes",
              [o](std::string_view text) {
                for (const std::string_view part : SplitCommas(text)) {
                  if (part.empty()) return InvalidArgumentError("empty path in " + Quoted(text));
                  o->image_paths.emplace_back(part);
                }
                return OkStatus();
              });
  flags.Switch("--synthetic", &o->synthetic,
               "float32 tensors of the model's input shape (asked from the server), seeded values");
  flags.Integer<int>("--batch", &o->batch, 1, kMaxBatch, "N", "images per request (default 1)");
  // The server judges the value of --top-k.
  flags.Integer<int>("--top-k", &o->top_k, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), "K",
                     "native top_k (default 0: the server's default)");
  flags.Integer<int64_t>("--deadline-ms", &o->deadline_ms, 1, std::numeric_limits<int64_t>::max() / kNanosPerMilli,
                         "MS", "gRPC deadline of each request (default: none)");
}

void AddHowHardFlags(FlagSet& flags, LoadOptions* o) {
  flags.Section("how hard (one output row per level):");
  flags.Value("--concurrency", "1,2,4,...",
              "closed loop: that many requests in flight, each answered one replaced at once\n(default 1)",
              [o](std::string_view text) {
                return AppendList(text, &o->concurrency,
                                  [](std::string_view t) { return ParseIntegerList<int>(t, 1, kMaxConcurrency); });
              });
  flags.Value("--rate", "R[,R2,...]", "open loop: R requests/s, constant spacing ...", [o](std::string_view text) {
    return AppendList(text, &o->rates, [](std::string_view t) { return ParseDoubleList(t, kMinRate, kMaxRate); });
  });
  flags.Switch(
      "--poisson", [o] { o->arrivals = Arrivals::kPoisson; },
      "... or Poisson arrivals (exponential gaps) with mean rate R");
  flags.Integer<int64_t>("--max-outstanding", &o->max_outstanding, 1, kMaxOutstanding, "N",
                         "open loop: at most N requests in flight (default 4096); arrivals beyond it are\n"
                         "counted as not sent, and the achieved rate falls below the offered one");
}

void AddHowLongFlags(FlagSet& flags, LoadOptions* o) {
  flags.Section("how long:");
  flags.Double("--warmup", &o->warmup_s, 0, kMaxSeconds, "S",
               "seconds of unmeasured load before each row (default 2)");
  flags.Double("--duration", &o->duration_s, kMinSeconds, kMaxSeconds, "S",
               "measured seconds per row (default 10)");
  flags.Integer<int64_t>("--requests", &o->requests, 1, std::numeric_limits<int64_t>::max() / 2, "N",
                         "instead: the row ends after N measured responses (at most --max-row-s)");
  flags.Double("--max-row-s", &o->max_row_s, kMinSeconds, kMaxSeconds, "S",
               "the longest a --requests row may measure (default 300)");
  flags.Double("--drain-timeout-s", &o->drain_timeout_s, 0, kMaxSeconds, "S",
               "after a row, how long outstanding requests may take before they are cancelled\n(default 30)");
}

void AddClientAndOutputFlags(FlagSet& flags, LoadOptions* o) {
  flags.Section(
      "security (any --tls-* flag means TLS; without them the connection is plaintext; the token needs the infer\n"
      "scope, and metadata too for --synthetic and --protocol kserve, which ask for the model's inputs):");
  tools::AddClientSecurityFlags(&flags, &o->security);
  flags.Section("client:");
  flags.Integer<int>("--threads", &o->threads, 1, kMaxThreads, "T",
                     "worker threads, each with its own connection (default 1)");
  flags.Double("--connect-timeout-s", &o->connect_timeout_s, kMinSeconds, kMaxSeconds, "S",
               "how long to wait for the server at start-up (default 10)");
  flags.Integer<uint64_t>("--seed", &o->seed, 0, std::numeric_limits<uint64_t>::max(), "K",
                          "seed of synthetic tensors and Poisson arrivals (default 0)");
  flags.Section(
      "output (stdout: a table, or JSON with --json; stderr: a progress line per second unless --quiet):");
  flags.String("--csv", &o->csv_path, "FILE",
               "also write the rows as CSV (perf_analyzer's columns first; latencies in usec)");
  flags.Switch("--json", &o->json, "print a JSON document instead of the table");
  flags.Switch(
      "--quiet", [o] { o->progress = false; }, "no progress lines");
}

void AddFlags(FlagSet& flags, LoadOptions* o) {
  AddWhatFlags(flags, o);
  AddHowHardFlags(flags, o);
  AddHowLongFlags(flags, o);
  AddClientAndOutputFlags(flags, o);
  flags.set_footer(kFooter);
}

// The rules between flags; OK or the first one broken.
Status Check(const LoadOptions& o, bool duration_given) {
  if (o.model.empty()) return InvalidArgumentError("--model is required");
  if (o.synthetic == !o.image_paths.empty())
    return InvalidArgumentError("give exactly one of --synthetic and --images");
  if (!o.concurrency.empty() && !o.rates.empty())
    return InvalidArgumentError("give --concurrency or --rate, not both");
  if (o.arrivals == Arrivals::kPoisson && o.rates.empty()) return InvalidArgumentError("--poisson needs --rate");
  if (o.requests > 0 && duration_given) return InvalidArgumentError("give --duration or --requests, not both");
  return OkStatus();
}

}  // namespace

std::string Usage() {
  LoadOptions options;
  FlagSet flags(kSynopsis);
  AddFlags(flags, &options);
  return flags.Usage();
}

ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args) {
  ParsedCommandLine out;
  FlagSet flags(kSynopsis);
  AddFlags(flags, &out.options);
  Status status = flags.Parse(args);
  if (flags.help_requested()) {
    out.text = flags.Usage();
    return out;
  }
  if (status.ok()) status = Check(out.options, flags.Given("--duration"));
  if (status.ok()) status = tools::FinishClientSecurityOptions(&out.options.security);
  if (!status.ok()) {
    out.exit_code = kExitUsage;
    out.text = "cnnload: " + status.message() + "\nrun 'cnnload --help' for usage\n";
    return out;
  }
  if (out.options.concurrency.empty() && out.options.rates.empty()) out.options.concurrency.push_back(1);
  out.run = true;
  return out;
}

}  // namespace cnnserve::cnnload
