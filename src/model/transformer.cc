#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/ops.h"
#include "model/loading.h"
#include "util/error.h"

namespace lmserve::model {

namespace {

kernels::WeightType weight_type(const formats::TensorView& t, const std::string& where) {
  switch (t.dtype) {
    case formats::DType::kF32:
      return kernels::WeightType::kF32;
    case formats::DType::kF16:
      return kernels::WeightType::kF16;
    case formats::DType::kBF16:
      return kernels::WeightType::kBF16;
    default:
      if (formats::is_block_quantized(t.dtype)) {
        throw FileError(where + ": tensor \"" + t.name + "\" has quantized type " +
                        std::string(formats::dtype_name(t.dtype)) +
                        ", which lmserve cannot compute with yet (supported: F32, F16, BF16)");
      }
      throw FileError(where + ": tensor \"" + t.name + "\" has dtype " +
                      std::string(formats::dtype_name(t.dtype)) +
                      "; only F32, F16 and BF16 weights are supported");
  }
}

}  // namespace

F32KvCache::F32KvCache(int num_layers, int kv_dim, int capacity)
    : num_layers_(num_layers), kv_dim_(kv_dim), capacity_(capacity) {
  const std::size_t n = static_cast<std::size_t>(num_layers) * static_cast<std::size_t>(capacity) *
                        static_cast<std::size_t>(kv_dim);
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

void F32KvCache::truncate(int n) {
  if (n < 0 || n > size_) {
    throw std::invalid_argument("KvCache::truncate(" + std::to_string(n) + ") outside [0, " +
                                std::to_string(size_) + "]");
  }
  size_ = n;
}

TransformerModel::TransformerModel(ModelConfig config, const ArchitectureDescription& arch,
                                   const CheckpointLayout& layout, formats::TensorStore weights,
                                   util::ThreadPool& pool)
    : config_(std::move(config)),
      arch_(arch),
      layout_(layout),
      weights_(std::move(weights)),
      pool_(pool) {
  const auto& c = config_;
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  embed_ = matrix(layout_.embed_tokens, c.vocab_size, c.hidden_size);
  final_norm_ = norm_vector(layout_.final_norm, c.hidden_size);
  // HF ties when asked to, and a checkpoint without a head can only mean a tied one.
  if (c.tie_word_embeddings || weights_.find(layout_.lm_head) == nullptr) {
    lm_head_ = embed_;
  } else {
    lm_head_ = matrix(layout_.lm_head, c.vocab_size, c.hidden_size);
  }
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    auto name = [&](std::string_view pattern) { return layer_tensor_name(pattern, l); };
    Layer& L = layers_[static_cast<std::size_t>(l)];
    L.attn_norm = norm_vector(name(layout_.attn_norm), c.hidden_size);
    L.q = matrix(name(layout_.q_proj), q_dim, c.hidden_size);
    L.k = matrix(name(layout_.k_proj), kv_dim, c.hidden_size);
    L.v = matrix(name(layout_.v_proj), kv_dim, c.hidden_size);
    L.o = matrix(name(layout_.o_proj), c.hidden_size, q_dim);
    L.mlp_norm = norm_vector(name(layout_.mlp_norm), c.hidden_size);
    L.gate = matrix(name(layout_.gate_proj), c.intermediate_size, c.hidden_size);
    L.up = matrix(name(layout_.up_proj), c.intermediate_size, c.hidden_size);
    L.down = matrix(name(layout_.down_proj), c.hidden_size, c.intermediate_size);
  }
  inv_freq_ = rope_inv_freq(c);
}

kernels::WeightMatrix TransformerModel::matrix(std::string_view name, int rows, int cols) {
  const auto& t = weights_.get(name, {rows, cols});
  kernels::WeightMatrix m;
  m.type = weight_type(t, weights_.origin().string());
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  if (!t.element_aligned()) {
    // Kernels read elements through typed pointers; a file without the usual header padding
    // gets this one tensor copied (same dtype, no widening).
    realigned_.emplace_back(t.data, t.data + t.nbytes);
    m.data = realigned_.back().data();
  }
  return m;
}

std::vector<float> TransformerModel::norm_vector(std::string_view name, int n) {
  // Norm weights are tiny, so they are widened once to f32 (and copied, so alignment is moot).
  const auto& t = weights_.get(name, {n});
  weight_type(t, weights_.origin().string());  // the same dtype error as for matrices
  return widen_to_f32(t);
}

std::unique_ptr<KvCache> TransformerModel::new_cache(int capacity) const {
  if (capacity <= 0 || capacity > config_.max_position_embeddings) {
    throw std::invalid_argument("KV cache capacity " + std::to_string(capacity) + " outside [1, " +
                                std::to_string(config_.max_position_embeddings) + "]");
  }
  return std::make_unique<F32KvCache>(config_.num_layers, config_.num_kv_heads * config_.head_dim,
                                      capacity);
}

void TransformerModel::forward(std::span<const std::int32_t> tokens, KvCache& cache_base,
                               std::span<float> logits) {
  const auto& c = config_;
  auto* cache = dynamic_cast<F32KvCache*>(&cache_base);
  const int kv_dim = c.num_kv_heads * c.head_dim;
  if (cache == nullptr || cache->num_layers() != c.num_layers || cache->kv_dim() != kv_dim) {
    throw std::invalid_argument("forward: the KV cache was not made by this model's new_cache");
  }
  if (logits.size() != static_cast<std::size_t>(c.vocab_size)) {
    throw std::invalid_argument("forward: logits has " + std::to_string(logits.size()) +
                                " floats, expected " + std::to_string(c.vocab_size));
  }
  if (tokens.empty())
    throw ApiError::invalid_request("invalid_value", std::nullopt, "no tokens to evaluate");
  for (auto id : tokens) {
    if (id < 0 || id >= c.vocab_size) {
      throw ApiError::invalid_request("invalid_value", std::nullopt,
                                      "token id " + std::to_string(id) +
                                          " is outside the vocabulary [0, " +
                                          std::to_string(c.vocab_size) + ")");
    }
  }
  const int start = cache->size();
  if (tokens.size() > static_cast<std::size_t>(cache->capacity() - start)) {
    throw ApiError::invalid_request(
        "context_length_exceeded", std::nullopt,
        std::to_string(start) + " cached + " + std::to_string(tokens.size()) +
            " new tokens exceed the context of " + std::to_string(cache->capacity()));
  }

  const int T = static_cast<int>(tokens.size());
  const int D = c.hidden_size;
  const int q_dim = c.num_heads * c.head_dim;
  const int I = c.intermediate_size;
  const int half = c.head_dim / 2;
  auto sz = [](long a, long b) { return static_cast<std::size_t>(a * b); };

  std::vector<float> x(sz(T, D)), xn(sz(T, D)), tmp(sz(T, D));
  std::vector<float> q(sz(T, q_dim)), k(sz(T, kv_dim)), v(sz(T, kv_dim)), att(sz(T, q_dim));
  std::vector<float> gate(sz(T, I)), up(sz(T, I));
  std::vector<float> cos_t(sz(T, half)), sin_t(sz(T, half));

  for (int t = 0; t < T; ++t) {
    kernels::weight_row_to_f32(embed_, tokens[static_cast<std::size_t>(t)], x.data() + sz(t, D));
    kernels::rope_cos_sin(start + t, inv_freq_.data(), half, cos_t.data() + sz(t, half),
                          sin_t.data() + sz(t, half));
  }

  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<std::size_t>(l)];
    for (int t = 0; t < T; ++t) {
      kernels::rms_norm(x.data() + sz(t, D), L.attn_norm.data(), D, c.rms_norm_eps,
                        xn.data() + sz(t, D));
    }
    kernels::matmul(pool_, L.q, xn.data(), T, q.data());
    kernels::matmul(pool_, L.k, xn.data(), T, k.data());
    kernels::matmul(pool_, L.v, xn.data(), T, v.data());
    float* k_cache = cache->keys(l);
    float* v_cache = cache->values(l);
    for (int t = 0; t < T; ++t) {
      const float* ct = cos_t.data() + sz(t, half);
      const float* st = sin_t.data() + sz(t, half);
      if (layout_.rope_style == RopeStyle::kAdjacentPairs) {
        kernels::rope_rotate_adjacent_pairs(q.data() + sz(t, q_dim), c.num_heads, c.head_dim, half,
                                            ct, st);
        kernels::rope_rotate_adjacent_pairs(k.data() + sz(t, kv_dim), c.num_kv_heads, c.head_dim,
                                            half, ct, st);
      } else {
        kernels::rope_rotate_half(q.data() + sz(t, q_dim), c.num_heads, c.head_dim, half, ct, st);
        kernels::rope_rotate_half(k.data() + sz(t, kv_dim), c.num_kv_heads, c.head_dim, half, ct,
                                  st);
      }
      std::copy_n(k.data() + sz(t, kv_dim), kv_dim, k_cache + sz(start + t, kv_dim));
      std::copy_n(v.data() + sz(t, kv_dim), kv_dim, v_cache + sz(start + t, kv_dim));
    }
    kernels::attention(pool_, shape, q.data(), T, start, k_cache, v_cache, kv_dim, scale,
                       att.data());
    kernels::matmul(pool_, L.o, att.data(), T, tmp.data());
    kernels::add_inplace(x.data(), tmp.data(), T * D);

