#include "chat/jinja/parser.h"

#include <initializer_list>
#include <set>

#include "chat/jinja/errors.h"
#include "chat/jinja/lexer.h"

namespace lmserve::chat::jinja {

namespace {

// Deeper nesting than this is refused so hostile sources cannot overflow the stack.
constexpr int kMaxParseDepth = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse({});
    if (cur().type != TokenType::kEof) fail("unexpected '" + describe(cur()) + "'");
    return body;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxParseDepth) p_.fail("template nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(std::size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  [[noreturn]] void fail(const std::string& msg) const {
    throw TemplateSyntaxError(cur().line, msg);
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kEof:
        return "end of template";
      case TokenType::kBlockBegin:
        return "begin of statement block";
      case TokenType::kBlockEnd:
        return "end of statement block";
      case TokenType::kVariableBegin:
        return "begin of print statement";
      case TokenType::kVariableEnd:
        return "end of print statement";
      case TokenType::kData:
        return "template data";
      default:
        return t.value;
    }
  }

  bool is_op(std::string_view op) const {
    return cur().type == TokenType::kOperator && cur().value == op;
  }
  bool is_name(std::string_view name) const {
    return cur().type == TokenType::kName && cur().value == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "', got '" + describe(cur()) + "'");
  }
  void expect_name(std::string_view name) {
    if (!skip_name(name))
      fail("expected '" + std::string(name) + "', got '" + describe(cur()) + "'");
  }
  std::string expect_identifier() {
    if (cur().type != TokenType::kName) fail("expected name, got '" + describe(cur()) + "'");
    return next().value;
  }
  void expect(TokenType type) {
    if (cur().type != type) fail("unexpected '" + describe(cur()) + "'");
    next();
  }

  // Parses until a block tag whose first name is one of `ends`; stops positioned on that name.
  Body subparse(std::initializer_list<std::string_view> ends) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case TokenType::kEof:
          if (ends.size() != 0) {
            std::string list;
            for (auto e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
            fail("Unexpected end of template. Jinja was looking for the following tags: " + list +
                 ".");
          }
          return body;
        case TokenType::kData:
          body.push_back(std::make_unique<DataStmt>(t.line, t.value));
          next();
          break;
        case TokenType::kVariableBegin: {
          int line = t.line;
          next();
          ExprPtr e = parse_tuple(true, {}, false);
          expect(TokenType::kVariableEnd);
          body.push_back(std::make_unique<OutputStmt>(line, std::move(e)));
          break;
        }
        case TokenType::kBlockBegin: {
          next();
          if (cur().type == TokenType::kName) {
            for (auto e : ends) {
              if (cur().value == e) return body;
            }
          }
          StmtPtr s = parse_statement();
          if (s) body.push_back(std::move(s));
          expect(TokenType::kBlockEnd);
          break;
        }
        default:
          fail("unexpected '" + describe(t) + "'");
      }
    }
  }

  // After the opening tag's name and arguments: `%}` body up to one of `ends`.
  Body parse_statements(std::initializer_list<std::string_view> ends, bool drop_needle) {
    expect(TokenType::kBlockEnd);
    Body body = subparse(ends);
    if (cur().type == TokenType::kEof) fail("unexpected end of template");
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != TokenType::kName) fail("tag name expected");
    int line = t.line;
    std::string name = t.value;
    if (name == "for") return parse_for();
    if (name == "if") return parse_if();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "call") return parse_call_block();
    if (name == "filter") return parse_filter_block();
    if (name == "with") return parse_with();
    if (name == "generation") {
      next();
      auto s = std::make_unique<BlockStmt>(line);
      s->body = parse_statements({"endgeneration"}, true);
      return s;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail("'" + name + "' outside of a loop");
      next();
      return std::make_unique<LoopControlStmt>(
          name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, line);
    }
    static const std::set<std::string> kUnsupported = {"extends", "include", "import",    "from",
                                                       "block",   "do",      "autoescape"};
    if (kUnsupported.count(name)) fail("tag '" + name + "' is not supported");
    fail("Encountered unknown tag '" + name + "'.");
  }

  Target parse_target(bool with_namespace, std::string_view end_name) {
    Target target;
    if (with_namespace && cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
        peek().value == ".") {
      target.names.push_back(next().value);
      next();
      target.attr = expect_identifier();
      return target;
    }
    bool paren = skip_op("(");
    while (true) {
      target.names.push_back(expect_identifier());
      if (!skip_op(",")) break;
      target.tuple = true;
      if ((paren && is_op(")")) || is_name(end_name) || is_op("=")) break;
    }
    if (paren) {
      expect_op(")");
      target.tuple = target.tuple || target.names.size() > 1;
    }
    for (const auto& n : target.names) {
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" ||
          n == "None") {
        fail("can't assign to constant '" + n + "'");
      }
    }
    return target;
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<ForStmt>(next().line);
    s->target = parse_target(false, "in");
    expect_name("in");
    s->iter = parse_tuple(false, {"recursive"}, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().value == "else") {
      int saved = loop_depth_;
      loop_depth_ = 0;  // `else` of a for is outside the loop
      s->else_body = parse_statements({"endfor"}, true);
      loop_depth_ = saved;
    }
    return s;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<IfStmt>(next().line);
    ExprPtr cond = parse_tuple(false, {}, false);
    while (true) {
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(cond), std::move(body));
      const std::string& kw = next().value;
      if (kw == "elif") {
        cond = parse_tuple(false, {}, false);
        continue;
      }
      if (kw == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr parse_set() {
    int line = next().line;
    Target target = parse_target(true, "");
    if (skip_op("=")) {
      auto s = std::make_unique<SetStmt>(line);
      s->target = std::move(target);
      s->value = parse_tuple(true, {}, false);
      return s;
    }
    auto s = std::make_unique<SetBlockStmt>(line);
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  MacroParams parse_signature() {
    MacroParams params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.names.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_identifier();
      ExprPtr def;
      if (skip_op("=")) {
        def = parse_expression(true);
      } else if (!params.defaults.empty() && params.defaults.back()) {
        fail("non-default argument follows default argument");
      }
      params.names.push_back(std::move(name));
      params.defaults.push_back(std::move(def));
    }
    expect_op(")");
    return params;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<MacroStmt>(next().line);
    s->name = expect_identifier();
    s->params = parse_signature();
    referenced_.emplace_back();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved;
    auto names = std::move(referenced_.back());
    referenced_.pop_back();
    s->uses_varargs = names.count("varargs") != 0;
    s->uses_kwargs = names.count("kwargs") != 0;
    s->uses_caller = names.count("caller") != 0;
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<CallBlockStmt>(next().line);
    if (is_op("(")) s->params = parse_signature();
    s->call = parse_expression(true);
    if (s->call->kind != Expr::Kind::kCall) fail("expected call");
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endcall"}, true);
    loop_depth_ = saved;
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<FilterBlockStmt>(next().line);
    s->filter = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<WithStmt>(next().line);
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      Target t = parse_target(false, "");
      expect_op("=");
      s->assignments.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  // ---- expressions ----

  bool is_tuple_end(std::initializer_list<std::string_view> extra) const {
    if (cur().type == TokenType::kVariableEnd || cur().type == TokenType::kBlockEnd ||
        cur().type == TokenType::kEof || is_op(")")) {
      return true;
    }
    for (auto e : extra) {
      if (is_name(e)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra,
                      bool explicit_parens) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      items.push_back(with_condexpr ? parse_expression(true) : parse_or());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto t = std::make_unique<ListExpr>(line, true);
    t->items = std::move(items);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    if (!with_condexpr) return parse_or();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      auto c = std::make_unique<CondExpr>(next().line);
      c->then = std::move(expr);
      c->cond = parse_or();
      if (skip_name("else")) c->otherwise = parse_expression(true);
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, "or", std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, "and", std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      int line = next().line;
      return std::make_unique<UnaryExpr>(line, "not", parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = next().value;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == TokenType::kName && peek().value == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = std::make_unique<CompareExpr>(line);
        cmp->first = std::move(first);
      }
      cmp->rest.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return first;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      std::string op = t.value;
      left = std::make_unique<BinaryExpr>(t.line, op, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, "~", std::move(left), parse_math2());
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      std::string op = t.value;
      left = std::make_unique<BinaryExpr>(t.line, op, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, "**", std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      std::string op = t.value;
      node = std::make_unique<UnaryExpr>(t.line, op, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token& t = cur();
    int line = t.line;
    switch (t.type) {
      case TokenType::kName: {
        const std::string& n = t.value;
        if (n == "true" || n == "True") {
          next();
          return std::make_unique<ConstExpr>(line, Value::boolean(true));
        }
        if (n == "false" || n == "False") {
          next();
          return std::make_unique<ConstExpr>(line, Value::boolean(false));
        }
        if (n == "none" || n == "None") {
          next();
          return std::make_unique<ConstExpr>(line, Value::none());
        }
        for (auto& set : referenced_) set.insert(n);
        auto e = std::make_unique<NameExpr>(line, n);
        next();
        return e;
      }
      case TokenType::kString: {
        std::string s = next().value;
        while (cur().type == TokenType::kString) s += next().value;
        return std::make_unique<ConstExpr>(line, Value::string(std::move(s)));
      }
      case TokenType::kInteger:
        return std::make_unique<ConstExpr>(line, Value::integer(next().int_value));
      case TokenType::kFloat:
        return std::make_unique<ConstExpr>(line, Value::number(next().float_value));
      case TokenType::kOperator:
        if (t.value == "(") {
          next();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.value == "[") {
          next();
          auto l = std::make_unique<ListExpr>(line, false);
          while (!is_op("]")) {
            if (!l->items.empty()) expect_op(",");
            if (is_op("]")) break;
            l->items.push_back(parse_expression(true));
          }
          expect_op("]");
          return l;
        }
        if (t.value == "{") {
          next();
          auto d = std::make_unique<DictExpr>(line);
          while (!is_op("}")) {
            if (!d->items.empty()) expect_op(",");
            if (is_op("}")) break;
            ExprPtr k = parse_expression(true);
            expect_op(":");
            d->items.emplace_back(std::move(k), parse_expression(true));
          }
          expect_op("}");
          return d;
        }
        break;
      default:
        break;
    }
    fail("unexpected '" + describe(t) + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        int line = next().line;
        if (cur().type == TokenType::kName) {
          node = std::make_unique<AttrExpr>(line, std::move(node), next().value);
        } else if (cur().type == TokenType::kInteger) {
          auto idx = std::make_unique<ConstExpr>(line, Value::integer(next().int_value));
          node = std::make_unique<ItemExpr>(line, std::move(node), std::move(idx));
        } else {
          fail("expected name or number");
        }
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        auto c = std::make_unique<CallExpr>(cur().line);
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    int line = next().line;  // '['
    ExprPtr parts[3];
    int colons = 0;
    bool is_slice = false;
    std::vector<ExprPtr> tuple_items;
    bool is_tuple = false;
    while (true) {
      if (is_op(":")) {
        next();
        is_slice = true;
        if (++colons > 2) fail("invalid slice");
        continue;
      }
      if (is_op("]")) break;
      if (is_op(",")) {
        if (is_slice) fail("tuple slices are not supported");
        if (!parts[0]) fail("expected subscript expression before ','");
        next();
        is_tuple = true;
        tuple_items.push_back(std::move(parts[0]));
        continue;
      }
      if (parts[colons]) fail("expected ']'");
      parts[colons] = parse_expression(true);
    }
    expect_op("]");
    if (is_slice) {
      auto s = std::make_unique<SliceExpr>(line);
      s->obj = std::move(obj);
      s->start = std::move(parts[0]);
      s->stop = std::move(parts[1]);
      s->step = std::move(parts[2]);
      return s;
    }
    if (is_tuple) {
      if (parts[0]) tuple_items.push_back(std::move(parts[0]));
      auto t = std::make_unique<ListExpr>(line, true);
      t->items = std::move(tuple_items);
      return std::make_unique<ItemExpr>(line, std::move(obj), std::move(t));
    }
    if (!parts[0]) fail("expected subscript expression");
    return std::make_unique<ItemExpr>(line, std::move(obj), std::move(parts[0]));
  }

  ArgsExpr parse_call_args() {
    ArgsExpr a;
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*")) {
        next();
        a.dyn_args = parse_expression(true);
      } else if (is_op("**")) {
        next();
        a.dyn_kwargs = parse_expression(true);
      } else if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
                 peek().value == "=") {
        std::string key = next().value;
        next();
        a.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!a.kwargs.empty() || a.dyn_args || a.dyn_kwargs)
          fail("invalid syntax for function call expression");
        a.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
    return a;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      auto f = std::make_unique<FilterExpr>(cur().line);
      f->name = expect_identifier();
      while (is_op(".")) {
        next();
        f->name.push_back('.');
        f->name.append(expect_identifier());
      }
      if (is_op("(")) f->args = parse_call_args();
      f->operand = std::move(node);
      node = std::move(f);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    auto t = std::make_unique<TestExpr>(next().line);  // 'is'
    if (skip_name("not")) t->negated = true;
    t->name = expect_identifier();
    while (is_op(".")) {
      next();
      t->name.push_back('.');
      t->name.append(expect_identifier());
    }
    const Token& c = cur();
    bool arg_start = c.type == TokenType::kName || c.type == TokenType::kString ||
                     c.type == TokenType::kInteger || c.type == TokenType::kFloat ||
                     (c.type == TokenType::kOperator && (c.value == "[" || c.value == "{"));
    if (is_op("(")) {
      t->args = parse_call_args();
    } else if (arg_start && !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      ExprPtr arg = parse_postfix(parse_primary());
      t->args.args.push_back(std::move(arg));
    }
    t->operand = std::move(node);
    return t;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        auto c = std::make_unique<CallExpr>(cur().line);
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::set<std::string>> referenced_;  // names used inside open macro bodies
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse(); }

}  // namespace lmserve::chat::jinja
