// Reading float32 .npy files (NumPy format 1.0/2.0/3.0, little-endian '<f4', C order).
// Used by `cnnbench verify` and the parity tests. Thread-safety: reentrant functions.
#ifndef CNNSERVE_ENGINE_TENSOR_NPY_H_
#define CNNSERVE_ENGINE_TENSOR_NPY_H_

#include <string>

#include "engine/common/status.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

// NOT_FOUND if the file cannot be opened; INVALID_ARGUMENT (naming the file and the problem) if it is not a
// C-order little-endian float32 array or is truncated.
StatusOr<Tensor> ReadNpy(const std::string& path);
// Parses an in-memory .npy image.
StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& what = "npy data");

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_TENSOR_NPY_H_
