// GBNF for JSON numbers inside bounds, as grammars over digits: exact for integers, and for
// numbers with integer bounds (the fraction decides at the bound itself).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lmserve::grammar {

// The largest magnitude the grammars write (16 digits, as the unbounded `integer` rule).
constexpr std::int64_t kMaxGrammarInteger = 9'999'999'999'999'999;

struct NumberBound {
  std::int64_t value;
  bool exclusive = false;
};

// The integers in [lo, hi] written without leading zeros ("" when there are none); a missing
// bound is open up to kMaxGrammarInteger digits. Bounds must be within ±kMaxGrammarInteger.
std::string integer_range_gbnf(std::optional<std::int64_t> lo, std::optional<std::int64_t> hi);

// The numbers (plain decimals, no exponent) between integer bounds ("" when there are none).
std::string number_range_gbnf(std::optional<NumberBound> lo, std::optional<NumberBound> hi);

}  // namespace lmserve::grammar
