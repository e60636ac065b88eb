// Filters, tests, Python methods and globals: the library half of the engine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <limits>
#include <unordered_map>

#include "chat/jinja/pystr.h"
#include "chat/jinja/runtime.h"

namespace lmserve::chat::jinja {

namespace {

[[noreturn]] void type_error(const std::string& msg) {
  throw TemplateRenderError(ErrorKind::kType, msg);
}
[[noreturn]] void value_error(const std::string& msg) {
  throw TemplateRenderError(ErrorKind::kValue, msg);
}

Value str_value(std::string s, const Value& like) {
  return Value::string(std::move(s), like.is_markup());
}

// soft_str: Markup stays Markup, everything else goes through str().
Value soft_str(const Value& v) {
  if (v.is_string()) return v;
  return Value::string(to_str(v));
}

std::optional<std::string> opt_str(const std::optional<Value>& v, const char* what) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) type_error(std::string(what) + " arg must be None or str");
  return v->as_string();
}

std::int64_t opt_int(const std::optional<Value>& v, std::int64_t def) {
  if (!v || v->is_none()) return def;
  if (!v->is_int() && !v->is_bool()) {
    type_error("'" + type_name(*v) + "' object cannot be interpreted as an integer");
  }
  return v->as_int();
}

// ---------------------------------------------------------------- strftime

