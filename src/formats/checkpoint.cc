#include "formats/checkpoint.h"

#include <system_error>

#include "formats/gguf.h"

namespace lmserve::formats {

Checkpoint Checkpoint::open(const std::filesystem::path& path) {
  Checkpoint c;
  c.path_ = path;
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) c.gguf_ = std::make_shared<const GgufFile>(path);
  return c;
}

}  // namespace lmserve::formats
