// DecodeBudget: a bound on the memory that image decoding holds at once, across every request and model of the
// process. A small compressed upload can declare an image that takes hundreds of megabytes to decode (a 309 KB
// PNG of 6300 x 6300 16-bit RGBA decodes to 318 MB, plus the copy that drops its alpha channel), so the number of
// concurrent decodes alone does not bound the server's memory; their decoded bytes do.
//
// DecodeImage and ImageFromPixels (preprocess.h) reserve an image's decode memory (DecodedBytes) before
// decoding, when their DecodeLimits carry a budget, and the DecodedImage holds the reservation until its last
// copy is destroyed. A reservation that does not fit is refused at once (UNAVAILABLE: retry later), never
// waited for, so no thread blocks on the budget.
//
// Thread-safety: every method may be called from any thread. A Reservation may be released (destroyed) on any
// thread; the DecodeBudget must outlive its reservations (hold it by shared_ptr, as DecodeLimits does).
#ifndef CNNSERVE_SERVER_PREPROCESS_DECODE_BUDGET_H_
#define CNNSERVE_SERVER_PREPROCESS_DECODE_BUDGET_H_

#include <cstdint>
#include <memory>
#include <mutex>

#include "engine/common/status.h"

namespace cnnserve {

class DecodeBudget {
 public:
  // Held bytes of a budget; returns them when destroyed. Move-only.
  class Reservation {
   public:
    Reservation() = default;
    ~Reservation();
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    int64_t bytes() const { return bytes_; }

   private:
    friend class DecodeBudget;
    Reservation(DecodeBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
    void Release();

    DecodeBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // INVALID_ARGUMENT unless capacity_bytes > 0.
  static StatusOr<std::shared_ptr<DecodeBudget>> Create(int64_t capacity_bytes);

  // Reserves `bytes` (>= 0). UNAVAILABLE when fewer than `bytes` are free now (the message says how much is in
  // use and the capacity); INVALID_ARGUMENT for negative bytes or more than the whole capacity.
  StatusOr<Reservation> Reserve(int64_t bytes);

  int64_t capacity_bytes() const { return capacity_bytes_; }
  int64_t in_use_bytes() const;
  // The most bytes ever held at once (for tests and statistics).
  int64_t peak_bytes() const;

 private:
  explicit DecodeBudget(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}
  void Return(int64_t bytes);

  const int64_t capacity_bytes_;
  mutable std::mutex mu_;
  int64_t in_use_bytes_ = 0;
  int64_t peak_bytes_ = 0;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_PREPROCESS_DECODE_BUDGET_H_
