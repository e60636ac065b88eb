// Fuzzes the schema compiler and the GBNF parser. Odd first byte: the rest is a JSON Schema;
// whatever GBNF the compiler emits must parse (a GrammarError there is a compiler bug).
// Even: the rest is GBNF; a grammar that parses is then run over its own text, with a mask
// over a small vocabulary at each step that must agree with the matcher.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

namespace grammar = lmserve::grammar;

namespace {

const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> vocab = {"{", "}", "\"",    "a",    "ab",   ":",
                                                 " ", "1", "\xc3",  "\xa9", "null", "[",
                                                 "]", ",", "\"a\"", "-"};
  return vocab;
}

void run_grammar(std::shared_ptr<const grammar::Grammar> g, std::string_view input) {
  static const grammar::TokenTrie trie(vocabulary());
  grammar::Constraint constraint(g, trie);
  grammar::Matcher matcher(g);
  for (std::size_t i = 0; i < input.size() && i < 64; ++i) {
    const grammar::TokenMask& mask = constraint.allowed();
    const auto id =
        static_cast<std::int32_t>(static_cast<unsigned char>(input[i]) % vocabulary().size());
    grammar::Matcher probe = matcher;
    if (mask.test(id) != probe.accept(vocabulary()[static_cast<std::size_t>(id)])) abort();
    if (!mask.test(id)) continue;
    constraint.accept(id);
    matcher = probe;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] & 1) {
      const auto schema = nlohmann::ordered_json::parse(rest, nullptr, /*allow_exceptions=*/false);
      if (schema.is_discarded()) return 0;
      std::string gbnf;
      try {
        gbnf = grammar::json_schema_to_gbnf(schema);
      } catch (const grammar::SchemaError&) {
        return 0;
      }
      run_grammar(std::make_shared<grammar::Grammar>(grammar::parse_gbnf(gbnf)), rest);
    } else {
      std::shared_ptr<const grammar::Grammar> g;
      try {
        g = std::make_shared<grammar::Grammar>(grammar::parse_gbnf(rest));
      } catch (const grammar::GrammarError&) {
        return 0;
      }
      run_grammar(g, rest);
    }
  } catch (const grammar::GrammarError& e) {
    // Only a grammar too ambiguous to run may fail at run time.
    if (std::string_view(e.what()).find("ambiguous") == std::string_view::npos) abort();
  }
  return 0;
}
