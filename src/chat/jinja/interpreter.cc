#include <algorithm>
#include <cmath>
#include <limits>

#include "chat/jinja/pystr.h"
#include "chat/jinja/runtime.h"

namespace lmserve::chat::jinja {

namespace {

[[noreturn]] void type_error(const std::string& msg) {
  throw TemplateRenderError(ErrorKind::kType, msg);
}

std::string unsupported(std::string_view op, const Value& a, const Value& b) {
  return "unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) + "' and '" +
         type_name(b) + "'";
}

bool is_intlike(const Value& v) { return v.is_int() || v.is_bool(); }

void check_overflow(bool overflow) {
  if (overflow) throw TemplateRenderError(ErrorKind::kOverflow, "integer overflow");
}

std::int64_t floordiv(std::int64_t a, std::int64_t b) {
  if (a == std::numeric_limits<std::int64_t>::min() && b == -1) {
    throw TemplateRenderError(ErrorKind::kOverflow, "integer overflow");
  }
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::int64_t pymod(std::int64_t a, std::int64_t b) {
  if (b == -1) return 0;
  std::int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double pyfmod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  if (r == 0) r = std::copysign(0.0, b);
  return r;
}

// Python's printf-style `str % args` for the conversions templates plausibly use.
std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> vals;
  const DictObj* mapping = nullptr;
  if (args.is_tuple()) {
    vals = args.as_list();
  } else if (args.is_dict()) {
    mapping = &args.as_dict();
  } else {
    vals.push_back(args);
  }
  std::size_t next = 0;
  std::string out;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) throw TemplateRenderError(ErrorKind::kValue, "incomplete format");
    const Value* v = nullptr;
    if (fmt[i] == '(' && mapping) {
      std::size_t close = fmt.find(')', i);
      if (close == std::string::npos)
        throw TemplateRenderError(ErrorKind::kValue, "incomplete format key");
      v = mapping->find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!v) throw TemplateRenderError(ErrorKind::kType, "format key not found");
      i = close + 1;
    }
    std::string spec;
    while (i < fmt.size() &&
           std::string_view("-+ #0123456789.").find(fmt[i]) != std::string_view::npos) {
      spec.push_back(fmt[i++]);
    }
    if (i >= fmt.size()) throw TemplateRenderError(ErrorKind::kValue, "incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!v) {
      if (next >= vals.size()) type_error("not enough arguments for format string");
      v = &vals[next++];
    }
    char buf[512];
    std::string cspec = "%" + spec;
    switch (conv) {
      case 's':
        out += to_str(*v);
        break;
      case 'r':
      case 'a':
        out += to_repr(*v);
        break;
      case 'd':
      case 'i':
      case 'u':
        if (!v->is_number())
          type_error("%d format: a real number is required, not " + type_name(*v));
        std::snprintf(
            buf, sizeof buf, (cspec + "lld").c_str(),
            static_cast<long long>(v->is_float() ? std::trunc(v->as_float()) : v->as_int()));
        out += buf;
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
        if (!v->is_number()) type_error("must be real number, not " + type_name(*v));
        std::snprintf(buf, sizeof buf, (cspec + conv).c_str(), v->as_float());
        out += buf;
        break;
      case 'x':
      case 'X':
      case 'o':
        if (!is_intlike(*v)) type_error("%x format: an integer is required, not " + type_name(*v));
        std::snprintf(buf, sizeof buf, (cspec + "ll" + conv).c_str(),
                      static_cast<long long>(v->as_int()));
        out += buf;
        break;
      default:
        throw TemplateRenderError(ErrorKind::kValue,
                                  std::string("unsupported format character '") + conv + "'");
    }
  }
  if (!mapping && next < vals.size())
    type_error("not all arguments converted during string formatting");
  return out;
}

}  // namespace

Value make_builtin(std::string name, BuiltinFn::Fn fn) {
  return Value::object(std::make_shared<BuiltinFn>(std::move(name), std::move(fn)));
}

