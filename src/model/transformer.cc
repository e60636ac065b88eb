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
  weight_bytes_ += t.nbytes;
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

void TransformerModel::reserve(int max_rows, int max_logit_rows) {
  Workspace& w = ws_;
  if (max_rows <= w.rows && max_logit_rows <= w.logit_rows) return;
  w.rows = std::max(w.rows, max_rows);
  w.logit_rows = std::max(w.logit_rows, max_logit_rows);
  const auto& c = config_;
  const auto rows = static_cast<std::size_t>(w.rows);
  auto fit = [rows](std::vector<float>& v, int width) {
    v.resize(rows * static_cast<std::size_t>(width));
  };
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  fit(w.x, c.hidden_size);
  fit(w.xn, c.hidden_size);
  fit(w.tmp, c.hidden_size);
  fit(w.q, q_dim);
  fit(w.att, q_dim);
  fit(w.k, kv_dim);
  fit(w.v, kv_dim);
  fit(w.gate, c.intermediate_size);
  fit(w.up, c.intermediate_size);
  fit(w.cos, c.head_dim / 2);
  fit(w.sin, c.head_dim / 2);
  w.head_in.resize(static_cast<std::size_t>(w.logit_rows) *
                   static_cast<std::size_t>(c.hidden_size));
  w.attention.reserve(rows);
}

std::size_t TransformerModel::workspace_bytes() const {
  const Workspace& w = ws_;
  std::size_t floats = 0;
  for (const auto* v : {&w.x, &w.xn, &w.q, &w.k, &w.v, &w.att, &w.gate, &w.up, &w.tmp, &w.cos,
                        &w.sin, &w.head_in}) {
    floats += v->capacity();
  }
  return floats * sizeof(float) + w.attention.capacity() * sizeof(kernels::AttentionSequence);
}

void TransformerModel::validate(const Batch& batch, const KvPool& pool,
                                std::span<float> logits) const {
  const auto& c = config_;
  const KvShape& shape = pool.shape();
  if (shape.num_layers != c.num_layers || shape.num_kv_heads != c.num_kv_heads ||
      shape.head_dim != c.head_dim) {
    throw std::invalid_argument("forward: the KV pool's shape is not this model's");
  }
  std::size_t rows = 0;
  std::size_t logit_rows = 0;
  for (const BatchSequence& seq : batch.sequences) {
    if (seq.n_rows <= 0 || seq.start_pos < 0) {
      throw std::invalid_argument("forward: a batch sequence has no rows or a negative position");
    }
    const long end = static_cast<long>(seq.start_pos) + seq.n_rows;
    if (end > c.max_position_embeddings) {
      throw std::invalid_argument("forward: position " + std::to_string(end - 1) +
                                  " is beyond the context of " +
                                  std::to_string(c.max_position_embeddings));
    }
    if (static_cast<long>(seq.blocks.size()) * shape.block_size < end) {
      throw std::invalid_argument("forward: a block table is too short for its positions");
    }
    for (std::size_t i = 0; i < seq.blocks.size() && static_cast<long>(i) * shape.block_size < end;
         ++i) {
      if (seq.blocks[i] < 0 || seq.blocks[i] >= pool.num_blocks()) {
        throw std::invalid_argument("forward: block id outside the pool");
      }
    }
    rows += static_cast<std::size_t>(seq.n_rows);
    if (seq.want_logits) ++logit_rows;
  }
  if (rows == 0 || rows != batch.tokens.size()) {
    throw std::invalid_argument("forward: the batch has " + std::to_string(batch.tokens.size()) +
                                " tokens for " + std::to_string(rows) + " rows");
  }
  for (auto id : batch.tokens) {
    if (id < 0 || id >= c.vocab_size) {
      throw std::invalid_argument("token id " + std::to_string(id) +
                                  " is outside the vocabulary [0, " + std::to_string(c.vocab_size) +
                                  ")");
    }
  }
  if (logits.size() != logit_rows * static_cast<std::size_t>(c.vocab_size)) {
    throw std::invalid_argument("forward: logits has " + std::to_string(logits.size()) +
                                " floats, expected " + std::to_string(logit_rows) + " x " +
                                std::to_string(c.vocab_size));
  }
}

