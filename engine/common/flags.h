// FlagSet: the command-line parser of the project's binaries (cnnserve, cnnctl, cnnbench, cnnload).
//
// A binary registers its flags, each with a pointer to where the value goes (or a setter), a value name and a help
// text; Parse walks argv once and Usage() prints the registered flags. Accepted syntax:
//   --name VALUE  and  --name=VALUE     a value flag (the next argument is the value even when it starts with -)
//   --name                               a switch (no value; --name=x is an error)
//   --help, -h                           sets help_requested() and stops parsing (the caller prints Usage())
//   anything else not starting with --   a positional argument: collected when Positionals() was called, an
//                                        error otherwise; with StopAtFirstPositional() parsing stops there and
//                                        rest() holds it and everything after it (subcommands parse the rest with
//                                        a FlagSet of their own)
// A flag given twice: a value flag keeps the last value (a list flag appends each), a switch stays on.
//
// Errors (Parse returns INVALID_ARGUMENT; the message names the flag and quotes the value with Quoted(), never
// longer than a line): `unknown flag "--bogus"`, `--threads needs a value`, `--threads: "abc" is not an integer`,
// `--threads: "5000" is not in [0, 4096]`, `--json takes no value`, `unexpected argument "x"`,
// `--protocol: "http" is not one of native, kserve`. A setter's error is prefixed with the flag's name. Parsing
// stops at the first error; the values set before it stay set.
//
// Ownership and thread-safety: a FlagSet keeps the pointers it was given (they must outlive Parse); it is used by
// one thread. The Parse* functions below are pure.
#ifndef CNNSERVE_ENGINE_COMMON_FLAGS_H_
#define CNNSERVE_ENGINE_COMMON_FLAGS_H_

#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve {

// INVALID_ARGUMENT `"text" is not an integer` (`parsed` false) or `"text" is not in [min, max]`.
Status IntegerError(std::string_view text, bool parsed, std::string_view min, std::string_view max);

// All of `text` as a decimal integer of type T in [min, max]; no sign other than a leading '-', no spaces.
template <typename T>
StatusOr<T> ParseInteger(std::string_view text, T min, T max) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool parsed = ec == std::errc() && end == text.data() + text.size();
  if (parsed && value >= min && value <= max) return value;
  // A number too large for T parses as out of range: report the range, not "not an integer".
  return IntegerError(text, parsed || ec == std::errc::result_out_of_range, std::to_string(min),
                      std::to_string(max));
}

// All of `text` as a finite number in [min, max] (decimal or exponent notation). INVALID_ARGUMENT
// `"text" is not a number` or `"text" is not in [min, max]` (the bounds printed with %g).
StatusOr<double> ParseDouble(std::string_view text, double min, double max);

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {""}.
std::vector<std::string_view> SplitCommas(std::string_view text);

// Each comma-separated item of `text` as ParseInteger does; the first bad item's error.
template <typename T>
StatusOr<std::vector<T>> ParseIntegerList(std::string_view text, T min, T max) {
  std::vector<T> values;
  for (const std::string_view item : SplitCommas(text)) {
    StatusOr<T> value = ParseInteger<T>(item, min, max);
    if (!value.ok()) return value.status();
    values.push_back(*value);
  }
  return values;
}

// Each comma-separated item of `text` as ParseDouble does; the first bad item's error.
StatusOr<std::vector<double>> ParseDoubleList(std::string_view text, double min, double max);

class FlagSet {
 public:
  // Stores the value of one flag occurrence; a non-OK status rejects the command line (its message gets the
  // flag's name in front).
  using Setter = std::function<Status(std::string_view value)>;

  // `synopsis`: the first lines of Usage() ("usage: cnnload --model M ...", a sentence on what the program does).
  explicit FlagSet(std::string synopsis);

  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Starts a titled group of flags in Usage() ("security flags:"); flags registered before the first Section are
  // listed under "flags:".
  void Section(std::string title);
  // Text printed after the flags (exit codes, notes).
  void set_footer(std::string footer) { footer_ = std::move(footer); }

  // Registration. `name` starts with "--"; a name registered twice aborts (a programming error). `help` may hold
  // '\n' for more lines. An empty `help` hides the flag from Usage() (an accepted alias).
  void Switch(std::string name, bool* out, std::string help);  // *out = true when given
  void Switch(std::string name, std::function<void()> on_given, std::string help);
  void Value(std::string name, std::string value_name, std::string help, Setter set);
  void String(std::string name, std::string* out, std::string value_name, std::string help);
  // As String, but an empty value is an error ("--name: must not be empty").
  void NonEmptyString(std::string name, std::string* out, std::string value_name, std::string help);
  // Each occurrence appends its value (a repeated flag).
  void StringList(std::string name, std::vector<std::string>* out, std::string value_name, std::string help);
  // "true" or "false".
  void Bool(std::string name, bool* out, std::string value_name, std::string help);
  void Double(std::string name, double* out, double min, double max, std::string value_name, std::string help);
  template <typename T>
  void Integer(std::string name, T* out, T min, T max, std::string value_name, std::string help) {
    Value(std::move(name), std::move(value_name), std::move(help), [out, min, max](std::string_view text) {
      StatusOr<T> value = ParseInteger<T>(text, min, max);
      if (!value.ok()) return value.status();
      *out = *value;
      return OkStatus();
    });
  }
  // One of the spellings in `choices`, stored as its value.
  template <typename E>
  void Choice(std::string name, E* out, std::vector<std::pair<std::string, E>> choices, std::string value_name,
              std::string help) {
    std::vector<std::string> spellings;
    for (const auto& choice : choices) spellings.push_back(choice.first);
    Value(std::move(name), std::move(value_name), std::move(help),
          [out, choices = std::move(choices), spellings = std::move(spellings)](std::string_view text) {
            for (const auto& [spelling, value] : choices) {
              if (text == spelling) {
                *out = value;
                return OkStatus();
              }
            }
            return ChoiceError(text, spellings);
          });
  }

  // Positional arguments go to `out` (in order); without this call a positional argument is an error.
  void Positionals(std::vector<std::string>* out) { positionals_ = out; }
  // Parsing stops at the first positional argument; rest() holds it and what follows.
  void StopAtFirstPositional() { stop_at_positional_ = true; }

  // Parses `args` (argv without the program name). See the header comment for syntax and errors.
  Status Parse(std::span<const std::string> args);
  Status Parse(int argc, const char* const* argv);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& rest() const { return rest_; }
  // True when flag `name` occurred on the command line parsed.
  bool Given(std::string_view name) const { return given_.count(name) != 0; }
  // The flags that occurred, sorted by name.
  const std::set<std::string, std::less<>>& given() const { return given_; }

  // The synopsis, the flags by section ("  --name VALUE   help", help aligned in one column), the footer.
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for a switch
    std::string help;
    Setter set;  // a switch gets an empty value
    size_t section = 0;
  };

  static Status ChoiceError(std::string_view text, const std::vector<std::string>& spellings);
  void Add(Flag flag);
  // Parses args[*i] (a flag), advancing *i past its value.
  Status ParseFlag(std::span<const std::string> args, size_t* i);

  std::string synopsis_;
  std::string footer_;
  std::vector<std::string> sections_ = {"flags:"};
  std::vector<Flag> flags_;
  std::map<std::string, size_t, std::less<>> index_;
  std::vector<std::string>* positionals_ = nullptr;
  bool stop_at_positional_ = false;
  bool help_requested_ = false;
  std::vector<std::string> rest_;
  std::set<std::string, std::less<>> given_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_FLAGS_H_
