// ModelConfig from GGUF metadata (llama.cpp's key names), and f32 widening of small tensors.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/convert.h"
#include "model/loading.h"
#include "util/error.h"

namespace lmserve::model {

namespace {

// Reads "<arch>.<key>" values with the checks config.json values get.
class GgufReader {
 public:
  GgufReader(const formats::GgufFile& file, std::string prefix)
      : file_(file), prefix_(std::move(prefix)), what_(file.path().string()) {}

  std::string key(std::string_view k) const { return prefix_ + std::string(k); }
  bool has(std::string_view k) const { return file_.has(key(k)); }

  // A strictly positive int; `fallback` when absent (0 = required).
  int positive_int(std::string_view k, int fallback = 0) const {
    const std::string full = key(k);
    if (!file_.has(full)) {
      if (fallback > 0) return fallback;
      throw FileError(what_ + ": missing metadata \"" + full + "\"");
    }
    const std::uint64_t v = file_.get_uint(full);
    if (v == 0 || v > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      throw FileError(what_ + ": metadata \"" + full + "\" = " + std::to_string(v) +
                      " must be in 1.." + std::to_string(std::numeric_limits<int>::max()));
    }
    return static_cast<int>(v);
  }

  // A finite, strictly positive number; `fallback` when absent (NaN = required).
  float positive_float(std::string_view k, float fallback) const {
    const std::string full = key(k);
    if (!file_.has(full)) {
      if (!std::isnan(fallback)) return fallback;
      throw FileError(what_ + ": missing metadata \"" + full + "\"");
    }
    const double d = file_.get_float(full);
    if (!std::isfinite(d) || d <= 0.0 || d > std::numeric_limits<float>::max()) {
      throw FileError(what_ + ": metadata \"" + full + "\" = " + std::to_string(d) +
                      " must be a positive finite number");
    }
    return static_cast<float>(d);
  }

  const std::string& what() const { return what_; }

