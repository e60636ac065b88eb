#include "grammar/json_schema.h"

#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "grammar/number_range.h"
#include "grammar/regex.h"

namespace lmserve::grammar {
namespace {

using json = nlohmann::ordered_json;

constexpr int kMaxBound = 1000;        // longest repetition a bound may ask for
constexpr int kMaxExclusiveDepth = 8;  // how deep oneOf branches are compared

// Shared building blocks. Whitespace is bounded so a model cannot loop on it.
const std::map<std::string, std::string>& primitives() {
  static const std::map<std::string, std::string> rules = {
      {"ws", R"([ \t\n]{0,20})"},
      {"char", R"([^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))"},
      {"string", R"("\"" char* "\"")"},
      {"int-part", R"("0" | [1-9] [0-9]{0,15})"},
      {"integer", R"("-"? int-part)"},
      {"number", R"("-"? int-part ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?)"},
      {"boolean", R"("true" | "false")"},
      {"null", R"("null")"},
      {"value", R"(object | array | string | number | boolean | null)"},
      {"object", R"("{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}")"},
      {"array", R"("[" ws (value (ws "," ws value)*)? ws "]")"},
      {"digit2", R"([0-9] [0-9])"},
      {"date", R"([0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))"},
      {"time",
       R"(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9]))"},
      {"uuid", R"([0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12})"},
      // A subset of what RFC 5321 allows: dot-separated atoms @ host labels, one dot at least.
      {"email",
       R"([A-Za-z0-9_+-]{1,32} ("." [A-Za-z0-9_+-]{1,32}){0,3} "@" label ("." label){1,3})"},
      {"label", R"([a-z0-9] ([a-z0-9-]{0,20} [a-z0-9])?)"},
      {"ipv4", R"(octet "." octet "." octet "." octet)"},
      {"octet", R"("25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9])"},
  };
  return rules;
}

// Which primitives each primitive uses (so only what is needed is emitted).
const std::map<std::string, std::vector<std::string>>& primitive_deps() {
  static const std::map<std::string, std::vector<std::string>> deps = {
      {"string", {"char"}},
      {"integer", {"int-part"}},
      {"number", {"int-part"}},
      {"value", {"object", "array", "string", "number", "boolean", "null"}},
      {"object", {"ws", "string", "value"}},
      {"array", {"ws", "value"}},
      {"email", {"label"}},
      {"ipv4", {"octet"}},
  };
  return deps;
}

// Keywords that describe but do not constrain.
bool is_annotation(const std::string& key) {
  static const std::set<std::string> keys = {"title",    "description", "$schema",  "$id",
                                             "$comment", "default",     "examples", "deprecated",
                                             "readOnly", "writeOnly",   "$defs",    "definitions"};
  return keys.count(key) > 0;
}

std::string json_literal(const json& value) { return gbnf_literal(value.dump()); }

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

std::string index_path(const std::string& base, const std::string& key, std::size_t i) {
  return join_path(base, key) + "[" + std::to_string(i) + "]";
}

class Compiler {
 public:
  explicit Compiler(const json& root) : root_(root) {}

  std::string compile(std::string_view root_rule) {
    const std::string body = visit(root_, "", std::string(root_rule));
    std::string out = std::string(root_rule) + " ::= " + body + "\n";
    for (const auto& [name, rule] : rules_) out += name + " ::= " + rule + "\n";
    for (const auto& name : used_) out += name + " ::= " + primitives().at(name) + "\n";
    return out;
  }

 private:
  [[noreturn]] static void unsupported(const std::string& path, const std::string& what) {
    throw SchemaError(path, what);
  }

  std::string use(const std::string& primitive) {
    if (used_.insert(primitive).second) {
      auto it = primitive_deps().find(primitive);
      if (it != primitive_deps().end())
        for (const auto& dep : it->second) use(dep);
    }
    return primitive;
  }

