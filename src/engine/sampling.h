// Token sampling: logits processors and filters in mlx_lm's order, with a per-request RNG.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace lmserve::engine {

struct SamplingParams {
  float temperature = 1.0f;          // 0 = greedy (filters ignored; processors still apply)
  float top_p = 1.0f;                // (0,1) filters; 1 = off; 0 = keep only the best token
  int top_k = 0;                     // 0 (or >= vocab) = off
  float min_p = 0.0f;                // 0 = off
  float repetition_penalty = 1.0f;   // 0 or 1 = off
  int repetition_context_size = 20;  // window (prompt + generated) for the penalty
  float presence_penalty = 0.0f;     // subtracted once per distinct id in its window
  int presence_context_size = 20;
  float frequency_penalty = 0.0f;  // subtracted once per occurrence in its window
  int frequency_context_size = 20;
  // Added to the raw logits first; ids must be in range. <= -100 bans the token.
  std::vector<std::pair<std::int32_t, float>> logit_bias;
  std::optional<std::uint64_t> seed;  // none = seeded from std::random_device
};

// The log-probability of one sampled token and of the most likely alternatives, from the
// distribution after the logits processors and before temperature and filters (§2.2 step 3).
struct TokenLogprob {
  std::int32_t id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<std::int32_t, float>> top;  // by descending logprob, ties by id
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Chooses the next token. `logits` is modified in place (processors applied).
  // `history` is the full sequence so far (prompt + generated). With `report`, also fills in
  // the chosen token's log-probability and its `top_logprobs` best alternatives.
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history,
                      TokenLogprob* report = nullptr, int top_logprobs = 0);

 private:
  // Samples from softmax(logprobs / temperature) after the top-p, min-p and top-k filters.
  std::int32_t draw(std::span<const float> logprobs);

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::int32_t> order_;  // scratch: candidate ids sorted by logit
};

}  // namespace lmserve::engine
