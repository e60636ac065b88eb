// The Responses store: least recently used eviction by entries and by bytes, TTL from the
// time stored, replacement and deletion, and bounded memory under 1,000 conversations.
#include "server/response_store.h"

#include <gtest/gtest.h>

#include <string>

namespace lmserve::server {
namespace {

using Clock = ResponseStore::Clock;
using std::chrono::seconds;

ResponseStore::Entry entry(const std::string& text) { return {"{\"r\":\"" + text + "\"}", text}; }

TEST(ResponseStore, KeepsAndReturnsEntries) {
  ResponseStore store({.max_entries = 4});
  EXPECT_TRUE(store.put("a", entry("one")));
  auto got = store.get("a");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->response, "{\"r\":\"one\"}");
  EXPECT_EQ(got->conversation, "one");
  EXPECT_FALSE(store.get("b"));
}

TEST(ResponseStore, EvictsTheLeastRecentlyUsedOverTheEntryLimit) {
  ResponseStore store({.max_entries = 2});
  store.put("a", entry("1"));
  store.put("b", entry("2"));
  ASSERT_TRUE(store.get("a"));  // b is now the least recently used
  store.put("c", entry("3"));
  EXPECT_TRUE(store.get("a"));
  EXPECT_FALSE(store.get("b"));
  EXPECT_TRUE(store.get("c"));
  EXPECT_EQ(store.size(), 2u);
}

TEST(ResponseStore, EvictsOverTheByteLimitAndRefusesAnEntryLargerThanIt) {
  const std::string big(100, 'x');
  const std::size_t one = 1 + entry(big).response.size() + big.size();
  ResponseStore store({.max_entries = 100, .max_bytes = 2 * one + 10});
  store.put("a", entry(big));
  store.put("b", entry(big));
  store.put("c", entry(big));
  EXPECT_FALSE(store.get("a"));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.bytes(), 2 * one);
  EXPECT_FALSE(store.put("huge", entry(std::string(3 * one, 'y'))));
  EXPECT_FALSE(store.get("huge"));
  EXPECT_EQ(store.size(), 2u);
}

TEST(ResponseStore, EntriesExpireTtlAfterTheyWereStoredEvenWhenRead) {
  ResponseStore store({.max_entries = 8, .ttl_s = 10});
  const Clock::time_point t0 = Clock::now();
  store.put("a", entry("1"), t0);
  store.put("b", entry("2"), t0 + seconds(5));
  EXPECT_TRUE(store.get("a", t0 + seconds(9)));
  EXPECT_FALSE(store.get("a", t0 + seconds(10)));
  EXPECT_TRUE(store.get("b", t0 + seconds(14)));
  EXPECT_FALSE(store.get("b", t0 + seconds(15)));
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(ResponseStore, ReplacesAndErases) {
  ResponseStore store({.max_entries = 8});
  store.put("a", entry("1"));
  store.put("a", entry("22"));
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.get("a")->conversation, "22");
  EXPECT_TRUE(store.erase("a"));
  EXPECT_FALSE(store.erase("a"));
  EXPECT_FALSE(store.get("a"));
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(ResponseStore, ZeroEntriesStoresNothing) {
  ResponseStore store({.max_entries = 0});
  EXPECT_FALSE(store.put("a", entry("1")));
  EXPECT_FALSE(store.get("a"));
}

// 1,000 conversations, each continued turn by turn (every turn stores the whole, growing
// conversation under a new id, as previous_response_id does): the store never holds more than
// its limits, whatever the traffic.
TEST(ResponseStore, MemoryStaysBoundedUnderAThousandConversations) {
  const ResponseStoreLimits limits{.max_entries = 64, .ttl_s = 3600, .max_bytes = 64 << 10};
  ResponseStore store(limits);
  std::size_t peak_bytes = 0;
  std::size_t peak_entries = 0;
  for (int c = 0; c < 1000; ++c) {
    std::string conversation;
    std::string previous;
    for (int turn = 0; turn < 5; ++turn) {
      if (!previous.empty()) {
        auto got = store.get(previous);
        ASSERT_TRUE(got) << "conversation " << c << " turn " << turn;
        conversation = got->conversation;
      }
      conversation += "user and assistant text of turn " + std::to_string(turn) + ". ";
      previous = "resp_" + std::to_string(c) + "_" + std::to_string(turn);
      store.put(previous, entry(conversation));
      peak_bytes = std::max(peak_bytes, store.bytes());
      peak_entries = std::max(peak_entries, store.size());
    }
  }
  EXPECT_LE(peak_bytes, limits.max_bytes);
  EXPECT_EQ(peak_entries, limits.max_entries);
  EXPECT_TRUE(store.get("resp_999_4"));
  EXPECT_FALSE(store.get("resp_0_4"));
}

}  // namespace
}  // namespace lmserve::server