  std::string new_rule(const std::string& hint, std::string body) {
    std::string name;
    for (char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    if (name.empty()) name = "r";
    name = "s-" + name;
    std::string unique = name;
    for (int i = 2; rules_.count(unique) || primitives().count(unique); ++i)
      unique = name + std::to_string(i);
    rules_[unique] = std::move(body);
    return unique;
  }

  // Keys of `s` other than annotations and `allowed` are refused.
  static void only(const json& s, const std::string& path,
                   std::initializer_list<const char*> allowed) {
    for (const auto& [key, v] : s.items()) {
      if (is_annotation(key)) continue;
      bool ok = false;
      for (const char* a : allowed) ok = ok || key == a;
      if (!ok)
        unsupported(join_path(path, key),
                    "unsupported JSON Schema keyword '" + key + "'" + " here");
    }
  }

  static std::size_t bound(const json& s, const char* key, const std::string& path) {
    const json& v = s.at(key);
    if (!v.is_number_integer() || v.get<long long>() < 0)
      unsupported(join_path(path, key),
                  std::string("'") + key + "' must be a non-negative integer");
    return static_cast<std::size_t>(v.get<long long>());
  }

  // "x{min,max}" with max capped at kMaxBound (a narrower grammar is still a valid one).
  static std::string repeat(const std::string& item, std::size_t min,
                            std::optional<std::size_t> max, const std::string& path) {
    if (min > static_cast<std::size_t>(kMaxBound))
      unsupported(path, "a minimum above " + std::to_string(kMaxBound) + " is not supported");
    const std::size_t hi = std::min<std::size_t>(max.value_or(kMaxBound), kMaxBound);
    if (hi < min) unsupported(path, "maximum is below minimum");
    if (!max && min == 0) return "(" + item + ")*";
    if (!max) return "(" + item + "){" + std::to_string(min) + ",}";
    return "(" + item + "){" + std::to_string(min) + "," + std::to_string(hi) + "}";
  }

  std::string visit(const json& s, const std::string& path, const std::string& hint) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return use("value");
      unsupported(path, "the schema 'false' accepts nothing");
    }
    if (!s.is_object()) unsupported(path, "a schema must be an object or a boolean");
    if (s.contains("nullable")) {
      if (!s["nullable"].is_boolean())
        unsupported(join_path(path, "nullable"), "'nullable' must be a boolean");
      json rest = s;
      rest.erase("nullable");
      const std::string inner = visit(rest, path, hint);
      return s["nullable"].get<bool>() ? "(" + inner + " | " + use("null") + ")" : inner;
    }
    if (s.contains("$ref")) {
      only(s, path, {"$ref"});
      return ref(s["$ref"], join_path(path, "$ref"));
    }
    if (s.contains("const")) {
      only(s, path, {"const", "type", "enum"});
      return json_literal(s["const"]);
    }
    if (s.contains("enum")) {
      only(s, path, {"enum", "type"});
      const json& values = s["enum"];
      if (!values.is_array() || values.empty())
        unsupported(join_path(path, "enum"), "'enum' must be a non-empty array");
      std::string alts;
      for (const json& v : values) alts += (alts.empty() ? "" : " | ") + json_literal(v);
      return "(" + alts + ")";
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      only(s, path, {key});
      const json& list = s[key];
      if (!list.is_array() || list.empty())
        unsupported(join_path(path, key), std::string("'") + key + "' must be a non-empty array");
      if (key == std::string_view("oneOf")) {
        // A grammar cannot count matching branches: oneOf is enforced when no value can
        // match two branches, which is checked here, and refused otherwise.
        for (std::size_t i = 0; i < list.size(); ++i)
          for (std::size_t j = i + 1; j < list.size(); ++j)
            if (!exclusive(list[i], list[j], 0))
              unsupported(join_path(path, key),
                          "'oneOf' branches " + std::to_string(i) + " and " + std::to_string(j) +
                              " may both match a value, which a grammar cannot exclude: use "
                              "'anyOf', or tell the branches apart by type or by a required "
                              "property with distinct 'const' or 'enum' values");
      }
      std::string alts;
      for (std::size_t i = 0; i < list.size(); ++i)
        alts += (i ? " | " : "") +
                visit(list[i], index_path(path, key, i), hint + "-" + std::to_string(i));
      return "(" + alts + ")";
    }
    if (s.contains("allOf")) return visit(merge_all_of(s, path), path, hint);
    if (!s.contains("type")) {
      // Untyped schemas: infer objects/arrays from their keywords, else any value.
      if (s.contains("properties") || s.contains("required") ||
          s.contains("additionalProperties")) {
        json typed = s;
        typed["type"] = "object";
        return visit(typed, path, hint);
      }
      if (s.contains("items") || s.contains("prefixItems")) {
        json typed = s;
        typed["type"] = "array";
        return visit(typed, path, hint);
      }
      only(s, path, {});
      return use("value");
    }
    const json& type = s["type"];
    if (type.is_array()) {
      if (type.empty()) unsupported(join_path(path, "type"), "'type' must not be empty");
      std::string alts;
      for (std::size_t i = 0; i < type.size(); ++i) {
        // Each branch keeps the keywords of its own type: {"type": ["string", "null"],
        // "maxLength": 4} bounds only the strings.
        json single = s;
        single["type"] = type[i];
        if (type[i] == "null" || type[i] == "boolean") {
          for (const char* key :
               {"minLength", "maxLength", "format", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum", "items", "prefixItems", "minItems", "maxItems", "properties",
                "required", "additionalProperties"})
            single.erase(key);
        }
        alts += (i ? " | " : "") + visit(single, path, hint);
      }
      return "(" + alts + ")";
    }
    if (!type.is_string())
      unsupported(join_path(path, "type"), "'type' must be a string or an array");
    const std::string t = type.get<std::string>();
    if (t == "string") return string_rule(s, path, hint);
    if (t == "integer" || t == "number") return number_rule(s, path, t == "integer");
    if (t == "boolean" || t == "null") {
      only(s, path, {"type"});
      return use(t);
    }
    if (t == "object") return object_rule(s, path, hint);
    if (t == "array") return array_rule(s, path, hint);
    unsupported(join_path(path, "type"), "unknown type '" + t + "'");
  }

