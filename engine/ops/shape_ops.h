// Shape ops: Flatten and Reshape (ONNX). Both keep the data and change only the dims.
//
// Flatten: output [prod(dims[0:axis]), prod(dims[axis:])]; axis in [-rank, rank]; shape inference normalises
// FlattenAttrs::axis to [0, rank].
// Reshape: the target shape is the attribute ReshapeAttrs::shape (the importer moves ONNX's constant shape
// input there; the node has exactly one input). An entry 0 copies the input dim at the same index (an explicit
// zero extent when allow_zero, which is UNIMPLEMENTED since tensors have no empty dims), one entry may be -1 and
// is inferred. Shape inference does not rewrite `shape`, so re-running it for another batch size re-derives the
// 0 and -1 entries.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_SHAPE_OPS_H_
#define CNNSERVE_ENGINE_OPS_SHAPE_OPS_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferFlatten(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status FlattenReference(const KernelArgs& args);

Status InferReshape(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status ReshapeReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_SHAPE_OPS_H_
