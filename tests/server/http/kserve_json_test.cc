#include "server/http/kserve_json.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/kserve/kserve_tensors.h"

namespace cnnserve::http {
namespace {

using json = nlohmann::json;

std::string Fp32Input(const std::string& data, const std::string& shape = "[1,2]") {
  return R"({"inputs":[{"name":"input","datatype":"FP32","shape":)" + shape + R"(,"data":)" + data + "}]}";
}

std::string ErrorOf(std::string_view body, std::optional<std::string_view> length = std::nullopt) {
  const StatusOr<RestInferRequest> parsed = ParseRestInferRequest(body, length);
  EXPECT_FALSE(parsed.ok()) << body;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  return parsed.status().message();
}

TEST(ParseRestInferRequest, FlatAndNestedFp32BecomeTypedContents) {
  for (const std::string data : {"[1.5,-2]", "[[1.5,-2]]"}) {
    StatusOr<RestInferRequest> parsed = ParseRestInferRequest(Fp32Input(data), std::nullopt);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const auto& input = parsed->request.inputs(0);
    EXPECT_EQ(input.name(), "input");
    EXPECT_EQ(input.datatype(), "FP32");
    EXPECT_EQ(std::vector<int64_t>(input.shape().begin(), input.shape().end()), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(std::vector<float>(input.contents().fp32_contents().begin(), input.contents().fp32_contents().end()),
              (std::vector<float>{1.5f, -2.0f}));
    EXPECT_EQ(parsed->request.raw_input_contents_size(), 0);
  }
}

TEST(ParseRestInferRequest, Uint8AndBytes) {
  StatusOr<RestInferRequest> parsed = ParseRestInferRequest(
      R"({"id":"a","inputs":[{"name":"x","datatype":"UINT8","shape":[1,1,2,1],"data":[0,255]},)"
      R"({"name":"y","datatype":"BYTES","shape":[2],"data":["ab","c"]}]})",
      std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->request.id(), "a");
  EXPECT_EQ(parsed->request.inputs(0).contents().uint_contents_size(), 2);
  EXPECT_EQ(parsed->request.inputs(0).contents().uint_contents(1), 255u);
  EXPECT_EQ(parsed->request.inputs(1).contents().bytes_contents(1), "c");
}

TEST(ParseRestInferRequest, WrongTypesNameTheField) {
  EXPECT_NE(ErrorOf("{bad").find("not valid JSON (at byte"), std::string::npos);
  EXPECT_EQ(ErrorOf("[]"), "the body is not a JSON object");
  EXPECT_EQ(ErrorOf("{}"), "inputs is missing");
  EXPECT_EQ(ErrorOf(R"({"inputs":{}})"), "inputs is not an array");
  EXPECT_EQ(ErrorOf(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})"), "inputs[0].name is not a string");
  EXPECT_EQ(ErrorOf(Fp32Input("[1,2]", "[1,-2]")), "inputs[0].shape[1] is not a non-negative integer");
  EXPECT_EQ(ErrorOf(Fp32Input("[1,\"2\"]")), "inputs[0].data[1] is not a number (FP32)");
  EXPECT_EQ(ErrorOf(Fp32Input("[[1],[true]]")), "inputs[0].data[1][0] is not a number (FP32)");
  EXPECT_EQ(ErrorOf(Fp32Input("[1,2,3]")), "inputs[0].data has 3 elements; FP32 [1,2] needs 2");
  EXPECT_EQ(ErrorOf(R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[256]}]})"),
            "inputs[0].data[0] is not an integer 0..255 (UINT8)");
  EXPECT_EQ(ErrorOf(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})"),
            "inputs[0].data is missing (or parameters.binary_data_size)");
  EXPECT_EQ(ErrorOf(R"({"id":3,"inputs":[]})"), "id is not a string");
  EXPECT_EQ(ErrorOf(R"({"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":1}}]})"),
            "outputs[0].parameters.binary_data is not a bool");
  EXPECT_EQ(ErrorOf(R"({"inputs":[],"outputs":[{"name":"y","parameters":{"k":[1]}}]})"),
            "outputs[0].parameters.k is not a bool, number or string");
}

TEST(ParseRestInferRequest, DeepNestingIsRefused) {
  std::string data(100, '[');
  data += "1" + std::string(100, ']');
  EXPECT_NE(ErrorOf(Fp32Input(data, "[1]")).find("nests deeper than"), std::string::npos);
}

TEST(ParseRestInferRequest, BinaryInputsFillRawContentsInOrder) {
  const std::string header =
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"b","datatype":"FP32","shape":[1],"data":[3]}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true,"classification":2}}]})";
  const float values[2] = {1.0f, 2.0f};
  std::string body = header + std::string(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string length = std::to_string(header.size());
  StatusOr<RestInferRequest> parsed = ParseRestInferRequest(body, length);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->request.raw_input_contents_size(), 2);
  EXPECT_EQ(parsed->request.raw_input_contents(0), body.substr(header.size()));
  // The JSON input travels raw too (3.0f little-endian), and its typed contents are gone.
  const float three = 3.0f;
  EXPECT_EQ(parsed->request.raw_input_contents(1), std::string(reinterpret_cast<const char*>(&three), 4));
  EXPECT_EQ(parsed->request.inputs(1).contents().fp32_contents_size(), 0);
  EXPECT_EQ(parsed->request.inputs(0).parameters().count("binary_data_size"), 0u);
  ASSERT_EQ(parsed->binary_outputs, std::vector<bool>{true});
  EXPECT_EQ(parsed->request.outputs(0).parameters().at("classification").int64_param(), 2);
  EXPECT_EQ(parsed->request.outputs(0).parameters().count("binary_data"), 0u);
}

