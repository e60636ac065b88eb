#include "util/text_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace lmserve::util {
namespace {

TEST(JsonNesting, CountsBracketsOutsideStringsOnly) {
  EXPECT_TRUE(json_nesting_within(R"({"a": [1, {"b": 2}]})", 3));
  EXPECT_FALSE(json_nesting_within(R"({"a": [1, {"b": 2}]})", 2));
  EXPECT_TRUE(json_nesting_within(R"({"a": "[[[[[[{{{{"})", 1));
  EXPECT_TRUE(json_nesting_within(R"({"a": "\"[[[["})", 1));  // escaped quote stays in the string
  EXPECT_FALSE(json_nesting_within(std::string(100000, '['), 64));
  EXPECT_TRUE(json_nesting_within("", 0));
}

TEST(ReadTextFile, ReadsBytesAndNamesMissingFiles) {
  auto path = std::filesystem::temp_directory_path() / "lmserve_text_file_test.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string("a\0b\n", 4);
  }
  EXPECT_EQ(read_text_file(path), std::string("a\0b\n", 4));
  std::filesystem::remove(path);
  try {
    read_text_file(path);
    FAIL() << "expected FileError";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos);
  }
}

}  // namespace
}  // namespace lmserve::util
