// Decoding off the threads that serve other requests: a real cnnserve on loopback, a PNG that takes about a
// second to decode, and a small request sent after it. Whether the costly decode is still running is read from
// the server itself (its decode memory budget is held while an image decodes: a probe image that only fits
// beside it when the costly one is not decoding is refused with UNAVAILABLE while it is), never from a timer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

std::string BigEndian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string PngChunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const uLong crc = crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(body.data()),
                          static_cast<uInt>(body.size()));
  return BigEndian32(static_cast<uint32_t>(data.size())) + body + BigEndian32(static_cast<uint32_t>(crc));
}

// A valid width x height 16-bit RGB PNG, every sample 0, deflated: a few hundred KB on the wire that decode to
// width x height x 6 bytes.
std::string ZeroPng16(uint32_t width, uint32_t height) {
  const size_t row_bytes = 1 + static_cast<size_t>(width) * 6;  // filter byte + samples
  const std::string zeros(row_bytes * 64, '\0');
  z_stream stream{};
  EXPECT_EQ(deflateInit(&stream, Z_BEST_SPEED), Z_OK);
  std::string idat;
  char out[1 << 16];
  for (uint32_t rows = 0; rows < height;) {
    const uint32_t n = std::min<uint32_t>(64, height - rows);
    rows += n;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    stream.avail_in = static_cast<uInt>(row_bytes * n);
    const int flush = rows == height ? Z_FINISH : Z_NO_FLUSH;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(out);
      stream.avail_out = sizeof(out);
      deflate(&stream, flush);
      idat.append(out, sizeof(out) - stream.avail_out);
    } while (stream.avail_out == 0);
  }
  deflateEnd(&stream);
  const std::string ihdr = BigEndian32(width) + BigEndian32(height) + std::string{16, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", idat) +
         PngChunk("IEND", "");
}

// A PNG whose header declares width x height 16-bit RGB and whose IHDR checksum is wrong: the server's own header
// check (which does not read checksums) passes it, so it reserves its decode memory, and libpng rejects it while
// reading the header, before any pixel memory is allocated (INVALID_ARGUMENT). So it holds the reservation for
// microseconds, and it is refused (UNAVAILABLE) when that memory is not free.
std::string StubPng16(uint32_t width, uint32_t height) {
  const std::string ihdr = BigEndian32(width) + BigEndian32(height) + std::string{16, 2, 0, 0, 0};
  std::string header_chunk = PngChunk("IHDR", ihdr);
  header_chunk.back() = static_cast<char>(header_chunk.back() ^ 0x5a);  // corrupt the CRC
  return std::string("\x89PNG\r\n\x1a\n", 8) + header_chunk +
         PngChunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) + PngChunk("IEND", "");
}

v1::ClassifyRequest OneImage(const std::string& bytes) {
  v1::ClassifyRequest request;
  request.set_model(kModel);
  request.add_inputs()->set_image(bytes);
  return request;
}

