#include "formats/gguf_writer.h"

#include <fstream>
#include <stdexcept>

namespace lmserve::formats {

namespace {

constexpr std::uint64_t kAlignment = kGgufDefaultAlignment;

class Out {
 public:
  explicit Out(const std::filesystem::path& path) : out_(path, std::ios::binary), path_(path) {
    if (!out_) throw std::runtime_error("cannot create " + path.string());
  }
  template <class T>
  void pod(T v) {
    bytes(&v, sizeof(v));
  }
  void bytes(const void* p, std::size_t n) {
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    written_ += n;
  }
  void string(std::string_view s) {
    pod<std::uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad() {
    static const char zeros[kAlignment] = {};
    bytes(zeros, (kAlignment - written_ % kAlignment) % kAlignment);
  }
  void finish() {
    out_.flush();
    if (!out_) throw std::runtime_error("cannot write " + path_.string());
  }

 private:
  std::ofstream out_;
  std::filesystem::path path_;
  std::uint64_t written_ = 0;
};

void write_scalar(Out& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::kUint8:
    case GgufType::kBool:
      return out.pod(static_cast<std::uint8_t>(v.u));
    case GgufType::kInt8:
      return out.pod(static_cast<std::int8_t>(v.i));
    case GgufType::kUint16:
      return out.pod(static_cast<std::uint16_t>(v.u));
    case GgufType::kInt16:
      return out.pod(static_cast<std::int16_t>(v.i));
    case GgufType::kUint32:
      return out.pod(static_cast<std::uint32_t>(v.u));
    case GgufType::kInt32:
      return out.pod(static_cast<std::int32_t>(v.i));
    case GgufType::kFloat32:
      return out.pod(static_cast<float>(v.f));
    case GgufType::kUint64:
      return out.pod(v.u);
    case GgufType::kInt64:
      return out.pod(v.i);
    case GgufType::kFloat64:
      return out.pod(v.f);
    case GgufType::kString:
      return out.string(v.str);
    case GgufType::kArray:
      out.pod(static_cast<std::uint32_t>(v.array_type));
      out.pod(v.array_size);
      if (v.array_type == GgufType::kString) {
        for (auto s : v.strings) out.string(s);
      } else {
        out.bytes(v.array_data, v.array_size * gguf_scalar_size(v.array_type));
      }
      return;
  }
}

}  // namespace

void GgufWriter::add(std::string key, const GgufValue& value) {
  metadata_.push_back({std::move(key), value, {}});
}

void GgufWriter::add_string(std::string key, std::string value) {
  metadata_.push_back({std::move(key), {.type = GgufType::kString}, std::move(value)});
}

void GgufWriter::add_uint32(std::string key, std::uint32_t value) {
  metadata_.push_back({std::move(key), {.type = GgufType::kUint32, .u = value}, {}});
}

void GgufWriter::add_float32(std::string key, float value) {
  metadata_.push_back({std::move(key), {.type = GgufType::kFloat32, .f = value}, {}});
}

void GgufWriter::add_tensor(std::string name, std::vector<std::uint64_t> dims,
                            std::uint32_t ggml_type, std::vector<std::byte> data) {
  tensors_.push_back({std::move(name), std::move(dims), ggml_type, std::move(data)});
}

void GgufWriter::write(const std::filesystem::path& path) const {
  Out out(path);
  out.bytes("GGUF", 4);
  out.pod<std::uint32_t>(3);
  out.pod<std::uint64_t>(tensors_.size());
  out.pod<std::uint64_t>(metadata_.size());
  for (const auto& e : metadata_) {
    out.string(e.key);
    out.pod(static_cast<std::uint32_t>(e.value.type));
    if (e.value.type == GgufType::kString && e.value.str.empty()) {
      out.string(e.owned);
    } else {
      write_scalar(out, e.value);
    }
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    out.string(t.name);
    out.pod(static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) out.pod(d);
    out.pod(t.ggml_type);
    out.pod(offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  out.pad();
  for (const auto& t : tensors_) {
    out.bytes(t.data.data(), t.data.size());
    out.pad();
  }
  out.finish();
}

}  // namespace lmserve::formats
