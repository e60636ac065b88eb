#include "grammar/number_range.h"

#include <algorithm>
#include <vector>

namespace lmserve::grammar {
namespace {

std::string join(const std::vector<std::string>& alternatives) {
  if (alternatives.empty()) return "";
  if (alternatives.size() == 1) return alternatives[0];
  std::string out = "(";
  for (std::size_t i = 0; i < alternatives.size(); ++i) out += (i ? " | " : "") + alternatives[i];
  return out + ")";
}

std::string literal(const std::string& digits) { return "\"" + digits + "\""; }

std::string any_digits(std::size_t n) {
  if (n == 0) return "";
  return n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}";
}

std::string then(const std::string& a, const std::string& b) {
  return a.empty() ? b : b.empty() ? a : a + " " + b;
}

// Digit strings of one length between x and y (x <= y), digit by digit.
std::string same_length(const std::string& x, const std::string& y) {
  if (x.empty()) return "";
  if (x == y) return literal(x);
  const std::size_t rest = x.size() - 1;
  if (x[0] == y[0]) return then(literal(x.substr(0, 1)), same_length(x.substr(1), y.substr(1)));
  const bool low_open = x.find_first_not_of('0', 1) == std::string::npos;
  const bool high_open = y.find_first_not_of('9', 1) == std::string::npos;
  std::vector<std::string> alternatives;
  char first = x[0], last = y[0];
  if (!low_open) {
    alternatives.push_back(
        then(literal(x.substr(0, 1)), same_length(x.substr(1), std::string(rest, '9'))));
    ++first;
  }
  if (!high_open) --last;
  if (first <= last) {
    const std::string head = first == last ? literal(std::string(1, first))
                                           : std::string("[") + first + "-" + last + "]";
    alternatives.push_back(then(head, any_digits(rest)));
  }
  if (!high_open)
    alternatives.push_back(
        then(literal(y.substr(0, 1)), same_length(std::string(rest, '0'), y.substr(1))));
  return join(alternatives);
}

// Non-negative integers in [a, b], no leading zeros.
std::string non_negative(std::int64_t a, std::int64_t b) {
  std::vector<std::string> alternatives;
  std::int64_t low = 0, high = 9;  // the integers of the current digit count
  for (int digits = 1; low <= b; ++digits) {
    const std::int64_t x = std::max(a, low), y = std::min(b, high);
    if (x <= y) alternatives.push_back(same_length(std::to_string(x), std::to_string(y)));
    if (digits == 16) break;
    low = high + 1;
    high = high * 10 + 9;
  }
  return join(alternatives);
}

constexpr const char* kAnyFraction = "(\".\" [0-9]{1,16})?";
constexpr const char* kZeroFraction = "(\".\" [0]{1,16})?";
constexpr const char* kNonzeroFraction = "(\".\" [0-9]{0,15} [1-9])";

// Non-negative numbers from a (or just above it) to b (or just below; nullopt: unbounded).
std::string non_negative_number(NumberBound a, std::optional<NumberBound> b) {
  std::vector<std::string> alternatives;
  if (b && b->value == a.value) {
    if (!a.exclusive && !b->exclusive)
      alternatives.push_back(then(literal(std::to_string(a.value)), kZeroFraction));
    return join(alternatives);
  }
  alternatives.push_back(
      then(literal(std::to_string(a.value)), a.exclusive ? kNonzeroFraction : kAnyFraction));
  const std::int64_t last = b ? b->value - 1 : kMaxGrammarInteger;
  if (a.value + 1 <= last)
    alternatives.push_back(then(non_negative(a.value + 1, last), kAnyFraction));
  if (b && !b->exclusive)
    alternatives.push_back(then(literal(std::to_string(b->value)), kZeroFraction));
  return join(alternatives);
}

}  // namespace

std::string integer_range_gbnf(std::optional<std::int64_t> lo, std::optional<std::int64_t> hi) {
  std::vector<std::string> alternatives;
  if (!lo || *lo < 0) {  // negatives: "-" and a magnitude
    const std::int64_t m1 = hi ? std::max<std::int64_t>(-*hi, 1) : 1;
    const std::int64_t m2 = lo ? -*lo : kMaxGrammarInteger;
    if (m1 <= m2) alternatives.push_back("\"-\" " + non_negative(m1, m2));
  }
  if (!hi || *hi >= 0) {
    const std::int64_t a = lo ? std::max<std::int64_t>(*lo, 0) : 0;
    const std::int64_t b = hi ? *hi : kMaxGrammarInteger;
    if (a <= b) alternatives.push_back(non_negative(a, b));
  }
  return join(alternatives);
}

std::string number_range_gbnf(std::optional<NumberBound> lo, std::optional<NumberBound> hi) {
  std::vector<std::string> alternatives;
  if (!lo || lo->value < 0) {  // x < 0 is "-" y with y > 0: the bounds swap ends
    const NumberBound y_low =
        hi && hi->value < 0 ? NumberBound{-hi->value, hi->exclusive} : NumberBound{0, true};
    std::optional<NumberBound> y_high;
    if (lo) y_high = NumberBound{-lo->value, lo->exclusive};
    if (!y_high || y_low.value < y_high->value ||
        (y_low.value == y_high->value && !y_low.exclusive && !y_high->exclusive))
      alternatives.push_back("\"-\" " + non_negative_number(y_low, y_high));
  }
  if (!hi || hi->value > 0 || (hi->value == 0 && !hi->exclusive)) {
    const NumberBound a = lo && lo->value >= 0 ? *lo : NumberBound{0, false};
    if (!hi || a.value < hi->value || (a.value == hi->value && !a.exclusive && !hi->exclusive))
      alternatives.push_back(non_negative_number(a, hi));
  }
  return join(alternatives);
}

}  // namespace lmserve::grammar
