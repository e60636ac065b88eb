// A strict reader of the Prometheus text exposition format 0.0.4 for tests: every line must
// be a HELP or TYPE comment or a well-formed sample of a declared family, and histograms
// must be complete (cumulative buckets ending in +Inf, _count equal to it, a _sum).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::server::testing {

using Labels = std::map<std::string, std::string>;

struct PromSample {
  std::string name;  // as written: a histogram's samples end in _bucket, _sum or _count
  Labels labels;
  double value = 0;
};

struct PromFamily {
  std::string type;  // counter, gauge, histogram
  std::string help;
  std::vector<PromSample> samples;
};

using PromFamilies = std::map<std::string, PromFamily>;

// Throws std::runtime_error naming the first line that breaks the format.
PromFamilies parse_prometheus(std::string_view text);

// The value of the sample `name` with exactly `labels`; throws when there is none.
double prom_value(const PromFamilies& families, const std::string& name, const Labels& labels = {});

}  // namespace lmserve::server::testing
