// A read-only memory map of a whole file (model weights are never copied into the heap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace lmserve::util {

class MappedFile {
 public:
  // Throws FileError when the file cannot be opened or mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept;

  std::filesystem::path path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Drops the whole pages inside [p, p + n) from this process's resident set; p must point into
// a read-only file mapping (a MappedFile), whose pages read back from the file if touched again.
// For file bytes the loader copied elsewhere (a repacked weight), so they are not held twice.
void release_mapped_pages(const void* p, std::size_t n);

}  // namespace lmserve::util
