#include "grammar/matcher.h"

#include <algorithm>

namespace lmserve::grammar {
namespace {

// Pops finished alternatives and opens rule references until a byte set (or nothing) is on
// top; each way of opening a rule is a separate stack.
void expand(const Grammar& g, Stack work, Stacks& out) {
  while (!work.empty() && work.back()->ends_alternative()) work.pop_back();
  if (work.empty() || work.back()->kind == Element::Kind::kByteSet) {
    if (out.size() >= kMaxStacks) throw GrammarError("grammar too ambiguous (too many parses)");
    out.push_back(std::move(work));
    return;
  }
  const Element* ref = work.back();
  work.back() = ref + 1;  // where to resume once the rule is done
  const std::vector<Element>& rule = g.rules[ref->value];
  bool at_start = true;
  for (const Element& e : rule) {
    if (at_start) {
      Stack next = work;
      next.push_back(&e);
      expand(g, std::move(next), out);
    }
    at_start = e.ends_alternative();
  }
}

void normalise(Stacks& stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
}

}  // namespace

void advance(const Grammar& grammar, const Stacks& in, std::uint8_t byte, Stacks& out) {
  out.clear();
  for (const Stack& stack : in) {
    if (stack.empty() || !grammar.byte_sets[stack.back()->value].test(byte)) continue;
    Stack next = stack;
    ++next.back();
    expand(grammar, std::move(next), out);
  }
  normalise(out);
}

Stacks initial_stacks(const Grammar& grammar, std::uint32_t rule) {
  Stacks out;
  bool at_start = true;
  for (const Element& e : grammar.rules[rule]) {
    if (at_start) expand(grammar, Stack{&e}, out);
    at_start = e.ends_alternative();
  }
  normalise(out);
  return out;
}

Matcher::Matcher(std::shared_ptr<const Grammar> grammar)
    : grammar_(std::move(grammar)), stacks_(initial_stacks(*grammar_, grammar_->root)) {}

bool Matcher::accept(std::string_view bytes) {
  Stacks current = stacks_;
  Stacks next;
  for (char c : bytes) {
    advance(*grammar_, current, static_cast<std::uint8_t>(c), next);
    if (next.empty()) return false;
    current.swap(next);
  }
  stacks_ = std::move(current);
  return true;
}

bool Matcher::accepting() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool Matcher::can_continue() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return !s.empty(); });
}

}  // namespace lmserve::grammar
