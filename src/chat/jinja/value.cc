#include "chat/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/jinja/pystr.h"
#include "chat/jinja/runtime.h"

namespace lmserve::chat::jinja {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kType:
      return "TypeError";
    case ErrorKind::kUndefined:
      return "UndefinedError";
    case ErrorKind::kSecurity:
      return "SecurityError";
    case ErrorKind::kValue:
      return "ValueError";
    case ErrorKind::kZeroDivision:
      return "ZeroDivisionError";
    case ErrorKind::kOverflow:
      return "OverflowError";
    case ErrorKind::kRuntime:
      return "TemplateRuntimeError";
    case ErrorKind::kLimit:
      return "LimitExceeded";
  }
  return "TemplateError";
}

namespace {

const std::string& empty_string() {
  static const std::string kEmpty;
  return kEmpty;
}

void check_nesting(int depth) {
  if (depth > kMaxNesting) {
    throw TemplateRenderError(
        ErrorKind::kLimit, "values nested deeper than " + std::to_string(kMaxNesting) + " levels");
  }
}

}  // namespace

Value Value::undefined(std::string hint, ErrorKind kind) {
  Value v;
  v.str_ = std::make_shared<const std::string>(std::move(hint));
  v.scalar_.i = static_cast<std::int64_t>(kind);
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.scalar_.i = 0;
  v.scalar_.b = b;
  return v;
}

Value Value::integer(std::int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.scalar_.i = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.scalar_.d = d;
  return v;
}

Value Value::string(std::string s, bool markup) {
  Value v;
  v.kind_ = Kind::kString;
  v.flag_ = markup;
  v.str_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  auto obj = std::make_shared<ListObj>();
  int depth = 0;
  for (const auto& item : items) depth = std::max(depth, item.nesting());
  obj->depth = depth + 1;
  check_nesting(obj->depth);
  obj->items = std::move(items);
  Value v;
  v.kind_ = Kind::kList;
  v.flag_ = tuple;
  v.obj_ = std::move(obj);
  return v;
}

Value Value::dict(std::shared_ptr<DictObj> d) {
  int depth = 0;
  for (const auto& [k, val] : d->items) depth = std::max(depth, val.nesting());
  d->depth = depth + 1;
  check_nesting(d->depth);
  Value v;
  v.kind_ = Kind::kDict;
  v.obj_ = std::move(d);
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.obj_ = std::move(o);
  return v;
}

double Value::as_float() const {
  switch (kind_) {
    case Kind::kFloat:
      return scalar_.d;
    case Kind::kInt:
      return static_cast<double>(scalar_.i);
    case Kind::kBool:
      return scalar_.b ? 1.0 : 0.0;
    default:
      return 0.0;
  }
}

const std::string& Value::as_string() const {
  return kind_ == Kind::kString && str_ ? *str_ : empty_string();
}

const std::vector<Value>& Value::as_list() const {
  return static_cast<const ListObj*>(obj_.get())->items;
}

const DictObj& Value::as_dict() const { return *static_cast<const DictObj*>(obj_.get()); }

std::shared_ptr<DictObj> Value::dict_ptr() const { return std::static_pointer_cast<DictObj>(obj_); }

int Value::nesting() const {
  if (kind_ == Kind::kList) return static_cast<const ListObj*>(obj_.get())->depth;
  if (kind_ == Kind::kDict) return static_cast<const DictObj*>(obj_.get())->depth;
  return 0;
}

std::string Value::undefined_hint() const {
  if (str_ && !str_->empty()) return *str_;
  return "'undefined' is undefined";
}

void Value::fail_undefined() const {
  throw TemplateRenderError(undefined_kind(), undefined_hint());
}

std::string Object::repr() const {
  std::string out = "<";
  out.append(type_name());
  out.append(" object>");
  return out;
}

std::optional<Value> Object::get_attr(const std::string&) const { return std::nullopt; }

Value Object::call(Interpreter&, CallArgs&) {
  throw TemplateRenderError(ErrorKind::kType, "'" + type_name() + "' object is not callable");
}

