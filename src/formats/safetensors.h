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
#include "util/mapped_file.h"

namespace lmserve::formats {

// A typed, shaped, read-only view of one tensor's bytes inside a mapped file.
// Valid while the SafetensorsFile (or TensorStore) that produced it is alive.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // outermost first, as in PyTorch
  const std::uint8_t* data = nullptr;
  std::size_t nbytes = 0;

  int rank() const { return static_cast<int>(shape.size()); }
  std::int64_t numel() const;
  // "[512, 64]": for error messages.
  std::string shape_string() const;
  // True when data is aligned to the element size, so it can be read as T* directly.
  bool element_aligned() const;
};

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

// Every tensor of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json's weight_map.
class TensorStore {
 public:
  // Throws FileError when neither file exists, the index is malformed, names a missing
  // shard, or a shard does not hold a tensor the index assigns to it.
  static TensorStore open(const std::filesystem::path& dir);
  // A store over explicit files (no index); a name present in two files is an error.
  static TensorStore from_files(const std::vector<std::filesystem::path>& files);

  // nullptr when absent.
  const TensorView* find(std::string_view name) const;
  // Throws FileError "missing tensor NAME" when absent.
  const TensorView& get(std::string_view name) const;
  // Throws FileError unless the tensor exists with exactly this shape.
  const TensorView& get(std::string_view name, std::span<const std::int64_t> expected_shape) const;
  const TensorView& get(std::string_view name,
                        std::initializer_list<std::int64_t> expected_shape) const {
    return get(name, std::span<const std::int64_t>(expected_shape.begin(), expected_shape.size()));
  }

  std::vector<std::string> names() const;
  std::size_t size() const { return index_.size(); }
  // Where the tensors came from, for messages.
  const std::filesystem::path& origin() const { return origin_; }

 private:
  void add_file(std::unique_ptr<SafetensorsFile> file);

  std::filesystem::path origin_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

// Largest header we accept: real headers are well under a few MiB; anything bigger is
// corruption (or an attempt to make us allocate without bound).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

}  // namespace lmserve::formats
