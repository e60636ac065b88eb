// Shared helpers for the libFuzzer targets: where the fixtures are, and a memory-backed file
// for the parsers that only take a path (GGUF, safetensors, tokenizer.json).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lmserve::fuzz {

// $LMSERVE_FIXTURES_DIR if set, else the path CMake was configured with.
inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("LMSERVE_FIXTURES_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return LMSERVE_FUZZ_FIXTURES_DIR;
}

// fixtures_dir() / relative, or exit: a fuzzer without its fixtures would test nothing.
inline std::filesystem::path fixture(const std::string& relative) {
  std::filesystem::path path = fixtures_dir() / relative;
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "fuzz: missing fixture %s (set LMSERVE_FIXTURES_DIR)\n", path.c_str());
    std::exit(1);
  }
  return path;
}

// An anonymous in-memory file reachable by path (/proc/self/fd/N): each input is written
// here and opened by the real loader, mmap included, with nothing left on disk.
class MemoryFile {
 public:
  MemoryFile() : fd_(::memfd_create("lmserve-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("fuzz: memfd_create");
      std::exit(1);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // Replaces the contents with data[0, size).
  const std::filesystem::path& write(const std::uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

}  // namespace lmserve::fuzz
