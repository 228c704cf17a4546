#include "server/kserve/kserve_tensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

ServableInfo LenetInfo() {
  ServableInfo info;
  info.name = "lenet";
  info.version = 1;
  info.platform = "onnx";
  info.item_input_dims = {1, 4, 4};
  info.num_classes = 3;
  info.labels = {"cat", "", "dog"};
  info.max_batch_size = 8;
  info.input_name = "input";
  info.output_name = "logits";
  return info;
}

KServeInputLimits Limits() {
  KServeInputLimits limits;
  limits.max_items = 4;
  limits.max_pixels = 100;
  return limits;
}

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

ModelInferRequest::InferInputTensor* AddInput(ModelInferRequest* request, const std::string& name,
                                              const std::string& datatype, const std::vector<int64_t>& shape) {
  auto* input = request->add_inputs();
  input->set_name(name);
  input->set_datatype(datatype);
  for (int64_t d : shape) input->add_shape(d);
  return input;
}

std::string Framed(const std::vector<std::string>& elements) {
  std::string out;
  for (const std::string& e : elements) AppendBytesElement(e, &out);
  return out;
}

// The status message of parsing `request`, checking it is INVALID_ARGUMENT.
std::string ParseError(const ModelInferRequest& request) {
  const StatusOr<ParsedInferInput> parsed = ParseInferInput(request, LenetInfo(), Limits());
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().ToString();
  return parsed.status().message();
}

#define EXPECT_HAS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

TEST(KServeTensorsTest, RawFp32BecomesTensorItemsViewingTheRequest) {
  ModelInferRequest request;
  AddInput(&request, "input", "FP32", {2, 1, 4, 4});
  std::vector<float> values(32);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  request.add_raw_input_contents(FloatBytes(values));
  const StatusOr<ParsedInferInput> parsed = ParseInferInput(request, LenetInfo(), Limits());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->items.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(parsed->items[i].kind, ImageItem::Kind::kTensor);
    EXPECT_EQ(parsed->items[i].data.size(), 16 * sizeof(float));
    EXPECT_EQ(parsed->items[i].data.data(), request.raw_input_contents(0).data() + i * 16 * sizeof(float));
  }
  float second_first = 0;
  std::memcpy(&second_first, parsed->items[1].data.data(), sizeof(float));
  EXPECT_EQ(second_first, 16.0f);
}

TEST(KServeTensorsTest, TypedFp32IsCopiedIntoStorage) {
  ModelInferRequest request;
  auto* input = AddInput(&request, "input", "FP32", {1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) input->mutable_contents()->add_fp32_contents(0.5f * static_cast<float>(i));
  StatusOr<ParsedInferInput> parsed = ParseInferInput(request, LenetInfo(), Limits());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ParsedInferInput moved = std::move(*parsed);  // the views survive a move
  ASSERT_EQ(moved.items.size(), 1u);
  ASSERT_NE(moved.storage, nullptr);
  float values[16];
  ASSERT_EQ(moved.items[0].data.size(), sizeof(values));
  std::memcpy(values, moved.items[0].data.data(), sizeof(values));
  EXPECT_EQ(values[3], 1.5f);
  EXPECT_EQ(values[15], 7.5f);
}

TEST(KServeTensorsTest, Uint8PixelsRawAndTyped) {
  ModelInferRequest raw;
  AddInput(&raw, "input", "UINT8", {2, 3, 5, 3});
  raw.add_raw_input_contents(std::string(2 * 3 * 5 * 3, '\x7f'));
  const StatusOr<ParsedInferInput> parsed = ParseInferInput(raw, LenetInfo(), Limits());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->items.size(), 2u);
  EXPECT_EQ(parsed->items[1].kind, ImageItem::Kind::kPixels);
  EXPECT_EQ(parsed->items[1].height, 3);
  EXPECT_EQ(parsed->items[1].width, 5);
  EXPECT_EQ(parsed->items[1].channels, 3);
  EXPECT_EQ(parsed->items[1].data.size(), 45u);

  ModelInferRequest typed;
  auto* input = AddInput(&typed, "input", "UINT8", {1, 2, 2, 1});
  for (uint32_t v : {0u, 1u, 254u, 255u}) input->mutable_contents()->add_uint_contents(v);
  const StatusOr<ParsedInferInput> gray = ParseInferInput(typed, LenetInfo(), Limits());
  ASSERT_TRUE(gray.ok()) << gray.status().ToString();
  EXPECT_EQ(gray->items[0].data, std::string("\x00\x01\xfe\xff", 4));
}

