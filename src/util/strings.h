// Small string operations shared by the tokenizer's decoders and normalizers.
#pragma once

#include <string>
#include <string_view>

namespace lmserve::util {

// Every non-overlapping occurrence of `from`, left to right, replaced by `to` (Python's
// str.replace). An empty `from` leaves the text unchanged.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

}  // namespace lmserve::util