 private:
  const formats::GgufFile& file_;
  std::string prefix_;
  std::string what_;
};

// A token id key of tokenizer.ggml.*, checked against the vocabulary; nullopt when absent.
std::optional<std::int32_t> token_id(const formats::GgufFile& file, const std::string& key,
                                     int vocab_size) {
  if (!file.has(key)) return std::nullopt;
  const std::uint64_t id = file.get_uint(key);
  if (id >= static_cast<std::uint64_t>(vocab_size)) {
    throw FileError(file.path().string() + ": metadata \"" + key + "\" = " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  }
  return static_cast<std::int32_t>(id);
}

// A 1-D tensor of head_dim / 2 finite positive factors (rope_freqs, rope_factors_*).
std::vector<float> rope_factor_tensor(const formats::TensorView& t, const ModelConfig& c,
                                      const std::string& what) {
  if (t.rank() != 1 || t.shape[0] != c.head_dim / 2) {
    throw FileError(what + ": tensor \"" + t.name + "\" has shape " + t.shape_string() +
                    ", expected [" + std::to_string(c.head_dim / 2) + "]");
  }
  std::vector<float> factors = widen_to_f32(t);
  for (float f : factors) {
    if (!std::isfinite(f) || f <= 0.0f) {
      throw FileError(what + ": tensor \"" + t.name +
                      "\" holds a non-positive or non-finite factor");
    }
  }
  return factors;
}

// llama.cpp's rope.scaling.* keys (as convert_hf_to_gguf writes HF's rope_scaling), and
// longrope's factor tensors. `c` has its dimensions and context length.
RopeScaling gguf_rope_scaling(const formats::GgufFile& file, const GgufReader& r,
                              const ArchitectureDescription& arch, const ModelConfig& c) {
  RopeScaling rs;
  const std::string type =
      r.has("rope.scaling.type") ? std::string(file.get_string(r.key("rope.scaling.type"))) : "";
  const auto* long_factors =
      arch.gguf.rope_factors_long.empty() ? nullptr : file.find_tensor(arch.gguf.rope_factors_long);
  const auto* short_factors = arch.gguf.rope_factors_short.empty()
                                  ? nullptr
                                  : file.find_tensor(arch.gguf.rope_factors_short);
  const float required = std::numeric_limits<float>::quiet_NaN();
  // What yarn and longrope share: the pre-training context and HF's attention_factor.
  auto read_context_scaling = [&] {
    rs.original_max_position_embeddings =
        r.positive_int("rope.scaling.original_context_length", c.max_position_embeddings);
    if (r.has("rope.scaling.attn_factor"))
      rs.attention_factor = r.positive_float("rope.scaling.attn_factor", required);
  };
  if (long_factors != nullptr || short_factors != nullptr || type == "longrope") {
    if (long_factors == nullptr || short_factors == nullptr) {
      throw FileError(r.what() +
                      ": longrope scaling needs both the rope_factors_long and the "
                      "rope_factors_short tensor");
    }
    rs.type = RopeScaling::Type::kLongRope;
    read_context_scaling();
    rs.long_factor = rope_factor_tensor(*long_factors, c, r.what());
    rs.short_factor = rope_factor_tensor(*short_factors, c, r.what());
    rs.factor = static_cast<float>(c.max_position_embeddings) / rs.original_max_position_embeddings;
    return rs;
  }
  if (type == "yarn") {
    rs.type = RopeScaling::Type::kYarn;
    read_context_scaling();
    rs.factor = r.positive_float("rope.scaling.factor", required);
    rs.beta_fast = r.positive_float("rope.scaling.yarn_beta_fast", 32.0f);
    rs.beta_slow = r.positive_float("rope.scaling.yarn_beta_slow", 1.0f);
    // DeepSeek's mscale_all_dim, which no supported family has.
    if (r.has("rope.scaling.yarn_log_multiplier") &&
        file.get_float(r.key("rope.scaling.yarn_log_multiplier")) != 0.0) {
      throw FileError(r.what() + ": " + r.key("rope.scaling.yarn_log_multiplier") +
                      " is not supported");
    }
    return rs;
  }
  if (!type.empty()) {
    if (type == "none") return rs;
    if (type != "linear") {
      throw FileError(r.what() + ": rope scaling type \"" + type +
                      "\" is not supported (supported: none, linear, yarn, and longrope "
                      "through rope_factors_long/short)");
    }
    rs.type = RopeScaling::Type::kLinear;
    rs.factor = r.positive_float("rope.scaling.factor", required);
    return rs;
  }
  // Older files wrote only a linear scale.
  if (r.has("rope.scale_linear")) {
    const float factor = r.positive_float("rope.scale_linear", 1.0f);
    if (factor != 1.0f) {
      rs.type = RopeScaling::Type::kLinear;
      rs.factor = factor;
    }
  }
  return rs;
}

}  // namespace

std::vector<float> widen_to_f32(const formats::TensorView& t) {
  const auto n = static_cast<std::size_t>(t.numel());
  std::vector<float> out(n);
  // Copied element by element with memcpy, so the tensor's alignment does not matter.
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h = 0;
    switch (t.dtype) {
      case formats::DType::kF32:
        std::memcpy(&out[i], t.data + 4 * i, 4);
        break;
      case formats::DType::kF16:
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = kernels::f16_to_f32(h);
        break;
      case formats::DType::kBF16:
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = kernels::bf16_to_f32(h);
        break;
      default:
        throw FileError("tensor \"" + t.name + "\" has dtype " +
                        std::string(formats::dtype_name(t.dtype)) +
                        "; only F32, F16 and BF16 are supported here");
    }
  }
  return out;
}

ModelConfig model_config_from_gguf(const formats::GgufFile& file,
                                   const ArchitectureDescription& arch) {
  const std::string gguf_arch(file.get_string("general.architecture"));
  GgufReader r(file, gguf_arch + ".");
  const std::string& what = r.what();

  ModelConfig c;
  c.architecture = std::string(arch.name);
  c.hidden_size = r.positive_int("embedding_length");
  c.intermediate_size = r.positive_int("feed_forward_length");
  c.num_layers = r.positive_int("block_count");
  c.num_heads = r.positive_int("attention.head_count");
  c.num_kv_heads = r.positive_int("attention.head_count_kv", c.num_heads);
  c.max_position_embeddings = r.positive_int("context_length");
  c.rms_norm_eps =
      r.positive_float("attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN());
  c.rope_theta = r.positive_float("rope.freq_base", 10000.0f);

  if (r.has("attention.key_length")) {
    c.head_dim = r.positive_int("attention.key_length");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      throw FileError(what + ": embedding_length " + std::to_string(c.hidden_size) +
                      " is not divisible by attention.head_count " + std::to_string(c.num_heads) +
                      " (and no attention.key_length is given)");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (r.has("attention.value_length") && r.positive_int("attention.value_length") != c.head_dim) {
    throw FileError(what + ": attention.value_length differs from the key length " +
                    std::to_string(c.head_dim) + "; not supported");
  }
  if (r.has("rope.dimension_count") && r.positive_int("rope.dimension_count") != c.head_dim) {
    throw FileError(what + ": rope.dimension_count " +
                    std::to_string(r.positive_int("rope.dimension_count")) +
                    " differs from the head size " + std::to_string(c.head_dim) +
                    " (partial rotary embeddings are not supported)");
  }

  // The vocabulary is the token list; "<arch>.vocab_size", when also written, must agree.
  if (file.has("tokenizer.ggml.tokens")) {
    const std::uint64_t n = file.get_array_size("tokenizer.ggml.tokens");
    if (n == 0 || n > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      throw FileError(what + ": tokenizer.ggml.tokens has " + std::to_string(n) + " entries");
    }
    c.vocab_size = static_cast<int>(n);
    if (r.has("vocab_size") && r.positive_int("vocab_size") != c.vocab_size) {
      throw FileError(what + ": " + r.key("vocab_size") + " " +
                      std::to_string(r.positive_int("vocab_size")) + " disagrees with the " +
                      std::to_string(c.vocab_size) + " entries of tokenizer.ggml.tokens");
    }
  } else {
    c.vocab_size = r.positive_int("vocab_size");
  }
  check_dimensions(c, what);

  c.rope_scaling = gguf_rope_scaling(file, r, arch, c);
  if (!arch.gguf.rope_freqs.empty()) {
    if (const auto* t = file.find_tensor(arch.gguf.rope_freqs))
      c.rope_freq_factors = rope_factor_tensor(*t, c, what);
  }
  if (arch.has_sliding_window && r.has("attention.sliding_window"))
    c.sliding_window = r.positive_int("attention.sliding_window");
  c.local_rope_theta = r.positive_float("rope.freq_base_swa", 0.0f);
  c.attn_logit_softcap = r.positive_float("attn_logit_softcapping", 0.0f);
  c.final_logit_softcap = r.positive_float("final_logit_softcapping", 0.0f);
  finish_local_layers(c, arch, what);

  // A checkpoint without an output head can only mean a tied one.
  c.tie_word_embeddings = file.find_tensor(arch.gguf.lm_head) == nullptr;

  // llama.cpp ends generation at EOS and at the end-of-turn/-message tokens, which HF lists
  // among generation_config's eos_token_id.
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                          "tokenizer.ggml.eom_token_id"}) {
    if (auto id = token_id(file, key, c.vocab_size)) {
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *id) == c.eos_token_ids.end())
        c.eos_token_ids.push_back(*id);
    }
  }
  if (auto bos = token_id(file, "tokenizer.ggml.bos_token_id", c.vocab_size)) {
    c.bos_token_id = *bos;
  }
  return c;
}

}  // namespace lmserve::model
