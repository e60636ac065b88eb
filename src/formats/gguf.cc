#include "formats/gguf.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <utility>

#include "formats/tensor_store.h"
#include "formats/text.h"
#include "util/error.h"

namespace lmserve::formats {

namespace {

using detail::quote_name;

// ggml's fixed limit on tensor rank; a file claiming more is corrupt.
constexpr std::uint32_t kMaxDims = 4;

struct GgmlTypeId {
  std::uint32_t id;
  DType dtype;
};

// ggml type ids as written in GGUF tensor infos. Ids 4, 5 (Q4_2, Q4_3), 31..33 and 36..38
// (repacked variants) were retired and never appear in valid files.
constexpr GgmlTypeId kGgmlTypes[] = {
    {0, DType::kF32},      {1, DType::kF16},     {2, DType::kQ4_0},     {3, DType::kQ4_1},
    {6, DType::kQ5_0},     {7, DType::kQ5_1},    {8, DType::kQ8_0},     {9, DType::kQ8_1},
    {10, DType::kQ2_K},    {11, DType::kQ3_K},   {12, DType::kQ4_K},    {13, DType::kQ5_K},
    {14, DType::kQ6_K},    {15, DType::kQ8_K},   {16, DType::kIQ2_XXS}, {17, DType::kIQ2_XS},
    {18, DType::kIQ3_XXS}, {19, DType::kIQ1_S},  {20, DType::kIQ4_NL},  {21, DType::kIQ3_S},
    {22, DType::kIQ2_S},   {23, DType::kIQ4_XS}, {24, DType::kI8},      {25, DType::kI16},
    {26, DType::kI32},     {27, DType::kI64},    {28, DType::kF64},     {29, DType::kIQ1_M},
    {30, DType::kBF16},    {34, DType::kTQ1_0},  {35, DType::kTQ2_0},   {39, DType::kMXFP4},
};

}  // namespace

std::size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

namespace {

bool is_known_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufType::kFloat64); }

bool is_unsigned_type(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}

bool is_signed_type(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

// Little-endian loads from possibly unaligned bytes (GGUF is little-endian; so are our targets).
template <typename T>
T load(const std::uint8_t* p) {
  static_assert(std::endian::native == std::endian::little, "GGUF reader assumes little-endian");
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Reads a scalar of fixed-size type `t` at `p` into a GgufValue's u/i/f fields.
void decode_scalar(GgufType t, const std::uint8_t* p, GgufValue& v) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kBool:
      v.u = p[0];
      break;
    case GgufType::kInt8:
      v.i = load<std::int8_t>(p);
      break;
    case GgufType::kUint16:
      v.u = load<std::uint16_t>(p);
      break;
    case GgufType::kInt16:
      v.i = load<std::int16_t>(p);
      break;
    case GgufType::kUint32:
      v.u = load<std::uint32_t>(p);
      break;
    case GgufType::kInt32:
      v.i = load<std::int32_t>(p);
      break;
    case GgufType::kUint64:
      v.u = load<std::uint64_t>(p);
      break;
    case GgufType::kInt64:
      v.i = load<std::int64_t>(p);
      break;
    case GgufType::kFloat32:
      v.f = load<float>(p);
      break;
    case GgufType::kFloat64:
      v.f = load<double>(p);
      break;
    case GgufType::kString:
    case GgufType::kArray:
      break;
  }
}

// A bounds-checked cursor over the mapped bytes. Every length read from the file is compared
// with what remains before anything is allocated or dereferenced.
class Reader {
 public:
  Reader(std::span<const std::uint8_t> bytes, std::string where)
      : bytes_(bytes), where_(std::move(where)) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::uint8_t* here() const { return bytes_.data() + pos_; }

  [[noreturn]] void fail(const std::string& what, std::uint64_t at) const {
    throw FileError(where_ + ": " + what + " (at byte offset " + std::to_string(at) + ")");
  }
  [[noreturn]] void fail(const std::string& what) const { fail(what, pos_); }

  void need(std::uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      fail(what + " needs " + std::to_string(n) + " bytes but the file has only " +
           std::to_string(remaining()) + " left (truncated or corrupt)");
    }
  }

  const std::uint8_t* take(std::uint64_t n, const std::string& what) {
    need(n, what);
    const std::uint8_t* p = here();
    pos_ += n;
    return p;
  }

  std::uint32_t u32(const std::string& what) { return load<std::uint32_t>(take(4, what)); }
  std::uint64_t u64(const std::string& what) { return load<std::uint64_t>(take(8, what)); }

  std::string_view string(const std::string& what) {
    const std::uint64_t at = pos_;
    std::uint64_t len = u64(what + " length");
    if (len > remaining()) {
      fail(what + " length " + std::to_string(len) + " runs past the end of the file (" +
               std::to_string(remaining()) + " bytes left)",
           at);
    }
    return {reinterpret_cast<const char*>(take(len, what)), static_cast<std::size_t>(len)};
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string where_;
  std::uint64_t pos_ = 0;
};

