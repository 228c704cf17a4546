// Decoding off the threads that serve other requests: a real cnnserve on loopback, a PNG that takes about a
// second to decode, and a small request sent after it. Whether the costly decode is still running is read from
// the server itself (its decode memory budget is held while an image decodes: a probe image that only fits
// beside it when the costly one is not decoding is refused with UNAVAILABLE while it is), never from a timer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

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

// A PNG whose header declares width x height 16-bit RGB and whose data is a stub: it reserves its decode memory
// and then fails to decode (INVALID_ARGUMENT) at once, or is refused (UNAVAILABLE) when that memory is not free.
std::string StubPng16(uint32_t width, uint32_t height) {
  const std::string ihdr = BigEndian32(width) + BigEndian32(height) + std::string{16, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) +
         PngChunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) + PngChunk("IEND", "");
}

v1::ClassifyRequest OneImage(const std::string& bytes) {
  v1::ClassifyRequest request;
  request.set_model(kModel);
  request.add_inputs()->set_image(bytes);
  return request;
}

TEST(DecodeWorkersTest, ACostlyImageDoesNotStallASmallRequestSentAfterIt) {
  TempDir repo;
  std::filesystem::copy(DefaultRepository() / kModel, repo.path() / kModel, std::filesystem::copy_options::recursive);
  // 6000 x 6000 x 16-bit RGB: 216 MB to decode. The probe declares 96 MB: it fits in 250 MiB only when the costly
  // image is not decoding.
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--max-decode-memory-mb", "250",
                                      "--threads", "2"});
  ASSERT_NE(server, nullptr);
  auto stub = server->NewStub();
  const v1::ClassifyRequest costly = OneImage(ZeroPng16(6000, 6000));
  const v1::ClassifyRequest probe = OneImage(StubPng16(4000, 4000));
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  const v1::ClassifyRequest small = ImageRequest({&images[0]});
  v1::ClassifyResponse response;
  grpc::Status probe_status = Classify(*stub, probe, &response);
  ASSERT_EQ(probe_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "alone, the probe fits the budget and fails to decode: " << probe_status.error_message();

  // The costly request, asynchronously.
  grpc::ClientContext costly_context;
  v1::ClassifyResponse costly_response;
  std::mutex mu;
  std::condition_variable cv;
  bool costly_done = false;
  grpc::Status costly_status;
  stub->async()->Classify(&costly_context, &costly, &costly_response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    costly_status = std::move(status);
    costly_done = true;
    cv.notify_all();
  });
  const auto is_done = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return costly_done;
  };
  // Until the server says the costly image is decoding (its memory is held), or it has been answered.
  bool decoding = false;
  int probes = 0;
  while (!decoding && !is_done()) {
    probe_status = Classify(*stub, probe, &response);
    decoding = probe_status.error_code() == grpc::StatusCode::UNAVAILABLE;
    ++probes;
  }
  ASSERT_TRUE(decoding) << "the costly request was answered (code " << costly_status.error_code() << ": "
                        << costly_status.error_message() << ") before " << probes
                        << " probes saw it decoding; the last probe: " << probe_status.error_message();
  EXPECT_NE(probe_status.error_message().find("decode"), std::string::npos) << probe_status.error_message();

  // The small request completes while the costly one is still decoding.
  grpc::Status small_status = Classify(*stub, small, &response);
  EXPECT_TRUE(small_status.ok()) << small_status.error_message();
  EXPECT_EQ(response.results_size(), 1);
  probe_status = Classify(*stub, probe, &response);
  EXPECT_EQ(probe_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << "the costly image should still be decoding after the small request's answer: "
      << probe_status.error_message();
  EXPECT_FALSE(is_done());

  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return costly_done; }));
  EXPECT_TRUE(costly_status.ok()) << costly_status.error_message();
  EXPECT_EQ(costly_response.results_size(), 1);
}

// SIGTERM while a request is on a decode worker: the drain counts it as being prepared, so it is decoded, run
// and answered OK before the server stops its models, and the drain report leaves nothing unanswered.
TEST(DecodeWorkersTest, SigtermAnswersARequestStillDecoding) {
  TempDir repo;
  std::filesystem::copy(DefaultRepository() / kModel, repo.path() / kModel, std::filesystem::copy_options::recursive);
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--max-decode-memory-mb", "250",
                                      "--threads", "2"});
  ASSERT_NE(server, nullptr);
  auto stub = server->NewStub();
  const v1::ClassifyRequest costly = OneImage(ZeroPng16(6000, 6000));
  const v1::ClassifyRequest probe = OneImage(StubPng16(4000, 4000));
  grpc::ClientContext costly_context;
  v1::ClassifyResponse costly_response;
  std::mutex mu;
  std::condition_variable cv;
  bool costly_done = false;
  grpc::Status costly_status;
  stub->async()->Classify(&costly_context, &costly, &costly_response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    costly_status = std::move(status);
    costly_done = true;
    cv.notify_all();
  });
  bool decoding = false;
  v1::ClassifyResponse response;
  while (!decoding) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_FALSE(costly_done) << "answered before it was seen decoding: " << costly_status.error_message();
    }
    decoding = Classify(*stub, probe, &response).error_code() == grpc::StatusCode::UNAVAILABLE;
  }
  server->Signal(SIGTERM);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return costly_done; }));
  }
  EXPECT_TRUE(costly_status.ok()) << costly_status.error_code() << ": " << costly_status.error_message();
  const std::optional<int> exit_status = server->WaitForExit(std::chrono::milliseconds(60'000));
  ASSERT_TRUE(exit_status.has_value()) << server->Log();
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0) << server->Log();
  const std::string log = server->Log();
  EXPECT_NE(log.find("answered OK 1"), std::string::npos) << log;
  EXPECT_NE(log.find("unanswered 0"), std::string::npos) << log;
}

}  // namespace
}  // namespace cnnserve::integration
