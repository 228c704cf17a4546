// The native Classifier API's model metadata: the service layer's ModelSummary / ModelDescription
// (server/service/inference_service.h) as cnnserve.v1 ListModels / DescribeModel responses.
// Thread-safety: may be called from any thread.
#ifndef CNNSERVE_SERVER_NATIVE_NATIVE_METADATA_H_
#define CNNSERVE_SERVER_NATIVE_NATIVE_METADATA_H_

#include "cnnserve/v1/classifier.pb.h"
#include "engine/common/status.h"
#include "server/service/inference_service.h"

namespace cnnserve {

void FillModelSummary(const InferenceService::ModelSummary& summary, v1::ModelSummary* out);

// Every model of the service's index, sorted by name.
void ListModelsNative(const InferenceService& service, v1::ListModelsResponse* response);

// `described` as a DescribeModel response: summary, config, layers and layer table.
void FillDescribeModelResponse(const InferenceService::ModelDescription& described,
                               v1::DescribeModelResponse* response);

// One model's summary, config and layer table. Errors as InferenceService::Describe.
Status DescribeModelNative(const InferenceService& service, const v1::DescribeModelRequest& request,
                           v1::DescribeModelResponse* response);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_NATIVE_NATIVE_METADATA_H_