void read_value(Reader& r, GgufType type, GgufValue& v, const std::string& what) {
  v.type = type;
  if (type == GgufType::kString) {
    v.str = r.string(what);
    return;
  }
  if (type != GgufType::kArray) {
    const std::uint64_t at = r.pos();
    const std::uint8_t* p = r.take(gguf_scalar_size(type), what);
    decode_scalar(type, p, v);
    if (type == GgufType::kBool && v.u > 1)
      r.fail(what + ": bool value " + std::to_string(v.u) + " is neither 0 nor 1", at);
    return;
  }
  const std::uint64_t at = r.pos();
  const std::uint32_t elem = r.u32(what + " element type");
  if (!is_known_type(elem))
    r.fail(what + ": unknown array element type " + std::to_string(elem), at);
  v.array_type = static_cast<GgufType>(elem);
  if (v.array_type == GgufType::kArray) r.fail(what + ": nested arrays are not supported", at);
  const std::uint64_t count_at = r.pos();
  v.array_size = r.u64(what + " element count");
  if (v.array_type == GgufType::kString) {
    // Each string needs at least its 8-byte length: bounds the count before reserving.
    if (v.array_size > r.remaining() / 8) {
      r.fail(what + ": array of " + std::to_string(v.array_size) +
                 " strings cannot fit in the remaining " + std::to_string(r.remaining()) + " bytes",
             count_at);
    }
    v.strings.reserve(static_cast<std::size_t>(v.array_size));
    for (std::uint64_t i = 0; i < v.array_size; ++i) {
      v.strings.push_back(r.string(what + " element " + std::to_string(i)));
    }
    return;
  }
  const std::size_t size = gguf_scalar_size(v.array_type);
  if (v.array_size > r.remaining() / size) {
    r.fail(what + ": array of " + std::to_string(v.array_size) + " " +
               std::string(gguf_type_name(v.array_type)) + " values cannot fit in the remaining " +
               std::to_string(r.remaining()) + " bytes",
           count_at);
  }
  v.array_data = r.take(v.array_size * size, what);
  if (v.array_type == GgufType::kBool) {
    for (std::uint64_t i = 0; i < v.array_size; ++i) {
      if (v.array_data[i] > 1) {
        r.fail(what + ": bool element " + std::to_string(i) + " is neither 0 nor 1",
               count_at + 8 + i);
      }
    }
  }
}

bool checked_align_up(std::uint64_t x, std::uint64_t alignment, std::uint64_t& out) {
  std::uint64_t sum = 0;
  if (__builtin_add_overflow(x, alignment - 1, &sum)) return false;
  out = sum - sum % alignment;
  return true;
}

struct Extent {
  std::string_view name;
  std::uint64_t begin;
  std::uint64_t end;
};

}  // namespace

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

std::optional<DType> dtype_from_ggml_type(std::uint32_t ggml_type) {
  for (const auto& t : kGgmlTypes) {
    if (t.id == ggml_type) return t.dtype;
  }
  return std::nullopt;
}

