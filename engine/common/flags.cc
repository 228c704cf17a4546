#include "engine/common/flags.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

constexpr size_t kUsageIndent = 2;
constexpr size_t kMaxHelpColumn = 30;  // longer flag columns put their help on the next line
constexpr size_t kHelpGap = 2;

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// "  --name VALUE" of one flag.
std::string FlagColumn(std::string_view name, std::string_view value_name) {
  std::string column(kUsageIndent, ' ');
  column += name;
  if (!value_name.empty()) column += " " + std::string(value_name);
  return column;
}

// `help` with every line after the first indented to `column`.
std::string IndentHelp(std::string_view help, size_t column) {
  std::string out;
  for (const char c : help) {
    out += c;
    if (c == '\n') out.append(column, ' ');
  }
  return out;
}

}  // namespace

Status IntegerError(std::string_view text, bool parsed, std::string_view min, std::string_view max) {
  if (!parsed) return InvalidArgumentError(Quoted(text) + " is not an integer");
  return InvalidArgumentError(Quoted(text) + " is not in [" + std::string(min) + ", " + std::string(max) + "]");
}

StatusOr<double> ParseDouble(std::string_view text, double min, double max) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return InvalidArgumentError(Quoted(text) + " is not a number");
  }
  if (value < min || value > max) {
    return InvalidArgumentError(Quoted(text) + " is not in [" + Number(min) + ", " + Number(max) + "]");
  }
  return value;
}

std::vector<std::string_view> SplitCommas(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    parts.push_back(text.substr(begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin));
    if (comma == std::string_view::npos) return parts;
    begin = comma + 1;
  }
}

StatusOr<std::vector<double>> ParseDoubleList(std::string_view text, double min, double max) {
  std::vector<double> values;
  for (const std::string_view item : SplitCommas(text)) {
    StatusOr<double> value = ParseDouble(item, min, max);
    if (!value.ok()) return value.status();
    values.push_back(*value);
  }
  return values;
}

FlagSet::FlagSet(std::string synopsis) : synopsis_(std::move(synopsis)) {}

void FlagSet::Section(std::string title) { sections_.push_back(std::move(title)); }

void FlagSet::Add(Flag flag) {
  if (!flag.name.starts_with("--") || index_.count(flag.name) != 0) {
    std::fprintf(stderr, "FlagSet: flag %s is registered twice or does not start with --\n", flag.name.c_str());
    std::abort();
  }
  flag.section = sections_.size() - 1;
  index_.emplace(flag.name, flags_.size());
  flags_.push_back(std::move(flag));
}

void FlagSet::Switch(std::string name, bool* out, std::string help) {
  Switch(
      std::move(name), [out] { *out = true; }, std::move(help));
}

void FlagSet::Switch(std::string name, std::function<void()> on_given, std::string help) {
  Add(Flag{std::move(name), "", std::move(help), [on_given = std::move(on_given)](std::string_view) {
             on_given();
             return OkStatus();
           }});
}

void FlagSet::Value(std::string name, std::string value_name, std::string help, Setter set) {
  if (value_name.empty()) value_name = "VALUE";
  Add(Flag{std::move(name), std::move(value_name), std::move(help), std::move(set)});
}

void FlagSet::String(std::string name, std::string* out, std::string value_name, std::string help) {
  Value(std::move(name), std::move(value_name), std::move(help), [out](std::string_view text) {
    *out = std::string(text);
    return OkStatus();
  });
}

void FlagSet::NonEmptyString(std::string name, std::string* out, std::string value_name, std::string help) {
  Value(std::move(name), std::move(value_name), std::move(help), [out](std::string_view text) {
    if (text.empty()) return InvalidArgumentError("must not be empty");
    *out = std::string(text);
    return OkStatus();
  });
}

void FlagSet::StringList(std::string name, std::vector<std::string>* out, std::string value_name,
                         std::string help) {
  Value(std::move(name), std::move(value_name), std::move(help), [out](std::string_view text) {
    out->emplace_back(text);
    return OkStatus();
  });
}

void FlagSet::Bool(std::string name, bool* out, std::string value_name, std::string help) {
  Choice<bool>(std::move(name), out, {{"true", true}, {"false", false}}, std::move(value_name), std::move(help));
}

void FlagSet::Double(std::string name, double* out, double min, double max, std::string value_name,
                     std::string help) {
  Value(std::move(name), std::move(value_name), std::move(help), [out, min, max](std::string_view text) {
    StatusOr<double> value = ParseDouble(text, min, max);
    if (!value.ok()) return value.status();
    *out = *value;
    return OkStatus();
  });
}

Status FlagSet::ChoiceError(std::string_view text, const std::vector<std::string>& spellings) {
  std::string list;
  for (const std::string& spelling : spellings) list += (list.empty() ? "" : ", ") + spelling;
  return InvalidArgumentError(Quoted(text) + " is not one of " + list);
}

Status FlagSet::Parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args);
}

Status FlagSet::Parse(std::span<const std::string> args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return OkStatus();
    }
    if (arg.starts_with("--")) {
      if (Status status = ParseFlag(args, &i); !status.ok()) return status;
    } else if (stop_at_positional_) {
      rest_.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      return OkStatus();
    } else if (positionals_ == nullptr) {
      return InvalidArgumentError("unexpected argument " + Quoted(arg));
    } else {
      positionals_->push_back(arg);
    }
  }
  return OkStatus();
}

Status FlagSet::ParseFlag(std::span<const std::string> args, size_t* i) {
  const std::string_view arg = args[*i];
  const size_t eq = arg.find('=');
  const std::string_view name = arg.substr(0, eq);
  const auto found = index_.find(name);
  if (found == index_.end()) return InvalidArgumentError("unknown flag " + Quoted(name));
  const Flag& flag = flags_[found->second];
  std::string_view value;
  if (flag.value_name.empty()) {
    if (eq != std::string_view::npos) return InvalidArgumentError(flag.name + " takes no value");
  } else if (eq != std::string_view::npos) {
    value = arg.substr(eq + 1);
  } else if (*i + 1 < args.size()) {
    value = args[++*i];
  } else {
    return InvalidArgumentError(flag.name + " needs a value");
  }
  given_.insert(flag.name);
  return flag.set(value).WithContext(flag.name);
}

std::string FlagSet::Usage() const {
  size_t column = 0;
  for (const Flag& flag : flags_) {
    if (flag.help.empty()) continue;
    column = std::max(column, std::min(FlagColumn(flag.name, flag.value_name).size(), kMaxHelpColumn));
  }
  column += kHelpGap;
  std::string out = synopsis_;
  for (size_t section = 0; section < sections_.size(); ++section) {
    std::string lines;
    for (const Flag& flag : flags_) {
      if (flag.section != section || flag.help.empty()) continue;
      std::string line = FlagColumn(flag.name, flag.value_name);
      line += line.size() + kHelpGap <= column ? std::string(column - line.size(), ' ')
                                               : "\n" + std::string(column, ' ');
      lines += line + IndentHelp(flag.help, column) + "\n";
    }
    if (!lines.empty()) out += "\n" + sections_[section] + "\n" + lines;
  }
  if (!footer_.empty()) out += "\n" + footer_;
  return out;
}

}  // namespace cnnserve
