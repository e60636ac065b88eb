#include "support/fixtures.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lmserve::testing {

std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("LMSERVE_FIXTURES_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return LMSERVE_DEFAULT_FIXTURES_DIR;
}

std::filesystem::path fixture(const std::string& relative) {
  auto path = fixtures_dir() / relative;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing fixture: " + path.string());
  }
  return path;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_file(path));
}

}  // namespace lmserve::testing