GgufFile::GgufFile(const std::filesystem::path& path) : file_(path) {
  const std::string where = path.string();
  Reader r(file_.bytes(), where);

  r.need(4, "GGUF magic");
  if (std::memcmp(r.here(), "GGUF", 4) != 0) r.fail("not a GGUF file (no \"GGUF\" magic)");
  r.take(4, "GGUF magic");
  const std::uint64_t version_at = r.pos();
  version_ = r.u32("GGUF version");
  if (version_ != 2 && version_ != 3) {
    if (version_ != 0 && (version_ & 0xffffu) == 0 && __builtin_bswap32(version_) <= 3) {
      r.fail("big-endian GGUF files are not supported", version_at);
    }
    r.fail("GGUF version " + std::to_string(version_) + " is not supported (only 2 and 3)",
           version_at);
  }
  const std::uint64_t counts_at = r.pos();
  const std::uint64_t n_tensors = r.u64("tensor count");
  const std::uint64_t n_kv = r.u64("metadata count");
  // Smallest possible encodings: a KV is an 8-byte key length, a 4-byte type and a 1-byte
  // value; a tensor info is a name length, rank, one dim, type and offset (32 bytes).
  if (n_kv > r.remaining() / 13) {
    r.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file", counts_at + 8);
  }
  if (n_tensors > r.remaining() / 32) {
    r.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file", counts_at);
  }

  metadata_.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    const std::uint64_t at = r.pos();
    GgufKeyValue kv;
    kv.key = r.string("metadata key " + std::to_string(k));
    const std::string what = "metadata " + quote_name(kv.key);
    if (key_index_.count(kv.key) != 0) r.fail("duplicate " + what, at);
    const std::uint64_t type_at = r.pos();
    const std::uint32_t type = r.u32(what + " type");
    if (!is_known_type(type))
      r.fail(what + ": unknown value type " + std::to_string(type), type_at);
    read_value(r, static_cast<GgufType>(type), kv.value, what);
    key_index_.emplace(kv.key, metadata_.size());
    metadata_.push_back(std::move(kv));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!is_unsigned_type(a->type)) {
      throw FileError(where + ": general.alignment must be an unsigned integer, got " +
                      std::string(gguf_type_name(a->type)));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      throw FileError(where + ": general.alignment " + std::to_string(a->u) +
                      " is not a power of two");
    }
    alignment_ = a->u;
  }

  tensor_infos_.reserve(static_cast<std::size_t>(n_tensors));
  std::vector<DType> dtypes;
  dtypes.reserve(static_cast<std::size_t>(n_tensors));
  std::map<std::string_view, bool, std::less<>> seen;
  for (std::uint64_t t = 0; t < n_tensors; ++t) {
    const std::uint64_t at = r.pos();
    GgufTensorInfo info;
    info.name = r.string("tensor " + std::to_string(t) + " name");
    const std::string what = "tensor " + quote_name(info.name);
    if (!seen.emplace(info.name, true).second) r.fail("duplicate " + what, at);
    const std::uint64_t rank_at = r.pos();
    const std::uint32_t rank = r.u32(what + " rank");
    if (rank == 0 || rank > kMaxDims) {
      r.fail(what + ": rank " + std::to_string(rank) + " is outside 1.." + std::to_string(kMaxDims),
             rank_at);
    }
    std::uint64_t numel = 1;
    for (std::uint32_t d = 0; d < rank; ++d) {
      const std::uint64_t dim_at = r.pos();
      const std::uint64_t dim = r.u64(what + " dimension");
      if (dim > static_cast<std::uint64_t>(INT64_MAX) ||
          __builtin_mul_overflow(numel, dim, &numel) ||
          numel > static_cast<std::uint64_t>(INT64_MAX)) {
        r.fail(what + ": dimension " + std::to_string(dim) + " overflows the element count",
               dim_at);
      }
      info.dims.push_back(dim);
    }
    const std::uint64_t type_at = r.pos();
    info.ggml_type = r.u32(what + " type");
    auto dtype = dtype_from_ggml_type(info.ggml_type);
    if (!dtype) r.fail(what + ": unknown ggml type " + std::to_string(info.ggml_type), type_at);
    const std::uint64_t offset_at = r.pos();
    info.offset = r.u64(what + " data offset");
    if (info.offset % alignment_ != 0) {
      r.fail(what + ": data offset " + std::to_string(info.offset) +
                 " is not a multiple of the alignment " + std::to_string(alignment_),
             offset_at);
    }
    tensor_infos_.push_back(std::move(info));
    dtypes.push_back(*dtype);
  }

  const std::uint64_t file_size = file_.size();
  if (!checked_align_up(r.pos(), alignment_, data_offset_)) {
    throw FileError(where + ": the tensor data section start overflows");
  }

  std::vector<Extent> extents;
  extents.reserve(tensor_infos_.size());
  for (std::size_t t = 0; t < tensor_infos_.size(); ++t) {
    const auto& info = tensor_infos_[t];
    const DType dtype = dtypes[t];
    const std::string what = where + ": tensor " + quote_name(info.name);
    const std::uint64_t block = dtype_block_elements(dtype);
    if (info.dims[0] % block != 0) {
      throw FileError(what + ": type " + std::string(dtype_name(dtype)) + " stores blocks of " +
                      std::to_string(block) + " values but the row length is " +
                      std::to_string(info.dims[0]));
    }
    std::uint64_t nbytes = 0;
    bool overflow = __builtin_mul_overflow(info.dims[0] / block,
                                           static_cast<std::uint64_t>(dtype_size(dtype)), &nbytes);
    for (std::size_t d = 1; d < info.dims.size() && !overflow; ++d) {
      overflow = __builtin_mul_overflow(nbytes, info.dims[d], &nbytes);
    }
    if (overflow) throw FileError(what + ": byte size overflows");
    std::uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_offset_, info.offset, &begin) ||
        __builtin_add_overflow(begin, nbytes, &end) || end > file_size) {
      throw FileError(what + ": data [" + std::to_string(info.offset) + ", +" +
                      std::to_string(nbytes) + ") runs past the end of the file (data section " +
                      "starts at " + std::to_string(data_offset_) + ", file is " +
                      std::to_string(file_size) + " bytes)");
    }
    TensorView view;
    view.name = std::string(info.name);
    view.dtype = dtype;
    for (auto it = info.dims.rbegin(); it != info.dims.rend(); ++it) {
      view.shape.push_back(static_cast<std::int64_t>(*it));
    }
    view.data = file_.bytes().data() + begin;
    view.nbytes = static_cast<std::size_t>(nbytes);
    tensors_.emplace(view.name, std::move(view));
    extents.push_back({info.name, begin, end});
  }

  // Overlapping tensors would alias each other's bytes: a sign of a corrupt or hostile file.
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (std::size_t i = 1; i < extents.size(); ++i) {
    const auto& prev = extents[i - 1];
    const auto& cur = extents[i];
    if (cur.begin < prev.end && cur.begin != cur.end && prev.begin != prev.end) {
      throw FileError(where + ": tensors " + quote_name(prev.name) + " and " +
                      quote_name(cur.name) + " have overlapping data");
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorView* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::require(std::string_view key, const char* wanted) const {
  const GgufValue* v = find(key);
  if (v == nullptr) {
    throw FileError(path().string() + ": missing metadata " + quote_name(key) + " (" + wanted +
                    ")");
  }
  return *v;
}

void GgufFile::type_error(std::string_view key, const GgufValue& v, const char* wanted) const {
  std::string got(gguf_type_name(v.type));
  if (v.type == GgufType::kArray) got = "array of " + std::string(gguf_type_name(v.array_type));
  throw FileError(path().string() + ": metadata " + quote_name(key) + " is " + got + ", expected " +
                  wanted);
}

void GgufFile::array_range_error(std::string_view key, std::uint64_t i) const {
  throw FileError(path().string() + ": metadata " + quote_name(key) + " element " +
                  std::to_string(i) + " is out of range");
}

std::string_view GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(key, "string");
  if (v.type != GgufType::kString) type_error(key, v, "string");
  return v.str;
}

std::uint64_t GgufFile::get_uint(std::string_view key) const {
  const GgufValue& v = require(key, "unsigned integer");
  if (is_unsigned_type(v.type)) return v.u;
  if (is_signed_type(v.type)) {
    if (v.i < 0) {
      throw FileError(path().string() + ": metadata " + quote_name(key) + " = " +
                      std::to_string(v.i) + " must not be negative");
    }
    return static_cast<std::uint64_t>(v.i);
  }
  type_error(key, v, "unsigned integer");
}

std::int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = require(key, "integer");
  if (is_signed_type(v.type)) return v.i;
  if (is_unsigned_type(v.type)) {
    if (v.u > static_cast<std::uint64_t>(INT64_MAX)) {
      throw FileError(path().string() + ": metadata " + quote_name(key) + " = " +
                      std::to_string(v.u) + " does not fit in int64");
    }
    return static_cast<std::int64_t>(v.u);
  }
  type_error(key, v, "integer");
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = require(key, "float");
  if (v.type != GgufType::kFloat32 && v.type != GgufType::kFloat64) type_error(key, v, "float");
  return v.f;
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = require(key, "bool");
  if (v.type != GgufType::kBool) type_error(key, v, "bool");
  return v.u != 0;
}

