// Tokenizers from the vocabulary inside a GGUF file (`tokenizer.ggml.*`), built from the same
// pipeline pieces as tokenizer.json so that encoding matches llama.cpp / Hugging Face.
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"

namespace lmserve::formats {
class GgufFile;
}

namespace lmserve::tokenizer::detail {

// Whether `path` is a regular file that starts with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

// The pipeline for a GGUF's vocabulary (a vocab-only file or a full model). Throws FileError
// naming the file for a missing, inconsistent or unsupported vocabulary.
std::shared_ptr<Tokenizer::Impl> load_gguf_tokenizer(const std::filesystem::path& path);
std::shared_ptr<Tokenizer::Impl> load_gguf_tokenizer(const formats::GgufFile& file);

}  // namespace lmserve::tokenizer::detail
