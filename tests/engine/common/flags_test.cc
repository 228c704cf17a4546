#include "engine/common/flags.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

enum class Color { kRed, kBlue };

// The flags of a made-up program, and their values.
struct Program {
  std::string name = "default";
  std::string dir;
  int threads = 0;
  int64_t big = 0;
  uint64_t seed = 0;
  double seconds = 30;
  bool json = false;
  bool strict = true;
  Color color = Color::kRed;
  std::vector<std::string> tags;
  std::vector<std::string> positionals;
  FlagSet flags{"usage: prog [flags] FILE...\n"};

  Program() {
    flags.String("--name", &name, "NAME", "a name");
    flags.NonEmptyString("--dir", &dir, "DIR", "a folder");
    flags.Integer<int>("--threads", &threads, 0, 4096, "N", "threads");
    flags.Integer<int64_t>("--big", &big, 1, std::numeric_limits<int64_t>::max(), "N", "big");
    flags.Integer<uint64_t>("--seed", &seed, 0, std::numeric_limits<uint64_t>::max(), "K", "seed");
    flags.Double("--seconds", &seconds, 0, 86400, "S", "seconds");
    flags.Section("output:");
    flags.Switch("--json", &json, "print JSON");
    flags.Bool("--strict", &strict, "BOOL", "strict or not\nsecond line");
    flags.Choice<Color>("--color", &color, {{"red", Color::kRed}, {"blue", Color::kBlue}}, "C", "a color");
    flags.StringList("--tag", &tags, "T", "");  // hidden from usage
    flags.Positionals(&positionals);
  }

  Status Parse(const std::vector<std::string>& args) { return flags.Parse(args); }
};

TEST(FlagSetTest, DefaultsStayWhenNothingIsGiven) {
  Program p;
  ASSERT_TRUE(p.Parse({}).ok());
  EXPECT_EQ(p.name, "default");
  EXPECT_EQ(p.threads, 0);
  EXPECT_EQ(p.seconds, 30);
  EXPECT_TRUE(p.strict);
  EXPECT_FALSE(p.flags.help_requested());
  EXPECT_TRUE(p.flags.given().empty());
}

TEST(FlagSetTest, BothValueSyntaxesSwitchesAndTypedValues) {
  Program p;
  const Status status =
      p.Parse({"--name", "x", "--threads=8", "--big", "9000000000", "--seed", "18446744073709551615",
               "--seconds=0.25", "--json", "--strict", "false", "--color", "blue", "a.png", "--dir=d", "b.png"});
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(p.name, "x");
  EXPECT_EQ(p.dir, "d");
  EXPECT_EQ(p.threads, 8);
  EXPECT_EQ(p.big, 9'000'000'000);
  EXPECT_EQ(p.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(p.seconds, 0.25);
  EXPECT_TRUE(p.json);
  EXPECT_FALSE(p.strict);
  EXPECT_EQ(p.color, Color::kBlue);
  EXPECT_EQ(p.positionals, (std::vector<std::string>{"a.png", "b.png"}));
  EXPECT_TRUE(p.flags.Given("--json"));
  EXPECT_FALSE(p.flags.Given("--tag"));
}

TEST(FlagSetTest, ValuesMayStartWithADashOrHoldAnEqualsSign) {
  Program p;
  ASSERT_TRUE(p.Parse({"--name", "-x", "--dir=a=b"}).ok());
  EXPECT_EQ(p.name, "-x");
  EXPECT_EQ(p.dir, "a=b");
  Program empty;
  ASSERT_TRUE(empty.Parse({"--name="}).ok());
  EXPECT_EQ(empty.name, "");
}

TEST(FlagSetTest, RepeatedFlagsLastValueWinsListsAppend) {
  Program p;
  ASSERT_TRUE(p.Parse({"--threads", "1", "--tag", "a", "--threads", "2", "--tag=b", "--json", "--json"}).ok());
  EXPECT_EQ(p.threads, 2);
  EXPECT_EQ(p.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(p.json);
}

TEST(FlagSetTest, HelpStopsParsing) {
  for (const std::string help : {"--help", "-h"}) {
    Program p;
    ASSERT_TRUE(p.Parse({"--threads", "3", help, "--bogus"}).ok());
    EXPECT_TRUE(p.flags.help_requested());
    EXPECT_EQ(p.threads, 3);
  }
}

TEST(FlagSetTest, ErrorsNameTheFlagAndQuoteTheValue) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--threads", "abc"}, "--threads: \"abc\" is not an integer"},
      {{"--threads", "5000"}, "--threads: \"5000\" is not in [0, 4096]"},
      {{"--threads=-1"}, "--threads: \"-1\" is not in [0, 4096]"},
      {{"--threads", "1.5"}, "--threads: \"1.5\" is not an integer"},
      {{"--threads", " 1"}, "--threads: \" 1\" is not an integer"},
      {{"--big", "99999999999999999999"}, "--big: \"99999999999999999999\" is not in [1, 9223372036854775807]"},
      {{"--seed", "-1"}, "--seed: \"-1\" is not an integer"},
      {{"--seconds", "x"}, "--seconds: \"x\" is not a number"},
      {{"--seconds", "inf"}, "--seconds: \"inf\" is not a number"},
      {{"--seconds", "-3"}, "--seconds: \"-3\" is not in [0, 86400]"},
      {{"--strict", "yes"}, "--strict: \"yes\" is not one of true, false"},
      {{"--color", "green"}, "--color: \"green\" is not one of red, blue"},
      {{"--dir", ""}, "--dir: must not be empty"},
      {{"--threads"}, "--threads needs a value"},
      {{"--json=1"}, "--json takes no value"},
      {{"--bogus"}, "unknown flag \"--bogus\""},
      {{"--bogus=1"}, "unknown flag \"--bogus\""},
      {{"--bo\ngus"}, "unknown flag \"--bo\\x0agus\""},
      {{"--threads", "a\x01"}, "--threads: \"a\\x01\" is not an integer"},
  };
  for (const auto& [args, message] : cases) {
    Program p;
    const Status status = p.Parse(args);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << message;
    EXPECT_EQ(status.message(), message);
  }
}

