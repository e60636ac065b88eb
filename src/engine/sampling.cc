#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace lmserve::engine {
namespace {

std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
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

}  // namespace

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

std::int32_t Sampler::sample(std::span<float> logits, std::span<const std::int32_t> history) {
  apply_repetition_penalty(logits, history, params_.repetition_penalty,
                           params_.repetition_context_size);
  if (params_.temperature <= 0.0f) return argmax(logits);

  // Log-probabilities of the processed logits: the filters' thresholds are computed on the
  // untempered distribution, as mlx_lm does.
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max_logit));
  const float log_z = max_logit + static_cast<float>(std::log(sum));
  for (float& l : logits) l -= log_z;

  const std::size_t vocab = logits.size();
  const bool use_top_p = params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;
  const bool use_top_k = params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < vocab;

  // Candidates in descending probability order (ties: lower id first).
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::size_t kept = vocab;
  if (use_top_p || use_min_p || use_top_k) {
    std::stable_sort(order_.begin(), order_.end(), [&](std::int32_t a, std::int32_t b) {
      return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
    });
    if (use_top_p) {
      // Keep the smallest high-probability set whose mass reaches top_p: a token stays
      // while the mass of the tokens ranked above it is below top_p. top_p == 0 keeps one.
      double above = 0.0;
      std::size_t n = 0;
      while (n < kept && (n == 0 || above < params_.top_p)) {
        above += std::exp(static_cast<double>(logits[static_cast<std::size_t>(order_[n])]));
        ++n;
      }
      kept = n;
    }
    if (use_min_p) {
      const float threshold = logits[static_cast<std::size_t>(order_[0])] + std::log(params_.min_p);
      std::size_t n = 1;
      while (n < kept && logits[static_cast<std::size_t>(order_[n])] >= threshold) ++n;
      kept = n;
    }
    if (use_top_k) kept = std::min(kept, static_cast<std::size_t>(params_.top_k));
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
