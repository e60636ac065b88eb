// Token sampling: logits processors and filters in mlx_lm's order, with a per-request RNG.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace lmserve::engine {

struct SamplingParams {
  float temperature = 1.0f;           // 0 = greedy (every other field but penalties ignored)
  float top_p = 1.0f;                 // (0,1) filters; 1 = off; 0 = keep only the best token
  int top_k = 0;                      // 0 (or >= vocab) = off
  float min_p = 0.0f;                 // 0 = off
  float repetition_penalty = 1.0f;    // 0 or 1 = off
  int repetition_context_size = 20;   // window (prompt + generated) for the penalty
  std::optional<std::uint64_t> seed;  // none = seeded from std::random_device
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Chooses the next token. `logits` is modified in place (processors applied).
  // `history` is the full sequence so far (prompt + generated).
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::int32_t> order_;  // scratch: candidate ids sorted by logit
};

}  // namespace lmserve::engine