std::tm current_time(const RenderOptions& options) {
  if (options.fixed_time) return *options.fixed_time;
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

// C-locale strftime written out so hostile formats cannot misbehave.
std::string format_time(const std::tm& tm, const std::string& fmt) {
  static const char* kMonths[] = {"January",   "February", "March",    "April",
                                  "May",       "June",     "July",     "August",
                                  "September", "October",  "November", "December"};
  static const char* kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                "Thursday", "Friday", "Saturday"};
  std::string out;
  auto num = [&](int v, int width, bool pad) {
    std::string s = std::to_string(v);
    if (pad) {
      while (static_cast<int>(s.size()) < width) s.insert(s.begin(), '0');
    }
    out += s;
  };
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out.push_back(fmt[i]);
      continue;
    }
    char c = fmt[++i];
    bool pad = true;
    if (c == '-' && i + 1 < fmt.size()) {
      pad = false;
      c = fmt[++i];
    }
    int mon = std::clamp(tm.tm_mon, 0, 11);
    int wday = std::clamp(tm.tm_wday, 0, 6);
    int hour12 = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
    switch (c) {
      case 'Y':
        out += std::to_string(tm.tm_year + 1900);
        break;
      case 'y':
        num((tm.tm_year + 1900) % 100, 2, pad);
        break;
      case 'm':
        num(tm.tm_mon + 1, 2, pad);
        break;
      case 'd':
        num(tm.tm_mday, 2, pad);
        break;
      case 'e': {
        std::string s = std::to_string(tm.tm_mday);
        if (pad && s.size() < 2) s.insert(s.begin(), ' ');
        out += s;
        break;
      }
      case 'H':
        num(tm.tm_hour, 2, pad);
        break;
      case 'I':
        num(hour12, 2, pad);
        break;
      case 'M':
        num(tm.tm_min, 2, pad);
        break;
      case 'S':
        num(tm.tm_sec, 2, pad);
        break;
      case 'j':
        num(tm.tm_yday + 1, 3, pad);
        break;
      case 'p':
        out += tm.tm_hour < 12 ? "AM" : "PM";
        break;
      case 'B':
        out += kMonths[mon];
        break;
      case 'b':
      case 'h':
        out += std::string(kMonths[mon]).substr(0, 3);
        break;
      case 'A':
        out += kDays[wday];
        break;
      case 'a':
        out += std::string(kDays[wday]).substr(0, 3);
        break;
      case 'w':
        out += std::to_string(wday);
        break;
      case 'u':
        out += std::to_string(wday == 0 ? 7 : wday);
        break;
      case 'F':
        out += format_time(tm, "%Y-%m-%d");
        break;
      case 'T':
        out += format_time(tm, "%H:%M:%S");
        break;
      case 'D':
        out += format_time(tm, "%m/%d/%y");
        break;
      case 'R':
        out += format_time(tm, "%H:%M");
        break;
      case 'c':
        out += format_time(tm, "%a %b %e %H:%M:%S %Y");
        break;
      case 'x':
        out += format_time(tm, "%m/%d/%y");
        break;
      case 'X':
        out += format_time(tm, "%H:%M:%S");
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'Z':
      case 'z':
        break;
      case '%':
        out += '%';
        break;
      default:
        out += '%';
        if (!pad) out += '-';
        out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------- attribute getters

// Jinja2's make_attrgetter: dotted path, integer parts index sequences.
Value lookup_path(Interpreter& in, const Value& item, const std::string& path) {
  Value cur = item;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    cur = digits ? in.get_item(cur, Value::integer(std::atoll(part.c_str())))
                 : in.get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value lowered(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(pystr::lower(v.as_string()));
  return v;
}

std::vector<Value> sorted_values(std::vector<Value> items,
                                 const std::function<Value(const Value&)>& key, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& it : items) keyed.emplace_back(key(it), std::move(it));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? compare(b.first, a.first, "<") < 0 : compare(a.first, b.first, "<") < 0;
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

Value tuple2(Value a, Value b) {
  std::vector<Value> t;
  t.push_back(std::move(a));
  t.push_back(std::move(b));
  return Value::list(std::move(t), true);
}

Value items_of(const Value& v) {
  std::vector<Value> out;
  for (const auto& [k, val] : v.as_dict().items) out.push_back(tuple2(k, val));
  return Value::list(std::move(out));
}

CallArgs rest_args(const CallArgs& a, std::size_t skip) {
  CallArgs out;
  for (std::size_t i = skip; i < a.args.size(); ++i) out.args.push_back(a.args[i]);
  out.kwargs = a.kwargs;
  return out;
}

// select/reject/selectattr/rejectattr.
Value select_or_reject(Interpreter& in, const Value& seq, CallArgs& args, bool attr, bool keep) {
  std::optional<std::string> path;
  std::size_t next = 0;
  if (attr) {
    if (args.args.empty()) type_error("Missing parameter for attribute name");
    path = to_str(args.args[0]);
    next = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.args.size() > next) {
    test = to_str(args.args[next]);
    test_args = rest_args(args, next + 1);
  }
  std::vector<Value> out;
  if (!truthy(seq)) return Value::list({});
  for (const auto& item : in.iterate(seq)) {
    in.charge();
    Value subject = path ? lookup_path(in, item, *path) : item;
    bool ok = test ? in.apply_test(*test, subject, test_args) : truthy(subject);
    if (ok == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

std::string indent_text(const std::string& s_in, const std::string& indention, bool first,
                        bool blank) {
  std::string s = s_in + "\n";  // Jinja2's quirk so splitlines keeps a trailing empty line
  std::vector<std::string> lines = pystr::splitlines(s, false);
  std::string rv;
  if (blank) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (std::size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        if (!lines[i].empty()) rv += indention;
        rv += lines[i];
      }
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

// Python's str.format for plain fields ({}, {0}, {name}, {name.attr}, {0[key]}); conversions !s/!r.
std::string py_format(Interpreter& in, const std::string& fmt, const CallArgs& args) {
  std::string out;
  std::size_t auto_index = 0;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}')
        ++i;
      else
        value_error("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    std::size_t close = fmt.find('}', i);
    if (close == std::string::npos) value_error("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conv = 's';
    if (auto bang = field.find('!'); bang != std::string::npos) {
      if (bang + 1 < field.size()) conv = field[bang + 1];
      field = field.substr(0, bang);
    }
    if (field.find(':') != std::string::npos)
      value_error("format specifications are not supported");
    std::size_t end = field.find_first_of(".[");
    std::string head = field.substr(0, end);
    Value v;
    if (head.empty()) {
      if (auto_index >= args.args.size())
        throw TemplateRenderError(
            ErrorKind::kValue, "Replacement index " + std::to_string(auto_index) + " out of range");
      v = args.args[auto_index++];
    } else if (std::all_of(head.begin(), head.end(),
                           [](char ch) { return ch >= '0' && ch <= '9'; })) {
      std::size_t idx = static_cast<std::size_t>(std::atoll(head.c_str()));
      if (idx >= args.args.size())
        throw TemplateRenderError(ErrorKind::kValue, "Replacement index " + head + " out of range");
      v = args.args[idx];
    } else {
      bool found = false;
      for (const auto& [k, val] : args.kwargs) {
        if (k == head) {
          v = val;
          found = true;
        }
      }
      if (!found) throw TemplateRenderError(ErrorKind::kValue, "KeyError: '" + head + "'");
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        std::size_t nxt = field.find_first_of(".[", end + 1);
        v = in.get_attr(
            v, field.substr(end + 1, nxt == std::string::npos ? std::string::npos : nxt - end - 1));
        end = nxt;
      } else {
        std::size_t rb = field.find(']', end);
        if (rb == std::string::npos) value_error("Missing ']' in format string");
        std::string key = field.substr(end + 1, rb - end - 1);
        bool digits = !key.empty() && std::all_of(key.begin(), key.end(),
                                                  [](char ch) { return ch >= '0' && ch <= '9'; });
        v = in.get_item(v, digits ? Value::integer(std::atoll(key.c_str())) : Value::string(key));
        end = rb + 1;
      }
    }
    out += conv == 'r' ? to_repr(v) : to_str(v);
  }
  return out;
}

// ---------------------------------------------------------------- filters

using FilterFn = std::function<Value(Interpreter&, const Value&, CallArgs&)>;

// n spaces (none when n < 0), within the template's output limit: a width is user input.
std::string spaces(const Interpreter& in, std::int64_t n) {
  const auto count = static_cast<std::size_t>(std::max<std::int64_t>(0, n));
  in.check_size(count);
  return std::string(count, ' ');
}

Value do_tojson(Interpreter& in, const Value& v, CallArgs& args) {
  auto a = bind_args(args, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = a[0] && truthy(*a[0]);
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_string()) {
      o.indent = a[1]->as_string();
    } else {
      o.indent = spaces(in, opt_int(a[1], 0));
    }
    o.item_separator = ",";
  }
  if (a[2] && !a[2]->is_none()) {
    if (!a[2]->is_list() || a[2]->as_list().size() != 2) type_error("separators must be a pair");
    o.item_separator = to_str(a[2]->as_list()[0]);
    o.key_separator = to_str(a[2]->as_list()[1]);
  }
  o.sort_keys = a[3] && truthy(*a[3]);
  return Value::string(to_json(v, o));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> kFilters = [] {
    std::unordered_map<std::string, FilterFn> f;
    f["safe"] = [](Interpreter&, const Value& v, CallArgs&) {
      if (v.is_markup()) return v;
      return Value::string(to_str(v), true);
    };
    f["escape"] = [](Interpreter&, const Value& v, CallArgs&) {
      if (v.is_markup()) return v;
      return Value::string(pystr::html_escape(to_str(v)), true);
    };
    f["e"] = f["escape"];
    f["forceescape"] = [](Interpreter&, const Value& v, CallArgs&) {
      return Value::string(pystr::html_escape(to_str(v)), true);
    };
    f["string"] = [](Interpreter&, const Value& v, CallArgs&) { return soft_str(v); };
    f["trim"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "trim", {"chars"});
      Value s = soft_str(v);
      return str_value(pystr::strip(s.as_string(), opt_str(a[0], "strip"), true, true), s);
    };
    f["upper"] = [](Interpreter&, const Value& v, CallArgs&) {
      Value s = soft_str(v);
      return str_value(pystr::upper(s.as_string()), s);
    };
    f["lower"] = [](Interpreter&, const Value& v, CallArgs&) {
      Value s = soft_str(v);
      return str_value(pystr::lower(s.as_string()), s);
    };
    f["capitalize"] = [](Interpreter&, const Value& v, CallArgs&) {
      Value s = soft_str(v);
      return str_value(pystr::capitalize(s.as_string()), s);
    };
    f["title"] = [](Interpreter&, const Value& v, CallArgs&) {
      // Jinja2's own title: split on runs of [-\s({[<], capitalize each piece.
      Value s = soft_str(v);
      std::u32string u = pystr::decode(s.as_string());
      auto is_sep = [](char32_t c) {
        return c == U'-' || c == U'(' || c == U'{' || c == U'[' || c == U'<' || pystr::is_space(c);
      };
      std::string out;
      std::size_t i = 0;
      while (i < u.size()) {
        std::size_t j = i;
        bool sep = is_sep(u[i]);
        while (j < u.size() && is_sep(u[j]) == sep) ++j;
        std::string piece = pystr::encode(std::u32string_view(u).substr(i, j - i));
        if (sep) {
          out += piece;
        } else {
          std::u32string pu = std::u32string(u.substr(i, j - i));
          std::string head;
          pystr::append_utf8(head, pu[0]);
          out +=
              pystr::upper(head) + pystr::lower(pystr::encode(std::u32string_view(pu).substr(1)));
        }
        i = j;
      }
      return str_value(out, s);
    };
    f["length"] = [](Interpreter&, const Value& v, CallArgs&) {
      return Value::integer(static_cast<std::int64_t>(py_len(v)));
    };
    f["count"] = f["length"];
    f["wordcount"] = [](Interpreter&, const Value& v, CallArgs&) {
      std::int64_t n = 0;
      bool in_word = false;
      for (char32_t cp : pystr::decode(to_str(v))) {
        bool w = pystr::is_word_char(cp);
        if (w && !in_word) ++n;
        in_word = w;
      }
      return Value::integer(n);
    };
    f["first"] = [](Interpreter& in, const Value& v, CallArgs&) {
      auto items = in.iterate(v);
      if (items.empty()) return Value::undefined("No first item, sequence was empty.");
      return items.front();
    };
    f["last"] = [](Interpreter& in, const Value& v, CallArgs&) {
      auto items = in.iterate(v);
      if (items.empty()) return Value::undefined("No last item, sequence was empty.");
      return items.back();
    };
    f["list"] = [](Interpreter& in, const Value& v, CallArgs&) {
      return Value::list(in.iterate(v));
    };
    f["reverse"] = [](Interpreter& in, const Value& v, CallArgs&) {
      if (v.is_string()) {
        std::u32string u = pystr::decode(v.as_string());
        std::reverse(u.begin(), u.end());
        return str_value(pystr::encode(u), v);
      }
      auto items = in.iterate(v);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    };
    f["join"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "join", {"d", "attribute"});
      std::string sep = a[0] ? to_str(*a[0]) : "";
      std::string out;
      bool first = true;
      for (const auto& item : in.iterate(v)) {
        if (!first) out += sep;
        first = false;
        out += to_str(a[1] && !a[1]->is_none() ? lookup_path(in, item, to_str(*a[1])) : item);
        in.check_size(out.size());
      }
      return Value::string(std::move(out));
    };
    f["default"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "default", {"default_value", "boolean"});
      bool boolean = a[1] && truthy(*a[1]);
      if (v.is_undefined() || (boolean && !truthy(v))) return a[0] ? *a[0] : Value::string("");
      return v;
    };
    f["d"] = f["default"];
    f["replace"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "replace", {"old", "new", "count"}, 2);
      std::string r = pystr::replace(to_str(v), to_str(*a[0]), to_str(*a[1]), opt_int(a[2], -1));
      in.check_size(r.size());
      return Value::string(std::move(r));
    };
    f["items"] = [](Interpreter&, const Value& v, CallArgs&) {
      if (v.is_undefined()) return Value::list({});
      if (!v.is_dict()) type_error("Can only get item pairs from a mapping.");
      return items_of(v);
    };
    f["dictsort"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "dictsort", {"case_sensitive", "by", "reverse"});
      if (v.is_undefined()) v.fail_undefined();
      if (!v.is_dict()) type_error("'" + type_name(v) + "' object has no attribute 'items'");
      bool cs = a[0] && truthy(*a[0]);
      std::string by = a[1] ? to_str(*a[1]) : "key";
      if (by != "key" && by != "value")
        throw TemplateRenderError(ErrorKind::kValue,
                                  "You can only sort by either 'key' or 'value'");
      std::size_t pos = by == "key" ? 0 : 1;
      auto items = items_of(v).as_list();
      return Value::list(sorted_values(
          items, [&](const Value& t) { return lowered(t.as_list()[pos], cs); },
          a[2] && truthy(*a[2])));
    };
    f["sort"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "sort", {"reverse", "case_sensitive", "attribute"});
      bool cs = a[1] && truthy(*a[1]);
      std::optional<std::string> attr;
      if (a[2] && !a[2]->is_none()) attr = to_str(*a[2]);
      return Value::list(sorted_values(
          in.iterate(v),
          [&](const Value& item) {
            return lowered(attr ? lookup_path(in, item, *attr) : item, cs);
          },
          a[0] && truthy(*a[0])));
    };
    f["unique"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "unique", {"case_sensitive", "attribute"});
      bool cs = a[0] && truthy(*a[0]);
      std::optional<std::string> attr;
      if (a[1] && !a[1]->is_none()) attr = to_str(*a[1]);
      std::vector<Value> out;
      std::vector<Value> seen;
      auto seen_dict = std::make_shared<DictObj>();
      for (const auto& item : in.iterate(v)) {
        in.charge();
        Value key = lowered(attr ? lookup_path(in, item, *attr) : item, cs);
        if (!hash_key(key)) type_error("unhashable type: '" + type_name(key) + "'");
        if (seen_dict->find(key)) continue;
        seen_dict->set(key, Value::none());
        out.push_back(item);
      }
      return Value::list(std::move(out));
    };
    auto minmax = [](bool want_max) {
      return [want_max](Interpreter& in, const Value& v, CallArgs& args) {
        auto a = bind_args(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
        bool cs = a[0] && truthy(*a[0]);
        std::optional<std::string> attr;
        if (a[1] && !a[1]->is_none()) attr = to_str(*a[1]);
        auto items = in.iterate(v);
        if (items.empty())
          return Value::undefined(std::string("No aggregated item, sequence was empty."));
        std::size_t best = 0;
        auto key = [&](const Value& item) {
          return lowered(attr ? lookup_path(in, item, *attr) : item, cs);
        };
        Value best_key = key(items[0]);
        for (std::size_t i = 1; i < items.size(); ++i) {
          Value k = key(items[i]);
          int c = compare(k, best_key, "<");
          if (want_max ? c > 0 : c < 0) {
            best = i;
            best_key = k;
          }
        }
        return items[best];
      };
    };
    f["max"] = minmax(true);
    f["min"] = minmax(false);
    f["sum"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "sum", {"attribute", "start"});
      Value total = a[1] ? *a[1] : Value::integer(0);
      for (const auto& item : in.iterate(v)) {
        total = in.binary("+", total,
                          a[0] && !a[0]->is_none() ? lookup_path(in, item, to_str(*a[0])) : item);
      }
      return total;
    };
    f["abs"] = [](Interpreter&, const Value& v, CallArgs&) {
      if (v.is_undefined()) v.fail_undefined();
      if (v.is_float()) return Value::number(std::fabs(v.as_float()));
      if (v.is_int() || v.is_bool()) {
        if (v.as_int() == INT64_MIN)
          throw TemplateRenderError(ErrorKind::kOverflow, "integer overflow");
        return Value::integer(std::llabs(v.as_int()));
      }
      type_error("bad operand type for abs(): '" + type_name(v) + "'");
    };
    f["int"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "int", {"default", "base"});
      Value def = a[0] ? *a[0] : Value::integer(0);
      if (v.is_undefined()) v.fail_undefined();
      if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
      if (v.is_float()) {
        double d = v.as_float();
        if (!std::isfinite(d))
          throw TemplateRenderError(ErrorKind::kOverflow, "cannot convert float to integer");
        if (std::fabs(d) >= 9.2e18)
          throw TemplateRenderError(ErrorKind::kOverflow, "integer overflow");
        return Value::integer(static_cast<std::int64_t>(std::trunc(d)));
      }
      if (v.is_string()) {
        std::string s = pystr::strip(v.as_string(), std::nullopt, true, true);
        std::string clean;
        for (std::size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '_' && i > 0 && i + 1 < s.size() &&
              std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
              std::isalnum(static_cast<unsigned char>(s[i + 1]))) {
            continue;
          }
          clean.push_back(s[i]);
        }
        int base = static_cast<int>(opt_int(a[1], 10));
        if (!clean.empty()) {
          errno = 0;
          char* end = nullptr;
          long long r = std::strtoll(clean.c_str(), &end, base);
          if (end && *end == '\0' && errno == 0 &&
              !std::isspace(static_cast<unsigned char>(clean[0]))) {
            return Value::integer(r);
          }
          // Jinja2's quirk: "42.23"|int gives 42 via float().
          end = nullptr;
          double d = std::strtod(clean.c_str(), &end);
          if (end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18 &&
              clean.find_first_of("xXpP") == std::string::npos) {
            return Value::integer(static_cast<std::int64_t>(std::trunc(d)));
          }
        }
      }
      return def;
    };
    f["float"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "float", {"default"});
      Value def = a[0] ? *a[0] : Value::number(0.0);
      if (v.is_undefined()) v.fail_undefined();
      if (v.is_number()) return Value::number(v.as_float());
      if (v.is_string()) {
        std::string s = pystr::strip(v.as_string(), std::nullopt, true, true);
        if (!s.empty() && s.find_first_of("xXpP") == std::string::npos) {
          char* end = nullptr;
          double d = std::strtod(s.c_str(), &end);
          if (end && *end == '\0') return Value::number(d);
        }
      }
      return def;
    };
    f["round"] = [](Interpreter&, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "round", {"precision", "method"});
      std::int64_t precision = opt_int(a[0], 0);
      std::string method = a[1] ? to_str(*a[1]) : "common";
      if (v.is_undefined()) v.fail_undefined();
      if (!v.is_number()) type_error("type " + type_name(v) + " doesn't define __round__ method");
      if (method != "common" && method != "ceil" && method != "floor") {
        type_error("method must be common, ceil or floor");
      }
      double x = v.as_float();
      double scale = std::pow(10.0, static_cast<double>(precision));
      double r;
      if (method == "ceil") {
        r = std::ceil(x * scale) / scale;
      } else if (method == "floor") {
        r = std::floor(x * scale) / scale;
      } else {
        // Python's round(): half to even.
        r = std::nearbyint(x * scale) / scale;
      }
      return Value::number(r);
    };
    f["indent"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "indent", {"width", "first", "blank"});
      if (v.is_undefined()) v.fail_undefined();
      const std::string ind =
          a[0] && a[0]->is_string() ? a[0]->as_string() : spaces(in, opt_int(a[0], 4));
      const std::string text = to_str(v);
      // Every line may get the indentation: bound the result before building it.
      const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
      if (!ind.empty()) {
        const std::size_t most = std::numeric_limits<std::size_t>::max() / ind.size();
        in.check_size(lines > most ? std::numeric_limits<std::size_t>::max()
                                   : lines * ind.size() + text.size());
      }
      return str_value(indent_text(text, ind, a[1] && truthy(*a[1]), a[2] && truthy(*a[2])), v);
    };
    f["center"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "center", {"width"});
      std::string s = to_str(v);
      std::int64_t width = opt_int(a[0], 80);
      auto len = static_cast<std::int64_t>(pystr::length(s));
      if (width <= len) return Value::string(s);
      std::int64_t total = width - len;
      std::int64_t left = total / 2 + (total & width & 1);
      return Value::string(spaces(in, left) + s + spaces(in, total - left));
    };
    f["format"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      Value fmt = soft_str(v);
      if (!args.kwargs.empty()) {
        auto d = std::make_shared<DictObj>();
        for (const auto& [k, val] : args.kwargs) d->set(Value::string(k), val);
        return in.binary("%", fmt, Value::dict(d));
      }
      return in.binary("%", fmt, Value::list(args.args, true));
    };
    f["attr"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      // Python getattr only: unlike `.name`, never falls back to item lookup.
      auto a = bind_args(args, "attr", {"name"}, 1);
      std::string name = to_str(*a[0]);
      if (v.is_dict() && !builtin_method(in, v, name)) return undefined_attr(v, name);
      return in.get_attr(v, name);
    };
    f["batch"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      auto a = bind_args(args, "batch", {"linecount", "fill_with"}, 1);
      std::int64_t n = opt_int(a[0], 1);
      if (n <= 0) value_error("batch size must be positive");
      std::vector<Value> out, cur;
      for (const auto& item : in.iterate(v)) {
        cur.push_back(item);
        if (static_cast<std::int64_t>(cur.size()) == n) {
          out.push_back(Value::list(std::move(cur)));
          cur.clear();
        }
      }
      if (!cur.empty()) {
        if (a[1] && !a[1]->is_none()) {
          while (static_cast<std::int64_t>(cur.size()) < n) cur.push_back(*a[1]);
        }
        out.push_back(Value::list(std::move(cur)));
      }
      return Value::list(std::move(out));
    };
    f["map"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      std::vector<Value> out;
      if (!truthy(v)) return Value::list({});
      if (args.args.empty()) {
        std::optional<Value> attribute, def;
        for (const auto& [k, val] : args.kwargs) {
          if (k == "attribute") {
            attribute = val;
          } else if (k == "default") {
            def = val;
          } else {
            type_error("Unexpected keyword argument '" + k + "'");
          }
        }
        if (!attribute) type_error("map requires a filter argument");
        for (const auto& item : in.iterate(v)) {
          Value r = lookup_path(in, item, to_str(*attribute));
          if (def && r.is_undefined()) r = *def;
          out.push_back(std::move(r));
        }
        return Value::list(std::move(out));
      }
      std::string name = to_str(args.args[0]);
      CallArgs rest = rest_args(args, 1);
      for (const auto& item : in.iterate(v)) {
        in.charge();
        CallArgs copy = rest;
        out.push_back(in.apply_filter(name, item, copy));
      }
      return Value::list(std::move(out));
    };
    f["select"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      return select_or_reject(in, v, args, false, true);
    };
    f["reject"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      return select_or_reject(in, v, args, false, false);
    };
    f["selectattr"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      return select_or_reject(in, v, args, true, true);
    };
    f["rejectattr"] = [](Interpreter& in, const Value& v, CallArgs& args) {
      return select_or_reject(in, v, args, true, false);
    };
    f["tojson"] = do_tojson;
    return f;
  }();
  return kFilters;
}

