// Split GGUFs (llama.cpp's gguf-split: NAME-00001-of-00003.gguf, ...): one model's tensors in
// several files, the metadata in the first. Finds and checks the parts from the first one.
#pragma once

#include <filesystem>
#include <vector>

#include "formats/gguf.h"

namespace lmserve::formats {

// Throws FileError when `file` is a later part of a split model (split.no > 0), naming the
// first part, which is the one to load.
void check_first_gguf_part(const GgufFile& file);

// Every part of the model whose first part is `first`, in order: just its own path when it is
// not split (no split.count, or 1). Throws FileError when `first` is a later part, when its
// name does not follow NAME-00001-of-0000N.gguf, or when a part is missing.
std::vector<std::filesystem::path> gguf_split_paths(const GgufFile& first);

// Throws FileError unless `part` says it is part `index` (0-based) of `count`.
void check_gguf_split_part(const GgufFile& part, std::uint64_t index, std::uint64_t count);

}  // namespace lmserve::formats
