#include "tools/cnnload/options.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>
#include <system_error>

namespace cnnserve::cnnload {
namespace {

constexpr int kExitUsage = 2;
constexpr int kMaxBatch = 1 << 16;
constexpr int kMaxConcurrency = 1 << 16;
constexpr int kMaxThreads = 256;
constexpr double kMaxSeconds = 7 * 24 * 3600.0;

constexpr char kUsageText[] = R"(usage: cnnload --model M (--synthetic | --images DIR|FILE[,...]) [flags]

Load generator for cnnserve: measures throughput and latency of Classify (or KServe ModelInfer) calls.

what to send:
  --server HOST:PORT       the server (default 127.0.0.1:8001); cnnload talks to nothing else
  --protocol P             native (cnnserve.v1.Classifier/Classify, default) or kserve
                           (inference.GRPCInferenceService/ModelInfer)
  --model M                model name (required);  --version V  (default 0: the server's default)
  --images DIR|FILE[,...]  JPEG/PNG files (a directory: its *.jpg, *.jpeg, *.png), sent as encoded bytes
  --synthetic              float32 tensors of the model's input shape (asked from the server), seeded values
  --batch N                images per request (default 1)
  --top-k K                native top_k (default 0: the server's default)
  --deadline-ms MS         gRPC deadline of each request (default: none)

how hard (one output row per level):
  --concurrency 1,2,4,...  closed loop: that many requests in flight, each answered one replaced at once
                           (default 1)
  --rate R[,R2,...]        open loop: R requests/s, constant spacing ...
  --poisson                ... or Poisson arrivals (exponential gaps) with mean rate R
  --max-outstanding N      open loop: at most N requests in flight (default 4096); arrivals beyond it are
                           counted as not sent, and the achieved rate falls below the offered one

how long:
  --warmup S               seconds of unmeasured load before each row (default 2)
  --duration S             measured seconds per row (default 10)
  --requests N             instead: the row ends after N measured responses (at most --max-row-s, default 300)
  --drain-timeout-s S      after a row, how long outstanding requests may take before they are cancelled
                           (default 30)

security (any --tls-* flag means TLS; without them the connection is plaintext):
  --tls-ca FILE            verify the server's certificate against this PEM CA (default: the system's roots)
  --tls-cert FILE --tls-key FILE
                           present this PEM client certificate and its key (servers with --tls-client-ca)
  --tls-server-name NAME   the name the server's certificate must carry when it is not the one in --server
  --token T                send 'authorization: Bearer T' on every call (servers with --auth-token-file);
                           default: the environment variable CNNSERVE_TOKEN (never printed). The token needs
                           the infer scope, and metadata too for --synthetic and --protocol kserve (which ask
                           for the model's inputs)

client:
  --threads T              worker threads, each with its own connection (default 1)
  --connect-timeout-s S    how long to wait for the server at start-up (default 10)
  --seed K                 seed of synthetic tensors and Poisson arrivals (default 0)

output (stdout: a table, or JSON with --json; stderr: a progress line per second unless --quiet):
  --csv FILE               also write the rows as CSV (perf_analyzer's columns first; latencies in usec)
  --json                   print a JSON document instead of the table
  --quiet                  no progress lines

exit codes: 0 every row ran (errors are counted, not fatal), 1 the server could not be used (unreachable,
unknown model, refused credentials, ...), 2 bad command line or unreadable input (TLS files included).
)";

std::optional<double> ParseDouble(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

template <typename T>
std::optional<T> ParseInt(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> SplitCommas(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    parts.push_back(text.substr(begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return parts;
}

class Parser {
 public:
  explicit Parser(const std::vector<std::string>& args) : args_(args) {}

  ParsedCommandLine Parse() {
    ParsedCommandLine out;
    LoadOptions& o = out.options;
    bool duration_given = false;
    while (next_ < args_.size() && error_.empty()) {
      const std::string arg = args_[next_];
      if (arg == "--help" || arg == "-h") {
        out.text = Usage();
        return out;
      }
      if (Switch(arg, "--synthetic")) {
        o.synthetic = true;
      } else if (Switch(arg, "--poisson")) {
        o.arrivals = Arrivals::kPoisson;
      } else if (Switch(arg, "--json")) {
        o.json = true;
      } else if (Switch(arg, "--quiet")) {
        o.progress = false;
      } else if (auto v = Flag(arg, "--server")) {
        o.server = *v;
      } else if (auto v = Flag(arg, "--protocol")) {
        if (*v == "native") {
          o.protocol = Protocol::kNative;
        } else if (*v == "kserve") {
          o.protocol = Protocol::kKServe;
        } else {
          Fail("--protocol: '" + *v + "' is neither native nor kserve");
        }
      } else if (auto v = Flag(arg, "--model")) {
        o.model = *v;
      } else if (auto v = Flag(arg, "--version")) {
        o.version = Int<int64_t>("--version", *v, 0, INT64_MAX);
      } else if (auto v = Flag(arg, "--top-k")) {
        o.top_k = Int<int>("--top-k", *v, INT32_MIN, INT32_MAX);  // the server judges the value
      } else if (auto v = Flag(arg, "--images")) {
        for (std::string_view part : SplitCommas(*v)) {
          if (part.empty()) {
            Fail("--images: empty path in '" + *v + "'");
          } else {
            o.image_paths.emplace_back(part);
          }
        }
      } else if (auto v = Flag(arg, "--batch")) {
        o.batch = Int<int>("--batch", *v, 1, kMaxBatch);
      } else if (auto v = Flag(arg, "--seed")) {
        o.seed = Int<uint64_t>("--seed", *v, 0, UINT64_MAX);
      } else if (auto v = Flag(arg, "--concurrency")) {
        for (std::string_view part : SplitCommas(*v)) {
          o.concurrency.push_back(Int<int>("--concurrency", part, 1, kMaxConcurrency));
        }
      } else if (auto v = Flag(arg, "--rate")) {
        for (std::string_view part : SplitCommas(*v)) o.rates.push_back(Seconds("--rate", part, 1e-3, 1e7));
      } else if (auto v = Flag(arg, "--warmup")) {
        o.warmup_s = Seconds("--warmup", *v, 0, kMaxSeconds);
      } else if (auto v = Flag(arg, "--duration")) {
        o.duration_s = Seconds("--duration", *v, 1e-3, kMaxSeconds);
        duration_given = true;
      } else if (auto v = Flag(arg, "--requests")) {
        o.requests = Int<int64_t>("--requests", *v, 1, INT64_MAX / 2);
      } else if (auto v = Flag(arg, "--max-row-s")) {
        o.max_row_s = Seconds("--max-row-s", *v, 1e-3, kMaxSeconds);
      } else if (auto v = Flag(arg, "--deadline-ms")) {
        o.deadline_ms = Int<int64_t>("--deadline-ms", *v, 1, INT64_MAX / 1'000'000);
      } else if (auto v = Flag(arg, "--drain-timeout-s")) {
        o.drain_timeout_s = Seconds("--drain-timeout-s", *v, 0, kMaxSeconds);
      } else if (auto v = Flag(arg, "--connect-timeout-s")) {
        o.connect_timeout_s = Seconds("--connect-timeout-s", *v, 1e-3, kMaxSeconds);
      } else if (auto v = Flag(arg, "--threads")) {
        o.threads = Int<int>("--threads", *v, 1, kMaxThreads);
      } else if (auto v = Flag(arg, "--max-outstanding")) {
        o.max_outstanding = Int<int64_t>("--max-outstanding", *v, 1, int64_t{1} << 30);
      } else if (auto v = Flag(arg, "--csv")) {
        o.csv_path = *v;
      } else if (SecurityFlag(arg, &o.security)) {  // stored in o.security
      } else if (error_.empty()) {
        Fail(arg.starts_with("-") ? "unknown flag " + arg : "unexpected argument '" + arg + "'");
      }
    }
    if (error_.empty()) Check(o, duration_given);
    if (error_.empty()) {
      if (const Status status = tools::FinishClientSecurityOptions(&o.security); !status.ok()) {
        Fail(status.message());
      }
    }
    if (!error_.empty()) {
      out.exit_code = kExitUsage;
      out.text = "cnnload: " + error_ + "\nrun 'cnnload --help' for usage\n";
      return out;
    }
    if (o.concurrency.empty() && o.rates.empty()) o.concurrency.push_back(1);
    out.run = true;
    return out;
  }

 private:
  void Check(const LoadOptions& o, bool duration_given) {
    if (o.model.empty()) return Fail("--model is required");
    if (o.synthetic == !o.image_paths.empty()) return Fail("give exactly one of --synthetic and --images");
    if (!o.concurrency.empty() && !o.rates.empty()) return Fail("give --concurrency or --rate, not both");
    if (o.arrivals == Arrivals::kPoisson && o.rates.empty()) return Fail("--poisson needs --rate");
    if (o.requests > 0 && duration_given) return Fail("give --duration or --requests, not both");
  }

  // If `arg` is one of the client security flags, stores its value in `options` and returns true.
  bool SecurityFlag(const std::string& arg, tools::ClientSecurityOptions* options) {
    for (const std::string_view name : tools::kClientSecurityFlags) {
      if (const std::optional<std::string> value = Flag(arg, name)) {
        if (const Status status = tools::SetClientSecurityFlag(name, *value, options); !status.ok()) {
          Fail(status.message());
        }
        return true;
      }
    }
    return false;
  }

  bool Switch(const std::string& arg, std::string_view name) {
    if (arg != name) return false;
    ++next_;
    return true;
  }

  std::optional<std::string> Flag(const std::string& arg, std::string_view name) {
    if (arg == name) {
      if (next_ + 1 >= args_.size()) {
        Fail(std::string(name) + " needs a value");
        return std::nullopt;
      }
      next_ += 2;
      return args_[next_ - 1];
    }
    if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
      ++next_;
      return arg.substr(name.size() + 1);
    }
    return std::nullopt;
  }

  template <typename T>
  T Int(std::string_view flag, std::string_view text, T min, T max) {
    const std::optional<T> value = ParseInt<T>(text);
    if (!value || *value < min || *value > max) {
      Fail(std::string(flag) + ": '" + std::string(text) + "' is not an integer in [" + std::to_string(min) +
           ", " + std::to_string(max) + "]");
      return min;
    }
    return *value;
  }

  double Seconds(std::string_view flag, std::string_view text, double min, double max) {
    const std::optional<double> value = ParseDouble(text);
    if (!value || *value < min || *value > max) {
      Fail(std::string(flag) + ": '" + std::string(text) + "' is not a number in [" + Short(min) + ", " +
           Short(max) + "]");
      return min;
    }
    return *value;
  }

  static std::string Short(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
  }

  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

  const std::vector<std::string>& args_;
  size_t next_ = 0;
  std::string error_;
};

}  // namespace

const char* Usage() { return kUsageText; }

ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args) { return Parser(args).Parse(); }

}  // namespace cnnserve::cnnload