// ---------------------------------------------------------------- tests

using TestFn = std::function<bool(Interpreter&, const Value&, CallArgs&)>;

const Value& test_arg(const CallArgs& args, const char* name) {
  if (args.args.empty()) type_error(std::string(name) + "() missing required argument");
  return args.args[0];
}

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> kTests = [] {
    std::unordered_map<std::string, TestFn> t;
    t["defined"] = [](Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); };
    t["undefined"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); };
    t["none"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_none(); };
    t["boolean"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); };
    t["true"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); };
    t["false"] = [](Interpreter&, const Value& v, CallArgs&) {
      return v.is_bool() && !v.as_bool();
    };
    t["integer"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_int(); };
    t["float"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_float(); };
    t["number"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_number(); };
    t["string"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_string(); };
    t["mapping"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); };
    t["iterable"] = [](Interpreter&, const Value& v, CallArgs&) {
      return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
    };
    t["sequence"] = [](Interpreter&, const Value& v, CallArgs&) {
      return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
    };
    t["callable"] = [](Interpreter&, const Value& v, CallArgs&) {
      return v.is_object() && v.as_object()->callable();
    };
    t["escaped"] = [](Interpreter&, const Value& v, CallArgs&) { return v.is_markup(); };
    t["odd"] = [](Interpreter& in, const Value& v, CallArgs&) {
      return truthy(in.binary("%", v, Value::integer(2)));
    };
    t["even"] = [](Interpreter& in, const Value& v, CallArgs&) {
      return !truthy(in.binary("%", v, Value::integer(2)));
    };
    t["divisibleby"] = [](Interpreter& in, const Value& v, CallArgs& a) {
      return !truthy(in.binary("%", v, test_arg(a, "divisibleby")));
    };
    t["eq"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return equals(v, test_arg(a, "eq"));
    };
    t["equalto"] = t["=="] = t["eq"];
    t["ne"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return !equals(v, test_arg(a, "ne"));
    };
    t["!="] = t["ne"];
    t["lt"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return compare(v, test_arg(a, "lt"), "<") < 0;
    };
    t["lessthan"] = t["<"] = t["lt"];
    t["le"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return compare(v, test_arg(a, "le"), "<=") <= 0;
    };
    t["<="] = t["le"];
    t["gt"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return compare(v, test_arg(a, "gt"), ">") > 0;
    };
    t["greaterthan"] = t[">"] = t["gt"];
    t["ge"] = [](Interpreter&, const Value& v, CallArgs& a) {
      return compare(v, test_arg(a, "ge"), ">=") >= 0;
    };
    t[">="] = t["ge"];
    t["in"] = [](Interpreter& in, const Value& v, CallArgs& a) {
      return in.contains(test_arg(a, "in"), v);
    };
    t["sameas"] = [](Interpreter&, const Value& v, CallArgs& a) {
      const Value& o = test_arg(a, "sameas");
      if (v.kind() != o.kind()) return false;
      if (v.is_none() || v.is_undefined()) return true;
      if (v.is_bool()) return v.as_bool() == o.as_bool();
      if (v.is_object() || v.is_list() || v.is_dict()) return v.as_object() == o.as_object();
      return equals(v, o);
    };
    t["lower"] = [](Interpreter&, const Value& v, CallArgs&) {
      std::string s = to_str(v);
      return pystr::lower(s) == s && pystr::upper(s) != s;
    };
    t["upper"] = [](Interpreter&, const Value& v, CallArgs&) {
      std::string s = to_str(v);
      return pystr::upper(s) == s && pystr::lower(s) != s;
    };
    t["filter"] = [](Interpreter& in, const Value& v, CallArgs&) {
      return v.is_string() && in.has_filter(v.as_string());
    };
    t["test"] = [](Interpreter& in, const Value& v, CallArgs&) {
      return v.is_string() && in.has_test(v.as_string());
    };
    return t;
  }();
  return kTests;
}

