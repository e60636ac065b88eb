#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace lmserve::engine {
namespace {

// Feeds pieces one by one and returns (emitted text, stopped).
std::pair<std::string, bool> run(const std::vector<std::string>& stops,
                                 const std::vector<std::string>& pieces) {
  StopMatcher m(stops);
  std::string out;
  for (const auto& p : pieces) {
    auto r = m.push(p);
    out += r.text;
    if (r.stopped) return {out, true};
  }
  return {out + m.flush(), false};
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("hello").text, "hello");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, StopSplitAcrossPiecesNeverLeaks) {
  StopMatcher m({"END"});
  auto r1 = m.push("abc E");
  EXPECT_EQ(r1.text, "abc ");
  EXPECT_FALSE(r1.stopped);
  auto r2 = m.push("N");
  EXPECT_EQ(r2.text, "");
  auto r3 = m.push("Dxyz");
  EXPECT_TRUE(r3.stopped);
  EXPECT_EQ(r3.text, "");
}

TEST(StopMatcher, HeldPrefixIsReleasedWhenItDiverges) {
  auto [out, stopped] = run({"END"}, {"E", "N", "x", "END"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "ENx");
}

TEST(StopMatcher, FlushReturnsHeldTextAtEndOfGeneration) {
  auto [out, stopped] = run({"\n\n"}, {"one", "\n"});
  EXPECT_FALSE(stopped);
  EXPECT_EQ(out, "one\n");
}

TEST(StopMatcher, EarliestMatchWinsThenLongest) {
  EXPECT_EQ(run({"b", "abc"}, {"xabc"}).first, "x");
  EXPECT_EQ(run({"ab", "abc"}, {"xabcd"}).first, "x");
  EXPECT_EQ(run({"cd", "b"}, {"abcd"}).first, "a");
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
  auto [out, stopped] = run({""}, {"a", "b"});
  EXPECT_FALSE(stopped);
  EXPECT_EQ(out, "ab");
}

TEST(StopMatcher, MultibyteStopStrings) {
  auto [out, stopped] = run({"日本"}, {"こ", "日", "x日", "本語"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "こ日x");
}

// Property: however the text is split into pieces, the output is the text up to the first
// stop occurrence (or all of it), and nothing emitted before the stop contains a stop prefix
// that later turned out to be a match.
TEST(StopMatcher, SplitIndependence) {
  std::mt19937 rng(42);
  const std::string alphabet = "ab\n";
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    int len = static_cast<int>(rng() % 30);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops = {"aab", "\n\n", "ba\n"};
    std::size_t first = std::string::npos;
    for (const auto& s : stops) first = std::min(first, text.find(s));
    std::string expected = first == std::string::npos ? text : text.substr(0, first);

    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < text.size();) {
      std::size_t n = 1 + rng() % 4;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    auto [out, stopped] = run(stops, pieces);
    EXPECT_EQ(out, expected) << text;
    EXPECT_EQ(stopped, first != std::string::npos) << text;
  }
}

}  // namespace
}  // namespace lmserve::engine