TEST(ParseRestInferRequest, BinaryLengthsThatLieAreRefused) {
  const std::string header =
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})";
  const std::string body = header + "abcd";
  EXPECT_NE(ErrorOf(body, "0").find("outside 1.."), std::string::npos);
  EXPECT_NE(ErrorOf(body, std::to_string(body.size() + 1)).find("outside 1.."), std::string::npos);
  EXPECT_NE(ErrorOf(body, "12abc").find("not a decimal byte count"), std::string::npos);
  EXPECT_NE(ErrorOf(body, "-5").find("not a decimal byte count"), std::string::npos);
  EXPECT_NE(ErrorOf(body, std::to_string(header.size() + 2)).find("not valid JSON"), std::string::npos);
  EXPECT_EQ(ErrorOf(header + "abcde", std::to_string(header.size())),
            "the inputs' binary_data_size add up to 4 bytes but 5 bytes follow the JSON header");
  EXPECT_EQ(ErrorOf(header, std::to_string(header.size())),
            "the inputs' binary_data_size add up to 4 bytes but 0 bytes follow the JSON header");
  const std::string both =
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]})";
  EXPECT_EQ(ErrorOf(both + "abcd", std::to_string(both.size())),
            "inputs[0] has both data and parameters.binary_data_size");
}

inference::ModelInferResponse Fp32AndBytesResponse() {
  inference::ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("1");
  response.set_id("r");
  auto* fp32 = response.add_outputs();
  fp32->set_name("logits");
  fp32->set_datatype("FP32");
  fp32->add_shape(1);
  fp32->add_shape(2);
  const float values[2] = {0.5f, -1.0f};
  response.add_raw_output_contents(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  auto* bytes = response.add_outputs();
  bytes->set_name("classes");
  bytes->set_datatype("BYTES");
  bytes->add_shape(1);
  bytes->add_shape(1);
  std::string framed;
  AppendBytesElement("0.500000:0:caf\xc3\xa9", &framed);
  response.add_raw_output_contents(framed);
  return response;
}

TEST(RenderRestInferResponse, JsonOutputs) {
  const RestInferResponse rendered = RenderRestInferResponse(Fp32AndBytesResponse(), RestInferRequest{});
  EXPECT_FALSE(rendered.json_length.has_value());
  const json body = json::parse(rendered.body);
  EXPECT_EQ(body["model_name"], "m");
  EXPECT_EQ(body["model_version"], "1");
  EXPECT_EQ(body["id"], "r");
  EXPECT_EQ(body["outputs"][0]["data"], json::parse("[0.5,-1.0]"));
  EXPECT_EQ(body["outputs"][0]["shape"], json::parse("[1,2]"));
  EXPECT_EQ(body["outputs"][1]["data"][0], "0.500000:0:caf\xc3\xa9");
}

TEST(RenderRestInferResponse, BinaryOutputsFollowTheJson) {
  const inference::ModelInferResponse response = Fp32AndBytesResponse();
  RestInferRequest all;
  all.all_binary_outputs = true;
  const RestInferResponse rendered = RenderRestInferResponse(response, all);
  ASSERT_TRUE(rendered.json_length.has_value());
  const json header = json::parse(rendered.body.substr(0, *rendered.json_length));
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_FALSE(header["outputs"][0].contains("data"));
  EXPECT_EQ(rendered.body.substr(*rendered.json_length),
            response.raw_output_contents(0) + response.raw_output_contents(1));
  // Listed outputs decide one by one.
  RestInferRequest one;
  one.request.add_outputs()->set_name("classes");
  one.binary_outputs = {true};
  one.all_binary_outputs = false;
  const RestInferResponse mixed = RenderRestInferResponse(response, one);
  const json mixed_header = json::parse(mixed.body.substr(0, *mixed.json_length));
  EXPECT_TRUE(mixed_header["outputs"][0].contains("data"));
  EXPECT_EQ(mixed.body.substr(*mixed.json_length), response.raw_output_contents(1));
}

TEST(RenderRestInferResponse, BytesThatAreNotUtf8AreReplaced) {
  inference::ModelInferResponse response = Fp32AndBytesResponse();
  std::string framed;
  AppendBytesElement("\xff\xfe", &framed);
  response.set_raw_output_contents(1, framed);
  const json body = json::parse(RenderRestInferResponse(response, RestInferRequest{}).body);
  EXPECT_EQ(body["outputs"][1]["data"][0], "\xef\xbf\xbd\xef\xbf\xbd");
}

}  // namespace
}  // namespace cnnserve::http