std::optional<std::string> hash_key(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return "s" + v.as_string();
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      return "n" + std::to_string(v.as_int());
    case Value::Kind::kFloat: {
      double d = v.as_float();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
        return "n" + std::to_string(static_cast<std::int64_t>(d));
      }
      return "f" + pystr::float_repr(d);
    }
    case Value::Kind::kNone:
      return std::string("N");
    case Value::Kind::kUndefined:
      return std::string("U");
    case Value::Kind::kList: {
      if (!v.is_tuple()) return std::nullopt;
      std::string key = "t(";
      for (const auto& item : v.as_list()) {
        auto k = hash_key(item);
        if (!k) return std::nullopt;
        key += std::to_string(k->size()) + ":" + *k;
      }
      return key + ")";
    }
    case Value::Kind::kDict:
      return std::nullopt;
    case Value::Kind::kObject: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "o%p", static_cast<const void*>(v.as_object()));
      return std::string(buf);
    }
  }
  return std::nullopt;
}

const Value* DictObj::find(const Value& key) const {
  auto k = hash_key(key);
  if (!k) return nullptr;
  auto it = index.find(*k);
  return it == index.end() ? nullptr : &items[it->second].second;
}

const Value* DictObj::find(std::string_view key) const {
  std::string k = "s";
  k.append(key);
  auto it = index.find(k);
  return it == index.end() ? nullptr : &items[it->second].second;
}

void DictObj::set(const Value& key, Value value) {
  auto k = hash_key(key);
  if (!k)
    throw TemplateRenderError(ErrorKind::kType,
                              "unhashable type: '" + ::lmserve::chat::jinja::type_name(key) + "'");
  auto it = index.find(*k);
  if (it != index.end()) {
    items[it->second].second = std::move(value);
    return;
  }
  index.emplace(std::move(*k), items.size());
  items.emplace_back(key, std::move(value));
}

std::string NamespaceObj::repr() const {
  // A namespace can contain itself; printing must not recurse forever.
  thread_local int depth = 0;
  if (depth > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "values nested too deeply to print");
  }
  ++depth;
  struct Restore {
    ~Restore() { --depth; }
  } restore;
  return "<Namespace " + to_repr(Value::dict(attrs)) + ">";
}

std::optional<Value> NamespaceObj::get_attr(const std::string& name) const {
  if (const Value* v = attrs->find(std::string_view(name))) return *v;
  return std::nullopt;
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return !v.as_list().empty();
    case Value::Kind::kDict:
      return v.as_dict().size() != 0;
    case Value::Kind::kObject:
      return true;
  }
  return false;
}

namespace {

void repr_into(std::string& out, const Value& v, int depth);

void str_into(std::string& out, const Value& v, int depth) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kString:
      out += v.as_string();
      return;
    default:
      repr_into(out, v, depth);
  }
}

void repr_into(std::string& out, const Value& v, int depth) {
  if (depth > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "values nested too deeply to print");
  }
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kNone:
      out += "None";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat:
      out += pystr::float_repr(v.as_float());
      return;
    case Value::Kind::kString:
      if (v.is_markup()) {
        out += "Markup(" + pystr::repr(v.as_string()) + ")";
      } else {
        out += pystr::repr(v.as_string());
      }
      return;
    case Value::Kind::kList: {
      const auto& items = v.as_list();
      out += v.is_tuple() ? '(' : '[';
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, items[i], depth + 1);
      }
      if (v.is_tuple() && items.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Value::Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [k, val] : v.as_dict().items) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, k, depth + 1);
        out += ": ";
        repr_into(out, val, depth + 1);
      }
      out += '}';
      return;
    }
    case Value::Kind::kObject:
      out += v.as_object()->repr();
      return;
  }
}

}  // namespace

std::string to_str(const Value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  str_into(out, v, 0);
  return out;
}

std::string to_repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return v.is_markup() ? "Markup" : "str";
    case Value::Kind::kList:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kObject:
      return v.as_object()->type_name();
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_markup()) return "markupsafe.Markup object";
  if (v.is_object()) return "jinja2.runtime." + v.as_object()->type_name() + " object";
  return type_name(v) + " object";
}

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
  if (depth > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "values nested too deeply to compare");
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!equals_at(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kObject:
      return a.as_object() == b.as_object();
    default:
      return false;
  }
}

int compare_at(const Value& a, const Value& b, std::string_view op, int depth) {
  if (depth > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "values nested too deeply to compare");
  }
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    auto x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());  // byte order == code point order in UTF-8
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals_at(x[i], y[i], depth + 1)) continue;
      return compare_at(x[i], y[i], op, depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw TemplateRenderError(ErrorKind::kType, "'" + std::string(op) +
                                                  "' not supported between instances of '" +
                                                  type_name(a) + "' and '" + type_name(b) + "'");
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }

int compare(const Value& a, const Value& b, std::string_view op) { return compare_at(a, b, op, 0); }

std::size_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return pystr::length(v.as_string());
    case Value::Kind::kList:
      return v.as_list().size();
    case Value::Kind::kDict:
      return v.as_dict().size();
    case Value::Kind::kObject:
      if (auto* ns = dynamic_cast<NamespaceObj*>(v.as_object())) return ns->attrs->size();
      [[fallthrough]];
    default:
      throw TemplateRenderError(ErrorKind::kType,
                                "object of type '" + type_name(v) + "' has no len()");
  }
}

Value undefined_name(const std::string& name) {
  return Value::undefined("'" + name + "' is undefined");
}

Value undefined_attr(const Value& obj, const std::string& attr) {
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + attr + "'");
}

Value undefined_item(const Value& obj, const Value& key) {
  if (key.is_string()) return undefined_attr(obj, key.as_string());
  return Value::undefined("'" + object_type_repr(obj) + "' has no element " + to_repr(key));
}

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  auto escape_cp = [&](unsigned cp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", cp & 0xFFFFu);
    out += buf;
  };
  if (!ensure_ascii) {
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20) {
            escape_cp(c);
          } else {
            out.push_back(ch);
          }
      }
    }
  } else {
    for (char32_t cp : pystr::decode(s)) {
      switch (cp) {
        case U'"':
          out += "\\\"";
          break;
        case U'\\':
          out += "\\\\";
          break;
        case U'\n':
          out += "\\n";
          break;
        case U'\r':
          out += "\\r";
          break;
        case U'\t':
          out += "\\t";
          break;
        case U'\b':
          out += "\\b";
          break;
        case U'\f':
          out += "\\f";
          break;
        default:
          if (cp < 0x20 || cp > 0x7E) {
            if (cp >= 0x10000) {
              unsigned v = static_cast<unsigned>(cp) - 0x10000;
              escape_cp(0xD800 | (v >> 10));
              escape_cp(0xDC00 | (v & 0x3FF));
            } else {
              escape_cp(static_cast<unsigned>(cp));
            }
          } else {
            out.push_back(static_cast<char>(cp));
          }
      }
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return pystr::float_repr(d);
}

void json_into(std::string& out, const Value& v, const JsonOptions& o, int level) {
  if (level > kMaxNesting) {
    throw TemplateRenderError(ErrorKind::kLimit, "values nested too deeply for tojson");
  }
  auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat:
      out += json_float(v.as_float());
      return;
    case Value::Kind::kString:
      json_string(out, v.as_string(), o.ensure_ascii);
      return;
    case Value::Kind::kList: {
      const auto& items = v.as_list();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent) newline(level + 1);
        json_into(out, items[i], o, level + 1);
      }
      if (o.indent) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      const auto& d = v.as_dict();
      if (d.size() == 0) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      entries.reserve(d.size());
      for (const auto& [k, val] : d.items) {
        std::string key;
        switch (k.kind()) {
          case Value::Kind::kString:
            key = k.as_string();
            break;
          case Value::Kind::kInt:
            key = std::to_string(k.as_int());
            break;
          case Value::Kind::kFloat:
            key = json_float(k.as_float());
            break;
          case Value::Kind::kBool:
            key = k.as_bool() ? "true" : "false";
            break;
          case Value::Kind::kNone:
            key = "null";
            break;
          default:
            throw TemplateRenderError(
                ErrorKind::kType,
                "keys must be str, int, float, bool or None, not " + type_name(k));
        }
        entries.emplace_back(std::move(key), &val);
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out += '{';
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent) newline(level + 1);
        json_string(out, entries[i].first, o.ensure_ascii);
        out += o.key_separator;
        json_into(out, *entries[i].second, o, level + 1);
      }
      if (o.indent) newline(level);
      out += '}';
      return;
    }
    case Value::Kind::kUndefined:
    case Value::Kind::kObject:
      throw TemplateRenderError(ErrorKind::kType,
                                "Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  json_into(out, v, options, 0);
  return out;
}

}  // namespace lmserve::chat::jinja
