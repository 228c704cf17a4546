#include "server/preprocess/decode_budget.h"

#include <algorithm>
#include <string>
#include <utility>

#include "engine/common/units.h"

namespace cnnserve {
namespace {

std::string MiB(int64_t bytes) { return std::to_string((bytes + kBytesPerMiB - 1) / kBytesPerMiB) + " MiB"; }

}  // namespace

DecodeBudget::Reservation::~Reservation() { Release(); }

DecodeBudget::Reservation::Reservation(Reservation&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DecodeBudget::Reservation& DecodeBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DecodeBudget::Reservation::Release() {
  if (budget_ != nullptr) budget_->Return(bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

StatusOr<std::shared_ptr<DecodeBudget>> DecodeBudget::Create(int64_t capacity_bytes) {
  if (capacity_bytes <= 0) {
    return InvalidArgumentError("decode budget " + std::to_string(capacity_bytes) + " bytes must be > 0");
  }
  return std::shared_ptr<DecodeBudget>(new DecodeBudget(capacity_bytes));
}

StatusOr<DecodeBudget::Reservation> DecodeBudget::Reserve(int64_t bytes) {
  if (bytes < 0) return InvalidArgumentError("cannot reserve " + std::to_string(bytes) + " bytes");
  if (bytes > capacity_bytes_) {
    return InvalidArgumentError("decoding needs " + MiB(bytes) + ", more than the server's whole decode memory (" +
                                MiB(capacity_bytes_) + ")");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes > capacity_bytes_ - in_use_bytes_) {
    return UnavailableError("the server is busy decoding images (" + MiB(in_use_bytes_) + " of " +
                            MiB(capacity_bytes_) + " decode memory in use; this image needs " + MiB(bytes) +
                            "): retry later");
  }
  in_use_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, in_use_bytes_);
  return Reservation(this, bytes);
}

int64_t DecodeBudget::in_use_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_bytes_;
}

int64_t DecodeBudget::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_bytes_;
}

void DecodeBudget::Return(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  in_use_bytes_ -= bytes;
}

}  // namespace cnnserve
