// Safetensors checkpoints, single file or sharded with model.safetensors.index.json.
// Files are mmap'd and validated once; tensors are typed, shaped views into the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "formats/tensor.h"
#include "formats/tensor_store.h"  // TensorStore::open reads safetensors directories
#include "util/mapped_file.h"

namespace lmserve::formats {

// One .safetensors file: the header is parsed and every entry checked on construction.
class SafetensorsFile {
 public:
  // Throws FileError naming the file and the problem.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  // Tensors by name (sorted).
  const std::map<std::string, TensorView, std::less<>>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find(std::string_view name) const;
  // The optional "__metadata__" object (string values; other JSON values are kept as JSON text).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  util::MappedFile file_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Largest header we accept: real headers are well under a few MiB; anything bigger is
// corruption (or an attempt to make us allocate without bound).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

}  // namespace lmserve::formats