std::vector<std::optional<Value>> bind_args(const CallArgs& call, std::string_view func,
                                            std::initializer_list<std::string_view> names,
                                            std::size_t required) {
  std::vector<std::optional<Value>> out(names.size());
  if (call.args.size() > names.size()) {
    type_error(std::string(func) + "() takes at most " + std::to_string(names.size()) +
               " argument(s) (" + std::to_string(call.args.size()) + " given)");
  }
  for (std::size_t i = 0; i < call.args.size(); ++i) out[i] = call.args[i];
  for (const auto& [key, val] : call.kwargs) {
    std::size_t idx = 0;
    for (auto n : names) {
      if (n == key) break;
      ++idx;
    }
    if (idx == names.size()) {
      type_error(std::string(func) + "() got an unexpected keyword argument '" + key + "'");
    }
    if (out[idx])
      type_error(std::string(func) + "() got multiple values for argument '" + key + "'");
    out[idx] = val;
  }
  for (std::size_t i = 0; i < required; ++i) {
    if (!out[i]) {
      type_error(std::string(func) + "() missing required argument '" +
                 std::string(*(names.begin() + i)) + "'");
    }
  }
  return out;
}

// ---------------------------------------------------------------- loop object

std::string LoopObj::repr() const {
  return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_->size()) + ">";
}

std::optional<Value> LoopObj::get_attr(const std::string& name) const {
  auto n = static_cast<std::int64_t>(items_->size());
  auto i = static_cast<std::int64_t>(index_);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(1);
  if (name == "depth0") return Value::integer(0);
  if (name == "previtem") {
    if (i == 0) return Value::undefined("there is no previous item");
    return (*items_)[index_ - 1];
  }
  if (name == "nextitem") {
    if (i + 1 >= n) return Value::undefined("there is no next item");
    return (*items_)[index_ + 1];
  }
  if (name == "cycle") {
    std::size_t idx = index_;
    return make_builtin("cycle", [idx](Interpreter&, CallArgs& a) {
      if (a.args.empty()) type_error("no items for cycling given");
      return a.args[idx % a.args.size()];
    });
  }
  if (name == "changed") {
    auto self = std::const_pointer_cast<LoopObj>(shared_from_this());
    return make_builtin("changed", [self](Interpreter&, CallArgs& a) {
      Value v = Value::list(a.args);
      if (self->last_changed_ && equals(*self->last_changed_, v)) return Value::boolean(false);
      self->last_changed_ = v;
      return Value::boolean(true);
    });
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- macros

Value MacroObj::call(Interpreter& interp, CallArgs& args) {
  return interp.call_macro(*def_, closure_, args);
}

Value CallerObj::call(Interpreter& interp, CallArgs& args) {
  return interp.call_caller(*def_, scope_, args);
}

namespace {

struct DepthGuard {
  DepthGuard(int& depth, int limit) : depth_(depth) {
    if (++depth_ > limit) {
      --depth_;
      throw TemplateRenderError(
          ErrorKind::kLimit, "maximum macro call depth exceeded (" + std::to_string(limit) + ")");
    }
  }
  ~DepthGuard() { --depth_; }
  int& depth_;
};

}  // namespace

// exec() and eval() recurse on the native stack; this bounds how deep a template (nested
// blocks inside recursive macros inside nested expressions) can drive them.
struct NestingGuard {
  static constexpr int kMaxNesting = 3000;
  explicit NestingGuard(Interpreter& in) : in_(in) {
    if (++in_.nesting_ > kMaxNesting) {
      --in_.nesting_;
      throw TemplateRenderError(ErrorKind::kLimit, "template evaluation nested too deeply");
    }
  }
  ~NestingGuard() { --in_.nesting_; }
  Interpreter& in_;
};

Value Interpreter::call_macro(const MacroStmt& def, const ScopePtr& closure, CallArgs& args) {
  DepthGuard guard(call_depth_, options_.max_call_depth);
  charge();
  auto scope = std::make_shared<Scope>();
  scope->parent = closure;
  const auto& names = def.params.names;
  std::vector<bool> bound(names.size(), false);
  std::vector<Value> extra_pos;
  for (std::size_t i = 0; i < args.args.size(); ++i) {
    if (i < names.size()) {
      scope->vars[names[i]] = args.args[i];
      bound[i] = true;
    } else {
      extra_pos.push_back(args.args[i]);
    }
  }
  auto extra_kw = std::make_shared<DictObj>();
  bool has_caller = false;
  for (const auto& [key, val] : args.kwargs) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it != names.end()) {
      std::size_t idx = static_cast<std::size_t>(it - names.begin());
      if (bound[idx]) {
        type_error("macro '" + def.name + "' got multiple values for argument '" + key + "'");
      }
      scope->vars[key] = val;
      bound[idx] = true;
    } else if (key == "caller") {
      scope->vars["caller"] = val;
      has_caller = true;
    } else if (def.uses_kwargs) {
      extra_kw->set(Value::string(key), val);
    } else {
      type_error("macro '" + def.name + "' takes no keyword argument '" + key + "'");
    }
  }
  if (!extra_pos.empty() && !def.uses_varargs) {
    type_error("macro '" + def.name + "' takes not more than " + std::to_string(names.size()) +
               " argument(s)");
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (bound[i]) continue;
    if (def.params.defaults[i]) {
      // Defaults are evaluated at call time, seeing the arguments bound before them.
      scope->vars[names[i]] = eval(*def.params.defaults[i], scope);
    } else {
      scope->vars[names[i]] = Value::undefined("parameter '" + names[i] + "' was not provided");
    }
  }
  scope->vars["varargs"] = Value::list(std::move(extra_pos), true);
  scope->vars["kwargs"] = Value::dict(extra_kw);
  if (!has_caller && def.uses_caller && !scope->vars.count("caller")) {
    scope->vars["caller"] = Value::undefined("No caller defined");
  }
  std::string out;
  exec(def.body, scope, out);
  return Value::string(std::move(out));
}