TEST(KServeTensorsTest, BytesRawFramingAndBytesContents) {
  ModelInferRequest raw;
  AddInput(&raw, "input", "BYTES", {3});
  raw.add_raw_input_contents(Framed({"png-one", "", "jpeg-three"}));
  const StatusOr<ParsedInferInput> parsed = ParseInferInput(raw, LenetInfo(), Limits());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->items.size(), 3u);
  EXPECT_EQ(parsed->items[0].kind, ImageItem::Kind::kEncoded);
  EXPECT_EQ(parsed->items[0].data, "png-one");
  EXPECT_EQ(parsed->items[1].data, "");
  EXPECT_EQ(parsed->items[2].data, "jpeg-three");

  ModelInferRequest typed;
  auto* input = AddInput(&typed, "input", "BYTES", {2, 1});
  input->mutable_contents()->add_bytes_contents("a");
  input->mutable_contents()->add_bytes_contents("bc");
  const StatusOr<ParsedInferInput> two = ParseInferInput(typed, LenetInfo(), Limits());
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->items[1].data, "bc");
}

TEST(KServeTensorsTest, MissingOrExtraInputs) {
  ModelInferRequest none;
  EXPECT_HAS(ParseError(none), "missing input 'input'");
  EXPECT_HAS(ParseError(none), "FP32 [N,1,4,4]");

  ModelInferRequest wrong_name;
  AddInput(&wrong_name, "images", "FP32", {1, 1, 4, 4})->mutable_contents()->add_fp32_contents(0);
  EXPECT_HAS(ParseError(wrong_name), "unknown input 'images'");
  EXPECT_HAS(ParseError(wrong_name), "missing input 'input'");

  ModelInferRequest two;
  AddInput(&two, "input", "FP32", {1, 1, 4, 4});
  AddInput(&two, "other", "FP32", {1, 1, 4, 4});
  EXPECT_HAS(ParseError(two), "takes exactly one input, 'input'");
  EXPECT_HAS(ParseError(two), "'input', 'other'");
}

TEST(KServeTensorsTest, WrongDatatype) {
  ModelInferRequest request;
  AddInput(&request, "input", "INT32", {1, 1, 4, 4});
  request.add_raw_input_contents(std::string(64, '\0'));
  const std::string message = ParseError(request);
  EXPECT_HAS(message, "model 'lenet' input 'input'");
  EXPECT_HAS(message, "datatype 'INT32' is not supported");
  EXPECT_HAS(message, "FP32 [N,1,4,4]");
}

TEST(KServeTensorsTest, ShapeAndByteSizeMismatches) {
  ModelInferRequest shape;
  AddInput(&shape, "input", "FP32", {1, 3, 4, 4});
  shape.add_raw_input_contents(std::string(3 * 16 * 4, '\0'));
  EXPECT_HAS(ParseError(shape), "FP32 shape [1,3,4,4] does not match the model's FP32 [N,1,4,4]");

  ModelInferRequest no_batch;
  AddInput(&no_batch, "input", "FP32", {1, 4, 4});
  no_batch.add_raw_input_contents(std::string(64, '\0'));
  EXPECT_HAS(ParseError(no_batch), "FP32 shape [1,4,4] does not match");

  ModelInferRequest bytes;
  AddInput(&bytes, "input", "FP32", {2, 1, 4, 4});
  bytes.add_raw_input_contents(std::string(100, '\0'));
  const std::string message = ParseError(bytes);
  EXPECT_HAS(message, "raw_input_contents[0] holds 100 bytes");
  EXPECT_HAS(message, "FP32 [2,1,4,4] needs 128");

  ModelInferRequest count;
  auto* input = AddInput(&count, "input", "FP32", {1, 1, 4, 4});
  for (int i = 0; i < 15; ++i) input->mutable_contents()->add_fp32_contents(0);
  EXPECT_HAS(ParseError(count), "contents.fp32_contents has 15 values; FP32 [1,1,4,4] needs 16");

  ModelInferRequest negative;
  AddInput(&negative, "input", "FP32", {-1, 1, 4, 4});
  EXPECT_HAS(ParseError(negative), "negative dimension");

  ModelInferRequest zero;
  AddInput(&zero, "input", "FP32", {0, 1, 4, 4});
  zero.add_raw_input_contents("");
  EXPECT_HAS(ParseError(zero), "batch size 0");

  ModelInferRequest too_many;
  AddInput(&too_many, "input", "FP32", {5, 1, 4, 4});
  too_many.add_raw_input_contents(std::string(5 * 64, '\0'));
  EXPECT_HAS(ParseError(too_many), "batch size 5 (shape [5,1,4,4]) exceeds the limit of 4 images per request");

  ModelInferRequest uint8_channels;
  AddInput(&uint8_channels, "input", "UINT8", {1, 4, 4, 2});
  uint8_channels.add_raw_input_contents(std::string(32, '\0'));
  EXPECT_HAS(ParseError(uint8_channels), "UINT8 shape [1,4,4,2] is not [N,H,W,C]");

  ModelInferRequest uint8_size;
  AddInput(&uint8_size, "input", "UINT8", {1, 4, 4, 1});
  uint8_size.add_raw_input_contents(std::string(15, '\0'));
  EXPECT_HAS(ParseError(uint8_size), "raw_input_contents[0] holds 15 bytes; UINT8 [1,4,4,1] needs 16");

  ModelInferRequest uint8_big;
  AddInput(&uint8_big, "input", "UINT8", {1, 11, 10, 1});
  uint8_big.add_raw_input_contents(std::string(110, '\0'));
  EXPECT_HAS(ParseError(uint8_big), "11x10 pixels exceeds the limit of 100");

  ModelInferRequest uint8_value;
  auto* v = AddInput(&uint8_value, "input", "UINT8", {1, 1, 2, 1});
  v->mutable_contents()->add_uint_contents(3);
  v->mutable_contents()->add_uint_contents(256);
  EXPECT_HAS(ParseError(uint8_value), "contents.uint_contents[1] = 256 is not a UINT8 value");

  ModelInferRequest bytes_shape;
  AddInput(&bytes_shape, "input", "BYTES", {2, 2});
  bytes_shape.add_raw_input_contents(Framed({"a", "b", "c", "d"}));
  EXPECT_HAS(ParseError(bytes_shape), "BYTES shape [2,2] is not [N] or [N,1]");
}

