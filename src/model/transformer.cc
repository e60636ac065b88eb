#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/ops.h"
#include "model/loading.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lmserve::model {

namespace {

// Background copies finished before the engine takes them: one layer's worth of a 1B model,
// so copying runs ahead of an idle engine's polls while both layouts of little are resident.
constexpr std::size_t kRepackAhead = std::size_t{64} << 20;

kernels::WeightType weight_type(const formats::TensorView& t, const std::string& where) {
  if (auto type = kernels::weight_type_named(formats::dtype_name(t.dtype))) return *type;
  throw FileError(
      where + ": tensor \"" + t.name + "\" has dtype " + std::string(formats::dtype_name(t.dtype)) +
      ", which lmserve cannot compute with (supported: " + kernels::supported_weight_types() + ")");
}

void add_bias(float* rows, const std::vector<float>& bias, int n_rows) {
  const int n = static_cast<int>(bias.size());
  for (int t = 0; t < n_rows; ++t)
    kernels::add_inplace(rows + static_cast<long>(t) * n, bias.data(), n);
}

}  // namespace

TransformerModel::TransformerModel(ModelConfig config, const ArchitectureDescription& arch,
                                   const CheckpointLayout& layout, formats::TensorStore weights,
                                   util::ThreadPool& pool, Repack repack)
    : config_(std::move(config)),
      arch_(arch),
      layout_(layout),
      weights_(std::move(weights)),
      pool_(pool) {
  const auto& c = config_;
  embed_ = matrix(layout_.embed_tokens, c.vocab_size, c.hidden_size);
  final_norm_ = norm_vector(layout_.final_norm, c.hidden_size);
  // HF ties when asked to, and a checkpoint without a head can only mean a tied one.
  if (c.tie_word_embeddings || weights_.find(layout_.lm_head) == nullptr) {
    lm_head_ = embed_;
  } else {
    lm_head_ = matrix(layout_.lm_head, c.vocab_size, c.hidden_size);
  }
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) bind_layer(l);
  if (repack == Repack::kAtLoad) {
    const auto& target = kernels::active_kernels();
    for (const auto& job : repack_jobs()) {
      util::AlignedBytes bytes(kernels::weight_row_bytes(job.source.type, job.source.cols) *
                               job.source.rows);
      const auto packed = kernels::repack(target, pool_, job.source, bytes.data());
      adopt(job, packed, std::move(bytes));
    }
  } else {
    pending_repacks_ = repack_jobs();
    std::vector<kernels::WeightMatrix> sources;
    for (const auto& job : pending_repacks_) sources.push_back(job.source);
    background_repack_ = std::make_unique<BackgroundRepack>(std::move(sources), kRepackAhead);
  }
  inv_freq_ = rope_inv_freq(c);
  rope_attention_factor_ = rope_attention_factor(c);
  if (c.local_rope_theta > 0.0f) local_inv_freq_ = local_rope_inv_freq(c);
}

