// A model checkpoint as --model names it, opened once for everything read from it: the
// tokenizer and the model (and, through the tokenizer, the chat template) share one mapping and
// one validation of a GGUF file instead of each opening it again.
#pragma once

#include <filesystem>
#include <memory>

namespace lmserve::formats {

class GgufFile;

class Checkpoint {
 public:
  // A regular file is a GGUF checkpoint, mapped and validated here (FileError when it is not
  // one); anything else is taken as a Hugging Face directory, whose files the readers open.
  static Checkpoint open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // The mapped GGUF file; null for a Hugging Face directory. Immutable, so readers on several
  // threads may share it.
  const std::shared_ptr<const GgufFile>& gguf() const { return gguf_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<const GgufFile> gguf_;
};

}  // namespace lmserve::formats
