#include "util/strings.h"

#include <gtest/gtest.h>

namespace lmserve::util {
namespace {

TEST(ReplaceAll, LeftToRightNonOverlapping) {
  EXPECT_EQ(replace_all("a . b . c", " .", "."), "a. b. c");
  EXPECT_EQ(replace_all("aaaa", "aa", "b"), "bb");
  EXPECT_EQ(replace_all("aaa", "aa", "b"), "ba");
  EXPECT_EQ(replace_all("xyz", "q", "r"), "xyz");
  EXPECT_EQ(replace_all("xyz", "", "r"), "xyz");
  EXPECT_EQ(replace_all("##a##b", "##", ""), "ab");
  EXPECT_EQ(replace_all("", "a", "b"), "");
}

}  // namespace
}  // namespace lmserve::util