    for (int t = 0; t < T; ++t) {
      kernels::rms_norm(x.data() + sz(t, D), L.mlp_norm.data(), D, c.rms_norm_eps,
                        xn.data() + sz(t, D));
    }
    kernels::matmul(pool_, L.gate, xn.data(), T, gate.data());
    kernels::matmul(pool_, L.up, xn.data(), T, up.data());
    kernels::silu_mul(gate.data(), up.data(), gate.data(), T * I);
    kernels::matmul(pool_, L.down, gate.data(), T, tmp.data());
    kernels::add_inplace(x.data(), tmp.data(), T * D);
  }
  cache->set_size(start + T);

  // Only the last token's logits are needed: the head is the largest matmul of a decode step.
  const float* last = x.data() + sz(T - 1, D);
  kernels::rms_norm(last, final_norm_.data(), D, c.rms_norm_eps, xn.data());
  kernels::matmul(pool_, lm_head_, xn.data(), 1, logits.data());
}

namespace {

std::unique_ptr<Model> load_gguf(const std::filesystem::path& path, util::ThreadPool& pool) {
  auto file = std::make_shared<const formats::GgufFile>(path);
  if (!file->has("general.architecture")) {
    throw FileError(path.string() + ": GGUF file has no general.architecture");
  }
  const std::string name(file->get_string("general.architecture"));
  const auto* arch = find_gguf_architecture(name);
  if (arch == nullptr) {
    throw FileError(path.string() + ": unsupported GGUF architecture \"" + name +
                    "\" (supported: " + supported_gguf_architectures() + ")");
  }
  ModelConfig config = model_config_from_gguf(*file, *arch);
  auto weights = formats::TensorStore::from_gguf(std::move(file));
  return std::make_unique<TransformerModel>(std::move(config), *arch, arch->gguf,
                                            std::move(weights), pool);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, util::ThreadPool& pool) {
  // A file is a GGUF checkpoint (the reader rejects anything without the magic); a directory
  // is the HF layout.
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return load_gguf(path, pool);
  ModelConfig config = load_model_config(path);
  const auto* arch = find_architecture(config.architecture);
  if (arch == nullptr)
    throw FileError(path.string() + ": unsupported architecture " + config.architecture);
  auto weights = formats::TensorStore::open(path);
  return std::make_unique<TransformerModel>(std::move(config), *arch, arch->hf, std::move(weights),
                                            pool);
}

}  // namespace lmserve::model
