#include "util/utf8.h"

#include <gtest/gtest.h>

namespace lmserve::util {
namespace {

TEST(Utf8, Validity) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("héllo 日本 🐶"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE6\x97"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));
}

TEST(Utf8, CompletePrefixHoldsOnlyATruncatedTail) {
  EXPECT_EQ(complete_utf8_prefix("ab"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE6\x97"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xF0\x9F\x90"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE6\x97\xA5"), 5u);
  // Ill-formed bytes are not "incomplete": they will never complete, so they pass.
  EXPECT_EQ(complete_utf8_prefix("a\xFF"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xE6x"), 3u);
}

TEST(Utf8, SanitizeUsesMaximalSubparts) {
  EXPECT_EQ(sanitize_utf8("ok"), "ok");
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a\uFFFD"
            "b");
  // A truncated 3-byte sequence is one maximal subpart -> one U+FFFD.
  EXPECT_EQ(sanitize_utf8("a\xE6\x97"
                          "b"),
            "a\uFFFD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xE6\x97"), "\uFFFD");
  // Overlong: each byte is its own subpart.
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\uFFFD\uFFFD");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");
}

}  // namespace
}  // namespace lmserve::util
