// The model configurations the fuzz targets check their inputs against: the default repository's
// lenet5_fashion (gray, stretched to 32x32), a 28x28 native gray model and an ImageNet-shape model (RGB, shorter
// side 256, centre crop 227), each parsed from config.pbtxt text by the repository's own parser and validated, and
// turned into the servable's ServableInfo as the server does. Built once per process.
#ifndef CNNSERVE_TESTS_FUZZ_FUZZ_MODELS_H_
#define CNNSERVE_TESTS_FUZZ_FUZZ_MODELS_H_

#include <cstdint>
#include <vector>

#include "server/servables/servable.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve::fuzz {

// Decode limits of the fuzz targets: the server's defaults except max_pixels, lowered so that one input cannot
// take the fuzzer's whole memory budget (the decode budget has its own regression tests).
DecodeLimits FuzzDecodeLimits();

// The models, in a fixed order (the fuzz targets pick one with an input byte). Aborts if a config does not parse
// or validate (a bug in the fuzz target, not a finding).
const std::vector<ServableInfo>& FuzzModels();

// Prepares every item with PrepareItem (server/preprocess/image_input.h), as ModelServable does for `model`:
// encoded images decoded and pixels copied (FuzzDecodeLimits), then preprocessed into its input; tensors checked
// for size and finite values. Traps when a tensor item has the wrong size (the request parsers promise the
// model's size).
void PrepareItems(const std::vector<ImageItem>& items, const ServableInfo& model);

}  // namespace cnnserve::fuzz

#endif  // CNNSERVE_TESTS_FUZZ_FUZZ_MODELS_H_