// ---------------------------------------------------------------- methods

bool string_starts_or_ends(const std::string& s, const Value& affix, bool starts,
                           const char* name) {
  auto one = [&](const Value& a) {
    if (!a.is_string()) {
      type_error(std::string(name) + " first arg must be str or a tuple of str, not " +
                 type_name(a));
    }
    const std::string& x = a.as_string();
    if (x.size() > s.size()) return false;
    return starts ? s.compare(0, x.size(), x) == 0
                  : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_tuple()) {
    for (const auto& a : affix.as_list()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

// Code-point index of a substring search over s[start:end].
std::int64_t find_sub(const std::string& s, const std::string& sub,
                      const std::optional<Value>& start_v, const std::optional<Value>& end_v,
                      bool reverse) {
  std::u32string u = pystr::decode(s);
  std::u32string needle = pystr::decode(sub);
  auto n = static_cast<std::int64_t>(u.size());
  std::int64_t b = opt_int(start_v, 0), e = opt_int(end_v, n);
  if (b < 0) b = std::max<std::int64_t>(0, b + n);
  if (e < 0) e = std::max<std::int64_t>(0, e + n);
  e = std::min(e, n);
  if (b > e) return -1;
  std::u32string_view hay =
      std::u32string_view(u).substr(static_cast<std::size_t>(b), static_cast<std::size_t>(e - b));
  std::size_t pos = reverse ? hay.rfind(needle) : hay.find(needle);
  return pos == std::u32string_view::npos ? -1 : b + static_cast<std::int64_t>(pos);
}

std::optional<Value> string_method(const Value& self, const std::string& name) {
  using Fn = std::function<Value(Interpreter&, CallArgs&)>;
  const std::string& s = self.as_string();
  Fn fn;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    fn = [self, l, r, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"chars"});
      return str_value(pystr::strip(self.as_string(), opt_str(a[0], name.c_str()), l, r), self);
    };
  } else if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    fn = [self, right, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"sep", "maxsplit"});
      auto sep = opt_str(a[0], "sep");
      if (sep && sep->empty()) value_error("empty separator");
      auto parts = right ? pystr::rsplit(self.as_string(), sep, opt_int(a[1], -1))
                         : pystr::split(self.as_string(), sep, opt_int(a[1], -1));
      std::vector<Value> out;
      out.reserve(parts.size());
      for (auto& p : parts) out.push_back(str_value(std::move(p), self));
      return Value::list(std::move(out));
    };
  } else if (name == "splitlines") {
    fn = [self](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, "splitlines", {"keepends"});
      std::vector<Value> out;
      for (auto& p : pystr::splitlines(self.as_string(), a[0] && truthy(*a[0])))
        out.push_back(str_value(std::move(p), self));
      return Value::list(std::move(out));
    };
  } else if (name == "startswith" || name == "endswith") {
    bool starts = name == "startswith";
    fn = [self, starts, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"prefix", "start", "end"}, 1);
      std::string sub = self.as_string();
      if ((a[1] && !a[1]->is_none()) || (a[2] && !a[2]->is_none())) {
        std::u32string u = pystr::decode(sub);
        auto n = static_cast<std::int64_t>(u.size());
        std::int64_t b = opt_int(a[1], 0), e = opt_int(a[2], n);
        if (b < 0) b = std::max<std::int64_t>(0, b + n);
        if (e < 0) e = std::max<std::int64_t>(0, e + n);
        e = std::min(e, n);
        if (b > e) return Value::boolean(false);
        sub = pystr::encode(std::u32string_view(u).substr(static_cast<std::size_t>(b),
                                                          static_cast<std::size_t>(e - b)));
      }
      return Value::boolean(string_starts_or_ends(sub, *a[0], starts, name.c_str()));
    };
  } else if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" ||
             name == "casefold" || name == "swapcase") {
    fn = [self, name](Interpreter&, CallArgs& args) {
      bind_args(args, name, {});
      const std::string& x = self.as_string();
      std::string r;
      if (name == "upper") {
        r = pystr::upper(x);
      } else if (name == "lower" || name == "casefold") {
        r = pystr::lower(x);
      } else if (name == "title") {
        r = pystr::title(x);
      } else if (name == "capitalize") {
        r = pystr::capitalize(x);
      } else {
        for (char32_t cp : pystr::decode(x)) {
          std::string one;
          pystr::append_utf8(one, cp);
          std::string up = pystr::upper(one);
          r += up != one ? up : pystr::lower(one);
        }
      }
      return str_value(std::move(r), self);
    };
  } else if (name == "replace") {
    fn = [self](Interpreter& in, CallArgs& args) {
      auto a = bind_args(args, "replace", {"old", "new", "count"}, 2);
      if (!a[0]->is_string() || !a[1]->is_string()) type_error("replace() argument must be str");
      std::string olds = a[0]->as_string(), news = a[1]->as_string();
      if (self.is_markup()) {
        // Markup.replace escapes its plain-string arguments.
        if (!a[0]->is_markup()) olds = pystr::html_escape(olds);
        if (!a[1]->is_markup()) news = pystr::html_escape(news);
      }
      std::string r = pystr::replace(self.as_string(), olds, news, opt_int(a[2], -1));
      in.check_size(r.size());
      return str_value(std::move(r), self);
    };
  } else if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    bool reverse = name[0] == 'r';
    bool raise = name.find("index") != std::string::npos;
    fn = [self, reverse, raise, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"sub", "start", "end"}, 1);
      if (!a[0]->is_string()) type_error("must be str, not " + type_name(*a[0]));
      std::int64_t r = find_sub(self.as_string(), a[0]->as_string(), a[1], a[2], reverse);
      if (r < 0 && raise) value_error("substring not found");
      return Value::integer(r);
    };
  } else if (name == "count") {
    fn = [self](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, "count", {"sub"}, 1);
      if (!a[0]->is_string()) type_error("must be str, not " + type_name(*a[0]));
      const std::string& sub = a[0]->as_string();
      if (sub.empty())
        return Value::integer(static_cast<std::int64_t>(pystr::length(self.as_string()) + 1));
      std::int64_t n = 0;
      for (std::size_t p = self.as_string().find(sub); p != std::string::npos;
           p = self.as_string().find(sub, p + sub.size()))
        ++n;
      return Value::integer(n);
    };
  } else if (name == "join") {
    fn = [self](Interpreter& in, CallArgs& args) {
      auto a = bind_args(args, "join", {"iterable"}, 1);
      std::string out;
      bool first = true;
      for (const auto& item : in.iterate(*a[0])) {
        if (!item.is_string())
          type_error("sequence item: expected str instance, " + type_name(item) + " found");
        if (!first) out += self.as_string();
        first = false;
        out += item.as_string();
        in.check_size(out.size());
      }
      return str_value(std::move(out), self);
    };
  } else if (name == "isdigit" || name == "isnumeric" || name == "isdecimal" || name == "isalpha" ||
             name == "isalnum" || name == "isspace" || name == "islower" || name == "isupper") {
    fn = [self, name](Interpreter&, CallArgs& args) {
      bind_args(args, name, {});
      std::u32string u = pystr::decode(self.as_string());
      if (u.empty()) return Value::boolean(false);
      if (name == "islower" || name == "isupper") {
        std::string x = self.as_string();
        bool lower = name == "islower";
        bool cased = pystr::upper(x) != pystr::lower(x);
        return Value::boolean(cased && (lower ? pystr::lower(x) == x : pystr::upper(x) == x));
      }
      for (char32_t c : u) {
        bool ok;
        if (name == "isspace") {
          ok = pystr::is_space(c);
        } else if (name == "isalpha") {
          ok = pystr::is_word_char(c) && c != U'_' && !(c >= U'0' && c <= U'9');
        } else if (name == "isalnum") {
          ok = pystr::is_word_char(c) && c != U'_';
        } else {
          ok = c >= U'0' && c <= U'9';
        }
        if (!ok) return Value::boolean(false);
      }
      return Value::boolean(true);
    };
  } else if (name == "zfill" || name == "ljust" || name == "rjust" || name == "center") {
    fn = [self, name](Interpreter& in, CallArgs& args) {
      auto a = bind_args(args, name, {"width", "fillchar"}, 1);
      std::int64_t width = opt_int(a[0], 0);
      in.check_size(static_cast<std::size_t>(std::max<std::int64_t>(0, width)));
      std::string fill = a[1] ? to_str(*a[1]) : (name == "zfill" ? "0" : " ");
      std::string x = self.as_string();
      auto len = static_cast<std::int64_t>(pystr::length(x));
      if (width <= len) return str_value(x, self);
      std::int64_t pad = width - len;
      auto rep = [&](std::int64_t k) {
        std::string r;
        for (std::int64_t i = 0; i < k; ++i) r += fill;
        return r;
      };
      std::string r;
      if (name == "ljust") {
        r = x + rep(pad);
      } else if (name == "rjust") {
        r = rep(pad) + x;
      } else if (name == "zfill") {
        if (!x.empty() && (x[0] == '-' || x[0] == '+')) {
          r = x.substr(0, 1) + rep(pad) + x.substr(1);
        } else {
          r = rep(pad) + x;
        }
      } else {
        std::int64_t left = pad / 2 + (pad & width & 1);
        r = rep(left) + x + rep(pad - left);
      }
      return str_value(std::move(r), self);
    };
  } else if (name == "removeprefix" || name == "removesuffix") {
    bool prefix = name == "removeprefix";
    fn = [self, prefix, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"affix"}, 1);
      std::string x = self.as_string();
      std::string af = to_str(*a[0]);
      if (string_starts_or_ends(x, Value::string(af), prefix, name.c_str())) {
        x = prefix ? x.substr(af.size()) : x.substr(0, x.size() - af.size());
      }
      return str_value(std::move(x), self);
    };
  } else if (name == "partition" || name == "rpartition") {
    bool right = name == "rpartition";
    fn = [self, right, name](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, name, {"sep"}, 1);
      std::string sep = to_str(*a[0]);
      if (sep.empty()) value_error("empty separator");
      const std::string& x = self.as_string();
      std::size_t p = right ? x.rfind(sep) : x.find(sep);
      std::vector<Value> parts;
      if (p == std::string::npos) {
        parts = right ? std::vector<Value>{Value::string(""), Value::string(""), Value::string(x)}
                      : std::vector<Value>{Value::string(x), Value::string(""), Value::string("")};
      } else {
        parts = {Value::string(x.substr(0, p)), Value::string(sep),
                 Value::string(x.substr(p + sep.size()))};
      }
      return Value::list(std::move(parts), true);
    };
  } else if (name == "format") {
    fn = [self](Interpreter& in, CallArgs& args) {
      std::string r = py_format(in, self.as_string(), args);
      in.check_size(r.size());
      return str_value(std::move(r), self);
    };
  } else {
    (void)s;
    return std::nullopt;
  }
  return make_builtin(name, std::move(fn));
}

