#include "tools/cnnload/workload.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "engine/common/strings.h"
#include "engine/common/units.h"
#ifdef CNNLOAD_HAVE_KSERVE
#include "inference/grpc_service.grpc.pb.h"
#endif
#include "tools/common/client_channel.h"

namespace cnnserve::cnnload {
namespace {

constexpr char kClassifyMethod[] = "/cnnserve.v1.Classifier/Classify";
constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";
// The request pool: distinct requests cycle through the images; bounded in count and bytes.
constexpr size_t kMaxPoolRequests = 1024;
constexpr int64_t kMaxPoolBytes = 256 * kBytesPerMiB;
constexpr unsigned char kJpegMagic[] = {0xFF, 0xD8, 0xFF};
constexpr unsigned char kPngMagic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

Status FromGrpc(const grpc::Status& status, const std::string& what) {
  return Status(static_cast<StatusCode>(status.error_code()), what + ": " + status.error_message());
}

template <size_t N>
bool StartsWith(const std::string& bytes, const unsigned char (&magic)[N]) {
  return bytes.size() >= N && std::memcmp(bytes.data(), magic, N) == 0;
}

bool HasImageExtension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + Quoted(path.string(), kMaxQuotedPathBytes));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return DataLossError("error reading " + Quoted(path.string(), kMaxQuotedPathBytes));
  if (!StartsWith(bytes, kJpegMagic) && !StartsWith(bytes, kPngMagic)) {
    return InvalidArgumentError(Quoted(path.string(), kMaxQuotedPathBytes) +
                                " is neither a JPEG nor a PNG file (magic bytes)");
  }
  return bytes;
}

std::string ShapeText(const std::vector<int64_t>& dims) {
  std::string text;
  for (const int64_t d : dims) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

void SetDeadline(grpc::ClientContext* context, double seconds) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(seconds * kMicrosPerSecond)));
}

// "200 PNG files", "1000 JPEG + 1000 PNG files".
std::string ImagesDescription(const std::vector<std::string>& images) {
  size_t jpeg = 0;
  for (const std::string& image : images) jpeg += StartsWith(image, kJpegMagic) ? 1 : 0;
  const size_t png = images.size() - jpeg;
  if (png == 0) return std::to_string(jpeg) + " JPEG files";
  if (jpeg == 0) return std::to_string(png) + " PNG files";
  return std::to_string(jpeg) + " JPEG + " + std::to_string(png) + " PNG files";
}

// The float32 bytes of `count` synthetic images of `item_elements` values each.
std::string SyntheticBytes(int64_t count, int64_t item_elements, uint64_t seed) {
  const int64_t n = count * item_elements;
  std::string bytes(static_cast<size_t>(n) * sizeof(float), '\0');
  for (int64_t i = 0; i < n; ++i) {
    const float v = SyntheticValue(static_cast<uint64_t>(i), seed);
    std::memcpy(bytes.data() + i * static_cast<int64_t>(sizeof(float)), &v, sizeof(float));
  }
  return bytes;
}

// Serializes requests built by `make(first_image)` until every image has been used once in its place (or the pool
// is full): request j holds images j*batch ... j*batch+batch-1 (modulo the number of images).
template <typename MakeRequest>
std::vector<std::string> BuildPool(size_t num_images, int batch, MakeRequest make) {
  std::vector<std::string> pool;
  int64_t bytes = 0;
  const size_t wanted = std::max<size_t>(1, (num_images + static_cast<size_t>(batch) - 1) / batch);
  while (pool.size() < std::min(wanted, kMaxPoolRequests) && (pool.empty() || bytes < kMaxPoolBytes)) {
    pool.push_back(make(pool.size() * static_cast<size_t>(batch)));
    bytes += static_cast<int64_t>(pool.back().size());
  }
  return pool;
}

// ---- native cnnserve.v1.Classifier/Classify ----

class NativeChecker : public ResponseChecker {
 public:
  explicit NativeChecker(int images) : images_(images) {}
  Status Check(grpc::ByteBuffer* response) override {
    response_.Clear();
    grpc::ProtoBufferReader reader(response);
    if (!response_.ParseFromZeroCopyStream(&reader)) return DataLossError("unparsable ClassifyResponse");
    if (response_.results_size() != images_) {
      return DataLossError(std::to_string(response_.results_size()) + " results for " + std::to_string(images_) +
                           " images");
    }
    return OkStatus();
  }

 private:
  const int images_;
  v1::ClassifyResponse response_;
};

