// A scratch directory for tests that write files (corrupt checkpoints, tiny tokenizers),
// removed with everything in it when the test ends.
#pragma once

#include <filesystem>
#include <string>

namespace lmserve::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, replacing the file.
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace lmserve::testing
