#include "prometheus_text.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>
#include <stdexcept>

namespace lmserve::server::testing {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

[[noreturn]] void fail(std::size_t line_no, std::string_view line, const std::string& why) {
  throw std::runtime_error("line " + std::to_string(line_no) + " (" + std::string(line) +
                           "): " + why);
}

bool is_metric_name(const std::string& s) { return std::regex_match(s, kMetricName); }

// A sample value: a float as Go's ParseFloat reads it, or NaN / +Inf / -Inf.
bool parse_float(const std::string& s, double& out) {
  if (s == "NaN") return out = NAN, true;
  if (s == "+Inf") return out = INFINITY, true;
  if (s == "-Inf") return out = -INFINITY, true;
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size();
}

// `{name="value",...}` at s[pos] (pos just past '{'); returns the position after '}'.
std::size_t parse_labels(std::string_view s, std::size_t pos, Labels& labels, std::size_t line_no) {
  for (;;) {
    if (pos < s.size() && s[pos] == '}') return pos + 1;
    std::size_t eq = s.find('=', pos);
    if (eq == std::string_view::npos) fail(line_no, s, "label without '='");
    std::string name(s.substr(pos, eq - pos));
    if (!std::regex_match(name, kLabelName)) fail(line_no, s, "bad label name '" + name + "'");
    if (eq + 1 >= s.size() || s[eq + 1] != '"') fail(line_no, s, "label value not quoted");
    std::string value;
    std::size_t i = eq + 2;
    for (;; ++i) {
      if (i >= s.size()) fail(line_no, s, "unterminated label value");
      if (s[i] == '"') break;
      if (s[i] == '\\') {
        if (++i >= s.size()) fail(line_no, s, "dangling escape");
        if (s[i] == 'n') {
          value += '\n';
        } else if (s[i] == '\\' || s[i] == '"') {
          value += s[i];
        } else {
          fail(line_no, s, "bad escape in a label value");
        }
      } else {
        value += s[i];
      }
    }
    if (!labels.emplace(name, value).second) fail(line_no, s, "label '" + name + "' repeated");
    pos = i + 1;
    if (pos < s.size() && s[pos] == ',') {
      ++pos;
    } else if (pos >= s.size() || s[pos] != '}') {
      fail(line_no, s, "expected ',' or '}' after a label");
    }
  }
}

// The family a sample belongs to, given the declared types.
std::string family_of(const std::string& name, const PromFamilies& families) {
  if (families.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string_view s(suffix);
    if (name.size() > s.size() && name.ends_with(s)) {
      std::string base = name.substr(0, name.size() - s.size());
      auto it = families.find(base);
      if (it != families.end() && it->second.type == "histogram") return base;
    }
  }
  return {};
}

void check_histogram(const std::string& name, const PromFamily& family) {
  // Series: the labels other than `le`.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, count) in order
    const double* sum = nullptr;
    const double* count = nullptr;
  };
  std::map<Labels, Series> series;
  for (const PromSample& s : family.samples) {
    Labels key = s.labels;
    if (s.name == name + "_bucket") {
      auto le = key.find("le");
      if (le == key.end()) throw std::runtime_error(name + ": a bucket without le");
      double bound = 0;
      if (!parse_float(le->second, bound) || std::isnan(bound)) {
        throw std::runtime_error(name + ": bad le \"" + le->second + "\"");
      }
      key.erase(le);
      series[key].buckets.emplace_back(bound, s.value);
    } else if (key.count("le")) {
      throw std::runtime_error(name + ": le on " + s.name);
    } else if (s.name == name + "_sum") {
      series[key].sum = &s.value;
    } else if (s.name == name + "_count") {
      series[key].count = &s.value;
    } else {
      throw std::runtime_error(name + ": histogram sample " + s.name);
    }
  }
  if (series.empty()) throw std::runtime_error(name + ": histogram without samples");
  for (const auto& [labels, s] : series) {
    if (s.buckets.empty() || !std::isinf(s.buckets.back().first) || s.buckets.back().first < 0) {
      throw std::runtime_error(name + ": buckets do not end in +Inf");
    }
    for (std::size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].first > s.buckets[i - 1].first)) {
        throw std::runtime_error(name + ": bucket bounds not increasing");
      }
      if (s.buckets[i].second < s.buckets[i - 1].second) {
        throw std::runtime_error(name + ": bucket counts not cumulative");
      }
    }
    if (!s.sum || !s.count) throw std::runtime_error(name + ": _sum or _count missing");
    if (*s.count != s.buckets.back().second) {
      throw std::runtime_error(name + ": _count differs from the +Inf bucket");
    }
  }
}

}  // namespace

