#include "tools/cnnload/options.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

namespace cnnserve::cnnload {
namespace {

ParsedCommandLine Parse(std::vector<std::string> args) { return ParseCommandLine(args); }

TEST(CnnloadOptionsTest, DefaultsAreAOneLevelClosedLoop) {
  const ParsedCommandLine p = Parse({"--model", "m", "--synthetic"});
  ASSERT_TRUE(p.run) << p.text;
  EXPECT_EQ(p.options.server, "127.0.0.1:8001");
  EXPECT_EQ(p.options.protocol, Protocol::kNative);
  EXPECT_EQ(p.options.concurrency, std::vector<int>{1});
  EXPECT_TRUE(p.options.rates.empty());
  EXPECT_EQ(p.options.batch, 1);
  EXPECT_DOUBLE_EQ(p.options.warmup_s, 2);
  EXPECT_DOUBLE_EQ(p.options.duration_s, 10);
  EXPECT_EQ(p.options.requests, 0);
  EXPECT_EQ(p.options.threads, 1);
  EXPECT_TRUE(p.options.progress);
  EXPECT_FALSE(p.options.json);
}

TEST(CnnloadOptionsTest, ParsesEveryFlag) {
  const ParsedCommandLine p = Parse({"--server=10.0.0.1:9000",
                                     "--protocol",
                                     "kserve",
                                     "--model",
                                     "alexnet",
                                     "--version",
                                     "3",
                                     "--images",
                                     "a.jpg,dir",
                                     "--batch",
                                     "8",
                                     "--top-k=1",
                                     "--rate",
                                     "100,250.5",
                                     "--poisson",
                                     "--warmup",
                                     "0.5",
                                     "--duration",
                                     "3",
                                     "--deadline-ms",
                                     "250",
                                     "--drain-timeout-s",
                                     "4",
                                     "--threads",
                                     "2",
                                     "--max-outstanding",
                                     "64",
                                     "--seed",
                                     "9",
                                     "--csv",
                                     "out.csv",
                                     "--json",
                                     "--quiet"});
  ASSERT_TRUE(p.run) << p.text;
  const LoadOptions& o = p.options;
  EXPECT_EQ(o.server, "10.0.0.1:9000");
  EXPECT_EQ(o.protocol, Protocol::kKServe);
  EXPECT_EQ(o.model, "alexnet");
  EXPECT_EQ(o.version, 3);
  EXPECT_EQ(o.image_paths, (std::vector<std::string>{"a.jpg", "dir"}));
  EXPECT_EQ(o.batch, 8);
  EXPECT_EQ(o.top_k, 1);
  EXPECT_EQ(o.rates, (std::vector<double>{100, 250.5}));
  EXPECT_TRUE(o.concurrency.empty());
  EXPECT_EQ(o.arrivals, Arrivals::kPoisson);
  EXPECT_DOUBLE_EQ(o.warmup_s, 0.5);
  EXPECT_DOUBLE_EQ(o.duration_s, 3);
  EXPECT_EQ(o.deadline_ms, 250);
  EXPECT_DOUBLE_EQ(o.drain_timeout_s, 4);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.max_outstanding, 64);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_EQ(o.csv_path, "out.csv");
  EXPECT_TRUE(o.json);
  EXPECT_FALSE(o.progress);
}

TEST(CnnloadOptionsTest, ConcurrencySweepAndRequests) {
  const ParsedCommandLine p =
      Parse({"--model", "m", "--synthetic", "--concurrency", "1,2,4,8,16,32", "--requests", "500"});
  ASSERT_TRUE(p.run) << p.text;
  EXPECT_EQ(p.options.concurrency, (std::vector<int>{1, 2, 4, 8, 16, 32}));
  EXPECT_EQ(p.options.requests, 500);
}

TEST(CnnloadOptionsTest, HelpIsNotAnError) {
  const ParsedCommandLine p = Parse({"--help"});
  EXPECT_FALSE(p.run);
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_NE(p.text.find("usage: cnnload"), std::string::npos);
}

TEST(CnnloadOptionsTest, ErrorsNameTheProblemAndExitWithTwo) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--synthetic"}, "--model is required"},
      {{"--model", "m"}, "exactly one of --synthetic and --images"},
      {{"--model", "m", "--synthetic", "--images", "x"}, "exactly one of --synthetic and --images"},
      {{"--model", "m", "--synthetic", "--concurrency", "1", "--rate", "5"}, "not both"},
      {{"--model", "m", "--synthetic", "--poisson"}, "--poisson needs --rate"},
      {{"--model", "m", "--synthetic", "--duration", "1", "--requests", "5"}, "--duration or --requests"},
      {{"--model", "m", "--synthetic", "--concurrency", "1,0"}, "--concurrency: \"0\" is not in [1, 65536]"},
      {{"--model", "m", "--synthetic", "--concurrency", "1,,2"}, "--concurrency: \"\" is not an integer"},
      {{"--model", "m", "--synthetic", "--batch", "x"}, "--batch: \"x\" is not an integer"},
      {{"--model", "m", "--synthetic", "--rate", "-1"}, "--rate: \"-1\" is not in [0.001, 1e+07]"},
      {{"--model", "m", "--synthetic", "--duration", "0"}, "--duration: \"0\" is not in [0.001, 604800]"},
      {{"--model", "m", "--synthetic", "--protocol", "http"}, "--protocol: \"http\" is not one of native, kserve"},
      {{"--model", "m", "--synthetic", "--bogus"}, "unknown flag \"--bogus\""},
      {{"--model", "m", "--synthetic", "stray"}, "unexpected argument \"stray\""},
      {{"--model"}, "--model needs a value"},
  };
  for (const auto& [args, expected] : cases) {
    const ParsedCommandLine p = Parse(args);
    EXPECT_FALSE(p.run) << expected;
    EXPECT_EQ(p.exit_code, 2) << expected;
    EXPECT_NE(p.text.find(expected), std::string::npos)
        << "'" << p.text << "' should contain '" << expected << "'";
  }
}