class NativeWorkload : public Workload {
 public:
  static StatusOr<std::unique_ptr<Workload>> Create(const LoadOptions& options,
                                                    const std::shared_ptr<grpc::Channel>& channel,
                                                    const std::vector<std::string>& images, double timeout_s) {
    std::unique_ptr<NativeWorkload> w(new NativeWorkload());
    w->method_ = kClassifyMethod;
    w->images_per_request_ = options.batch;
    v1::ClassifyRequest base;
    base.set_model(options.model);
    base.set_version(options.version);
    base.set_top_k(options.top_k);
    // Ask for the model even when sending images: an unknown or unavailable model is reported at once. With images
    // that is only an early check, so a token with the infer scope but not the metadata one may still run.
    auto stub = v1::Classifier::NewStub(channel);
    grpc::ClientContext context;
    SetDeadline(&context, timeout_s);
    v1::DescribeModelRequest request;
    request.set_model(options.model);
    request.set_version(options.version);
    v1::DescribeModelResponse response;
    const grpc::Status status = stub->DescribeModel(&context, request, &response);
    const bool images_without_metadata_scope =
        !options.synthetic && status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    if (!status.ok() && !images_without_metadata_scope) {
      return FromGrpc(status, "DescribeModel(\"" + options.model + "\")");
    }
    std::vector<std::string> pool;
    if (options.synthetic) {
      const std::vector<int64_t> dims(response.summary().input_shape().begin(),
                                      response.summary().input_shape().end());
      int64_t elements = 1;
      for (const int64_t d : dims) elements *= d;
      if (dims.size() != 3 || elements <= 0) {
        return FailedPreconditionError("model " + Quoted(options.model) + " reports input shape '" +
                                       ShapeText(dims) + "'; --synthetic needs C, H, W");
      }
      v1::RawTensor* tensor = base.add_inputs()->mutable_tensor();
      if (options.batch > 1) tensor->add_shape(options.batch);
      for (const int64_t d : dims) tensor->add_shape(d);
      tensor->set_data(SyntheticBytes(options.batch, elements, options.seed));
      pool.push_back(base.SerializeAsString());
      w->input_description_ = "synthetic " + ShapeText(dims) + " float32";
    } else {
      pool = BuildPool(images.size(), options.batch, [&](size_t first) {
        v1::ClassifyRequest classify = base;
        for (int k = 0; k < options.batch; ++k)
          classify.add_inputs()->set_image(images[(first + k) % images.size()]);
        return classify.SerializeAsString();
      });
      w->input_description_ = ImagesDescription(images);
    }
    w->SetRequests(pool);
    return std::unique_ptr<Workload>(std::move(w));
  }

  std::unique_ptr<ResponseChecker> NewChecker() const override {
    return std::make_unique<NativeChecker>(images_per_request_);
  }
};

#ifdef CNNLOAD_HAVE_KSERVE
// ---- KServe v2 inference.GRPCInferenceService/ModelInfer ----

class KServeChecker : public ResponseChecker {
 public:
  explicit KServeChecker(int images) : images_(images) {}
  Status Check(grpc::ByteBuffer* response) override {
    response_.Clear();
    grpc::ProtoBufferReader reader(response);
    if (!response_.ParseFromZeroCopyStream(&reader)) return DataLossError("unparsable ModelInferResponse");
    if (response_.outputs_size() < 1) return DataLossError("ModelInferResponse has no outputs");
    const auto& output = response_.outputs(0);
    if (output.shape_size() < 1 || output.shape(0) != images_) {
      return DataLossError("output " + output.name() + " has shape [" +
                           ShapeText({output.shape().begin(), output.shape().end()}) + "] for " +
                           std::to_string(images_) + " images");
    }
    return OkStatus();
  }

 private:
  const int images_;
  inference::ModelInferResponse response_;
};