Value Interpreter::call_caller(const CallBlockStmt& def, const ScopePtr& parent, CallArgs& args) {
  DepthGuard guard(call_depth_, options_.max_call_depth);
  charge();
  auto scope = std::make_shared<Scope>();
  scope->parent = parent;
  const auto& names = def.params.names;
  if (args.args.size() > names.size())
    type_error("caller() takes not more than " + std::to_string(names.size()) + " argument(s)");
  std::vector<bool> bound(names.size(), false);
  for (std::size_t i = 0; i < args.args.size(); ++i) {
    scope->vars[names[i]] = args.args[i];
    bound[i] = true;
  }
  for (const auto& [key, val] : args.kwargs) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) type_error("caller() takes no keyword argument '" + key + "'");
    scope->vars[key] = val;
    bound[static_cast<std::size_t>(it - names.begin())] = true;
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (bound[i]) continue;
    scope->vars[names[i]] = def.params.defaults[i]
                                ? eval(*def.params.defaults[i], scope)
                                : Value::undefined("parameter '" + names[i] + "' was not provided");
  }
  std::string out;
  exec(def.body, scope, out);
  return Value::string(std::move(out));
}

// ---------------------------------------------------------------- limits

void Interpreter::charge(std::uint64_t steps) {
  steps_ += steps;
  if (steps_ > options_.max_steps) {
    throw TemplateRenderError(ErrorKind::kLimit, "template exceeded its step budget (" +
                                                     std::to_string(options_.max_steps) + ")");
  }
}

void Interpreter::check_size(std::size_t bytes) const {
  if (bytes > options_.max_output_bytes) {
    throw TemplateRenderError(
        ErrorKind::kLimit,
        "template output exceeds " + std::to_string(options_.max_output_bytes) + " bytes");
  }
}

void Interpreter::append(std::string& out, std::string_view text) {
  check_size(out.size() + text.size());
  out.append(text);
}

// ---------------------------------------------------------------- statements

std::string Interpreter::render(const Body& body, ScopePtr globals) {
  auto root = std::make_shared<Scope>();
  root->parent = std::move(globals);
  std::string out;
  // Macros capture the scope that holds them and namespaces can hold anything: break those
  // reference cycles when the render ends, however it ends.
  struct Cleanup {
    Interpreter& self;
    Scope& root;
    ~Cleanup() {
      for (auto& ns : self.namespaces_) {
        ns->attrs->items.clear();
        ns->attrs->index.clear();
      }
      self.namespaces_.clear();
      for (auto& scope : self.macro_scopes_) scope->vars.clear();
      self.macro_scopes_.clear();
      root.vars.clear();
    }
  } cleanup{*this, *root};
  exec(body, root, out);
  return out;
}