PromFamilies parse_prometheus(std::string_view text) {
  if (text.empty() || text.back() != '\n') throw std::runtime_error("must end with a line feed");
  PromFamilies families;
  std::set<std::string> closed;  // families whose samples ended: they may not come back
  std::string current;
  std::set<std::pair<std::string, Labels>> seen;
  std::size_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) fail(line_no, line, "empty line");
    if (line.starts_with('#')) {
      std::string l(line);
      std::smatch m;
      static const std::regex kHelp("# HELP ([^ ]+) (.*)");
      static const std::regex kType("# TYPE ([^ ]+) (counter|gauge|histogram)");
      if (std::regex_match(l, m, kType)) {
        const std::string name = m[1];
        if (!is_metric_name(name)) fail(line_no, line, "bad metric name");
        if (closed.count(name) || !families[name].type.empty() || !families[name].samples.empty()) {
          fail(line_no, line, "TYPE after the family's samples, or twice");
        }
        families[name].type = m[2];
      } else if (std::regex_match(l, m, kHelp)) {
        const std::string name = m[1];
        if (!is_metric_name(name)) fail(line_no, line, "bad metric name");
        if (closed.count(name) || !families[name].help.empty()) fail(line_no, line, "HELP twice");
        families[name].help = m[2];
      } else {
        fail(line_no, line, "a comment other than HELP or TYPE");
      }
      if (!current.empty() && current != std::string(m[1])) closed.insert(current);
      current = m[1];
      continue;
    }
    PromSample sample;
    std::size_t pos = line.find_first_of("{ ");
    if (pos == std::string_view::npos) fail(line_no, line, "no value");
    sample.name = std::string(line.substr(0, pos));
    if (!is_metric_name(sample.name)) fail(line_no, line, "bad metric name");
    if (line[pos] == '{') pos = parse_labels(line, pos + 1, sample.labels, line_no);
    if (pos >= line.size() || line[pos] != ' ') fail(line_no, line, "no space before the value");
    std::string value(line.substr(pos + 1));
    if (value.find(' ') != std::string::npos) fail(line_no, line, "timestamps are not expected");
    if (!parse_float(value, sample.value)) fail(line_no, line, "bad value '" + value + "'");
    const std::string family = family_of(sample.name, families);
    if (family.empty() || families[family].type.empty()) {
      fail(line_no, line, "sample of an undeclared family");
    }
    if (family != current) {
      if (closed.count(family)) fail(line_no, line, "family's samples are not contiguous");
      if (!current.empty()) closed.insert(current);
      current = family;
    }
    if (!seen.emplace(sample.name, sample.labels).second) fail(line_no, line, "duplicate sample");
    const std::string& type = families[family].type;
    if (type == "counter" && (std::isnan(sample.value) || sample.value < 0)) {
      fail(line_no, line, "a counter must be a non-negative number");
    }
    families[family].samples.push_back(std::move(sample));
  }
  for (const auto& [name, family] : families) {
    if (family.type.empty()) throw std::runtime_error(name + ": HELP without TYPE");
    if (family.type == "histogram") check_histogram(name, family);
  }
  return families;
}

double prom_value(const PromFamilies& families, const std::string& name, const Labels& labels) {
  for (const auto& [family_name, family] : families) {
    for (const PromSample& s : family.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  throw std::runtime_error("no sample " + name);
}

}  // namespace lmserve::server::testing