// The security flags go through tools/common/client_channel (tested there); here: cnnload takes them, the
// environment's token, and reports their errors as usage errors without the token.
TEST(CnnloadOptionsTest, SecurityFlagsAndTheTokenFromTheEnvironment) {
  unsetenv("CNNSERVE_TOKEN");
  ParsedCommandLine p = Parse({"--model", "m", "--synthetic", "--tls-ca", "ca.pem", "--tls-cert=c.pem",
                               "--tls-key", "c.key", "--tls-server-name", "cnnserve.example", "--token", "t0ken"});
  ASSERT_TRUE(p.run) << p.text;
  EXPECT_EQ(p.options.security.tls_ca_file, "ca.pem");
  EXPECT_EQ(p.options.security.tls_cert_file, "c.pem");
  EXPECT_EQ(p.options.security.tls_key_file, "c.key");
  EXPECT_EQ(p.options.security.tls_server_name, "cnnserve.example");
  EXPECT_EQ(p.options.security.token, "t0ken");

  setenv("CNNSERVE_TOKEN", "env-t0ken", 1);
  p = Parse({"--model", "m", "--synthetic"});
  ASSERT_TRUE(p.run) << p.text;
  EXPECT_EQ(p.options.security.token, "env-t0ken");
  EXPECT_FALSE(p.options.security.tls());
  unsetenv("CNNSERVE_TOKEN");

  p = Parse({"--model", "m", "--synthetic", "--tls-cert", "c.pem"});
  EXPECT_FALSE(p.run);
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_NE(p.text.find("--tls-cert needs --tls-key"), std::string::npos) << p.text;

  p = Parse({"--model", "m", "--synthetic", "--token", "two words"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_NE(p.text.find("--token: the token has a character"), std::string::npos) << p.text;
  EXPECT_EQ(p.text.find("words"), std::string::npos) << p.text;

  p = Parse({"--model", "m", "--synthetic", "--tls-ca"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_NE(p.text.find("--tls-ca needs a value"), std::string::npos) << p.text;
}

}  // namespace
}  // namespace cnnserve::cnnload