TEST(FlagSetTest, ALongValueIsCutInTheMessage) {
  Program p;
  const Status status = p.Parse({"--threads", std::string(10000, '9')});
  EXPECT_EQ(status.message(), "--threads: \"" + std::string(64, '9') + "\"... (10000 bytes) is not in [0, 4096]");
}

TEST(FlagSetTest, PositionalsAreAnErrorUnlessAsked) {
  FlagSet flags("usage: prog\n");
  bool json = false;
  flags.Switch("--json", &json, "json");
  const Status status = flags.Parse(std::vector<std::string>{"--json", "stray"});
  EXPECT_EQ(status.message(), "unexpected argument \"stray\"");
  EXPECT_TRUE(json);
}

TEST(FlagSetTest, SubcommandsParseTheRest) {
  FlagSet global("usage: ctl [--server S] COMMAND\n");
  std::string server = "s0";
  global.String("--server", &server, "S", "server");
  global.StopAtFirstPositional();
  ASSERT_TRUE(global.Parse(std::vector<std::string>{"--server=s1", "describe", "m", "--version", "3"}).ok());
  EXPECT_EQ(server, "s1");
  ASSERT_EQ(global.rest().size(), 4u);
  EXPECT_EQ(global.rest()[0], "describe");

  FlagSet describe("usage: ctl describe MODEL\n");
  int64_t version = 0;
  std::vector<std::string> models;
  describe.Integer<int64_t>("--version", &version, 0, 100, "V", "version");
  describe.Positionals(&models);
  ASSERT_TRUE(describe.Parse(std::span(global.rest()).subspan(1)).ok());
  EXPECT_EQ(version, 3);
  EXPECT_EQ(models, std::vector<std::string>{"m"});
  // A flag of the subcommand before the command is the global parser's unknown flag.
  FlagSet again("usage\n");
  again.String("--server", &server, "S", "server");
  again.StopAtFirstPositional();
  EXPECT_EQ(again.Parse(std::vector<std::string>{"--version", "3", "describe"}).message(),
            "unknown flag \"--version\"");
}

TEST(FlagSetTest, SetterErrorsGetTheFlagName) {
  FlagSet flags("usage\n");
  flags.Value("--address", "HOST:PORT", "where", [](std::string_view text) {
    return text.find(':') == std::string_view::npos ? InvalidArgumentError("not HOST:PORT") : OkStatus();
  });
  EXPECT_EQ(flags.Parse(std::vector<std::string>{"--address", "x"}).message(), "--address: not HOST:PORT");
}

TEST(FlagSetTest, UsageListsFlagsBySectionWithAlignedHelp) {
  Program p;
  p.flags.set_footer("exit codes: 0 ok\n");
  EXPECT_EQ(p.flags.Usage(),
            "usage: prog [flags] FILE...\n"
            "\n"
            "flags:\n"
            "  --name NAME    a name\n"
            "  --dir DIR      a folder\n"
            "  --threads N    threads\n"
            "  --big N        big\n"
            "  --seed K       seed\n"
            "  --seconds S    seconds\n"
            "\n"
            "output:\n"
            "  --json         print JSON\n"
            "  --strict BOOL  strict or not\n"
            "                 second line\n"
            "  --color C      a color\n"
            "\n"
            "exit codes: 0 ok\n");
}

TEST(FlagSetTest, ParsersOfValuesAndLists) {
  EXPECT_EQ(*ParseIntegerList<int>("1,8,32", 1, 64), (std::vector<int>{1, 8, 32}));
  EXPECT_EQ(ParseIntegerList<int>("1,,2", 1, 64).status().message(), "\"\" is not an integer");
  EXPECT_EQ(ParseIntegerList<int>("1,0", 1, 64).status().message(), "\"0\" is not in [1, 64]");
  EXPECT_EQ(*ParseDoubleList("100,250.5", 1e-3, 1e7), (std::vector<double>{100, 250.5}));
  EXPECT_EQ(ParseDoubleList("-1", 1e-3, 1e7).status().message(), "\"-1\" is not in [0.001, 1e+07]");
  EXPECT_EQ(SplitCommas(""), std::vector<std::string_view>{""});
  EXPECT_EQ(*ParseDouble("1e-4", 0, 1), 1e-4);
}

}  // namespace
}  // namespace cnnserve