TEST(KServeTensorsTest, BadBytesFraming) {
  ModelInferRequest too_few;
  AddInput(&too_few, "input", "BYTES", {3});
  too_few.add_raw_input_contents(Framed({"a", "b"}));
  EXPECT_HAS(ParseError(too_few), "holds 2 BYTES element(s); shape [3] needs 3");

  ModelInferRequest truncated;
  AddInput(&truncated, "input", "BYTES", {1});
  std::string framed = Framed({"abcdef"});
  framed.resize(framed.size() - 2);
  truncated.add_raw_input_contents(framed);
  EXPECT_HAS(ParseError(truncated), "BYTES element 0 declares 6 bytes but only 4 remain");

  ModelInferRequest trailing;
  AddInput(&trailing, "input", "BYTES", {1});
  trailing.add_raw_input_contents(Framed({"a", "b"}));
  EXPECT_HAS(ParseError(trailing), "has 5 bytes after the 1 BYTES element(s)");

  ModelInferRequest short_prefix;
  AddInput(&short_prefix, "input", "BYTES", {2});
  short_prefix.add_raw_input_contents(Framed({"a"}) + "xy");
  EXPECT_HAS(ParseError(short_prefix), "2 trailing bytes are not a 4-byte length");

  ModelInferRequest count;
  auto* input = AddInput(&count, "input", "BYTES", {2});
  input->mutable_contents()->add_bytes_contents("a");
  EXPECT_HAS(ParseError(count), "contents.bytes_contents has 1 elements; BYTES [2] needs 2");
}

TEST(KServeTensorsTest, RawAndTypedContents) {
  ModelInferRequest mixed;
  auto* input = AddInput(&mixed, "input", "FP32", {1, 1, 4, 4});
  input->mutable_contents()->add_fp32_contents(1);
  mixed.add_raw_input_contents(std::string(64, '\0'));
  const std::string message = ParseError(mixed);
  EXPECT_HAS(message, "both raw_input_contents and contents.fp32_contents are set");

  ModelInferRequest two_raw;
  AddInput(&two_raw, "input", "FP32", {1, 1, 4, 4});
  two_raw.add_raw_input_contents(std::string(64, '\0'));
  two_raw.add_raw_input_contents(std::string(64, '\0'));
  EXPECT_HAS(ParseError(two_raw), "raw_input_contents has 2 entries for 1 input");

  ModelInferRequest wrong_field;
  AddInput(&wrong_field, "input", "FP32", {1, 1, 4, 4})->mutable_contents()->add_int_contents(1);
  EXPECT_HAS(ParseError(wrong_field), "datatype FP32 takes its values in contents.fp32_contents");
  EXPECT_HAS(ParseError(wrong_field), "not in contents.int_contents");

  ModelInferRequest no_data;
  AddInput(&no_data, "input", "FP32", {1, 1, 4, 4});
  EXPECT_HAS(ParseError(no_data), "no data");
}