// The costly request, sent asynchronously: a 6000 x 6000 x 16-bit RGB PNG, 216 MB to decode.
class CostlyCall {
 public:
  explicit CostlyCall(v1::Classifier::Stub& stub) : request_(OneImage(ZeroPng16(6000, 6000))) {
    stub.async()->Classify(&context_, &request_, &response_, [this](grpc::Status status) {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = std::move(status);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~CostlyCall() {
    context_.TryCancel();
    (void)Wait();
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  // Waits for the answer (at most two minutes); false when there is none.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(120), [this] { return done_; });
  }
  const grpc::Status& status() const { return status_; }  // after Wait
  const v1::ClassifyResponse& response() const { return response_; }

 private:
  grpc::ClientContext context_;
  const v1::ClassifyRequest request_;
  v1::ClassifyResponse response_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

class DecodeWorkersTest : public ::testing::Test {
 protected:
  // lenet5_fashion alone; 250 MiB of decode memory: the costly image (216 MB) and the probe (96 MB) fit alone,
  // not together.
  void SetUp() override {
    std::filesystem::copy(DefaultRepository() / kModel, repo_.path() / kModel,
                          std::filesystem::copy_options::recursive);
    server_ = ServerProcess::Start({"--model-repository", repo_.path().string(), "--max-decode-memory-mb", "250",
                                    "--threads", "2"});
    ASSERT_NE(server_, nullptr);
    stub_ = server_->NewStub();
    probe_stub_ = server_->NewStub();
  }

  // The probe's status: UNAVAILABLE while the costly image is decoding, INVALID_ARGUMENT (its stub data) otherwise.
  grpc::Status Probe() {
    v1::ClassifyResponse response;
    return Classify(*probe_stub_, probe_, &response);
  }

  // Sends the costly request and probes until the server says it is decoding. A probe that holds its memory at
  // the moment the costly image reserves its own gets it refused (UNAVAILABLE): then it is sent again. The probes
  // hold their memory only while libpng reads a header, go on their own connection and back off (1, 2, 4 ... 32
  // ms apart), which leaves the costly request room to reserve its memory (with probes that allocated their pixels,
  // on the costly request's connection, an ASan build refused it 20 times in a row). Null (and a test failure)
  // when it never was seen decoding.
  std::unique_ptr<CostlyCall> StartDecoding() {
    constexpr int kAttempts = 20;
    constexpr auto kMaxBackoff = std::chrono::milliseconds(32);
    std::string last_refusal;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      auto costly = std::make_unique<CostlyCall>(*stub_);
      auto backoff = std::chrono::milliseconds(1);
      while (!costly->done()) {
        if (Probe().error_code() == grpc::StatusCode::UNAVAILABLE && !costly->done()) return costly;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
      }
      EXPECT_EQ(costly->status().error_code(), grpc::StatusCode::UNAVAILABLE)
          << "the costly request was answered before a probe saw it decoding: " << costly->status().error_message();
      if (costly->status().error_code() != grpc::StatusCode::UNAVAILABLE) return nullptr;
      last_refusal = costly->status().error_message();
    }
    ADD_FAILURE() << "the costly request was refused " << kAttempts << " times, last: " << last_refusal
                  << "\nserver log:\n" << server_->Log();
    return nullptr;
  }

  TempDir repo_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  // The probes go on a connection of their own, so that their arrival is not tied to the costly request's frames.
  std::unique_ptr<v1::Classifier::Stub> probe_stub_;
  const v1::ClassifyRequest probe_ = OneImage(StubPng16(4000, 4000));
};

TEST_F(DecodeWorkersTest, ACostlyImageDoesNotStallASmallRequestSentAfterIt) {
  grpc::Status probe_status = Probe();
  ASSERT_EQ(probe_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "alone, the probe fits the budget and fails to decode: " << probe_status.error_message();
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  const v1::ClassifyRequest small = ImageRequest({&images[0]});

  const std::unique_ptr<CostlyCall> started = StartDecoding();
  ASSERT_NE(started, nullptr);
  CostlyCall& costly = *started;

  // The small request completes while the costly one is still decoding.
  v1::ClassifyResponse response;
  const grpc::Status small_status = Classify(*stub_, small, &response);
  EXPECT_TRUE(small_status.ok()) << small_status.error_message();
  EXPECT_EQ(response.results_size(), 1);
  probe_status = Probe();
  EXPECT_EQ(probe_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << "the costly image should still be decoding after the small request's answer: "
      << probe_status.error_message();
  EXPECT_NE(probe_status.error_message().find("decode"), std::string::npos) << probe_status.error_message();
  EXPECT_FALSE(costly.done());

  ASSERT_TRUE(costly.Wait());
  EXPECT_TRUE(costly.status().ok()) << costly.status().error_message();
  EXPECT_EQ(costly.response().results_size(), 1);
}

// SIGTERM while a request is on a decode worker: the drain counts it as being prepared, so it is decoded, run
// and answered OK before the server stops its models, and the drain report leaves nothing unanswered.
TEST_F(DecodeWorkersTest, SigtermAnswersARequestStillDecoding) {
  const std::unique_ptr<CostlyCall> started = StartDecoding();
  ASSERT_NE(started, nullptr);
  CostlyCall& costly = *started;
  server_->Signal(SIGTERM);
  ASSERT_TRUE(costly.Wait());
  EXPECT_TRUE(costly.status().ok()) << costly.status().error_code() << ": " << costly.status().error_message();
  const std::optional<int> exit_status = server_->WaitForExit(std::chrono::milliseconds(60'000));
  ASSERT_TRUE(exit_status.has_value()) << server_->Log();
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0) << server_->Log();
  const std::string log = server_->Log();
  EXPECT_NE(log.find("answered OK 1"), std::string::npos) << log;
  EXPECT_NE(log.find("unanswered 0"), std::string::npos) << log;
}

}  // namespace
}  // namespace cnnserve::integration
