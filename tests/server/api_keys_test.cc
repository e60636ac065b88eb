// API keys: the constant-time comparison, the header forms and the key file.
#include "server/api_keys.h"

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace lmserve::server {
namespace {

// Bytes that count how often each position is read.
struct CountingBytes {
  std::string text;
  mutable std::vector<int> reads = std::vector<int>(text.size(), 0);
  std::size_t size() const { return text.size(); }
  char operator[](std::size_t i) const {
    ++reads[i];
    return text[i];
  }
};

TEST(ConstantTimeEqual, ReadsEveryByteWhereverTheInputsDiffer) {
  const std::string key = "sk-0123456789abcdef";
  std::string first = key;
  first.front() = 'X';
  std::string last = key;
  last.back() = 'X';
  const std::string longer = key + "extra";
  for (const std::string& guess : {key, first, last, std::string("sk-"), longer, std::string()}) {
    CountingBytes expected{key};
    CountingBytes candidate{guess};
    EXPECT_EQ(constant_time_equal(expected, candidate), guess == key) << guess;
    // One read of every expected byte, whether the first, the last or no byte differs.
    EXPECT_EQ(expected.reads, std::vector<int>(key.size(), 1)) << guess;
    int candidate_reads = 0;
    for (int r : candidate.reads) candidate_reads += r;
    EXPECT_EQ(candidate_reads, guess.empty() ? 0 : static_cast<int>(key.size())) << guess;
  }
}

TEST(ConstantTimeEqual, LengthsMustMatch) {
  EXPECT_TRUE(constant_time_equal(std::string_view("abc"), std::string_view("abc")));
  EXPECT_FALSE(constant_time_equal(std::string_view("abc"), std::string_view("abcabc")));
  EXPECT_FALSE(constant_time_equal(std::string_view("abcabc"), std::string_view("abc")));
  EXPECT_FALSE(constant_time_equal(std::string_view("abc"), std::string_view("")));
  EXPECT_TRUE(constant_time_equal(std::string_view(""), std::string_view("")));
}

TEST(ApiKeys, BearerOrXApiKeyWithAnyConfiguredKey) {
  ApiKeys keys({"alpha", "beta"});
  EXPECT_TRUE(keys.required());
  EXPECT_TRUE(keys.accepts("Bearer alpha", ""));
  EXPECT_TRUE(keys.accepts("bearer beta", ""));
  EXPECT_TRUE(keys.accepts("BEARER  beta ", ""));
  EXPECT_TRUE(keys.accepts("", "alpha"));
  EXPECT_TRUE(keys.accepts("Basic xyz", "beta"));  // not a bearer credential: X-Api-Key
  EXPECT_FALSE(keys.accepts("Bearer gamma", ""));
  EXPECT_FALSE(keys.accepts("Bearer alph", ""));
  EXPECT_FALSE(keys.accepts("alpha", ""));  // no scheme
  EXPECT_FALSE(keys.accepts("Bearer ", ""));
  EXPECT_FALSE(keys.accepts("", ""));
  EXPECT_FALSE(keys.accepts("", "gamma"));
  EXPECT_FALSE(ApiKeys({}).required());
  EXPECT_FALSE(ApiKeys({""}).required());  // an empty key is no key
}

TEST(ApiKeys, KeyFileSkipsBlankAndCommentLines) {
  lmserve::testing::TempDir dir;
  const auto path = dir.path() / "keys";
  lmserve::testing::write_file(path, "# team keys\n\n  alpha  \r\nbeta\n#gamma\n\t\ndelta");
  EXPECT_EQ(read_api_key_file(path.string()), (std::vector<std::string>{"alpha", "beta", "delta"}));
  EXPECT_THROW(read_api_key_file((dir.path() / "missing").string()), std::exception);
}

}  // namespace
}  // namespace lmserve::server