TEST(KServeTensorsTest, RequestedOutputs) {
  const ServableInfo info = LenetInfo();
  ModelInferRequest none;
  StatusOr<std::vector<RequestedOutput>> outputs = ParseRequestedOutputs(none, info);
  ASSERT_TRUE(outputs.ok());
  ASSERT_EQ(outputs->size(), 1u);
  EXPECT_EQ((*outputs)[0].name, "logits");
  EXPECT_EQ((*outputs)[0].classification, 0);

  ModelInferRequest classify;
  auto* out = classify.add_outputs();
  out->set_name("logits");
  (*out->mutable_parameters())["classification"].set_int64_param(2);
  (*out->mutable_parameters())["binary_data"].set_bool_param(true);  // ignored
  outputs = ParseRequestedOutputs(classify, info);
  ASSERT_TRUE(outputs.ok()) << outputs.status().ToString();
  EXPECT_EQ((*outputs)[0].classification, 2);

  ModelInferRequest unknown;
  unknown.add_outputs()->set_name("probs");
  outputs = ParseRequestedOutputs(unknown, info);
  ASSERT_FALSE(outputs.ok());
  EXPECT_EQ(outputs.status().code(), StatusCode::kInvalidArgument);
  EXPECT_HAS(outputs.status().message(), "unknown output 'probs' requested; the model's output is 'logits'");

  ModelInferRequest twice;
  twice.add_outputs()->set_name("logits");
  twice.add_outputs()->set_name("logits");
  outputs = ParseRequestedOutputs(twice, info);
  ASSERT_FALSE(outputs.ok());
  EXPECT_HAS(outputs.status().message(), "more than once");

  ModelInferRequest bad_k;
  auto* o = bad_k.add_outputs();
  o->set_name("logits");
  (*o->mutable_parameters())["classification"].set_int64_param(0);
  outputs = ParseRequestedOutputs(bad_k, info);
  ASSERT_FALSE(outputs.ok());
  EXPECT_HAS(outputs.status().message(), "parameter 'classification' is 0; it must be >= 1");

  (*o->mutable_parameters())["classification"].set_string_param("3");
  outputs = ParseRequestedOutputs(bad_k, info);
  ASSERT_FALSE(outputs.ok());
  EXPECT_HAS(outputs.status().message(), "must be an int64_param >= 1");
}

RunResult TwoRowResult() {
  RunResult result;
  result.model = "lenet";
  result.version = 1;
  result.num_classes = 3;
  result.num_items = 2;
  result.scores = {0.5f, 2.25f, -1.0f, 3.0f, 3.0f, 7.125f};
  result.probabilities = {0.2f, 0.7f, 0.1f, 0.01f, 0.01f, 0.98f};
  return result;
}

// The BYTES elements of a raw output.
std::vector<std::string> Unframe(const std::string& raw) {
  std::vector<std::string> elements;
  size_t at = 0;
  while (at + 4 <= raw.size()) {
    uint32_t length = 0;
    std::memcpy(&length, raw.data() + at, 4);
    at += 4;
    elements.push_back(raw.substr(at, length));
    at += length;
  }
  EXPECT_EQ(at, raw.size());
  return elements;
}

TEST(KServeTensorsTest, Fp32OutputIsTheScoresInRawContents) {
  ModelInferResponse response;
  FillInferOutputs(TwoRowResult(), LenetInfo(), {{"logits", 0}}, &response);
  EXPECT_EQ(response.model_name(), "lenet");
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  ASSERT_EQ(response.outputs(0).shape_size(), 2);
  EXPECT_EQ(response.outputs(0).shape(0), 2);
  EXPECT_EQ(response.outputs(0).shape(1), 3);
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.raw_output_contents(0), FloatBytes(TwoRowResult().scores));
}

TEST(KServeTensorsTest, ClassificationOutputIsRankedStrings) {
  ModelInferResponse response;
  FillInferOutputs(TwoRowResult(), LenetInfo(), {{"logits", 5}}, &response);  // k clamped to 3
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(response.outputs(0).shape(0), 2);
  EXPECT_EQ(response.outputs(0).shape(1), 3);
  const std::vector<std::string> elements = Unframe(response.raw_output_contents(0));
  // Class 1 has an empty label: "score:index".
  const std::vector<std::string> expected = {"2.250000:1",     "0.500000:0:cat", "-1.000000:2:dog",
                                             "7.125000:2:dog", "3.000000:0:cat", "3.000000:1"};
  EXPECT_EQ(elements, expected);
}

TEST(KServeTensorsTest, ClassificationString) {
  EXPECT_EQ(ClassificationString({7, 0.25f, 0.1f}, {}), "0.250000:7");
  EXPECT_EQ(ClassificationString({0, -3.5f, 0.1f}, {"T-shirt/top"}), "-3.500000:0:T-shirt/top");
}

TEST(KServeTensorsTest, ModelVersions) {
  EXPECT_EQ(*ParseModelVersion(""), 0);
  EXPECT_EQ(*ParseModelVersion("1"), 1);
  EXPECT_EQ(*ParseModelVersion("42"), 42);
  for (const char* bad : {"abc", "0", "-1", "1.5", " 1", "1x", "99999999999999999999"}) {
    const StatusOr<int64_t> v = ParseModelVersion(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_HAS(v.status().message(), "model_version '" + std::string(bad) + "'");
  }
}

}  // namespace
}  // namespace cnnserve
