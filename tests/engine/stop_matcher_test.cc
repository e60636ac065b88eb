#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>

namespace lmserve::engine {
namespace {

// Feeds pieces one by one and returns (emitted text, stopped).
std::pair<std::string, bool> run(const std::vector<std::string>& stops,
                                 const std::vector<std::string>& pieces,
                                 StopExemptions exemptions = {}) {
  StopMatcher m(stops, std::move(exemptions));
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

TEST(StopMatcher, StopsDoNotApplyInsideExemptSpans) {
  const StopExemptions think = {.spans = {{"<think>", "</think>"}, {"<tool_call>", ""}}};
  // In the thinking the stop string is text; in the answer it stops.
  auto [out, stopped] = run({"sun"}, {"<think>is it sun", "ny?</think>The sun", "shine"}, think);
  EXPECT_EQ(out, "<think>is it sunny?</think>The ");
  EXPECT_TRUE(stopped);
  // A span with no close runs to the end (a tool call whose syntax has no end marker).
  std::tie(out, stopped) = run({"sun"}, {"ok <tool_c", "all>{\"sun\": 1}"}, think);
  EXPECT_EQ(out, "ok <tool_call>{\"sun\": 1}");
  EXPECT_FALSE(stopped);
  // The prompt opened the think block: the output starts inside it.
  std::tie(out, stopped) =
      run({"sun"}, {"sunny</thi", "nk>", "sunset"}, {.spans = think.spans, .inside = 0});
  EXPECT_EQ(out, "sunny</think>");
  EXPECT_TRUE(stopped);
  // A stop string that begins where a span marker does wins: the client asked for it.
  std::tie(out, stopped) = run({"<th"}, {"a<think>b"}, think);
  EXPECT_EQ(out, "a");
  EXPECT_TRUE(stopped);
  // Without stop strings, nothing is held back for the markers.
  StopMatcher none({}, think);
  EXPECT_EQ(none.push("a <thi").text, "a <thi");
}

// The reference: walk the text once; outside a span the first stop string that starts at a
// position ends it (the longest of those that start there), else a span opening starts one;
// inside, the span's close ends it.
std::pair<std::string, bool> walk(const std::string& text, const std::vector<std::string>& stops,
                                  const StopExemptions& e) {
  int inside = e.inside;
  for (std::size_t i = 0; i < text.size();) {
    if (inside < 0) {
      std::size_t stop_len = 0;
      for (const auto& s : stops) {
        if (text.compare(i, s.size(), s) == 0) stop_len = std::max(stop_len, s.size());
      }
      if (stop_len > 0) return {text.substr(0, i), true};
      bool opened = false;
      for (std::size_t k = 0; k < e.spans.size() && !opened; ++k) {
        if (text.compare(i, e.spans[k].open.size(), e.spans[k].open) == 0) {
          i += e.spans[k].open.size();
          inside = static_cast<int>(k);
          opened = true;
        }
      }
      if (!opened) ++i;
    } else {
      const std::string& close = e.spans[static_cast<std::size_t>(inside)].close;
      if (!close.empty() && text.compare(i, close.size(), close) == 0) {
        i += close.size();
        inside = -1;
      } else {
        ++i;
      }
    }
  }
  return {text, false};
}

TEST(StopMatcher, SplitIndependenceWithSpans) {
  std::mt19937 rng(7);
  const std::vector<std::string> words = {"a", "b", "<", ">", "<t>", "</t>", "ab", "[c"};
  const std::vector<std::string> stops = {"ab", "a</t", "b<t>a", ">b"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    const int len = static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) text += words[rng() % words.size()];
    const StopExemptions e = {.spans = {{"<t>", "</t>"}, {"[c", ""}},
                              .inside = static_cast<int>(rng() % 3) - 1};
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < text.size();) {
      std::size_t n = 1 + rng() % 4;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    EXPECT_EQ(run(stops, pieces, e), walk(text, stops, e)) << text << " inside " << e.inside;
  }
}

}  // namespace
}  // namespace lmserve::engine