class KServeWorkload : public Workload {
 public:
  static StatusOr<std::unique_ptr<Workload>> Create(const LoadOptions& options,
                                                    const std::shared_ptr<grpc::Channel>& channel,
                                                    const std::vector<std::string>& images, double timeout_s) {
    std::unique_ptr<KServeWorkload> w(new KServeWorkload());
    w->method_ = kModelInferMethod;
    w->images_per_request_ = options.batch;
    const std::string version = options.version > 0 ? std::to_string(options.version) : "";
    auto stub = inference::GRPCInferenceService::NewStub(channel);
    grpc::ClientContext context;
    SetDeadline(&context, timeout_s);
    inference::ModelMetadataRequest request;
    request.set_name(options.model);
    request.set_version(version);
    inference::ModelMetadataResponse metadata;
    const grpc::Status status = stub->ModelMetadata(&context, request, &metadata);
    if (!status.ok()) return FromGrpc(status, "ModelMetadata(\"" + options.model + "\")");
    if (metadata.inputs_size() < 1 || metadata.outputs_size() < 1) {
      return FailedPreconditionError("ModelMetadata(\"" + options.model + "\") lists no input or no output");
    }
    const auto& input = metadata.inputs(0);
    inference::ModelInferRequest base;
    base.set_model_name(options.model);
    base.set_model_version(version);
    auto* output = base.add_outputs();
    output->set_name(metadata.outputs(0).name());
    // --top-k K: the classification extension (top-K "score:index:label" strings, like the native API); else the
    // FP32 scores.
    if (options.top_k > 0) (*output->mutable_parameters())["classification"].set_int64_param(options.top_k);
    auto* tensor = base.add_inputs();
    tensor->set_name(input.name());
    std::vector<std::string> pool;
    if (options.synthetic) {
      // The model's input without its batch dimension: [-1, C, H, W] or [C, H, W].
      std::vector<int64_t> dims(input.shape().begin(), input.shape().end());
      if (dims.size() == 4) dims.erase(dims.begin());
      int64_t elements = 1;
      for (const int64_t d : dims) elements *= d;
      if (dims.size() != 3 || elements <= 0) {
        return FailedPreconditionError("input " + input.name() + " of model \"" + options.model +
                                       "\" has shape [" + ShapeText({input.shape().begin(), input.shape().end()}) +
                                       "]; --synthetic needs [N, C, H, W] or [C, H, W]");
      }
      tensor->set_datatype("FP32");
      tensor->add_shape(options.batch);
      for (const int64_t d : dims) tensor->add_shape(d);
      base.add_raw_input_contents(SyntheticBytes(options.batch, elements, options.seed));
      pool.push_back(base.SerializeAsString());
      w->input_description_ = "synthetic " + ShapeText(dims) + " FP32";
    } else {
      tensor->set_datatype("BYTES");
      tensor->add_shape(options.batch);
      pool = BuildPool(images.size(), options.batch, [&](size_t first) {
        inference::ModelInferRequest r = base;
        std::string contents;
        for (int k = 0; k < options.batch; ++k) {
          const std::string& image = images[(first + k) % images.size()];
          const uint32_t n = static_cast<uint32_t>(image.size());
          const char prefix[4] = {static_cast<char>(n & 0xFF), static_cast<char>((n >> 8) & 0xFF),
                                  static_cast<char>((n >> 16) & 0xFF), static_cast<char>((n >> 24) & 0xFF)};
          contents.append(prefix, sizeof(prefix));
          contents += image;
        }
        r.add_raw_input_contents(std::move(contents));
        return r.SerializeAsString();
      });
      w->input_description_ = ImagesDescription(images) + " as BYTES";
    }
    w->SetRequests(pool);
    return std::unique_ptr<Workload>(std::move(w));
  }

  std::unique_ptr<ResponseChecker> NewChecker() const override {
    return std::make_unique<KServeChecker>(images_per_request_);
  }
};
#endif  // CNNLOAD_HAVE_KSERVE

}  // namespace

void Workload::SetRequests(const std::vector<std::string>& serialized) {
  requests_.clear();
  int64_t total = 0;
  for (const std::string& bytes : serialized) {
    grpc::Slice slice(bytes);
    requests_.emplace_back(&slice, 1);
    total += static_cast<int64_t>(bytes.size());
  }
  mean_request_bytes_ = serialized.empty() ? 0 : total / static_cast<int64_t>(serialized.size());
}

float SyntheticValue(uint64_t index, uint64_t seed) {
  uint32_t x = static_cast<uint32_t>(index + seed * 0x9E3779B9ULL);  // modulo 2^32
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return static_cast<float>(x >> 8) / static_cast<float>(1 << 23) - 1.0f;
}

StatusOr<std::vector<std::string>> ReadImages(const std::vector<std::string>& paths) {
  std::vector<std::string> images;
  for (const std::string& arg : paths) {
    const std::filesystem::path path(arg);
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
        if (entry.is_regular_file() && HasImageExtension(entry.path())) files.push_back(entry.path());
      }
      if (ec) return NotFoundError("cannot list " + Quoted(arg, kMaxQuotedPathBytes) + ": " + ec.message());
      if (files.empty())
        return NotFoundError("no *.jpg, *.jpeg or *.png file in " + Quoted(arg, kMaxQuotedPathBytes));
      std::sort(files.begin(), files.end());
      for (const auto& file : files) {
        CNN_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
        images.push_back(std::move(bytes));
      }
    } else {
      CNN_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
      images.push_back(std::move(bytes));
    }
  }
  if (images.empty()) return InvalidArgumentError("no images given");
  return images;
}

StatusOr<std::unique_ptr<Workload>> CreateWorkload(const LoadOptions& options,
                                                   const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::vector<std::string>& images,
                                                   double connect_timeout_s) {
  if (!options.synthetic && images.empty()) return InvalidArgumentError("no images to send");
  CNN_RETURN_IF_ERROR(tools::WaitForChannel(
      channel, options.server,
      std::chrono::milliseconds(static_cast<int64_t>(connect_timeout_s * kMillisPerSecond))));
  if (options.protocol == Protocol::kKServe) {
#ifdef CNNLOAD_HAVE_KSERVE
    return KServeWorkload::Create(options, channel, images, connect_timeout_s);
#else
    return UnimplementedError("--protocol kserve: this cnnload was built without proto/inference (KServe)");
#endif
  }
  return NativeWorkload::Create(options, channel, images, connect_timeout_s);
}

}  // namespace cnnserve::cnnload
