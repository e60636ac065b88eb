// Internal to model/: what the HF and GGUF loaders share, and the GGUF config reader.
// Not part of the model stage's public interface (model.h is).
#pragma once

#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/tensor.h"
#include "model/architecture.h"
#include "model/model.h"

namespace lmserve::model {

// Checks that hold for every config whatever its source: heads divisible by KV heads, even
// head_dim, dimensions small enough for int indexing. FileError prefixed with `what`.
void check_dimensions(const ModelConfig& c, const std::string& what);

// Completes what both readers share once the keys are read: which layers are local (from the
// family's pattern unless the config listed them) and their RoPE base; clears both when
// there is no window. FileError prefixed with `what`.
void finish_local_layers(ModelConfig& c, const ArchitectureDescription& arch,
                         const std::string& what);

// A 1-D (or any) F32/F16/BF16 tensor widened to f32; FileError naming it for other dtypes.
std::vector<float> widen_to_f32(const formats::TensorView& t);

// ModelConfig from a GGUF file's "<arch>.*" and "tokenizer.ggml.*" metadata, for the family
// `arch` (found from general.architecture). Reads the layout's rope_freqs tensor when present.
ModelConfig model_config_from_gguf(const formats::GgufFile& file,
                                   const ArchitectureDescription& arch);

}  // namespace lmserve::model