void TransformerModel::bind_layer(int l) {
  const auto& c = config_;
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  const int D = c.hidden_size;
  const int I = c.intermediate_size;
  auto name = [&](std::string_view pattern) { return layer_tensor_name(pattern, l); };
  Layer& L = layers_[static_cast<std::size_t>(l)];
  L.attn_norm = norm_vector(name(layout_.attn_norm), D);
  if (!layout_.qkv_proj.empty()) {
    const auto qkv = matrix(name(layout_.qkv_proj), q_dim + 2 * kv_dim, D);
    L.q = kernels::weight_rows(qkv, 0, q_dim);
    L.k = kernels::weight_rows(qkv, q_dim, kv_dim);
    L.v = kernels::weight_rows(qkv, q_dim + kv_dim, kv_dim);
  } else {
    L.q = matrix(name(layout_.q_proj), q_dim, D);
    L.k = matrix(name(layout_.k_proj), kv_dim, D);
    L.v = matrix(name(layout_.v_proj), kv_dim, D);
  }
  L.o = matrix(name(layout_.o_proj), D, q_dim);
  if (arch_.block.qkv_bias) {
    L.q_bias = f32_vector(name(layout_.q_bias), q_dim);
    L.k_bias = f32_vector(name(layout_.k_bias), kv_dim);
    L.v_bias = f32_vector(name(layout_.v_bias), kv_dim);
  }
  if (arch_.block.qk_norm) {
    L.q_norm = norm_vector(name(layout_.q_norm), c.head_dim);
    L.k_norm = norm_vector(name(layout_.k_norm), c.head_dim);
  }
  if (arch_.block.post_norms) {
    L.post_attn_norm = norm_vector(name(layout_.post_attn_norm), D);
    L.post_mlp_norm = norm_vector(name(layout_.post_mlp_norm), D);
  }
  L.mlp_norm = norm_vector(name(layout_.mlp_norm), D);
  if (!layout_.gate_up_proj.empty()) {
    const auto gate_up = matrix(name(layout_.gate_up_proj), 2 * I, D);
    L.gate = kernels::weight_rows(gate_up, 0, I);
    L.up = kernels::weight_rows(gate_up, I, I);
  } else {
    L.gate = matrix(name(layout_.gate_proj), I, D);
    L.up = matrix(name(layout_.up_proj), I, D);
  }
  L.down = matrix(name(layout_.down_proj), D, I);
  L.local = !c.local_layers.empty() && c.local_layers[static_cast<std::size_t>(l)];
}

std::vector<TransformerModel::RepackJob> TransformerModel::repack_jobs() {
  const auto& target = kernels::active_kernels();
  std::vector<RepackJob> jobs;
  auto add = [&](std::vector<kernels::WeightMatrix*> uses) {
    if (kernels::repacked_type(target, *uses.front())) jobs.push_back({*uses.front(), uses});
  };
  // The head first: the largest matrix, copied before requests have paged in the others.
  if (embed_.data == lm_head_.data) {
    add({&lm_head_, &embed_});  // a tied embedding is looked up in the head's layout
  } else {
    add({&lm_head_});
  }
  for (auto& L : layers_) {
    for (auto* m : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) add({m});
  }
  return jobs;
}

void TransformerModel::adopt(const RepackJob& job, const kernels::WeightMatrix& packed,
                             util::AlignedBytes bytes) {
  for (auto* use : job.uses) *use = packed;
  repacked_.push_back(std::move(bytes));
  // The file's copy is not read again (unless it was realigned into the heap, where the
  // advice would zero it).
  const auto* source = static_cast<const std::uint8_t*>(job.source.data);
  const bool mapped = std::none_of(realigned_.begin(), realigned_.end(), [&](const auto& r) {
    return source >= r.data() && source < r.data() + r.size();
  });
  if (mapped) {
    util::release_mapped_pages(
        source, kernels::weight_row_bytes(job.source.type, job.source.cols) * job.source.rows);
  }
}

std::size_t TransformerModel::repacked_bytes() const {
  std::size_t n = 0;
  for (const auto& copy : repacked_) n += copy.size();
  return n;
}

bool TransformerModel::adopt_repacked() {
  if (!background_repack_) return false;
  for (auto& copy : background_repack_->take_finished())
    adopt(pending_repacks_[copy.index], copy.packed, std::move(copy.bytes));
  if (background_repack_->pending()) return true;
  background_repack_.reset();
  pending_repacks_.clear();
  return false;
}

