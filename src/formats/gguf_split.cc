#include "formats/gguf_split.h"

#include <cstdio>
#include <regex>
#include <string>

#include "util/error.h"

namespace lmserve::formats {
namespace {

constexpr std::string_view kSplitNo = "split.no";
constexpr std::string_view kSplitCount = "split.count";

std::uint64_t split_count(const GgufFile& file) {
  return file.has(kSplitCount) ? file.get_uint(kSplitCount) : 1;
}

std::uint64_t split_no(const GgufFile& file) {
  return file.has(kSplitNo) ? file.get_uint(kSplitNo) : 0;
}

// llama.cpp's split_path: PREFIX-%05d-of-%05d.gguf, parts numbered from 1.
std::string part_name(const std::string& prefix, std::uint64_t number, std::uint64_t count) {
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, "-%05llu-of-%05llu.gguf",
                static_cast<unsigned long long>(number), static_cast<unsigned long long>(count));
  return prefix + suffix;
}

// PREFIX of a part's file name, empty when the name is not one of a split.
std::string split_prefix(const std::filesystem::path& path) {
  static const std::regex kPart("(.+)-([0-9]{5})-of-([0-9]{5})\\.gguf", std::regex::icase);
  const std::string name = path.filename().string();
  std::smatch m;
  return std::regex_match(name, m, kPart) ? m[1].str() : "";
}

}  // namespace

void check_first_gguf_part(const GgufFile& file) {
  const std::uint64_t no = split_no(file);
  if (no == 0) return;
  const std::uint64_t count = split_count(file);
  const std::string prefix = split_prefix(file.path());
  throw FileError(file.path().string() + " is part " + std::to_string(no + 1) + " of " +
                  std::to_string(count) + " of a split GGUF: load the first part" +
                  (prefix.empty() ? "" : ", " + part_name(prefix, 1, count)));
}

std::vector<std::filesystem::path> gguf_split_paths(const GgufFile& first) {
  check_first_gguf_part(first);
  const std::uint64_t count = split_count(first);
  if (count <= 1) return {first.path()};
  const std::string prefix = split_prefix(first.path());
  if (prefix.empty() || first.path().filename() != part_name(prefix, 1, count)) {
    throw FileError(first.path().string() + " is the first of " + std::to_string(count) +
                    " parts of a split GGUF, but its name does not follow llama.cpp's " +
                    part_name("NAME", 1, count) + " (the other parts are found by that name)");
  }
  std::vector<std::filesystem::path> paths;
  for (std::uint64_t i = 1; i <= count; ++i) {
    std::filesystem::path p = first.path().parent_path() / part_name(prefix, i, count);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) {
      throw FileError(first.path().string() + ": part " + std::to_string(i) + " of " +
                      std::to_string(count) + " of this split GGUF is missing (" + p.string() +
                      ")");
    }
    paths.push_back(std::move(p));
  }
  return paths;
}

void check_gguf_split_part(const GgufFile& part, std::uint64_t index, std::uint64_t count) {
  const std::uint64_t no = split_no(part);
  const std::uint64_t of = split_count(part);
  if (no != index || of != count) {
    throw FileError(part.path().string() + " should be part " + std::to_string(index + 1) + " of " +
                    std::to_string(count) + " of a split GGUF, but its metadata says " +
                    (part.has(kSplitCount)
                         ? "part " + std::to_string(no + 1) + " of " + std::to_string(of)
                         : std::string("it is not split")));
  }
}

}  // namespace lmserve::formats
