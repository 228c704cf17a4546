// build/bin/httpload: a closed-loop load driver for cnnserve's KServe v2 REST infer route, to compare REST JSON,
// REST binary (Triton's binary data extension) and gRPC (cnnload --protocol kserve) on the same server and model.
//
//   httpload --url http://127.0.0.1:8000 --model M --mode json|binary [--concurrency N] [--warmup-s S]
//            [--duration-s S]
//
// Each of N threads keeps one keep-alive connection and sends one FP32 [1, C, H, W] request (synthetic, seeded;
// the shape from GET /v2/models/M) as soon as the previous one is answered. Prints one line: mode, model,
// concurrency, requests/s, p50 and p99 latency (us), errors. Exit 1 when the server cannot be used, 2 for bad flags.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/flags.h"
#include "engine/common/units.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using cnnserve::kMicrosPerSecond;

constexpr double kP50 = 0.50;
constexpr double kP99 = 0.99;
constexpr int kMaxConcurrency = 4096;
constexpr double kMaxSeconds = 86400;
constexpr double kMinDurationS = 0.001;

struct Options {
  std::string url = "http://127.0.0.1:8000";
  std::string model;
  std::string mode = "binary";
  int concurrency = 1;
  double warmup_s = 2;
  double duration_s = 10;
};

struct Body {
  std::string bytes;
  httplib::Headers headers;
  std::string content_type;
};

// FlagSet (engine/common/flags.h): INVALID_ARGUMENT naming the flag for a bad or missing value.
cnnserve::Status ParseOptions(int argc, char** argv, Options* o, bool* help) {
  cnnserve::FlagSet flags(
      "usage: httpload --model M [--url URL] [--mode json|binary] [--concurrency N] [--warmup-s S] "
      "[--duration-s S]\nA closed-loop load driver of cnnserve's KServe v2 REST infer route.");
  flags.String("--url", &o->url, "URL", "the server's HTTP address (default http://127.0.0.1:8000)");
  flags.NonEmptyString("--model", &o->model, "M", "the model to load (required)");
  flags.Choice<std::string>("--mode", &o->mode, {{"json", "json"}, {"binary", "binary"}}, "MODE",
                            "json or binary (Triton's binary data extension; default)");
  flags.Integer("--concurrency", &o->concurrency, 1, kMaxConcurrency, "N", "connections, one request each");
  flags.Double("--warmup-s", &o->warmup_s, 0, kMaxSeconds, "S", "seconds before measuring (default 2)");
  flags.Double("--duration-s", &o->duration_s, kMinDurationS, kMaxSeconds, "S", "seconds measured (default 10)");
  cnnserve::Status status = flags.Parse(argc, argv);
  *help = flags.help_requested();
  if (status.ok() && !*help && o->model.empty()) status = cnnserve::InvalidArgumentError("--model is required");
  if (*help) std::printf("%s", flags.Usage().c_str());
  return status;
}

// The model's input as the server declares it: name and [-1, C, H, W].
bool InputOf(const Options& o, std::string* name, std::vector<int64_t>* shape) {
  httplib::Client client(o.url);
  const auto response = client.Get("/v2/models/" + o.model);
  if (!response || response->status != 200) return false;
  const json meta = json::parse(response->body, nullptr, false);
  if (meta.is_discarded() || !meta.contains("inputs") || meta["inputs"].empty()) return false;
  *name = meta["inputs"][0]["name"].get<std::string>();
  *shape = meta["inputs"][0]["shape"].get<std::vector<int64_t>>();
  shape->at(0) = 1;
  return true;
}

Body MakeBody(const std::string& mode, const std::string& input, const std::vector<int64_t>& shape) {
  int64_t elements = 1;
  for (int64_t d : shape) elements *= d;
  std::vector<float> values(static_cast<size_t>(elements));
  std::mt19937 random(0);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : values) v = uniform(random);
  json request = {{"inputs", {{{"name", input}, {"datatype", "FP32"}, {"shape", shape}}}}};
  Body body;
  if (mode == "json") {
    request["inputs"][0]["data"] = values;
    body.bytes = request.dump();
    body.content_type = "application/json";
    return body;
  }
  request["inputs"][0]["parameters"] = {{"binary_data_size", values.size() * sizeof(float)}};
  request["parameters"] = {{"binary_data_output", true}};
  body.bytes = request.dump();
  body.headers.emplace("Inference-Header-Content-Length", std::to_string(body.bytes.size()));
  body.bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  body.content_type = "application/octet-stream";
  return body;
}

// One connection's closed loop until `stop`; latencies of requests started after `measure_from`.
void Worker(const Options& o, const Body& body, const Clock::time_point& measure_from, const std::atomic<bool>& stop,
            std::vector<int64_t>* latencies_us, int64_t* errors) {
  httplib::Client client(o.url);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);  // headers and body go out in separate writes
  const std::string path = "/v2/models/" + o.model + "/infer";
  while (!stop.load(std::memory_order_relaxed)) {
    const Clock::time_point start = Clock::now();
    const auto response = client.Post(path, body.headers, body.bytes, body.content_type);
    const Clock::time_point end = Clock::now();
    if (start < measure_from) continue;
    if (!response || response->status != 200) {
      ++*errors;
      continue;
    }
    latencies_us->push_back(std::chrono::duration_cast<std::chrono::microseconds>(end - start).count());
  }
}

int64_t Percentile(std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool help = false;
  if (const cnnserve::Status status = ParseOptions(argc, argv, &o, &help); !status.ok()) {
    std::fprintf(stderr, "httpload: %s (--help lists the flags)\n", status.message().c_str());
    return 2;
  }
  if (help) return 0;
  std::string input;
  std::vector<int64_t> shape;
  if (!InputOf(o, &input, &shape)) {
    std::fprintf(stderr, "httpload: cannot read model '%s' from %s\n", o.model.c_str(), o.url.c_str());
    return 1;
  }
  const Body body = MakeBody(o.mode, input, shape);
  const Clock::time_point measure_from =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(o.warmup_s * kMicrosPerSecond));
  std::atomic<bool> stop{false};
  std::vector<std::vector<int64_t>> latencies(static_cast<size_t>(o.concurrency));
  std::vector<int64_t> errors(static_cast<size_t>(o.concurrency), 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.concurrency; ++i) {
    threads.emplace_back(Worker, std::cref(o), std::cref(body), std::cref(measure_from), std::cref(stop),
                         &latencies[static_cast<size_t>(i)], &errors[static_cast<size_t>(i)]);
  }
  std::this_thread::sleep_until(measure_from +
                                std::chrono::microseconds(static_cast<int64_t>(o.duration_s * kMicrosPerSecond)));
  stop = true;
  for (std::thread& t : threads) t.join();
  std::vector<int64_t> all;
  int64_t error_count = 0;
  for (size_t i = 0; i < latencies.size(); ++i) {
    all.insert(all.end(), latencies[i].begin(), latencies[i].end());
    error_count += errors[i];
  }
  std::sort(all.begin(), all.end());
  std::printf("mode=rest-%s model=%s concurrency=%d requests/s=%.1f p50_us=%lld p99_us=%lld errors=%lld\n",
              o.mode.c_str(), o.model.c_str(), o.concurrency, static_cast<double>(all.size()) / o.duration_s,
              static_cast<long long>(Percentile(all, kP50)), static_cast<long long>(Percentile(all, kP99)),
              static_cast<long long>(error_count));
  return 0;
}
