// Named unit conversions, so that an expression says which units it converts (`ms * kMicrosPerMilli`, not
// `ms * 1000`). Integer constants convert exactly; multiply by them (or divide, in integer or floating point
// arithmetic as the expression needs). Binary sizes: KiB = 1024 bytes, MiB = 1024 KiB, GiB = 1024 MiB.
// Thread-safety: constants only.
#ifndef CNNSERVE_ENGINE_COMMON_UNITS_H_
#define CNNSERVE_ENGINE_COMMON_UNITS_H_

#include <cstdint>

namespace cnnserve {

// Time.
inline constexpr int64_t kNanosPerMicro = 1000;
inline constexpr int64_t kMicrosPerMilli = 1000;
inline constexpr int64_t kMillisPerSecond = 1000;
inline constexpr int64_t kNanosPerMilli = kNanosPerMicro * kMicrosPerMilli;
inline constexpr int64_t kMicrosPerSecond = kMicrosPerMilli * kMillisPerSecond;
inline constexpr int64_t kNanosPerSecond = kNanosPerMilli * kMillisPerSecond;
inline constexpr int64_t kSecondsPerMinute = 60;
inline constexpr int64_t kSecondsPerHour = 60 * kSecondsPerMinute;
inline constexpr int64_t kSecondsPerDay = 24 * kSecondsPerHour;

// Sizes.
inline constexpr int64_t kBytesPerKiB = int64_t{1} << 10;
inline constexpr int64_t kBytesPerMiB = int64_t{1} << 20;
inline constexpr int64_t kBytesPerGiB = int64_t{1} << 30;
inline constexpr int64_t kKiBPerMiB = kBytesPerMiB / kBytesPerKiB;

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_UNITS_H_
