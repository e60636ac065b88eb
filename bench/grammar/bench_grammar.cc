// Constrained-decoding cost on a real vocabulary: trie build, compile + first mask of a
// typical schema, and the per-token cost (mask + advance) along random walks at "temperature
// 1" (uniform over the allowed tokens). Every walk is a fresh request: it compiles the schema
// and starts with empty caches. Usage: bench_grammar TOKENIZER_DIR [WALKS] [SCHEMA_FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "tokenizer/tokenizer.h"

namespace grammar = lmserve::grammar;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_grammar TOKENIZER_DIR [WALKS] [SCHEMA_FILE]\n");
    return 2;
  }
  const int walks = argc > 2 ? std::atoi(argv[2]) : 20;
  const auto tok = lmserve::tokenizer::Tokenizer::load(argv[1]);
  auto t = Clock::now();
  std::vector<std::string> bytes(static_cast<std::size_t>(tok.vocab_size()));
  for (int id = 0; id < tok.vocab_size(); ++id)
    if (!tok.is_special(id)) bytes[static_cast<std::size_t>(id)] = tok.token_bytes(id);
  const grammar::TokenTrie trie(bytes);
  std::printf("vocabulary %d tokens, trie %zu nodes: built in %.1f ms\n", tok.vocab_size(),
              trie.nodes().size(), ms_since(t));

  std::string schema = R"({"type":"object","properties":{
    "name":{"type":"string","maxLength":40},"age":{"type":"integer","minimum":0},
    "email":{"type":["string","null"]},"tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":5},
    "role":{"enum":["admin","user","guest"]},"joined":{"type":"string","format":"date"}},
    "required":["name","age","role"],"additionalProperties":false})";
  if (argc > 3) {
    std::ifstream in(argv[3]);
    std::stringstream text;
    text << in.rdbuf();
    schema = text.str();
  }

  std::mt19937 rng(1);
  std::vector<double> first, steps;
  int tokens = 0;
  for (int w = 0; w < walks; ++w) {
    t = Clock::now();
    auto g = std::make_shared<grammar::Grammar>(
        grammar::parse_gbnf(grammar::json_schema_to_gbnf(nlohmann::ordered_json::parse(schema))));
    grammar::Constraint c(g, trie);
    for (int step = 0; step < 400 && !c.complete(); ++step) {
      if (step > 0) t = Clock::now();
      const grammar::TokenMask& mask = c.allowed();
      std::vector<double>& series = step == 0 ? first : steps;
      series.push_back(ms_since(t));
      std::vector<std::int32_t> allowed;
      for (std::int32_t id = 0; id < trie.vocab_size(); ++id)
        if (mask.test(id)) allowed.push_back(id);
      if (allowed.empty() || (c.accepting() && rng() % 2)) break;
      const auto id = allowed[rng() % allowed.size()];
      t = Clock::now();
      c.accept(id);
      series.back() += ms_since(t);
      ++tokens;
    }
  }
  auto report = [](const char* what, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    std::printf("%s: n=%zu mean %.3f ms, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", what, v.size(),
                sum / static_cast<double>(v.size()), v[v.size() / 2], v[v.size() * 99 / 100],
                v.back());
  };
  report("compile + first mask", first);
  report("per token (mask + advance)", steps);
  std::printf("%d tokens in %d walks\n", tokens, walks);
}
