// Every tensor of one checkpoint, by name, whatever file format holds it.
// The model binds its weights through this; the files stay mapped while the store lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"

namespace lmserve::formats {

class GgufFile;

class TensorStore {
 public:
  // Safetensors: dir/model.safetensors, or the shards listed in
  // dir/model.safetensors.index.json's weight_map. Throws FileError when neither file exists,
  // the index is malformed, names a missing shard, or a shard does not hold a tensor the index
  // assigns to it.
  static TensorStore open(const std::filesystem::path& dir);
  // A store over explicit safetensors files (no index); a name present in two files is an error.
  static TensorStore from_files(const std::vector<std::filesystem::path>& files);
  // Every tensor of one GGUF file (which the store keeps alive), or of every part of a split
  // GGUF given its first part (gguf_split.h: a missing or mismatched part is a FileError).
  static TensorStore from_gguf(std::shared_ptr<const GgufFile> file);

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
  // Indexes `tensors` (owned by `owner`, kept alive here); `where` names the file in errors.
  void add(std::shared_ptr<const void> owner,
           const std::map<std::string, TensorView, std::less<>>& tensors, const std::string& where);

  std::filesystem::path origin_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

}  // namespace lmserve::formats