std::optional<Value> list_method(const Value& self, const std::string& name) {
  if (name == "index") {
    return make_builtin(name, [self](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, "index", {"value"}, 1);
      const auto& items = self.as_list();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (equals(items[i], *a[0])) return Value::integer(static_cast<std::int64_t>(i));
      }
      value_error(to_repr(*a[0]) + " is not in list");
    });
  }
  if (name == "count") {
    return make_builtin(name, [self](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, "count", {"value"}, 1);
      std::int64_t n = 0;
      for (const auto& item : self.as_list()) n += equals(item, *a[0]);
      return Value::integer(n);
    });
  }
  if (name == "copy" && !self.is_tuple()) {
    return make_builtin(name,
                        [self](Interpreter&, CallArgs&) { return Value::list(self.as_list()); });
  }
  return std::nullopt;
}

std::optional<Value> dict_method(const Value& self, const std::string& name) {
  if (name == "items") {
    return make_builtin(name, [self](Interpreter&, CallArgs& args) {
      bind_args(args, "items", {});
      return items_of(self);
    });
  }
  if (name == "keys" || name == "values") {
    bool keys = name == "keys";
    return make_builtin(name, [self, keys](Interpreter&, CallArgs& args) {
      bind_args(args, keys ? "keys" : "values", {});
      std::vector<Value> out;
      for (const auto& [k, v] : self.as_dict().items) out.push_back(keys ? k : v);
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return make_builtin(name, [self](Interpreter&, CallArgs& args) {
      auto a = bind_args(args, "get", {"key", "default"}, 1);
      if (!hash_key(*a[0])) type_error("unhashable type: '" + type_name(*a[0]) + "'");
      if (const Value* v = self.as_dict().find(*a[0])) return *v;
      return a[1] ? *a[1] : Value::none();
    });
  }
  if (name == "copy") {
    return make_builtin(name, [self](Interpreter&, CallArgs&) {
      auto d = std::make_shared<DictObj>(self.as_dict());
      return Value::dict(d);
    });
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> builtin_method(Interpreter&, const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj, name);
  if (obj.is_list()) return list_method(obj, name);
  if (obj.is_dict()) return dict_method(obj, name);
  return std::nullopt;
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  charge();
  const auto& table = filters();
  auto it = table.find(name);
  if (it == table.end()) {
    // Jinja2 fails at compile time outside conditionals; at run time (as here) it raises this.
    throw TemplateRenderError(ErrorKind::kRuntime, "No filter named '" + name + "' found.");
  }
  return it->second(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& input, CallArgs& args) {
  charge();
  const auto& table = tests();
  auto it = table.find(name);
  if (it == table.end()) {
    throw TemplateRenderError(ErrorKind::kRuntime, "No test named '" + name + "' found.");
  }
  return it->second(*this, input, args);
}

bool Interpreter::has_filter(const std::string& name) const { return filters().count(name) != 0; }
bool Interpreter::has_test(const std::string& name) const { return tests().count(name) != 0; }

std::string Interpreter::strftime_now(const std::string& format) const {
  return format_time(current_time(options_), format);
}

Value make_namespace(Interpreter& in, CallArgs& args) {
  auto ns = std::make_shared<NamespaceObj>();
  if (args.args.size() > 1) type_error("namespace expected at most 1 positional argument");
  if (!args.args.empty()) {
    const Value& init = args.args[0];
    if (init.is_dict()) {
      for (const auto& [k, v] : init.as_dict().items) ns->attrs->set(k, v);
    } else {
      for (const auto& pair : in.iterate(init)) {
        auto kv = in.iterate(pair);
        if (kv.size() != 2) value_error("dictionary update sequence element has wrong length");
        ns->attrs->set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.kwargs) ns->attrs->set(Value::string(k), v);
  in.namespaces_.push_back(ns);
  return Value::object(ns);
}

void install_globals(Scope& globals) {
  globals.vars["namespace"] = make_builtin("namespace", make_namespace);
  globals.vars["range"] = make_builtin("range", [](Interpreter& in, CallArgs& args) {
    if (!args.kwargs.empty()) type_error("range() takes no keyword arguments");
    if (args.args.empty() || args.args.size() > 3) type_error("range expected 1 to 3 arguments");
    for (const auto& a : args.args) {
      if (!a.is_int() && !a.is_bool()) {
        if (a.is_undefined()) a.fail_undefined();
        type_error("'" + type_name(a) + "' object cannot be interpreted as an integer");
      }
    }
    std::int64_t start = 0, stop, step = 1;
    if (args.args.size() == 1) {
      stop = args.args[0].as_int();
    } else {
      start = args.args[0].as_int();
      stop = args.args[1].as_int();
      if (args.args.size() == 3) step = args.args[2].as_int();
    }
    if (step == 0) value_error("range() arg 3 must not be zero");
    // Same cap as Jinja2's sandbox (MAX_RANGE).
    constexpr std::int64_t kMaxRange = 100000;
    long double count = step > 0 ? (static_cast<long double>(stop) - start) / step
                                 : (static_cast<long double>(start) - stop) / -step;
    if (count > kMaxRange) {
      throw TemplateRenderError(
          ErrorKind::kOverflow,
          "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    std::vector<Value> out;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
      out.push_back(Value::integer(i));
    in.charge(out.size());
    return Value::list(std::move(out));
  });
  globals.vars["dict"] = make_builtin("dict", [](Interpreter& in, CallArgs& args) {
    auto d = std::make_shared<DictObj>();
    if (args.args.size() > 1) type_error("dict expected at most 1 argument");
    if (!args.args.empty()) {
      const Value& init = args.args[0];
      if (init.is_dict()) {
        for (const auto& [k, v] : init.as_dict().items) d->set(k, v);
      } else {
        for (const auto& pair : in.iterate(init)) {
          auto kv = in.iterate(pair);
          if (kv.size() != 2) value_error("dictionary update sequence element has wrong length");
          d->set(kv[0], kv[1]);
        }
      }
    }
    for (const auto& [k, v] : args.kwargs) d->set(Value::string(k), v);
    return Value::dict(d);
  });
  globals.vars["raise_exception"] =
      make_builtin("raise_exception", [](Interpreter&, CallArgs& args) -> Value {
        auto a = bind_args(args, "raise_exception", {"message"}, 1);
        throw TemplateRaised(to_str(*a[0]));
      });
  globals.vars["strftime_now"] = make_builtin("strftime_now", [](Interpreter& in, CallArgs& args) {
    auto a = bind_args(args, "strftime_now", {"format"}, 1);
    return Value::string(in.strftime_now(to_str(*a[0])));
  });
}

}  // namespace lmserve::chat::jinja