kernels::WeightMatrix TransformerModel::matrix(std::string_view name, int rows, int cols) {
  if (auto params = mlx_quantization(name)) return mlx_matrix(name, rows, cols, *params);
  if (const auto* packed = weights_.find(name);
      packed != nullptr && packed->dtype == formats::DType::kU32 && name.ends_with(".weight")) {
    const std::string module(name.substr(0, name.size() - std::string_view(".weight").size()));
    throw FileError(weights_.origin().string() + ": tensor \"" + packed->name +
                    "\" is packed U32 (MLX quantization) but " + module +
                    " is not quantized: no \"" + module +
                    ".scales\", no \"quantization\" in config.json, or the module is false there");
  }
  const auto& t = weights_.get(name, {rows, cols});
  kernels::WeightMatrix m;
  m.type = weight_type(t, weights_.origin().string());
  m.rows = rows;
  m.cols = cols;
  m.data = element_data(t);
  return m;
}

const void* TransformerModel::element_data(const formats::TensorView& t) {
  weight_bytes_ += t.nbytes;
  if (t.element_aligned()) return t.data;
  // Kernels read elements through typed pointers; a file without the usual header padding
  // gets this one tensor copied (same dtype, no widening).
  realigned_.emplace_back(t.data, t.data + t.nbytes);
  return realigned_.back().data();
}

std::optional<MlxQuantization::Params> TransformerModel::mlx_quantization(
    std::string_view name) const {
  const auto& q = config_.quantization;
  constexpr std::string_view kSuffix = ".weight";
  if (!q.present || !name.ends_with(kSuffix)) return std::nullopt;
  const std::string module(name.substr(0, name.size() - kSuffix.size()));
  if (auto it = q.modules.find(module); it != q.modules.end()) return it->second;
  if (weights_.find(module + ".scales") == nullptr) return std::nullopt;
  return q.defaults;
}

kernels::WeightMatrix TransformerModel::mlx_matrix(std::string_view name, int rows, int cols,
                                                   const MlxQuantization::Params& p) {
  const std::string where = weights_.origin().string();
  const std::string module(name.substr(0, name.size() - std::string_view(".weight").size()));
  const std::string params =
      " (" + std::to_string(p.bits) + "-bit, group_size " + std::to_string(p.group_size) + ")";
  if (cols % p.group_size != 0) {
    throw FileError(where + ": " + module + params + ": its input dimension " +
                    std::to_string(cols) + " is not a multiple of the group size");
  }
  const auto& w = weights_.get(name, {rows, cols / 32 * p.bits});
  if (w.dtype != formats::DType::kU32) {
    throw FileError(where + ": quantized tensor \"" + w.name + "\"" + params + " has dtype " +
                    std::string(formats::dtype_name(w.dtype)) + ", expected U32");
  }
  auto group_tensor = [&](const char* suffix) -> const formats::TensorView& {
    const std::string tensor = module + suffix;
    if (weights_.find(tensor) == nullptr) {
      throw FileError(where + ": quantized module " + module + params + " has no tensor \"" +
                      tensor + "\"");
    }
    return weights_.get(tensor, {rows, cols / p.group_size});
  };
  const auto& scales = group_tensor(".scales");
  const auto& biases = group_tensor(".biases");
  const auto scale_type = kernels::weight_type_named(formats::dtype_name(scales.dtype));
  if (scales.dtype != biases.dtype || !scale_type ||
      kernels::weight_format(*scale_type).block_elements != 1) {
    throw FileError(where + ": " + module +
                    ".scales and .biases must both be F32, F16 or BF16, got " +
                    std::string(formats::dtype_name(scales.dtype)) + " and " +
                    std::string(formats::dtype_name(biases.dtype)));
  }
  // The weight-format table has one row per width, "MLX<bits>" (config parsing checked bits).
  kernels::WeightMatrix m;
  m.type = *kernels::weight_type_named("MLX" + std::to_string(p.bits));
  m.rows = rows;
  m.cols = cols;
  m.data = element_data(w);
  m.scales = element_data(scales);
  m.biases = element_data(biases);
  m.scale_type = *scale_type;
  m.group_size = p.group_size;
  return m;
}

