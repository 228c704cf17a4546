// The native JSON API for people and the playground: the cnnserve.v1 Classifier's answers (server/native, the
// same translation as gRPC's Classify / ListModels / DescribeModel) rendered as JSON. Each route needs the scope
// of the gRPC method it mirrors.
//
//   GET  /v1/models
//        {"models": [{"name", "platform", "versions": [{"version", "state", "reason"}], "input_shape": [C,H,W],
//                     "num_classes"}]}
//   GET  /v1/models/{m}[/versions/{v}]
//        {"summary": {as a models[] entry}, "layers": [{"name", "op", "output_shape", "params", "macs",
//         "receptive_field"}], "total_params", "total_macs", "layer_table", "labels"}
//   POST /v1/models/{m}[/versions/{v}]:classify[?top_k=5&members=true&timings=true]
//        body: one JPEG/PNG (Content-Type image/png, image/jpeg or application/octet-stream), or
//        multipart/form-data whose file parts (any field name) are the images; results come in the order of the
//        parts (parts of different field names ordered by field name).
//        {"model", "version", "request_id", "results": [{"classes": [{"index", "label", "score",
//         "probability"}], "agreement", "margin", "members": [{"model", "version", "classes", "error"}]}],
//         "members_answered", "members_total", "partial", "timings": {"decode_us", "queue_us", "inference_us",
//         "total_us"}}
//        agreement and margin only for ensembles, members only for ensembles with members=true, timings only with
//        timings=true. top_k as Classify's (0 or absent: 5; negative: 400). A Content-Type that is neither an
//        image nor multipart gets 415.
//   POST /v1/models/{m}[/versions/{v}]:explain?patch=P&stride=S[&class=K][&fill=F][&layer=L][&timeout=US]
//        body: one image as for :classify. The ExplainResponse (occlusion map and/or feature maps of `layer`,
//        server/native/native_explain.h) in protobuf's JSON mapping with the proto's field names (int64 fields
//        as strings). Errors as Explain's (400 for a bad patch, stride, class or layer).
// Thread-safety: the routes may run concurrently on any worker threads. Ownership: `service` must outlive them.
#ifndef CNNSERVE_SERVER_HTTP_NATIVE_ROUTES_H_
#define CNNSERVE_SERVER_HTTP_NATIVE_ROUTES_H_

#include <vector>

#include "server/http/http_route.h"

namespace cnnserve {
class InferenceService;
}

namespace cnnserve::http {

std::vector<Route> NativeRoutes(InferenceService* service);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_NATIVE_ROUTES_H_
