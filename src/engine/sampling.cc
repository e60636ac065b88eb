#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "kernels/ops.h"

namespace lmserve::engine {
namespace {

std::int32_t argmax(std::span<const float> logits) {
  return kernels::argmax(logits.data(), static_cast<int>(logits.size()));
}

float greatest(std::span<const float> logits) {
  return logits[static_cast<std::size_t>(argmax(logits))];
}

// CTRL-style, sign-aware: each distinct id of the window is penalised once.
void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> history,
                              float penalty, int context_size) {
  if (penalty == 0.0f || penalty == 1.0f || context_size <= 0) return;
  std::size_t window = std::min(history.size(), static_cast<std::size_t>(context_size));
  std::unordered_set<std::int32_t> seen;
  for (std::size_t i = history.size() - window; i < history.size(); ++i) {
    std::int32_t id = history[i];
    if (id < 0 || static_cast<std::size_t>(id) >= logits.size() || !seen.insert(id).second)
      continue;
    float& l = logits[static_cast<std::size_t>(id)];
    if (!std::isfinite(l)) continue;
    // Saturates rather than overflowing to ±inf (a tiny penalty divides by almost zero),
    // which would turn the normalisation below into NaN.
    constexpr double kMax = std::numeric_limits<float>::max();
    double penalised = l > 0 ? l / static_cast<double>(penalty) : l * static_cast<double>(penalty);
    l = static_cast<float>(std::clamp(penalised, -kMax, kMax));
  }
}

// Additive bias on the raw logits; a bias of -100 or less bans the token.
void apply_logit_bias(std::span<float> logits,
                      const std::vector<std::pair<std::int32_t, float>>& bias) {
  for (const auto& [id, b] : bias) {
    if (id < 0 || static_cast<std::size_t>(id) >= logits.size()) continue;
    float& l = logits[static_cast<std::size_t>(id)];
    l = b <= -100.0f ? -std::numeric_limits<float>::infinity() : l + b;
  }
}

// mlx's presence and frequency penalties: over the last `context_size` tokens of the whole
// sequence, minus `penalty` once per distinct id (presence) or once per occurrence (frequency).
void apply_count_penalty(std::span<float> logits, std::span<const std::int32_t> history,
                         float penalty, int context_size, bool per_occurrence) {
  if (penalty == 0.0f || context_size <= 0) return;
  const std::size_t window = std::min(history.size(), static_cast<std::size_t>(context_size));
  std::unordered_map<std::int32_t, int> counts;
  for (std::size_t i = history.size() - window; i < history.size(); ++i) ++counts[history[i]];
  for (const auto& [id, count] : counts) {
    if (id < 0 || static_cast<std::size_t>(id) >= logits.size()) continue;
    logits[static_cast<std::size_t>(id)] -=
        penalty * static_cast<float>(per_occurrence ? count : 1);
  }
}

// In place: logits -> logits - logsumexp(logits).
void to_logprobs(std::span<float> logits) {
  const float max_logit = greatest(logits);
  const double sum =
      kernels::sum_exp(logits.data(), static_cast<int>(logits.size()), max_logit);
  const float log_z = max_logit + static_cast<float>(std::log(sum));
  for (float& l : logits) l -= log_z;
}

void report_logprobs(std::span<const float> logprobs, std::int32_t chosen, int top,
                     TokenLogprob& report) {
  report.id = chosen;
  report.logprob = logprobs[static_cast<std::size_t>(chosen)];
  report.top.clear();
  const std::size_t k = std::min(logprobs.size(), static_cast<std::size_t>(std::max(0, top)));
  if (k == 0) return;
  // One pass keeping the k best in a small sorted buffer: k <= 20, the vocabulary is large.
  auto better = [](const std::pair<std::int32_t, float>& a,
                   const std::pair<std::int32_t, float>& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  for (std::size_t i = 0; i < logprobs.size(); ++i) {
    std::pair<std::int32_t, float> entry{static_cast<std::int32_t>(i), logprobs[i]};
    if (report.top.size() == k && !better(entry, report.top.back())) continue;
    report.top.insert(std::upper_bound(report.top.begin(), report.top.end(), entry, better), entry);
    if (report.top.size() > k) report.top.pop_back();
  }
}

}  // namespace

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

std::int32_t Sampler::sample(std::span<float> logits, std::span<const std::int32_t> history,
                             TokenLogprob* report, int top_logprobs) {
  apply_logit_bias(logits, params_.logit_bias);
  apply_repetition_penalty(logits, history, params_.repetition_penalty,
                           params_.repetition_context_size);
  apply_count_penalty(logits, history, params_.presence_penalty, params_.presence_context_size,
                      /*per_occurrence=*/false);
  apply_count_penalty(logits, history, params_.frequency_penalty, params_.frequency_context_size,
                      /*per_occurrence=*/true);
  if (params_.temperature <= 0.0f && report == nullptr) return argmax(logits);
  // Log-probabilities of the processed logits: what `logprobs` reports, and what the filters'
  // thresholds are computed on (the untempered distribution, as mlx_lm does).
  to_logprobs(logits);
  const std::int32_t chosen = params_.temperature <= 0.0f ? argmax(logits) : draw(logits);
  if (report != nullptr) report_logprobs(logits, chosen, top_logprobs, *report);
  return chosen;
}

std::int32_t Sampler::draw(std::span<const float> logits) {
  const std::size_t vocab = logits.size();
  const bool use_top_p = params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;
  const bool use_top_k = params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < vocab;

  // Candidates in descending probability order (ties: lower id first), sorted only as far
  // as the filters look: a full sort of a 150k vocabulary would cost more than the step.
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::size_t kept = vocab;
  if (use_top_p || use_min_p || use_top_k) {
    auto better = [&](std::int32_t a, std::int32_t b) {
      const float la = logits[static_cast<std::size_t>(a)],
                  lb = logits[static_cast<std::size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    // min-p and top-k bound the kept set before any sorting: min-p keeps the tokens within
    // its ratio of the best (at least the best), top-k the k best.
    auto candidates_end = order_.end();
    if (use_min_p) {
      const float threshold =
          greatest(logits) + std::log(params_.min_p);
      candidates_end = std::partition(order_.begin(), order_.end(), [&](std::int32_t id) {
        return logits[static_cast<std::size_t>(id)] >= threshold;
      });
    }
    const std::size_t candidates = std::max<std::size_t>(1, candidates_end - order_.begin());
    std::size_t limit = candidates;
    if (use_top_k) limit = std::min(limit, static_cast<std::size_t>(params_.top_k));
    if (use_top_p) {
      // Keep the smallest high-probability set whose mass reaches top_p: a token stays while
      // the mass of the tokens ranked above it is below top_p (top_p == 0 keeps one). The
      // sorted prefix grows geometrically until the mass is reached.
      double above = 0.0;
      std::size_t n = 0;
      std::size_t sorted = 0;
      do {
        const std::size_t want = std::min(limit, std::max<std::size_t>(64, 4 * sorted));
        std::partial_sort(order_.begin() + static_cast<std::ptrdiff_t>(sorted),
                          order_.begin() + static_cast<std::ptrdiff_t>(want),
                          order_.begin() + static_cast<std::ptrdiff_t>(candidates), better);
        sorted = want;
        while (n < sorted && (n == 0 || above < params_.top_p)) {
          above += std::exp(static_cast<double>(logits[static_cast<std::size_t>(order_[n])]));
          ++n;
        }
      } while (n == sorted && sorted < limit && above < params_.top_p);
      kept = n;
    } else {
      std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(limit),
                        order_.begin() + static_cast<std::ptrdiff_t>(candidates), better);
      kept = limit;
    }
  }

  // Sample from softmax(logprob / temperature) over the kept candidates, in double and as
  // (logprob - best) / T: 1/T overflows for a tiny T, whereas this tends to greedy, its limit.
  const double t = params_.temperature;
  double best = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < kept; ++i) {
    best = std::max(best, static_cast<double>(logits[static_cast<std::size_t>(order_[i])]));
  }
  auto weight = [&](std::size_t i) {
    return std::exp((static_cast<double>(logits[static_cast<std::size_t>(order_[i])]) - best) / t);
  };
  double total = 0.0;
  for (std::size_t i = 0; i < kept; ++i) total += weight(i);
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  std::int32_t chosen = order_[0];
  for (std::size_t i = 0; i < kept; ++i) {
    const double w = weight(i);
    if (w <= 0.0) continue;  // never drawn, not even by rounding
    chosen = order_[i];
    r -= w;
    if (r < 0.0) break;
  }
  return chosen;
}

}  // namespace lmserve::engine