std::vector<float> TransformerModel::f32_vector(std::string_view name, int n) {
  // Norms and biases are tiny, so they are widened once to f32 (and copied, so alignment is
  // moot).
  const auto& t = weights_.get(name, {n});
  weight_type(t, weights_.origin().string());  // the same dtype error as for matrices
  return widen_to_f32(t);
}

std::vector<float> TransformerModel::norm_vector(std::string_view name, int n) {
  auto w = f32_vector(name, n);
  for (float& x : w) x += layout_.norm_weight_offset;
  return w;
}

void TransformerModel::reserve(int max_rows, int max_logit_rows) {
  Workspace& w = ws_;
  if (max_rows <= w.rows && max_logit_rows <= w.logit_rows) return;
  w.rows = std::max(w.rows, max_rows);
  w.logit_rows = std::max(w.logit_rows, max_logit_rows);
  const auto& c = config_;
  const auto rows = static_cast<std::size_t>(w.rows);
  auto fit = [rows](util::ScratchVector<float>& v, int width) {
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
  if (!local_inv_freq_.empty()) {
    fit(w.local_cos, c.head_dim / 2);
    fit(w.local_sin, c.head_dim / 2);
  }
  w.head_in.resize(static_cast<std::size_t>(w.logit_rows) *
                   static_cast<std::size_t>(c.hidden_size));
  w.attention.reserve(rows);
}

std::size_t TransformerModel::workspace_bytes() const {
  const Workspace& w = ws_;
  std::size_t floats = 0;
  for (const auto* v : {&w.x, &w.xn, &w.q, &w.k, &w.v, &w.att, &w.gate, &w.up, &w.tmp, &w.cos,
                        &w.sin, &w.local_cos, &w.local_sin, &w.head_in}) {
    floats += v->capacity();
  }
  return floats * sizeof(float) + w.attention.capacity() * sizeof(kernels::AttentionSequence);
}

void TransformerModel::validate_layout(const KvLayout& layout) const {
  const auto& c = config_;
  bool ok = layout.kind_of.size() == static_cast<std::size_t>(c.num_layers) &&
            layout.slot_of.size() == layout.kind_of.size();
  for (const KvKind& kind : layout.kinds) {
    ok = ok && kind.shape.num_kv_heads == c.num_kv_heads && kind.shape.head_dim == c.head_dim &&
         kind.shape.block_size == layout.block_size();
  }
  for (std::size_t l = 0; ok && l < layout.kind_of.size(); ++l) {
    const auto kind = static_cast<std::size_t>(layout.kind_of[l]);
    ok = kind < layout.kinds.size() && layout.slot_of[l] >= 0 &&
         layout.slot_of[l] < layout.kinds[kind].shape.num_layers;
    // A windowed kind drops what its layers can no longer see: only the window they attend
    // with is safe.
    const int window = ok ? layout.kinds[kind].window : 0;
    ok = ok && (window == 0 || (layers_[l].local && window == c.sliding_window));
  }
  if (!ok) throw std::invalid_argument("forward: the KV pools' layout is not this model's");
}

void TransformerModel::validate(const Batch& batch, const KvPools& pools,
                                std::span<float> logits) const {
  const auto& c = config_;
  const KvLayout& layout = pools.layout();
  validate_layout(layout);
  const int block_size = layout.block_size();
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
    if (seq.blocks.size() != layout.kinds.size()) {
      throw std::invalid_argument("forward: a batch sequence needs one block table per KV kind");
    }
    for (std::size_t k = 0; k < layout.kinds.size(); ++k) {
      const std::vector<BlockId>& table = seq.blocks[k];
      const long last = (end - 1) / block_size;
      if (static_cast<long>(table.size()) <= last) {
        throw std::invalid_argument("forward: a block table is too short for its positions");
      }
      // Only the blocks the rows read or write need to be there.
      for (long i = layout.kinds[k].first_visible_block(seq.start_pos); i <= last; ++i) {
        const BlockId id = table[static_cast<std::size_t>(i)];
        if (id < 0 || id >= pools[static_cast<int>(k)].num_blocks()) {
          throw std::invalid_argument("forward: block id outside the pool");
        }
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

void TransformerModel::forward(const Batch& batch, KvPools& pools, std::span<float> logits) {
  validate(batch, pools, logits);
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
  const BlockSpec& block = arch_.block;
  const float embed_scale = block.scale_embeddings ? std::sqrt(static_cast<float>(D)) : 1.0f;
  w.attention.clear();
  int row = 0;
  for (const BatchSequence& seq : batch.sequences) {
    w.attention.push_back({.first_row = row, .n_rows = seq.n_rows, .start_pos = seq.start_pos});
    for (int i = 0; i < seq.n_rows; ++i, ++row) {
      float* x = w.x.data() + sz(row, D);
      kernels::weight_row_to_f32(embed_, batch.tokens[static_cast<std::size_t>(row)], x);
      if (embed_scale != 1.0f) {
        for (int d = 0; d < D; ++d) x[d] *= embed_scale;
      }
      const int pos = seq.start_pos + i;
      float* cos_row = w.cos.data() + sz(row, half);
      float* sin_row = w.sin.data() + sz(row, half);
      kernels::rope_cos_sin(pos, inv_freq_.data(), half, cos_row, sin_row);
      // HF scales the tables themselves (attention_scaling), so q and k both carry it.
      if (rope_attention_factor_ != 1.0f) {
        for (int j = 0; j < half; ++j) {
          cos_row[j] *= rope_attention_factor_;
          sin_row[j] *= rope_attention_factor_;
        }
      }
      if (!local_inv_freq_.empty()) {
        kernels::rope_cos_sin(pos, local_inv_freq_.data(), half, w.local_cos.data() + sz(row, half),
                              w.local_sin.data() + sz(row, half));
      }
    }
  }

  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  const KvLayout& layout = pools.layout();
  const float scale =
      1.0f / std::sqrt(c.query_pre_attn_scalar > 0.0f ? c.query_pre_attn_scalar
                                                      : static_cast<float>(c.head_dim));
  // One RMSNorm over each row's hidden vector (pre- and post-norms alike).
  auto norm_rows = [&](const float* in, const std::vector<float>& weight, float* out) {
    for (int t = 0; t < T; ++t)
      kernels::rms_norm(in + sz(t, D), weight.data(), D, c.rms_norm_eps, out + sz(t, D));
  };

  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[static_cast<std::size_t>(l)];
    norm_rows(w.x.data(), L.attn_norm, w.xn.data());
    const kernels::Product qkv[] = {{&L.q, w.q.data()}, {&L.k, w.k.data()}, {&L.v, w.v.data()}};
    kernels::matmul(pool_, qkv, w.xn.data(), T);
    if (!L.q_bias.empty()) {
      add_bias(w.q.data(), L.q_bias, T);
      add_bias(w.k.data(), L.k_bias, T);
      add_bias(w.v.data(), L.v_bias, T);
    }
    // The layer's keys and values live in its kind's pool, read through that kind's tables.
    const auto kind = static_cast<std::size_t>(layout.kind_of[static_cast<std::size_t>(l)]);
    const int slot = layout.slot_of[static_cast<std::size_t>(l)];
    const KvPool& pool = pools[static_cast<int>(kind)];
    const KvShape& kv_shape = pool.shape();
    for (std::size_t i = 0; i < w.attention.size(); ++i)
      w.attention[i].blocks = batch.sequences[i].blocks[kind].data();
    const kernels::PagedKv kv{
        .keys = pool.keys(slot, 0, 0),
        .values = pool.values(slot, 0, 0),
        .block_stride = kv_shape.block_bytes(),
        .head_stride = kv_shape.block_bytes() / static_cast<std::size_t>(kv_shape.num_kv_heads),
        .block_size = kv_shape.block_size,
        .element = kv_shape.type};
    const bool own_rope = L.local && !local_inv_freq_.empty();
    const float* cos_table = own_rope ? w.local_cos.data() : w.cos.data();
    const float* sin_table = own_rope ? w.local_sin.data() : w.sin.data();
    for (const auto& seq : w.attention) {
      for (int i = 0; i < seq.n_rows; ++i) {
        const int t = seq.first_row + i;
        const float* ct = cos_table + sz(t, half);
        const float* st = sin_table + sz(t, half);
        float* qt = w.q.data() + sz(t, q_dim);
        float* kt = w.k.data() + sz(t, kv_dim);
        if (!L.q_norm.empty()) {
          for (int h = 0; h < c.num_heads; ++h) {
            float* qh = qt + sz(h, c.head_dim);
            kernels::rms_norm(qh, L.q_norm.data(), c.head_dim, c.rms_norm_eps, qh);
          }
          for (int h = 0; h < c.num_kv_heads; ++h) {
            float* kh = kt + sz(h, c.head_dim);
            kernels::rms_norm(kh, L.k_norm.data(), c.head_dim, c.rms_norm_eps, kh);
          }
        }
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
    const kernels::ScoreOptions scores{.softcap = c.attn_logit_softcap,
                                       .window = L.local ? c.sliding_window : 0};
    kernels::paged_attention(pool_, shape, kv, w.attention, w.q.data(), scale, w.att.data(),
                             scores);
    kernels::matmul(pool_, L.o, w.att.data(), T, w.tmp.data());
    if (!L.post_attn_norm.empty()) norm_rows(w.tmp.data(), L.post_attn_norm, w.tmp.data());
    kernels::add_inplace(w.x.data(), w.tmp.data(), T * D);

    norm_rows(w.x.data(), L.mlp_norm, w.xn.data());
    const kernels::Product gate_up[] = {{&L.gate, w.gate.data()}, {&L.up, w.up.data()}};
    kernels::matmul(pool_, gate_up, w.xn.data(), T);
    if (block.activation == Activation::kGeluTanh) {
      kernels::gelu_tanh_mul(w.gate.data(), w.up.data(), w.gate.data(), T * I);
    } else {
      kernels::silu_mul(w.gate.data(), w.up.data(), w.gate.data(), T * I);
    }
    kernels::matmul(pool_, L.down, w.gate.data(), T, w.tmp.data());
    if (!L.post_mlp_norm.empty()) norm_rows(w.tmp.data(), L.post_mlp_norm, w.tmp.data());
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
  if (c.final_logit_softcap > 0.0f) {
    kernels::softcap(logits.data(), static_cast<int>(logits.size()), c.final_logit_softcap);
  }
}

namespace {

std::unique_ptr<Model> load_gguf(const std::filesystem::path& path,
                                 std::shared_ptr<const formats::GgufFile> file,
                                 util::ThreadPool& pool, Model::Repack repack) {
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
                                            std::move(weights), pool, repack);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, util::ThreadPool& pool,
                                   Repack repack) {
  return load(formats::Checkpoint::open(path), pool, repack);
}

std::unique_ptr<Model> Model::load(const formats::Checkpoint& checkpoint, util::ThreadPool& pool,
                                   Repack repack) {
  const std::filesystem::path& path = checkpoint.path();
  if (checkpoint.gguf() != nullptr) return load_gguf(path, checkpoint.gguf(), pool, repack);
  ModelConfig config = load_model_config(path);
  const auto* arch = find_architecture_named(config.architecture);
  if (arch == nullptr)
    throw FileError(path.string() + ": unsupported architecture " + config.architecture);
  auto weights = formats::TensorStore::open(path);
  return std::make_unique<TransformerModel>(std::move(config), *arch, arch->hf, std::move(weights),
                                            pool, repack);
}

}  // namespace lmserve::model
