// GGUF (versions 2 and 3) checkpoints: metadata key/value pairs and tensors in one file.
// The file is mmap'd and fully validated on open; strings, arrays and tensors are views into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "formats/dtype.h"
#include "formats/tensor.h"
#include "util/mapped_file.h"

namespace lmserve::formats {

// Metadata value types, with their on-disk ids.
enum class GgufType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Bytes of one scalar of a fixed-size metadata type; 0 for string and array.
std::size_t gguf_scalar_size(GgufType type);

// "uint32", "string", ...: for messages.
std::string_view gguf_type_name(GgufType type);

// The tensor element type a ggml type id stands for; nullopt for ids that are unknown or
// were retired from the format (4, 5, 31..33, 36..38).
std::optional<DType> dtype_from_ggml_type(std::uint32_t ggml_type);

// One metadata value. Strings and array elements point into the mapped file.
struct GgufValue {
  GgufType type = GgufType::kUint8;
  // Scalars: integers are widened to 64 bits, floats to double.
  std::uint64_t u = 0;   // unsigned integer types and bool
  std::int64_t i = 0;    // signed integer types
  double f = 0.0;        // float32 / float64
  std::string_view str;  // kString
  // kArray: element type and count; numeric/bool elements are the raw little-endian bytes at
  // `array_data`, string elements are in `strings`. Nested arrays are rejected on open.
  GgufType array_type = GgufType::kUint8;
  std::uint64_t array_size = 0;
  const std::uint8_t* array_data = nullptr;
  std::vector<std::string_view> strings;
};

struct GgufKeyValue {
  std::string_view key;
  GgufValue value;
};

// What the file says about one tensor, before it is turned into a TensorView.
struct GgufTensorInfo {
  std::string_view name;
  std::vector<std::uint64_t> dims;  // fastest-varying first, as stored (GGUF "ne")
  std::uint32_t ggml_type = 0;
  std::uint64_t offset = 0;  // relative to data_offset()
};

class GgufFile {
 public:
  // Parses and validates the whole header. Throws FileError naming the file, the problem and
  // the byte offset for anything truncated, out of range, overlapping, duplicated or unknown.
  explicit GgufFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  std::uint32_t version() const { return version_; }
  // general.alignment (32 when absent).
  std::uint64_t alignment() const { return alignment_; }
  // Byte offset of the tensor data section in the file.
  std::uint64_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  // nullptr when absent.
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: FileError naming the key when it is absent or of an incompatible type.
  std::string_view get_string(std::string_view key) const;
  // Any integer type holding a non-negative value.
  std::uint64_t get_uint(std::string_view key) const;
  // Any integer type whose value fits in int64.
  std::int64_t get_int(std::string_view key) const;
  // float32 or float64.
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  // Number of elements of an array value.
  std::uint64_t get_array_size(std::string_view key) const;
  // The elements of an array as T: std::string_view or std::string for string arrays; bool;
  // an integer type for any integer array whose values all fit in T; float/double for float
  // arrays.
  template <typename T>
  std::vector<T> get_array(std::string_view key) const;

  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensor_infos() const { return tensor_infos_; }
  // Tensors by name; shapes are outermost first (the GGUF dims reversed), as in PyTorch.
  const std::map<std::string, TensorView, std::less<>>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find_tensor(std::string_view name) const;

 private:
  const GgufValue& require(std::string_view key, const char* wanted) const;
  [[noreturn]] void type_error(std::string_view key, const GgufValue& v, const char* wanted) const;
  // Element `i` of a numeric array as int64/uint64/double (the caller range-checks).
  bool array_int(const GgufValue& v, std::uint64_t i, std::int64_t& s, std::uint64_t& u) const;
  double array_float(const GgufValue& v, std::uint64_t i) const;
  [[noreturn]] void array_range_error(std::string_view key, std::uint64_t i) const;

  util::MappedFile file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> metadata_;
  std::map<std::string_view, std::size_t, std::less<>> key_index_;
  std::vector<GgufTensorInfo> tensor_infos_;
  std::map<std::string, TensorView, std::less<>> tensors_;
};

// Default of general.alignment, per the GGUF specification.
inline constexpr std::uint64_t kGgufDefaultAlignment = 32;

template <typename T>
std::vector<T> GgufFile::get_array(std::string_view key) const {
  const GgufValue& v = require(key, "array");
  if (v.type != GgufType::kArray) type_error(key, v, "array");
  std::vector<T> out;
  if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
    if (v.array_type != GgufType::kString) type_error(key, v, "array of strings");
    out.assign(v.strings.begin(), v.strings.end());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v.array_type != GgufType::kBool) type_error(key, v, "array of bools");
    out.reserve(v.array_size);
    for (std::uint64_t i = 0; i < v.array_size; ++i) out.push_back(v.array_data[i] != 0);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.array_type != GgufType::kFloat32 && v.array_type != GgufType::kFloat64)
      type_error(key, v, "array of floats");
    out.reserve(v.array_size);
    for (std::uint64_t i = 0; i < v.array_size; ++i)
      out.push_back(static_cast<T>(array_float(v, i)));
  } else {
    static_assert(std::is_integral_v<T>, "get_array<T>: T must be a number, bool or string");
    out.reserve(v.array_size);
    for (std::uint64_t i = 0; i < v.array_size; ++i) {
      std::int64_t s = 0;
      std::uint64_t u = 0;
      if (!array_int(v, i, s, u)) type_error(key, v, "array of integers");
      bool fits;
      if (s < 0) {
        fits = std::is_signed_v<T> && s >= static_cast<std::int64_t>(std::numeric_limits<T>::min());
      } else {
        fits = u <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
      }
      if (!fits) array_range_error(key, i);
      out.push_back(s < 0 ? static_cast<T>(s) : static_cast<T>(u));
    }
  }
  return out;
}

}  // namespace lmserve::formats
