// API keys (--api-key, --api-key-file, LMSERVE_API_KEY): which requests carry one, compared
// in time that does not depend on how much of a key a guess got right.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::server {

// Equal bytes? Reads every byte of `expected` (and the same positions of `candidate`,
// cyclically) whatever the inputs, so its timing tells nothing of a common prefix; it does
// tell expected's length. Bytes: size() and operator[] returning a char (a template so that
// tests can count the reads).
template <class Bytes>
bool constant_time_equal(const Bytes& expected, const Bytes& candidate) {
  const std::size_t n = expected.size();
  const std::size_t m = candidate.size();
  unsigned difference = n != m ? 1u : 0u;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = m == 0 ? 0 : static_cast<unsigned char>(candidate[i % m]);
    difference |= static_cast<unsigned char>(expected[i]) ^ c;
  }
  return difference == 0;
}

// The keys of an --api-key-file: one per line; blank lines and lines starting with '#' are
// skipped, surrounding whitespace trimmed. Throws FileError if it cannot be read.
std::vector<std::string> read_api_key_file(const std::string& path);

class ApiKeys {
 public:
  explicit ApiKeys(std::vector<std::string> keys);
  bool required() const { return !keys_.empty(); }
  // The key of `Authorization: Bearer KEY` (scheme case-insensitive), else `X-Api-Key: KEY`,
  // matches a configured one. Every configured key is compared.
  bool accepts(std::string_view authorization, std::string_view x_api_key) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace lmserve::server
