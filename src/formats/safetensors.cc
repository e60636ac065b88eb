#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

#include "formats/text.h"
#include "util/error.h"
#include "util/text_file.h"

namespace lmserve::formats {

namespace {

using detail::quote_name;
using nlohmann::json;

// nlohmann parses recursively; a header of a million '[' would overflow the stack before it
// could fail. Safetensors headers are two levels deep, so anything past this is corrupt.
constexpr int kMaxJsonDepth = 64;

// Parses JSON text from a file, turning every failure into a FileError naming `what`.
json parse_json_text(std::string_view text, const std::string& what) {
  if (!util::json_nesting_within(text, kMaxJsonDepth)) {
    throw FileError(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                    " levels");
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw FileError(what + ": invalid JSON (" + e.what() + ")");
  }
}

// A JSON number as a non-negative integer that fits in uint64, or false.
bool as_u64(const json& v, std::uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    auto s = v.get<std::int64_t>();
    if (s < 0) return false;
    out = static_cast<std::uint64_t>(s);
    return true;
  }
  return false;
}

struct Entry {
  std::string name;
  std::uint64_t begin;
  std::uint64_t end;
};

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string where = path.string();
  auto bytes = file_.bytes();
  if (bytes.size() < 8) {
    throw FileError(where + ": not a safetensors file: " + std::to_string(bytes.size()) +
                    " bytes, shorter than the 8-byte header length");
  }
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[static_cast<std::size_t>(i)];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    throw FileError(where + ": safetensors header length " + std::to_string(header_len) +
                    " is absurd (limit " + std::to_string(kMaxSafetensorsHeaderBytes) + ")");
  }
  if (header_len > bytes.size() - 8) {
    throw FileError(where + ": safetensors header length " + std::to_string(header_len) +
                    " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (header_len < 2) {
    throw FileError(where + ": safetensors header length " + std::to_string(header_len) +
                    " is too short to hold a JSON object");
  }
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  json header = parse_json_text(text, where + ": safetensors header");
  if (!header.is_object()) {
    throw FileError(where + ": safetensors header is JSON but not an object");
  }

  const std::uint8_t* data_start = bytes.data() + 8 + header_len;
  const std::uint64_t data_size = bytes.size() - 8 - header_len;
  std::vector<Entry> entries;

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw FileError(where + ": __metadata__ is not a JSON object");
      for (const auto& [k, v] : value.items()) {
        metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
      continue;
    }
    const std::string tensor = "tensor " + quote_name(name);
    if (!value.is_object()) throw FileError(where + ": " + tensor + ": entry is not a JSON object");
    auto dt = value.find("dtype");
    auto sh = value.find("shape");
    auto off = value.find("data_offsets");
    if (dt == value.end() || !dt->is_string()) {
      throw FileError(where + ": " + tensor + ": missing or non-string \"dtype\"");
    }
    auto dtype = parse_dtype(dt->get<std::string>());
    if (!dtype) {
      throw FileError(where + ": " + tensor + ": unknown dtype " +
                      quote_name(dt->get<std::string>()));
    }
    if (sh == value.end() || !sh->is_array()) {
      throw FileError(where + ": " + tensor + ": missing or non-array \"shape\"");
    }
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    std::uint64_t numel = 1;
    for (const auto& d : *sh) {
      std::uint64_t dim = 0;
      if (!as_u64(d, dim) || dim > static_cast<std::uint64_t>(INT64_MAX)) {
        throw FileError(where + ": " + tensor + ": shape entry " + d.dump(-1).substr(0, 40) +
                        " is not a non-negative integer");
      }
      if (__builtin_mul_overflow(numel, dim, &numel) ||
          numel > static_cast<std::uint64_t>(INT64_MAX)) {
        throw FileError(where + ": " + tensor + ": shape " + sh->dump().substr(0, 200) +
                        " overflows the element count");
      }
      view.shape.push_back(static_cast<std::int64_t>(dim));
    }
    if (off == value.end() || !off->is_array() || off->size() != 2) {
      throw FileError(where + ": " + tensor + ": \"data_offsets\" must be an array [begin, end]");
    }
    std::uint64_t begin = 0, end = 0;
    if (!as_u64((*off)[0], begin) || !as_u64((*off)[1], end)) {
      throw FileError(where + ": " + tensor + ": data_offsets must be non-negative integers");
    }
    if (begin > end) {
      throw FileError(where + ": " + tensor + ": data_offsets begin " + std::to_string(begin) +
                      " > end " + std::to_string(end));
    }
    if (end > data_size) {
      throw FileError(where + ": " + tensor + ": data_offsets [" + std::to_string(begin) + ", " +
                      std::to_string(end) + "] past the end of the data (" +
                      std::to_string(data_size) + " bytes)");
    }
    std::uint64_t expected = 0;
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtype_size(*dtype)), &expected)) {
      throw FileError(where + ": " + tensor + ": byte size overflows");
    }
    if (expected != end - begin) {
      throw FileError(where + ": " + tensor + ": dtype " + std::string(dtype_name(*dtype)) +
                      " and shape " + view.shape_string() + " need " + std::to_string(expected) +
                      " bytes but data_offsets span " + std::to_string(end - begin));
    }
    view.data = data_start + begin;
    view.nbytes = static_cast<std::size_t>(end - begin);
    entries.push_back({name, begin, end});
    tensors_.emplace(name, std::move(view));
  }

  // Overlapping tensors would alias each other's bytes: a sign of a corrupt or hostile file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (std::size_t i = 1; i < entries.size(); ++i) {
    const auto& prev = entries[i - 1];
    const auto& cur = entries[i];
    if (cur.begin < prev.end && cur.begin != cur.end && prev.begin != prev.end) {
      throw FileError(where + ": tensors " + quote_name(prev.name) + " and " +
                      quote_name(cur.name) + " have overlapping data_offsets");
    }
  }
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

