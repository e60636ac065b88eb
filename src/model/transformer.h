// The shared decoder-only transformer runtime and its f32 KV cache.
// Executes any ArchitectureDescription over weights that stay in the mmap'd checkpoint.
#pragma once

#include <memory>
#include <vector>

#include "formats/tensor_store.h"
#include "kernels/matmul.h"
#include "model/architecture.h"
#include "model/model.h"

namespace lmserve::model {

// Keys and values of every layer, f32, laid out [layer][position][kv_heads * head_dim].
class F32KvCache final : public KvCache {
 public:
  F32KvCache(int num_layers, int kv_dim, int capacity);

  int size() const override { return size_; }
  int capacity() const override { return capacity_; }
  void truncate(int n) override;

  int num_layers() const { return num_layers_; }
  int kv_dim() const { return kv_dim_; }
  float* keys(int layer) { return k_.data() + offset(layer); }
  float* values(int layer) { return v_.data() + offset(layer); }
  void set_size(int n) { size_ = n; }

 private:
  std::size_t offset(int layer) const {
    return static_cast<std::size_t>(layer) * static_cast<std::size_t>(capacity_) *
           static_cast<std::size_t>(kv_dim_);
  }

  int num_layers_;
  int kv_dim_;
  int capacity_;
  int size_ = 0;
  std::vector<float> k_;
  std::vector<float> v_;
};

class TransformerModel final : public Model {
 public:
  // Binds every tensor `layout` (one of arch's checkpoint layouts) names, checking dtype and
  // shape against config.
  TransformerModel(ModelConfig config, const ArchitectureDescription& arch,
                   const CheckpointLayout& layout, formats::TensorStore weights,
                   util::ThreadPool& pool);

  const ModelConfig& config() const override { return config_; }
  std::unique_ptr<KvCache> new_cache(int capacity) const override;
  void forward(std::span<const std::int32_t> tokens, KvCache& cache,
               std::span<float> logits) override;

 private:
  struct Layer {
    std::vector<float> attn_norm;
    kernels::WeightMatrix q, k, v, o;
    std::vector<float> mlp_norm;
    kernels::WeightMatrix gate, up, down;
  };

  kernels::WeightMatrix matrix(std::string_view name, int rows, int cols);
  std::vector<float> norm_vector(std::string_view name, int n);

  ModelConfig config_;
  const ArchitectureDescription& arch_;
  const CheckpointLayout& layout_;
  formats::TensorStore weights_;
  util::ThreadPool& pool_;
  // Copies of tensors whose bytes are not aligned to their element size in the file.
  std::vector<std::vector<std::uint8_t>> realigned_;
  kernels::WeightMatrix embed_;
  kernels::WeightMatrix lm_head_;
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_;
};

}  // namespace lmserve::model
