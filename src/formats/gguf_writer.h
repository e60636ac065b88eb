// Writes GGUF v3 files: metadata (new values or values copied from another GGUF) and tensors in
// any ggml type. Used by the benchmarks' model synthesizer and by tests that need a file the
// fixtures do not have.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace lmserve::formats {

class GgufWriter {
 public:
  // A value read from another GgufFile; its strings and arrays must outlive write().
  void add(std::string key, const GgufValue& value);
  void add_string(std::string key, std::string value);
  void add_uint32(std::string key, std::uint32_t value);
  void add_float32(std::string key, float value);
  // dims fastest-varying first (GGUF's "ne"); data is the tensor's bytes in that type.
  void add_tensor(std::string name, std::vector<std::uint64_t> dims, std::uint32_t ggml_type,
                  std::vector<std::byte> data);
  // Throws std::runtime_error when the file cannot be written.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string key;
    GgufValue value;
    std::string owned;  // backing for a string value added here
  };
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t ggml_type;
    std::vector<std::byte> data;
  };
  std::vector<Entry> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace lmserve::formats
