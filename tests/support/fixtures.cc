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

std::tm template_fixture_clock() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 9;
  tm.tm_min = 30;
  tm.tm_sec = 0;
  tm.tm_wday = 4;
  tm.tm_yday = 14;
  return tm;
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