  // What kinds of JSON value a schema admits (a bit per kind), nullopt when it cannot tell.
  enum Kind : unsigned {
    kNull = 1,
    kBoolean = 2,
    kNumber = 4,
    kString = 8,
    kArray = 16,
    kObject = 32
  };

  static unsigned kind_of(const json& v) {
    return v.is_null()      ? kNull
           : v.is_boolean() ? kBoolean
           : v.is_number()  ? kNumber
           : v.is_string()  ? kString
           : v.is_array()   ? kArray
                            : kObject;
  }

  // `s` with local references followed (nullptr when one does not resolve).
  const json* resolved(const json& s) const {
    const json* at = &s;
    for (int hops = 0; at->is_object() && at->contains("$ref"); ++hops) {
      const json& target = (*at)["$ref"];
      if (hops > kMaxExclusiveDepth || !target.is_string() ||
          !target.get<std::string>().starts_with("#"))
        return nullptr;
      try {
        at = &root_.at(json::json_pointer(target.get<std::string>().substr(1)));
      } catch (const json::exception&) {
        return nullptr;
      }
    }
    return at;
  }

  std::optional<unsigned> kinds(const json& schema, int depth) const {
    const json* s = resolved(schema);
    if (!s || !s->is_object() || depth > kMaxExclusiveDepth) return std::nullopt;
    unsigned out = 0;
    if (s->contains("const")) return kind_of((*s)["const"]);
    if (s->contains("enum") && (*s)["enum"].is_array()) {
      for (const json& v : (*s)["enum"]) out |= kind_of(v);
      return out;
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s->contains(key)) continue;
      if (!(*s)[key].is_array()) return std::nullopt;
      for (const json& branch : (*s)[key]) {
        const auto k = kinds(branch, depth + 1);
        if (!k) return std::nullopt;
        out |= *k;
      }
      return out;
    }
    static const std::map<std::string, unsigned> kTypes = {
        {"null", kNull},     {"boolean", kBoolean}, {"integer", kNumber}, {"number", kNumber},
        {"string", kString}, {"array", kArray},     {"object", kObject}};
    if (s->contains("type")) {
      const json& type = (*s)["type"];
      for (const json& t : type.is_array() ? type : json::array({type})) {
        auto it = t.is_string() ? kTypes.find(t.get<std::string>()) : kTypes.end();
        if (it == kTypes.end()) return std::nullopt;
        out |= it->second;
      }
    } else if (s->contains("properties") || s->contains("required") || s->contains("allOf")) {
      out = kObject;
    } else if (s->contains("items") || s->contains("prefixItems")) {
      out = kArray;
    } else {
      return std::nullopt;
    }
    // Compared, not converted: a non-boolean `nullable` is refused where the branch compiles.
    if (auto n = s->find("nullable"); n != s->end() && *n == true) out |= kNull;
    return out;
  }

  // True only when no value can match both schemas (a sound, incomplete test).
  bool exclusive(const json& a_schema, const json& b_schema, int depth) const {
    if (depth > kMaxExclusiveDepth) return false;
    const json* a = resolved(a_schema);
    const json* b = resolved(b_schema);
    if (!a || !b || !a->is_object() || !b->is_object()) return false;
    const auto ka = kinds(*a, depth), kb = kinds(*b, depth);
    if (ka && kb && (*ka & *kb) == 0) return true;
    auto literals = [](const json& s) -> std::optional<json> {
      if (s.contains("const")) return json::array({s["const"]});
      if (s.contains("enum") && s["enum"].is_array()) return s["enum"];
      return std::nullopt;
    };
    const auto la = literals(*a), lb = literals(*b);
    if (la && lb) {
      for (const json& x : *la)
        for (const json& y : *lb)
          if (x == y) return false;
      return true;
    }
    if (ka != std::optional<unsigned>(kObject) || kb != std::optional<unsigned>(kObject))
      return false;
    // Two objects: a property both require that cannot match in both, or one that one
    // requires and the other does not allow.
    const json pa = a->value("properties", json::object()),
               pb = b->value("properties", json::object());
    const json ra = a->value("required", json::array()), rb = b->value("required", json::array());
    if (!pa.is_object() || !pb.is_object() || !ra.is_array() || !rb.is_array()) return false;
    auto requires_key = [](const json& required, const json& key) {
      return std::find(required.begin(), required.end(), key) != required.end();
    };
    auto closed = [](const json& s) {
      return s.value("additionalProperties", json(true)) == false;
    };
    for (const json& key : ra) {
      if (!key.is_string()) continue;
      const std::string& k = key.get_ref<const std::string&>();
      if (closed(*b) && !pb.contains(k)) return true;
      if (requires_key(rb, key) && pa.contains(k) && pb.contains(k) &&
          exclusive(pa[k], pb[k], depth + 1))
        return true;
    }
    for (const json& key : rb)
      if (key.is_string() && closed(*a) && !pa.contains(key.get<std::string>())) return true;
    return false;
  }

  std::string ref(const json& target, const std::string& path) {
    if (!target.is_string()) unsupported(path, "'$ref' must be a string");
    const std::string pointer = target.get<std::string>();
    if (auto it = refs_.find(pointer); it != refs_.end()) return it->second;
    if (pointer.empty() || pointer[0] != '#')
      unsupported(path, "only local references ('#/...') are supported");
    const json* node = &root_;
    try {
      node = &root_.at(json::json_pointer(pointer.substr(1)));
    } catch (const json::exception&) {
      unsupported(path, "'$ref' " + pointer + " does not resolve");
    }
    // Name the rule before visiting it, so recursive references find it.
    const std::string name = new_rule("ref-" + pointer.substr(pointer.rfind('/') + 1), "");
    refs_[pointer] = name;
    rules_[name] = visit(*node, path, name);
    return name;
  }

  json merge_all_of(const json& s, const std::string& path) {
    const json& list = s["allOf"];
    if (!list.is_array() || list.empty())
      unsupported(join_path(path, "allOf"), "'allOf' must be a non-empty array");
    json merged = s;
    merged.erase("allOf");
    merged["type"] = "object";
    json properties = merged.value("properties", json::object());
    json required = merged.value("required", json::array());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string at = index_path(path, "allOf", i);
      const json* part = &list[i];
      if (part->is_object() && part->contains("$ref") && (*part)["$ref"].is_string()) {
        try {
          part = &root_.at(json::json_pointer((*part)["$ref"].get<std::string>().substr(1)));
        } catch (const json::exception&) {
          unsupported(join_path(at, "$ref"), "'$ref' does not resolve");
        }
      }
      if (!part->is_object() || (part->contains("type") && (*part)["type"] != "object"))
        unsupported(at, "'allOf' is supported for object schemas only");
      only(*part, at, {"type", "properties", "required", "additionalProperties"});
      const json part_properties = part->value("properties", json::object());
      const json part_required = part->value("required", json::array());
      if (!part_properties.is_object() || !part_required.is_array())
        unsupported(at, "'properties' must be an object and 'required' an array");
      for (const auto& [k, v] : part_properties.items()) properties[k] = v;
      for (const json& r : part_required) required.push_back(r);
    }
    merged["properties"] = properties;
    merged["required"] = required;
    return merged;
  }

  std::string string_rule(const json& s, const std::string& path, const std::string& hint) {
    only(s, path, {"type", "minLength", "maxLength", "format", "pattern"});
    const bool bounded = s.contains("minLength") || s.contains("maxLength");
    const char* bound_key = s.contains("minLength") ? "minLength" : "maxLength";
    if (s.contains("pattern")) {
      if (bounded || s.contains("format"))
        unsupported(join_path(path, bounded ? bound_key : "format"),
                    std::string("'") + (bounded ? bound_key : "format") +
                        "' together with 'pattern' is not supported");
      const json& pattern = s["pattern"];
      if (!pattern.is_string())
        unsupported(join_path(path, "pattern"), "'pattern' must be a string");
      try {
        return new_rule(hint + "-pattern",
                        "\"\\\"\" " + regex_to_gbnf(pattern.get<std::string>()) + " \"\\\"\"");
      } catch (const RegexError& e) {
        unsupported(join_path(path, "pattern"), e.what());
      }
    }
    if (s.contains("format")) {
      static const std::map<std::string, std::string> formats = {
          {"date", "date"}, {"time", "time"},   {"date-time", "date \"T\" time"},
          {"uuid", "uuid"}, {"email", "email"}, {"ipv4", "ipv4"}};
      const json& f = s["format"];
      auto it = f.is_string() ? formats.find(f.get<std::string>()) : formats.end();
      if (it == formats.end())
        unsupported(join_path(path, "format"), "unsupported string format " + f.dump());
      if (bounded)
        unsupported(join_path(path, bound_key),
                    "length bounds together with 'format' are not supported");
      for (const char* rule : {"date", "time", "uuid", "email", "ipv4"})
        if (it->second.find(rule) != std::string::npos) use(rule);
      return "(\"\\\"\" " + it->second + " \"\\\"\")";
    }
    if (!bounded) return use("string");
    use("char");
    const std::size_t min = s.contains("minLength") ? bound(s, "minLength", path) : 0;
    std::optional<std::size_t> max;
    if (s.contains("maxLength")) max = bound(s, "maxLength", path);
    return new_rule(hint + "-string",
                    "\"\\\"\" " +
                        repeat("char", min, max, join_path(path, max ? "maxLength" : "minLength")) +
                        " \"\\\"\"");
  }

  // Integer bounds are exact (a grammar over digits); number bounds must be integers.
  std::string number_rule(const json& s, const std::string& path, bool integer) {
    only(s, path, {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"});
    struct Given {
      const char* key;
      double value;
      bool exclusive;
      bool lower;
    };
    std::vector<Given> given;
    for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!s.contains(key)) continue;
      if (!s[key].is_number())
        unsupported(join_path(path, key), std::string("'") + key + "' must be a number");
      const std::string k = key;
      given.push_back({key, s[key].get<double>(), k.starts_with("exclusive"),
                       k == "minimum" || k == "exclusiveMinimum"});
    }
    const std::string base = use(integer ? "integer" : "number");
    if (given.empty()) return base;
    const auto limit = static_cast<double>(kMaxGrammarInteger);
    std::optional<NumberBound> lo, hi;
    const char* lo_key = nullptr;
    for (const Given& g : given) {
      double v = g.value;
      bool exclusive = g.exclusive;
      if (integer) {  // as inclusive integer bounds
        v = g.lower ? (exclusive ? std::floor(v) + 1 : std::ceil(v))
                    : (exclusive ? std::ceil(v) - 1 : std::floor(v));
        exclusive = false;
      } else if (v != std::floor(v) || std::fabs(v) > limit) {
        unsupported(join_path(path, g.key),
                    "number bounds must be integers within 1e16 (a bound between integers "
                    "cannot be written as a grammar here)");
      }
      if (g.lower ? v < -limit : v > limit) continue;  // beyond what the grammar writes anyway
      if (g.lower ? v > limit : v < -limit)
        unsupported(join_path(path, g.key), "no integer of at most 16 digits is in range");
      const NumberBound b{static_cast<std::int64_t>(v), exclusive};
      std::optional<NumberBound>& slot = g.lower ? lo : hi;
      // The stronger bound wins; at equal values the exclusive one.
      const bool stronger = !slot || (g.lower ? b.value > slot->value : b.value < slot->value) ||
                            (b.value == slot->value && b.exclusive);
      if (stronger) {
        slot = b;
        if (g.lower) lo_key = g.key;
      }
    }
    if (!lo && !hi) return base;
    const std::string body = integer
                                 ? integer_range_gbnf(lo ? std::optional(lo->value) : std::nullopt,
                                                      hi ? std::optional(hi->value) : std::nullopt)
                                 : number_range_gbnf(lo, hi);
    if (body.empty())
      unsupported(join_path(path, lo_key ? lo_key : "maximum"), "the range is empty");
    return "(" + body + ")";
  }

  std::string object_rule(const json& s, const std::string& path, const std::string& hint) {
    only(s, path, {"type", "properties", "required", "additionalProperties"});
    use("ws");
    const json properties = s.value("properties", json::object());
    if (!properties.is_object())
      unsupported(join_path(path, "properties"), "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array())
        unsupported(join_path(path, "required"), "'required' must be an array");
      for (std::size_t i = 0; i < s["required"].size(); ++i) {
        const json& r = s["required"][i];
        if (!r.is_string() || !properties.contains(r.get<std::string>()))
          unsupported(index_path(path, "required", i),
                      "'required' names a property not in 'properties'");
        required.insert(r.get<std::string>());
      }
    }
    const json additional = s.value("additionalProperties", json(properties.empty()));
    if (properties.empty()) {
      if (additional.is_boolean()) {
        return additional.get<bool>() ? use("object") : "(\"{\" ws \"}\")";
      }
      // A map: any keys, values of one schema.
      use("string");
      const std::string kv = new_rule(
          hint + "-kv",
          "string ws \":\" ws " +
              visit(additional, join_path(path, "additionalProperties"), hint + "-additional"));
      return "(\"{\" ws (" + kv + " (ws \",\" ws " + kv + ")*)? ws \"}\")";
    }
    // Declared properties in declared order, each optional one independently present.
    // S_j: nothing written yet, R_j: something written (a comma comes first).
    std::vector<std::string> kv;
    std::vector<bool> req;
    for (const auto& [key, sub] : properties.items()) {
      kv.push_back(new_rule(
          hint + "-" + key + "-kv",
          json_literal(key) + " ws \":\" ws " +
              visit(sub, join_path(join_path(path, "properties"), key), hint + "-" + key)));
      req.push_back(required.count(key) > 0);
    }
    const std::size_t n = kv.size();
    std::vector<std::string> rest(n + 1), first(n + 1);
    for (std::size_t j = n; j-- > 0;) {
      const std::string after = rest[j + 1].empty() ? "" : " " + rest[j + 1];
      const std::string item = "ws \",\" ws " + kv[j];
      const std::string r = req[j] ? item + after : "(" + item + ")?" + after;
      rest[j] = new_rule(hint + "-rest" + std::to_string(j), r);
      const std::string with = kv[j] + after;
      const std::string f = req[j] || first[j + 1].empty() ? with : with + " | " + first[j + 1];
      first[j] = new_rule(hint + "-first" + std::to_string(j),
                          req[j] ? f : f + (first[j + 1].empty() ? " | " : ""));
    }
    return "(\"{\" ws " + first[0] + " ws \"}\")";
  }

  std::string array_rule(const json& s, const std::string& path, const std::string& hint) {
    only(s, path, {"type", "items", "prefixItems", "minItems", "maxItems"});
    use("ws");
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const json& p = s["prefixItems"];
      if (!p.is_array())
        unsupported(join_path(path, "prefixItems"), "'prefixItems' must be an array");
      for (std::size_t i = 0; i < p.size(); ++i)
        prefix.push_back(
            visit(p[i], index_path(path, "prefixItems", i), hint + "-item" + std::to_string(i)));
    }
    std::string item;
    if (s.contains("items")) {
      const json& it = s["items"];
      if (!(it.is_boolean() && !it.get<bool>()))
        item = visit(it, join_path(path, "items"), hint + "-item");
    } else if (prefix.empty()) {
      item = use("value");
    }
    const std::size_t min = s.contains("minItems") ? bound(s, "minItems", path) : 0;
    std::optional<std::size_t> max;
    if (s.contains("maxItems")) max = bound(s, "maxItems", path);
    if (!prefix.empty()) {
      // Tuples: every prefix item, then (optionally) more of `items`.
      if (min > prefix.size() && item.empty())
        unsupported(join_path(path, "minItems"), "'minItems' exceeds the tuple's length");
      if (max && *max < prefix.size())
        unsupported(join_path(path, "maxItems"),
                    "'maxItems' below the tuple's length is not supported");
      std::string body;
      for (std::size_t i = 0; i < prefix.size(); ++i)
        body += (i ? " ws \",\" ws " : "") + prefix[i];
      if (!item.empty()) {
        const std::size_t extra_min = min > prefix.size() ? min - prefix.size() : 0;
        std::optional<std::size_t> extra_max;
        if (max) extra_max = *max - prefix.size();
        if (!extra_max || *extra_max > 0)
          body += " " +
                  repeat("ws \",\" ws " + item, extra_min, extra_max, join_path(path, "maxItems"));
      }
      return "(\"[\" ws " + body + " ws \"]\")";
    }
    if (item.empty()) {
      if (min > 0) unsupported(join_path(path, "minItems"), "'minItems' with 'items': false");
      return "(\"[\" ws \"]\")";
    }
    if (max && *max == 0) return "(\"[\" ws \"]\")";
    std::optional<std::size_t> more;
    if (max) more = *max - 1;
    const std::string list =
        item + " " +
        repeat("ws \",\" ws " + item, min > 0 ? min - 1 : 0, more, join_path(path, "maxItems"));
    return min > 0 ? "(\"[\" ws " + list + " ws \"]\")" : "(\"[\" ws (" + list + ")? ws \"]\")";
  }

  const json& root_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> refs_;  // JSON pointer -> rule
  std::set<std::string> used_;
};

}  // namespace

std::string gbnf_literal(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, std::string_view root_rule) {
  return Compiler(schema).compile(root_rule);
}

std::string json_object_gbnf(std::string_view root_rule) {
  return json_schema_to_gbnf(json{{"type", "object"}}, root_rule);
}

}  // namespace lmserve::grammar
