#include "engine/runtime/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

// Splits off the first space-separated word of `rest` (leading spaces skipped); `rest` keeps what follows.
std::string_view NextWord(std::string_view& rest) {
  const size_t start = rest.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const size_t end = std::min(rest.find_first_of(" \t"), rest.size());
  const std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

std::string_view Trimmed(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r");
  if (start == std::string_view::npos) return {};
  const size_t end = text.find_last_not_of(" \t\r");
  return text.substr(start, end - start + 1);
}

// A finite number filling all of `word`.
std::optional<double> ParseNumber(std::string_view word) {
  if (word.empty() || word.size() > 64) return std::nullopt;
  const std::string text(word);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

Status LineError(int line, const std::string& what) {
  return InvalidArgumentError("calibration line " + std::to_string(line) + ": " + what);
}

// One `range` record (after the keyword).
Status ParseRange(std::string_view rest, int line, TensorRanges& ranges) {
  const std::optional<double> lo = ParseNumber(NextWord(rest));
  const std::optional<double> hi = ParseNumber(NextWord(rest));
  const std::string name(Trimmed(rest));
  if (!lo || !hi || name.empty()) return LineError(line, "expected: range <min> <max> <tensor name>");
  if (*lo > *hi) return LineError(line, "min is larger than max for " + Quoted(name));
  if (std::fabs(*lo) > std::numeric_limits<float>::max() || std::fabs(*hi) > std::numeric_limits<float>::max()) {
    return LineError(line, "range of " + Quoted(name) + " does not fit a float");
  }
  if (!ranges.emplace(name, TensorRange{static_cast<float>(*lo), static_cast<float>(*hi)}).second) {
    return LineError(line, "tensor " + Quoted(name) + " has two ranges");
  }
  return OkStatus();
}

Status ParseMethod(std::string_view rest, int line, Calibration& calibration) {
  const std::string_view method = NextWord(rest);
  if (method == "minmax") {
    calibration.method = CalibrationMethod::kMinMax;
  } else if (method == "percentile") {
    const std::optional<double> p = ParseNumber(NextWord(rest));
    if (!p || *p <= 50.0 || *p > 100.0) return LineError(line, "expected: method percentile <p in (50, 100]>");
    calibration.method = CalibrationMethod::kPercentile;
    calibration.percentile = *p;
  } else {
    return LineError(line, "method " + Quoted(method) + " is not minmax or percentile");
  }
  if (!Trimmed(rest).empty()) return LineError(line, "unexpected text after the method");
  return OkStatus();
}

}  // namespace

StatusOr<Calibration> ParseCalibration(std::string_view text) {
  Calibration calibration;
  bool version = false, method = false, images = false;
  int line_number = 0;
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    const std::string_view line = Trimmed(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::string_view rest = line;
    const std::string_view keyword = NextWord(rest);
    if (keyword == "range") {
      CNN_RETURN_IF_ERROR(ParseRange(rest, line_number, calibration.ranges));
    } else if (keyword == "fp32") {
      const std::string name(Trimmed(rest));
      if (name.empty()) return LineError(line_number, "expected: fp32 <tensor name>");
      calibration.fp32_tensors.insert(name);
    } else if (keyword == "version") {
      if (Trimmed(rest) != "1")
        return LineError(line_number, "version " + Quoted(Trimmed(rest)) + " (expected 1)");
      version = true;
    } else if (keyword == "method") {
      CNN_RETURN_IF_ERROR(ParseMethod(rest, line_number, calibration));
      method = true;
    } else if (keyword == "images") {
      const std::optional<double> count = ParseNumber(NextWord(rest));
      if (!count || *count < 1 || *count != std::floor(*count) || *count > 1e12) {
        return LineError(line_number, "expected: images <count> <description>");
      }
      calibration.images = static_cast<int64_t>(*count);
      calibration.source = std::string(Trimmed(rest));
      images = true;
    } else {
      return LineError(line_number,
                       "unknown record " + Quoted(keyword) + " (expected version, method, images, range, fp32)");
    }
  }
  if (!version || !method || !images) {
    return InvalidArgumentError("calibration: the version, method and images lines are all required");
  }
  if (calibration.ranges.empty()) return InvalidArgumentError("calibration: no range lines");
  return calibration;
}

std::string FormatCalibration(const Calibration& calibration) {
  std::ostringstream out;
  out << "# cnnserve calibration: activation ranges for int8 plans (engine/runtime/calibration.h)\n";
  out << "version 1\n";
  if (calibration.method == CalibrationMethod::kPercentile) {
    out << "method percentile " << calibration.percentile << "\n";
  } else {
    out << "method minmax\n";
  }
  std::string source = calibration.source;
  std::replace(source.begin(), source.end(), '\n', ' ');
  out << "images " << calibration.images << " " << source << "\n";
  char numbers[64];
  for (const auto& [name, range] : calibration.ranges) {
    std::snprintf(numbers, sizeof(numbers), "%.9g %.9g", range.min, range.max);
    out << "range " << numbers << " " << name << "\n";
  }
  for (const std::string& name : calibration.fp32_tensors) out << "fp32 " << name << "\n";
  return out.str();
}

std::shared_ptr<const TensorRanges> Int8Ranges(const Calibration& calibration) {
  auto ranges = std::make_shared<TensorRanges>(calibration.ranges);
  for (const std::string& name : calibration.fp32_tensors) ranges->erase(name);
  return ranges;
}

StatusOr<Calibration> ReadCalibrationFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open calibration file " + Quoted(path));
  std::string text(kMaxCalibrationFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxCalibrationFileBytes) {
    return InvalidArgumentError("calibration file " + Quoted(path) + " is larger than " +
                                std::to_string(kMaxCalibrationFileBytes) + " bytes");
  }
  StatusOr<Calibration> calibration = ParseCalibration(text);
  if (!calibration.ok()) return calibration.status().WithContext(Quoted(path));
  return calibration;
}

Status WriteCalibrationFile(const std::string& path, const Calibration& calibration) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << FormatCalibration(calibration);
    if (!out.flush()) return InternalError("cannot write " + Quoted(temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return InternalError("cannot rename " + Quoted(temporary) + " to " + Quoted(path));
  }
  return OkStatus();
}

}  // namespace cnnserve