void TransformerModel::forward(const Batch& batch, KvPool& pool, std::span<float> logits) {
  validate(batch, pool, logits);
  const auto& c = config_;
  const int T = static_cast<int>(batch.tokens.size());
  const int D = c.hidden_size;
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  const int I = c.intermediate_size;
  const int half = c.head_dim / 2;
  int logit_rows = 0;
  for (const auto& seq : batch.sequences) logit_rows += seq.want_logits ? 1 : 0;
  reserve(T, logit_rows);
  Workspace& w = ws_;
  auto sz = [](long a, long b) { return static_cast<std::size_t>(a * b); };

  // Per row: embedding and rotary angles; per sequence: its attention rows.
  w.attention.clear();
  int row = 0;
  for (const BatchSequence& seq : batch.sequences) {
    w.attention.push_back({.first_row = row,
                           .n_rows = seq.n_rows,
                           .start_pos = seq.start_pos,
                           .blocks = seq.blocks.data()});
    for (int i = 0; i < seq.n_rows; ++i, ++row) {
      kernels::weight_row_to_f32(embed_, batch.tokens[static_cast<std::size_t>(row)],
                                 w.x.data() + sz(row, D));
      kernels::rope_cos_sin(seq.start_pos + i, inv_freq_.data(), half, w.cos.data() + sz(row, half),
                            w.sin.data() + sz(row, half));
    }
  }

  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const KvShape& kv_shape = pool.shape();
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<std::size_t>(l)];
    for (int t = 0; t < T; ++t) {
      kernels::rms_norm(w.x.data() + sz(t, D), L.attn_norm.data(), D, c.rms_norm_eps,
                        w.xn.data() + sz(t, D));
    }
    kernels::matmul(pool_, L.q, w.xn.data(), T, w.q.data());
    kernels::matmul(pool_, L.k, w.xn.data(), T, w.k.data());
    kernels::matmul(pool_, L.v, w.xn.data(), T, w.v.data());
    const kernels::PagedKv kv{
        .keys = pool.keys(l, 0, 0),
        .values = pool.values(l, 0, 0),
        .block_stride = kv_shape.block_bytes(),
        .head_stride = kv_shape.block_bytes() / static_cast<std::size_t>(kv_shape.num_kv_heads),
        .block_size = kv_shape.block_size,
        .element = kv_shape.type};
    for (const auto& seq : w.attention) {
      for (int i = 0; i < seq.n_rows; ++i) {
        const int t = seq.first_row + i;
        const float* ct = w.cos.data() + sz(t, half);
        const float* st = w.sin.data() + sz(t, half);
        float* qt = w.q.data() + sz(t, q_dim);
        float* kt = w.k.data() + sz(t, kv_dim);
        if (layout_.rope_style == RopeStyle::kAdjacentPairs) {
          kernels::rope_rotate_adjacent_pairs(qt, c.num_heads, c.head_dim, half, ct, st);
          kernels::rope_rotate_adjacent_pairs(kt, c.num_kv_heads, c.head_dim, half, ct, st);
        } else {
          kernels::rope_rotate_half(qt, c.num_heads, c.head_dim, half, ct, st);
          kernels::rope_rotate_half(kt, c.num_kv_heads, c.head_dim, half, ct, st);
        }
        kernels::store_kv(kv, shape, seq.blocks, seq.start_pos + i, kt, w.v.data() + sz(t, kv_dim));
      }
    }
    kernels::paged_attention(pool_, shape, kv, w.attention, w.q.data(), scale, w.att.data());
    kernels::matmul(pool_, L.o, w.att.data(), T, w.tmp.data());
    kernels::add_inplace(w.x.data(), w.tmp.data(), T * D);

    for (int t = 0; t < T; ++t) {
      kernels::rms_norm(w.x.data() + sz(t, D), L.mlp_norm.data(), D, c.rms_norm_eps,
                        w.xn.data() + sz(t, D));
    }
    kernels::matmul(pool_, L.gate, w.xn.data(), T, w.gate.data());
    kernels::matmul(pool_, L.up, w.xn.data(), T, w.up.data());
    kernels::silu_mul(w.gate.data(), w.up.data(), w.gate.data(), T * I);
    kernels::matmul(pool_, L.down, w.gate.data(), T, w.tmp.data());
    kernels::add_inplace(w.x.data(), w.tmp.data(), T * D);
  }

  // The head, the largest product of a decode step, runs only on rows whose logits are used.
  int n = 0;
  for (const auto& seq : w.attention) {
    if (!batch.sequences[static_cast<std::size_t>(&seq - w.attention.data())].want_logits) continue;
    const float* last = w.x.data() + sz(seq.first_row + seq.n_rows - 1, D);
    kernels::rms_norm(last, final_norm_.data(), D, c.rms_norm_eps, w.head_in.data() + sz(n, D));
    ++n;
  }
  kernels::matmul(pool_, lm_head_, w.head_in.data(), n, logits.data());
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