std::uint64_t GgufFile::get_array_size(std::string_view key) const {
  const GgufValue& v = require(key, "array");
  if (v.type != GgufType::kArray) type_error(key, v, "array");
  return v.array_size;
}

bool GgufFile::array_int(const GgufValue& v, std::uint64_t i, std::int64_t& s,
                         std::uint64_t& u) const {
  if (!is_unsigned_type(v.array_type) && !is_signed_type(v.array_type)) return false;
  GgufValue e;
  decode_scalar(v.array_type, v.array_data + i * gguf_scalar_size(v.array_type), e);
  if (is_unsigned_type(v.array_type)) {
    s = 0;
    u = e.u;
  } else if (e.i < 0) {
    s = e.i;
    u = 0;
  } else {
    s = 0;
    u = static_cast<std::uint64_t>(e.i);
  }
  return true;
}

double GgufFile::array_float(const GgufValue& v, std::uint64_t i) const {
  GgufValue e;
  decode_scalar(v.array_type, v.array_data + i * gguf_scalar_size(v.array_type), e);
  return e.f;
}

TensorStore TensorStore::from_gguf(std::shared_ptr<const GgufFile> file) {
  TensorStore store;
  store.origin_ = file->path();
  store.add(file, file->tensors(), file->path().string());
  return store;
}

}  // namespace lmserve::formats