TensorStore TensorStore::from_files(const std::vector<std::filesystem::path>& files) {
  TensorStore store;
  store.origin_ = files.empty() ? std::filesystem::path() : files.front();
  for (const auto& f : files) {
    auto file = std::make_shared<const SafetensorsFile>(f);
    store.add(file, file->tensors(), file->path().string());
  }
  return store;
}

TensorStore TensorStore::open(const std::filesystem::path& dir) {
  const auto index_path = dir / "model.safetensors.index.json";
  const auto single_path = dir / "model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(index_path, ec)) {
    if (!std::filesystem::exists(single_path, ec)) {
      throw FileError(dir.string() + ": no model.safetensors or model.safetensors.index.json");
    }
    return from_files({single_path});
  }

  const std::string where = index_path.string();
  util::MappedFile index_file(index_path);
  auto bytes = index_file.bytes();
  json index = parse_json_text(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), where);
  if (!index.is_object()) throw FileError(where + ": not a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    throw FileError(where + ": missing or non-object \"weight_map\"");
  }
  std::map<std::string, std::string> shard_of;
  std::set<std::string> shards;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      throw FileError(where + ": weight_map entry " + quote_name(name) + " is not a string");
    auto s = shard.get<std::string>();
    // Shards live next to the index: refuse paths that would escape the directory.
    std::filesystem::path sp(s);
    if (s.empty() || sp.is_absolute() || sp.has_parent_path() || s == "." || s == "..") {
      throw FileError(where + ": weight_map entry " + quote_name(name) +
                      " names an invalid shard " + quote_name(s));
    }
    shard_of[name] = s;
    shards.insert(s);
  }
  if (shards.empty()) throw FileError(where + ": weight_map is empty");

  TensorStore store;
  store.origin_ = dir;
  for (const auto& s : shards) {
    auto p = dir / s;
    if (!std::filesystem::exists(p, ec)) {
      throw FileError(where + ": names shard " + quote_name(s) + " which does not exist in " +
                      dir.string());
    }
    auto file = std::make_shared<const SafetensorsFile>(p);
    store.add(file, file->tensors(), file->path().string());
  }
  for (const auto& [name, s] : shard_of) {
    auto it = store.index_.find(name);
    if (it == store.index_.end()) {
      throw FileError(where + ": tensor " + quote_name(name) + " is mapped to shard " +
                      quote_name(s) + " which does not contain it");
    }
  }
  return store;
}

}  // namespace lmserve::formats