void Interpreter::assign(const Target& target, const Value& v, const ScopePtr& scope) {
  if (!target.attr.empty()) {
    const Value* ns = scope->lookup(target.names[0]);
    auto* obj = ns && ns->is_object() ? dynamic_cast<NamespaceObj*>(ns->as_object()) : nullptr;
    if (!obj) {
      throw TemplateRenderError(ErrorKind::kRuntime,
                                "cannot assign attribute on non-namespace object");
    }
    obj->attrs->set(Value::string(target.attr), v);
    return;
  }
  if (!target.tuple) {
    scope->vars[target.names[0]] = v;
    return;
  }
  std::vector<Value> items = iterate(v);
  if (v.is_undefined()) v.fail_undefined();
  if (items.size() != target.names.size()) {
    if (items.size() > target.names.size()) {
      throw TemplateRenderError(ErrorKind::kValue, "too many values to unpack (expected " +
                                                       std::to_string(target.names.size()) + ")");
    }
    throw TemplateRenderError(ErrorKind::kValue, "not enough values to unpack (expected " +
                                                     std::to_string(target.names.size()) +
                                                     ", got " + std::to_string(items.size()) + ")");
  }
  for (std::size_t i = 0; i < items.size(); ++i) scope->vars[target.names[i]] = items[i];
}

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  NestingGuard guard(*this);
  for (const auto& stmt : body) {
    switch (stmt->kind) {
      case Stmt::Kind::kData:
        append(out, static_cast<const DataStmt&>(*stmt).text);
        break;
      case Stmt::Kind::kOutput: {
        Value v = eval(*static_cast<const OutputStmt&>(*stmt).expr, scope);
        if (v.is_string()) {
          append(out, v.as_string());
        } else {
          append(out, to_str(v));
        }
        break;
      }
      case Stmt::Kind::kIf: {
        const auto& s = static_cast<const IfStmt&>(*stmt);
        const Body* chosen = &s.else_body;
        for (const auto& [cond, branch] : s.branches) {
          if (truthy(eval(*cond, scope))) {
            chosen = &branch;
            break;
          }
        }
        Flow f = exec(*chosen, scope, out);
        if (f != Flow::kNormal) return f;
        break;
      }
      case Stmt::Kind::kFor:
        exec_for(static_cast<const ForStmt&>(*stmt), scope, out);
        break;
      case Stmt::Kind::kSet: {
        const auto& s = static_cast<const SetStmt&>(*stmt);
        assign(s.target, eval(*s.value, scope), scope);
        break;
      }
      case Stmt::Kind::kSetBlock: {
        const auto& s = static_cast<const SetBlockStmt&>(*stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        std::string text;
        exec(s.body, inner, text);
        Value v = Value::string(std::move(text));
        if (s.filter) {
          const Value* saved = block_input_;
          block_input_ = &v;
          Value filtered = eval(*s.filter, scope);
          block_input_ = saved;
          v = filtered;
        }
        assign(s.target, v, scope);
        break;
      }
      case Stmt::Kind::kMacro: {
        const auto& s = static_cast<const MacroStmt&>(*stmt);
        scope->vars[s.name] = Value::object(std::make_shared<MacroObj>(&s, scope));
        macro_scopes_.push_back(scope);
        break;
      }
      case Stmt::Kind::kCallBlock: {
        const auto& s = static_cast<const CallBlockStmt&>(*stmt);
        const auto& call = static_cast<const CallExpr&>(*s.call);
        Value callee = eval(*call.callee, scope);
        CallArgs args = eval_args(call.args, scope);
        args.kwargs.emplace_back("caller", Value::object(std::make_shared<CallerObj>(&s, scope)));
        append(out, to_str(this->call(callee, args)));
        break;
      }
      case Stmt::Kind::kFilterBlock: {
        const auto& s = static_cast<const FilterBlockStmt&>(*stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        std::string text;
        exec(s.body, inner, text);
        Value v = Value::string(std::move(text));
        const Value* saved = block_input_;
        block_input_ = &v;
        Value filtered = eval(*s.filter, scope);
        block_input_ = saved;
        append(out, to_str(filtered));
        break;
      }
      case Stmt::Kind::kWith: {
        const auto& s = static_cast<const WithStmt&>(*stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (const auto& [target, expr] : s.assignments) assign(target, eval(*expr, scope), inner);
        Flow f = exec(s.body, inner, out);
        if (f != Flow::kNormal) return f;
        break;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kBlock: {
        Flow f = exec(static_cast<const BlockStmt&>(*stmt).body, scope, out);
        if (f != Flow::kNormal) return f;
        break;
      }
    }
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out) {
  Value seq = eval(*s.iter, scope);
  std::vector<Value> all = iterate(seq);
  auto items = std::make_shared<std::vector<Value>>();
  if (s.filter) {
    for (auto& item : all) {
      charge();
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(s.target, item, probe);
      if (truthy(eval(*s.filter, probe))) items->push_back(std::move(item));
    }
  } else {
    *items = std::move(all);
  }
  if (items->empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    exec(s.else_body, inner, out);
    return Flow::kNormal;
  }
  auto loop = std::make_shared<LoopObj>(items);
  Value loop_value = Value::object(loop);
  for (std::size_t i = 0; i < items->size(); ++i) {
    charge();
    // Each iteration gets a fresh scope: `set` inside a loop body never leaks (Jinja2).
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    loop->set_index(i);
    inner->vars["loop"] = loop_value;
    assign(s.target, (*items)[i], inner);
    Flow f = exec(s.body, inner, out);
    if (f == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

// ---------------------------------------------------------------- expressions

CallArgs Interpreter::eval_args(const ArgsExpr& a, const ScopePtr& scope) {
  CallArgs out;
  for (const auto& e : a.args) out.args.push_back(eval(*e, scope));
  if (a.dyn_args) {
    for (auto& v : iterate(eval(*a.dyn_args, scope))) out.args.push_back(std::move(v));
  }
  for (const auto& [k, e] : a.kwargs) out.kwargs.emplace_back(k, eval(*e, scope));
  if (a.dyn_kwargs) {
    Value d = eval(*a.dyn_kwargs, scope);
    if (!d.is_dict()) type_error("argument after ** must be a mapping, not " + type_name(d));
    for (const auto& [k, v] : d.as_dict().items) {
      if (!k.is_string()) type_error("keywords must be strings");
      out.kwargs.emplace_back(k.as_string(), v);
    }
  }
  return out;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) callee.fail_undefined();
  if (!callee.is_object() || !callee.as_object()->callable()) {
    type_error("'" + type_name(callee) + "' object is not callable");
  }
  return callee.as_object()->call(*this, args);
}

Value Interpreter::eval_filter(const FilterExpr& f, const ScopePtr& scope) {
  Value input;
  if (f.operand) {
    input = eval(*f.operand, scope);
  } else if (block_input_) {
    input = *block_input_;
  }
  CallArgs args = eval_args(f.args, scope);
  return apply_filter(f.name, input, args);
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  NestingGuard guard(*this);
  switch (e.kind) {
    case Expr::Kind::kConst:
      return static_cast<const ConstExpr&>(e).value;
    case Expr::Kind::kName: {
      const auto& n = static_cast<const NameExpr&>(e);
      if (const Value* v = scope->lookup(n.name)) return *v;
      return undefined_name(n.name);
    }
    case Expr::Kind::kList: {
      const auto& l = static_cast<const ListExpr&>(e);
      std::vector<Value> items;
      items.reserve(l.items.size());
      for (const auto& item : l.items) items.push_back(eval(*item, scope));
      return Value::list(std::move(items), l.tuple);
    }
    case Expr::Kind::kDict: {
      const auto& d = static_cast<const DictExpr&>(e);
      auto obj = std::make_shared<DictObj>();
      for (const auto& [k, v] : d.items) {
        Value key = eval(*k, scope);
        obj->set(key, eval(*v, scope));
      }
      return Value::dict(std::move(obj));
    }
    case Expr::Kind::kAttr: {
      const auto& a = static_cast<const AttrExpr&>(e);
      return get_attr(eval(*a.obj, scope), a.name);
    }
    case Expr::Kind::kItem: {
      const auto& i = static_cast<const ItemExpr&>(e);
      Value obj = eval(*i.obj, scope);
      return get_item(obj, eval(*i.index, scope));
    }
    case Expr::Kind::kSlice: {
      const auto& s = static_cast<const SliceExpr&>(e);
      Value obj = eval(*s.obj, scope);
      Value start = s.start ? eval(*s.start, scope) : Value::none();
      Value stop = s.stop ? eval(*s.stop, scope) : Value::none();
      Value step = s.step ? eval(*s.step, scope) : Value::none();
      return slice(obj, start, stop, step);
    }
    case Expr::Kind::kCall: {
      const auto& c = static_cast<const CallExpr&>(e);
      Value callee = eval(*c.callee, scope);
      CallArgs args = eval_args(c.args, scope);
      return call(callee, args);
    }
    case Expr::Kind::kFilter:
      return eval_filter(static_cast<const FilterExpr&>(e), scope);
    case Expr::Kind::kTest: {
      const auto& t = static_cast<const TestExpr&>(e);
      Value v = eval(*t.operand, scope);
      CallArgs args = eval_args(t.args, scope);
      bool r = apply_test(t.name, v, args);
      return Value::boolean(t.negated ? !r : r);
    }
    case Expr::Kind::kUnary: {
      const auto& u = static_cast<const UnaryExpr&>(e);
      Value v = eval(*u.operand, scope);
      if (u.op == "not") return Value::boolean(!truthy(v));
      if (v.is_undefined()) v.fail_undefined();
      if (!v.is_number())
        type_error("bad operand type for unary " + u.op + ": '" + type_name(v) + "'");
      if (u.op == "+") return v.is_bool() ? Value::integer(v.as_int()) : v;
      if (v.is_float()) return Value::number(-v.as_float());
      std::int64_t r = 0;
      check_overflow(__builtin_sub_overflow(std::int64_t{0}, v.as_int(), &r));
      return Value::integer(r);
    }
    case Expr::Kind::kBinary: {
      const auto& b = static_cast<const BinaryExpr&>(e);
      if (b.op == "and") {
        Value l = eval(*b.left, scope);
        return truthy(l) ? eval(*b.right, scope) : l;
      }
      if (b.op == "or") {
        Value l = eval(*b.left, scope);
        return truthy(l) ? l : eval(*b.right, scope);
      }
      Value l = eval(*b.left, scope);
      Value r = eval(*b.right, scope);
      return binary(b.op, l, r);
    }
    case Expr::Kind::kCompare: {
      const auto& c = static_cast<const CompareExpr&>(e);
      Value left = eval(*c.first, scope);
      for (const auto& [op, expr] : c.rest) {
        Value right = eval(*expr, scope);
        bool ok;
        if (op == "==") {
          ok = equals(left, right);
        } else if (op == "!=") {
          ok = !equals(left, right);
        } else if (op == "in") {
          ok = contains(right, left);
        } else if (op == "notin") {
          ok = !contains(right, left);
        } else {
          int cmp = compare(left, right, op);
          ok = op == "<" ? cmp < 0 : op == "<=" ? cmp <= 0 : op == ">" ? cmp > 0 : cmp >= 0;
        }
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Kind::kCond: {
      const auto& c = static_cast<const CondExpr&>(e);
      if (truthy(eval(*c.cond, scope))) return eval(*c.then, scope);
      if (c.otherwise) return eval(*c.otherwise, scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(c.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

Value Interpreter::binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a);
    std::string t = to_str(b);
    check_size(s.size() + t.size());
    return Value::string(s + t);
  }
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  bool nums = a.is_number() && b.is_number();
  bool ints = nums && is_intlike(a) && is_intlike(b);
  if (op == "+") {
    if (ints) {
      std::int64_t r = 0;
      check_overflow(__builtin_add_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      check_size(a.as_string().size() + b.as_string().size());
      if (a.is_markup() != b.is_markup()) {
        // Markup + str escapes the plain side (markupsafe), even with autoescape off.
        std::string l = a.is_markup() ? a.as_string() : pystr::html_escape(a.as_string());
        std::string r = b.is_markup() ? b.as_string() : pystr::html_escape(b.as_string());
        return Value::string(l + r, true);
      }
      return Value::string(a.as_string() + b.as_string(), a.is_markup());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.as_list();
      check_size((items.size() + b.as_list().size()) * sizeof(Value));
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(items), a.is_tuple());
    }
    if (a.is_string() && !a.is_markup()) {
      type_error("can only concatenate str (not \"" + type_name(b) + "\") to str");
    }
    if (a.is_list()) {
      type_error("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " +
                 type_name(a));
    }
    type_error(unsupported("+", a, b));
  }
  if (op == "-") {
    if (ints) {
      std::int64_t r = 0;
      check_overflow(__builtin_sub_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_float() - b.as_float());
    type_error(unsupported("-", a, b));
  }
  if (op == "*") {
    if (ints) {
      std::int64_t r = 0;
      check_overflow(__builtin_mul_overflow(a.as_int(), b.as_int(), &r));
      return Value::integer(r);
    }
    if (nums) return Value::number(a.as_float() * b.as_float());
    const Value* seq = (a.is_string() || a.is_list())   ? &a
                       : (b.is_string() || b.is_list()) ? &b
                                                        : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && is_intlike(*count)) {
      std::int64_t n = std::max<std::int64_t>(0, count->as_int());
      if (seq->is_string()) {
        const std::string& s = seq->as_string();
        if (!s.empty() && static_cast<std::uint64_t>(n) > options_.max_output_bytes / s.size()) {
          check_size(options_.max_output_bytes + 1);
        }
        std::string out;
        out.reserve(s.size() * static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) out += s;
        return Value::string(std::move(out), seq->is_markup());
      }
      const auto& items = seq->as_list();
      if (!items.empty() && static_cast<std::uint64_t>(n) >
                                options_.max_output_bytes / (items.size() * sizeof(Value))) {
        check_size(options_.max_output_bytes + 1);
      }
      std::vector<Value> out;
      for (std::int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
      return Value::list(std::move(out), seq->is_tuple());
    }
    if (seq) type_error("can't multiply sequence by non-int of type '" + type_name(*count) + "'");
    type_error(unsupported("*", a, b));
  }
  if (op == "/") {
    if (!nums) type_error(unsupported("/", a, b));
    if (b.as_float() == 0.0)
      throw TemplateRenderError(ErrorKind::kZeroDivision, "division by zero");
    return Value::number(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!nums) type_error(unsupported("//", a, b));
    if (ints) {
      if (b.as_int() == 0) {
        throw TemplateRenderError(ErrorKind::kZeroDivision, "integer division or modulo by zero");
      }
      return Value::integer(floordiv(a.as_int(), b.as_int()));
    }
    if (b.as_float() == 0.0)
      throw TemplateRenderError(ErrorKind::kZeroDivision, "float floor division by zero");
    return Value::number(std::floor(a.as_float() / b.as_float()));
  }
  if (op == "%") {
    if (a.is_string()) {
      std::string s = percent_format(a.as_string(), b);
      return Value::string(std::move(s), a.is_markup());
    }
    if (!nums) type_error(unsupported("%", a, b));
    if (ints) {
      if (b.as_int() == 0) {
        throw TemplateRenderError(ErrorKind::kZeroDivision, "integer division or modulo by zero");
      }
      return Value::integer(pymod(a.as_int(), b.as_int()));
    }
    if (b.as_float() == 0.0) throw TemplateRenderError(ErrorKind::kZeroDivision, "float modulo");
    return Value::number(pyfmod(a.as_float(), b.as_float()));
  }
  if (op == "**") {
    if (!nums) type_error(unsupported("** or pow()", a, b));
    if (ints && b.as_int() >= 0) {
      std::int64_t base = a.as_int(), exp = b.as_int(), result = 1;
      while (exp > 0) {
        if (exp & 1) {
          check_overflow(__builtin_mul_overflow(result, base, &result));
        }
        exp >>= 1;
        if (exp > 0) check_overflow(__builtin_mul_overflow(base, base, &base));
      }
      return Value::integer(result);
    }
    if (a.as_float() == 0.0 && b.as_float() < 0) {
      throw TemplateRenderError(ErrorKind::kZeroDivision,
                                "0.0 cannot be raised to a negative power");
    }
    return Value::number(std::pow(a.as_float(), b.as_float()));
  }
  type_error("unknown operator " + op);
}

// ---------------------------------------------------------------- attribute / item access

namespace {

bool is_unsafe_mutator(const Value& obj, const std::string& name) {
  if (obj.is_list() && !obj.is_tuple()) {
    static const char* kList[] = {"append", "extend",  "insert", "pop",
                                  "remove", "reverse", "sort",   "clear"};
    for (const char* m : kList) {
      if (name == m) return true;
    }
  }
  if (obj.is_dict()) {
    static const char* kDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
    for (const char* m : kDict) {
      if (name == m) return true;
    }
  }
  return false;
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined(
      "access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.",
      ErrorKind::kSecurity);
}

}  // namespace

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return unsafe(obj, name);
  if (obj.is_undefined()) obj.fail_undefined();
  if (is_unsafe_mutator(obj, name)) return unsafe(obj, name);
  if (auto m = builtin_method(*this, obj, name)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(std::string_view(name))) return *v;
  } else if (obj.is_object()) {
    if (auto v = obj.as_object()->get_attr(name)) return *v;
  }
  return undefined_attr(obj, name);
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) obj.fail_undefined();
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && is_intlike(key)) {
    std::int64_t i = key.as_int();
    if (obj.is_list()) {
      auto n = static_cast<std::int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<std::size_t>(i)];
    } else {
      const std::string& s = obj.as_string();
      if (pystr::is_ascii(s)) {
        auto n = static_cast<std::int64_t>(s.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value::string(std::string(1, s[static_cast<std::size_t>(i)]));
      } else {
        std::u32string u = pystr::decode(s);
        auto n = static_cast<std::int64_t>(u.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n)
          return Value::string(pystr::encode(u.substr(static_cast<std::size_t>(i), 1)));
      }
    }
    return undefined_item(obj, key);
  }
  if (key.is_string()) {
    const std::string& name = key.as_string();
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return unsafe(obj, name);
    if (is_unsafe_mutator(obj, name)) return unsafe(obj, name);
    if (auto m = builtin_method(*this, obj, name)) return *m;
    if (obj.is_object()) {
      if (auto v = obj.as_object()->get_attr(name)) return *v;
    }
  }
  return undefined_item(obj, key);
}

Value Interpreter::slice(const Value& obj, const Value& start_v, const Value& stop_v,
                         const Value& step_v) {
  if (obj.is_undefined()) obj.fail_undefined();
  auto as_index = [](const Value& v) -> std::optional<std::int64_t> {
    if (v.is_none()) return std::nullopt;
    if (!is_intlike(v))
      type_error("slice indices must be integers or None or have an __index__ method");
    return v.as_int();
  };
  std::optional<std::int64_t> start = as_index(start_v), stop = as_index(stop_v),
                              step_opt = as_index(step_v);
  std::int64_t step = step_opt.value_or(1);
  if (step == 0) throw TemplateRenderError(ErrorKind::kValue, "slice step cannot be zero");
  if (!obj.is_list() && !obj.is_string()) {
    return Value::undefined("'" + object_type_repr(obj) + "' has no element slice");
  }
  std::u32string u;
  bool ascii = obj.is_string() && pystr::is_ascii(obj.as_string());
  if (obj.is_string() && !ascii) u = pystr::decode(obj.as_string());
  auto len = static_cast<std::int64_t>(obj.is_list() ? obj.as_list().size()
                                                     : (ascii ? obj.as_string().size() : u.size()));
  std::int64_t b, e;
  if (step > 0) {
    b = start.value_or(0);
    e = stop.value_or(len);
    if (b < 0) b = std::max<std::int64_t>(0, b + len);
    if (b > len) b = len;
    if (e < 0) e = std::max<std::int64_t>(0, e + len);
    if (e > len) e = len;
  } else {
    b = start.value_or(len - 1);
    e = stop.value_or(-1 - len);  // "before the beginning"
    if (b < 0) b = std::max<std::int64_t>(-1, b + len);
    if (b >= len) b = len - 1;
    if (stop) {
      if (e < 0) e = std::max<std::int64_t>(-1, e + len);
      if (e >= len) e = len - 1;
    } else {
      e = -1;
    }
  }
  std::vector<std::int64_t> idx;
  if (step > 0) {
    for (std::int64_t i = b; i < e; i += step) idx.push_back(i);
  } else {
    for (std::int64_t i = b; i > e; i += step) idx.push_back(i);
  }
  if (obj.is_list()) {
    std::vector<Value> out;
    out.reserve(idx.size());
    for (auto i : idx) out.push_back(obj.as_list()[static_cast<std::size_t>(i)]);
    return Value::list(std::move(out), obj.is_tuple());
  }
  if (ascii) {
    std::string out;
    out.reserve(idx.size());
    for (auto i : idx) out.push_back(obj.as_string()[static_cast<std::size_t>(i)]);
    return Value::string(std::move(out), obj.is_markup());
  }
  std::u32string out;
  for (auto i : idx) out.push_back(u[static_cast<std::size_t>(i)]);
  return Value::string(pystr::encode(out), obj.is_markup());
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.as_list();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.as_dict().size());
      for (const auto& [k, val] : v.as_dict().items) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = v.as_string();
      if (pystr::is_ascii(s)) {
        for (char c : s) chars.push_back(Value::string(std::string(1, c), v.is_markup()));
      } else {
        for (char32_t cp : pystr::decode(s)) {
          std::string one;
          pystr::append_utf8(one, cp);
          chars.push_back(Value::string(std::move(one), v.is_markup()));
        }
      }
      return chars;
    }
    default:
      type_error("'" + type_name(v) + "' object is not iterable");
  }
}

bool Interpreter::contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        type_error("'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.as_list()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (!hash_key(item)) type_error("unhashable type: '" + type_name(item) + "'");
      return container.as_dict().find(item) != nullptr;
    default:
      type_error("argument of type '" + type_name(container) + "' is not iterable");
  }
}

}  // namespace lmserve::chat::jinja
