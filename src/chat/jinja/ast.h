// Syntax tree of a parsed template: expressions and statements as Jinja2's parser builds
// them, evaluated directly by the interpreter.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace lmserve::chat::jinja {

struct Expr {
  enum class Kind {
    kConst,
    kName,
    kList,
    kDict,
    kAttr,
    kItem,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kUnary,
    kBinary,
    kCompare,
    kCond
  };
  Expr(Kind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
  Kind kind;
  int line;
};
using ExprPtr = std::unique_ptr<Expr>;

struct ArgsExpr {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
};

struct ConstExpr : Expr {
  ConstExpr(int l, Value v) : Expr(Kind::kConst, l), value(std::move(v)) {}
  Value value;
};
struct NameExpr : Expr {
  NameExpr(int l, std::string n) : Expr(Kind::kName, l), name(std::move(n)) {}
  std::string name;
};
struct ListExpr : Expr {
  ListExpr(int l, bool t) : Expr(Kind::kList, l), tuple(t) {}
  std::vector<ExprPtr> items;
  bool tuple;
};
struct DictExpr : Expr {
  explicit DictExpr(int l) : Expr(Kind::kDict, l) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};
struct AttrExpr : Expr {
  AttrExpr(int l, ExprPtr o, std::string n)
      : Expr(Kind::kAttr, l), obj(std::move(o)), name(std::move(n)) {}
  ExprPtr obj;
  std::string name;
};
struct ItemExpr : Expr {
  ItemExpr(int l, ExprPtr o, ExprPtr i)
      : Expr(Kind::kItem, l), obj(std::move(o)), index(std::move(i)) {}
  ExprPtr obj;
  ExprPtr index;
};
struct SliceExpr : Expr {
  explicit SliceExpr(int l) : Expr(Kind::kSlice, l) {}
  ExprPtr obj, start, stop, step;
};
struct CallExpr : Expr {
  explicit CallExpr(int l) : Expr(Kind::kCall, l) {}
  ExprPtr callee;
  ArgsExpr args;
};
struct FilterExpr : Expr {
  explicit FilterExpr(int l) : Expr(Kind::kFilter, l) {}
  ExprPtr operand;  // null inside {% filter %} / {% set x | f %}: the rendered body
  std::string name;
  ArgsExpr args;
};
struct TestExpr : Expr {
  explicit TestExpr(int l) : Expr(Kind::kTest, l) {}
  ExprPtr operand;
  std::string name;
  ArgsExpr args;
  bool negated = false;
};
struct UnaryExpr : Expr {
  UnaryExpr(int l, std::string o, ExprPtr e)
      : Expr(Kind::kUnary, l), op(std::move(o)), operand(std::move(e)) {}
  std::string op;  // "not", "-", "+"
  ExprPtr operand;
};
struct BinaryExpr : Expr {
  BinaryExpr(int l, std::string o, ExprPtr a, ExprPtr b)
      : Expr(Kind::kBinary, l), op(std::move(o)), left(std::move(a)), right(std::move(b)) {}
  std::string op;  // + - * / // % ** ~ and or
  ExprPtr left, right;
};
struct CompareExpr : Expr {
  explicit CompareExpr(int l) : Expr(Kind::kCompare, l) {}
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;  // == != < <= > >= in notin
};
struct CondExpr : Expr {
  explicit CondExpr(int l) : Expr(Kind::kCond, l) {}
  ExprPtr cond, then, otherwise;  // otherwise may be null (-> undefined)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kData,
    kOutput,
    kIf,
    kFor,
    kSet,
    kSetBlock,
    kMacro,
    kCallBlock,
    kFilterBlock,
    kWith,
    kBreak,
    kContinue,
    kBlock
  };
  Stmt(Kind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
  Kind kind;
  int line;
};

// Assignment target: a name, a tuple of names, or `ns.attr`.
struct Target {
  std::vector<std::string> names;
  bool tuple = false;
  std::string attr;  // non-empty: names[0].attr (namespace assignment)
};

struct DataStmt : Stmt {
  DataStmt(int l, std::string t) : Stmt(Kind::kData, l), text(std::move(t)) {}
  std::string text;
};
struct OutputStmt : Stmt {
  OutputStmt(int l, ExprPtr e) : Stmt(Kind::kOutput, l), expr(std::move(e)) {}
  ExprPtr expr;
};
struct IfStmt : Stmt {
  explicit IfStmt(int l) : Stmt(Kind::kIf, l) {}
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body else_body;
};
struct ForStmt : Stmt {
  explicit ForStmt(int l) : Stmt(Kind::kFor, l) {}
  Target target;
  ExprPtr iter, filter;
  Body body, else_body;
};
struct SetStmt : Stmt {
  explicit SetStmt(int l) : Stmt(Kind::kSet, l) {}
  Target target;
  ExprPtr value;
};
struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(int l) : Stmt(Kind::kSetBlock, l) {}
  Target target;
  ExprPtr filter;  // FilterExpr chain with a null innermost operand, or null
  Body body;
};
struct MacroParams {
  std::vector<std::string> names;
  std::vector<ExprPtr> defaults;  // aligned with names; null = required
};
struct MacroStmt : Stmt {
  explicit MacroStmt(int l) : Stmt(Kind::kMacro, l) {}
  std::string name;
  MacroParams params;
  Body body;
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
};
struct CallBlockStmt : Stmt {
  explicit CallBlockStmt(int l) : Stmt(Kind::kCallBlock, l) {}
  ExprPtr call;  // a CallExpr
  MacroParams params;
  Body body;
};
struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(int l) : Stmt(Kind::kFilterBlock, l) {}
  ExprPtr filter;
  Body body;
};
struct WithStmt : Stmt {
  explicit WithStmt(int l) : Stmt(Kind::kWith, l) {}
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
};
struct LoopControlStmt : Stmt {
  LoopControlStmt(Kind k, int l) : Stmt(k, l) {}
};
// A body rendered in place without a new scope ({% generation %}).
struct BlockStmt : Stmt {
  explicit BlockStmt(int l) : Stmt(Kind::kBlock, l) {}
  Body body;
};

}  // namespace lmserve::chat::jinja
