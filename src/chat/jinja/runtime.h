// Internal runtime of the engine: scopes, call arguments, callable objects and the
// tree-walking interpreter shared by the statement evaluator and the builtins.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/jinja/ast.h"
#include "chat/jinja/template.h"
#include "chat/jinja/value.h"

namespace lmserve::chat::jinja {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::unordered_map<std::string, Value> vars;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

// Binds Python-style arguments to `names` (first `required` of them mandatory); TypeError on
// unknown keywords, duplicates or too many positionals.
std::vector<std::optional<Value>> bind_args(const CallArgs& call, std::string_view func,
                                            std::initializer_list<std::string_view> names,
                                            std::size_t required = 0);

class BuiltinFn final : public Object {
 public:
  using Fn = std::function<Value(Interpreter&, CallArgs&)>;
  BuiltinFn(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string type_name() const override { return "builtin_function_or_method"; }
  std::string repr() const override { return "<built-in function " + name_ + ">"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override { return fn_(interp, args); }

 private:
  std::string name_;
  Fn fn_;
};

Value make_builtin(std::string name, BuiltinFn::Fn fn);

class MacroObj final : public Object {
 public:
  MacroObj(const MacroStmt* def, ScopePtr closure) : def_(def), closure_(std::move(closure)) {}
  std::string type_name() const override { return "Macro"; }
  std::string repr() const override { return "<Macro '" + def_->name + "'>"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override;

 private:
  const MacroStmt* def_;
  ScopePtr closure_;
};

class CallerObj final : public Object {
 public:
  CallerObj(const CallBlockStmt* def, ScopePtr scope) : def_(def), scope_(std::move(scope)) {}
  std::string type_name() const override { return "Macro"; }
  std::string repr() const override { return "<Macro 'caller'>"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override;

 private:
  const CallBlockStmt* def_;
  ScopePtr scope_;
};

class LoopObj final : public Object, public std::enable_shared_from_this<LoopObj> {
 public:
  LoopObj(std::shared_ptr<const std::vector<Value>> items) : items_(std::move(items)) {}
  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override;
  std::optional<Value> get_attr(const std::string& name) const override;
  void set_index(std::size_t i) { index_ = i; }

 private:
  std::shared_ptr<const std::vector<Value>> items_;
  std::size_t index_ = 0;
  mutable std::optional<Value> last_changed_;
};

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options) : options_(options) {}

  std::string render(const Body& body, ScopePtr globals);

  enum class Flow { kNormal, kBreak, kContinue };
  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Value eval(const Expr& e, const ScopePtr& scope);

  Value call(const Value& callee, CallArgs& args);
  Value call_macro(const MacroStmt& def, const ScopePtr& closure, CallArgs& args);
  Value call_caller(const CallBlockStmt& def, const ScopePtr& scope, CallArgs& args);

  // Jinja2's sandboxed getattr / getitem: attribute-then-item and item-then-attribute.
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  // Python iter(): Undefined iterates as empty, None and numbers raise TypeError.
  std::vector<Value> iterate(const Value& v);
  bool contains(const Value& container, const Value& item);

  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& input, CallArgs& args);
  bool has_filter(const std::string& name) const;
  bool has_test(const std::string& name) const;

  Value binary(const std::string& op, const Value& a, const Value& b);

  // Counts work (loop iterations, calls) against RenderOptions::max_steps.
  void charge(std::uint64_t steps = 1);
  // Refuses strings that would exceed the output limit.
  void check_size(std::size_t bytes) const;
  void append(std::string& out, std::string_view text);

  const RenderOptions& options() const { return options_; }
  std::string strftime_now(const std::string& format) const;

 private:
  Value eval_filter(const FilterExpr& f, const ScopePtr& scope);
  CallArgs eval_args(const ArgsExpr& a, const ScopePtr& scope);
  void assign(const Target& target, const Value& v, const ScopePtr& scope);
  Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  Flow exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out);

  const RenderOptions& options_;
  std::uint64_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;                     // exec/eval recursion: bounds native stack use
  std::vector<ScopePtr> macro_scopes_;  // scopes holding macros (cycles via closures)
  const Value* block_input_ = nullptr;  // body text fed to a {% filter %} chain
  std::vector<std::shared_ptr<NamespaceObj>> namespaces_;  // cleared after render: breaks cycles

  friend Value make_namespace(Interpreter&, CallArgs&);
  friend struct NestingGuard;
};

// Globals every template sees: range, namespace, dict, raise_exception, strftime_now, ...
void install_globals(Scope& globals);

// Methods of str / list / dict values reached through attribute access (`s.strip`).
std::optional<Value> builtin_method(Interpreter& interp, const Value& obj, const std::string& name);

}  // namespace lmserve::chat::jinja
