// The engine's value model: Python objects as Jinja2 sees them (None, bool, int, float, str
// with a Markup flag, list/tuple, insertion-ordered dict, Undefined, namespaces, callables).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "chat/jinja/errors.h"

namespace lmserve::chat::jinja {

class Interpreter;
class Object;
struct CallArgs;
struct DictObj;

// Containers deeper than this are refused: the recursive printers, comparisons and
// destructors must not be driven into a stack overflow by a hostile template or input.
inline constexpr int kMaxNesting = 256;

class Value {
 public:
  enum class Kind : std::uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kObject
  };

  Value() = default;  // a plain Undefined
  static Value undefined(std::string hint, ErrorKind kind = ErrorKind::kUndefined);
  static Value none();
  static Value boolean(bool b);
  static Value integer(std::int64_t i);
  static Value number(double d);
  static Value string(std::string s, bool markup = false);
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::shared_ptr<DictObj> d);
  static Value object(std::shared_ptr<Object> o);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool as_bool() const { return scalar_.b; }
  std::int64_t as_int() const { return kind_ == Kind::kBool ? scalar_.b : scalar_.i; }
  double as_float() const;  // any number
  const std::string& as_string() const;
  bool is_markup() const { return kind_ == Kind::kString && flag_; }
  const std::vector<Value>& as_list() const;
  bool is_tuple() const { return kind_ == Kind::kList && flag_; }
  const DictObj& as_dict() const;
  std::shared_ptr<DictObj> dict_ptr() const;
  Object* as_object() const { return obj_.get(); }
  const std::shared_ptr<Object>& object_ptr() const { return obj_; }
  int nesting() const;  // depth of list/dict nesting (0 for scalars)

  // Undefined: the message Jinja2 raises when the value is used, and as which exception.
  std::string undefined_hint() const;
  ErrorKind undefined_kind() const { return static_cast<ErrorKind>(scalar_.i); }
  [[noreturn]] void fail_undefined() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool flag_ = false;  // String: Markup; List: tuple
  union {
    bool b;
    std::int64_t i;
    double d;
  } scalar_{.i = static_cast<std::int64_t>(ErrorKind::kUndefined)};
  std::shared_ptr<const std::string> str_;  // String text; Undefined hint
  std::shared_ptr<Object> obj_;             // List, Dict, Object
};

// Heap payloads. Lists and dicts coming from data are immutable (Jinja's immutable sandbox);
// namespaces are the one mutable object templates may write to.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  // str(obj) == repr(obj) for every object kind the engine has.
  virtual std::string repr() const;
  virtual std::optional<Value> get_attr(const std::string& name) const;
  virtual bool callable() const { return false; }
  virtual Value call(Interpreter& interp, CallArgs& args);
};

struct ListObj final : Object {
  std::vector<Value> items;
  int depth = 1;
  std::string type_name() const override { return "list"; }
};

struct DictObj final : Object {
  std::vector<std::pair<Value, Value>> items;
  std::unordered_map<std::string, std::size_t> index;
  int depth = 1;

  std::string type_name() const override { return "dict"; }
  const Value* find(const Value& key) const;  // nullptr when absent or unhashable
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value value);  // TypeError on unhashable keys
  std::size_t size() const { return items.size(); }
};

struct NamespaceObj final : Object {
  std::shared_ptr<DictObj> attrs = std::make_shared<DictObj>();
  std::string type_name() const override { return "Namespace"; }
  std::string repr() const override;
  std::optional<Value> get_attr(const std::string& name) const override;
};

// Hash identity of a key as Python sees it (1 == 1.0 == True); nullopt when unhashable.
std::optional<std::string> hash_key(const Value& v);

bool truthy(const Value& v);
std::string to_str(const Value& v);            // Python str()
std::string to_repr(const Value& v);           // Python repr()
std::string type_name(const Value& v);         // Python type(v).__name__
std::string object_type_repr(const Value& v);  // Jinja2's "dict object" in undefined messages
bool equals(const Value& a, const Value& b);
// Three-way comparison for <, <=, >, >=; TypeError for unorderable types.
int compare(const Value& a, const Value& b, std::string_view op);
std::size_t py_len(const Value& v);  // TypeError when v has no len()

// Jinja2's Undefined messages.
Value undefined_name(const std::string& name);
Value undefined_attr(const Value& obj, const std::string& attr);
Value undefined_item(const Value& obj, const Value& key);

struct JsonOptions {
  std::optional<std::string> indent;  // json.dumps indent (already a string of spaces)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};
// json.dumps(v, ...) exactly as Python writes it.
std::string to_json(const Value& v, const JsonOptions& options);

}  // namespace lmserve::chat::jinja
