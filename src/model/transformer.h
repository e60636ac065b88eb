// The shared decoder-only transformer runtime: one batched forward pass per step.
// Executes any ArchitectureDescription over weights that stay in the mmap'd checkpoint.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "formats/tensor_store.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "model/architecture.h"
#include "model/background_repack.h"
#include "model/model.h"
#include "util/aligned_bytes.h"
#include "util/uninitialized.h"

namespace lmserve::model {

class TransformerModel final : public Model {
 public:
  // Binds every tensor `layout` (one of arch's checkpoint layouts) names, checking dtype and
  // shape against config.
  TransformerModel(ModelConfig config, const ArchitectureDescription& arch,
                   const CheckpointLayout& layout, formats::TensorStore weights,
                   util::ThreadPool& pool, Repack repack);

  const ModelConfig& config() const override { return config_; }
  std::size_t weight_bytes() const override { return weight_bytes_; }
  std::size_t repacked_bytes() const override;
  void reserve(int max_rows, int max_logit_rows) override;
  std::size_t workspace_bytes() const override;
  void forward(const Batch& batch, KvPools& pools, std::span<float> logits) override;
  bool adopt_repacked() override;

 private:
  // One block's weights; an empty vector is a tensor the family's block does not have.
  struct Layer {
    std::vector<float> attn_norm;
    kernels::WeightMatrix q, k, v, o;
    std::vector<float> q_bias, k_bias, v_bias;
    std::vector<float> q_norm, k_norm;
    std::vector<float> post_attn_norm;
    std::vector<float> mlp_norm;
    kernels::WeightMatrix gate, up, down;
    std::vector<float> post_mlp_norm;
    bool local = false;  // sliding-window attention with the local RoPE frequencies
  };

  // Activations of one step, sized for the largest batch seen (or reserved).
  struct Workspace {
    int rows = 0, logit_rows = 0;
    // Sized for the largest batch at start-up, written only as far as each step needs: pages
    // a step never reaches stay uncommitted.
    util::ScratchVector<float> x, xn, q, k, v, att, gate, up, tmp, cos, sin;
    util::ScratchVector<float> local_cos,
        local_sin;                       // only when local layers have their own RoPE base
    util::ScratchVector<float> head_in;  // the normed last rows of sequences that want logits
    std::vector<kernels::AttentionSequence> attention;
  };

  kernels::WeightMatrix matrix(std::string_view name, int rows, int cols);
  // A matrix the CPU target computes faster in a layout of its own (kernels/matmul.h repack),
  // with every binding of it (a tied embedding is the head).
  struct RepackJob {
    kernels::WeightMatrix source;
    std::vector<kernels::WeightMatrix*> uses;
  };
  std::vector<RepackJob> repack_jobs();
  // Binds the copy of `job` in place of its source and hands the file's pages of it back.
  void adopt(const RepackJob& job, const kernels::WeightMatrix& packed, util::AlignedBytes bytes);
  // The quantization of the Linear/Embedding whose weight is `name`, if MLX-quantized.
  std::optional<MlxQuantization::Params> mlx_quantization(std::string_view name) const;
  kernels::WeightMatrix mlx_matrix(std::string_view name, int rows, int cols,
                                   const MlxQuantization::Params& params);
  // t's bytes, copied when not aligned to its element size; counted in weight_bytes_.
  const void* element_data(const formats::TensorView& t);
  void validate(const Batch& batch, const KvPools& pools, std::span<float> logits) const;
  void validate_layout(const KvLayout& layout) const;
  void bind_layer(int l);
  std::vector<float> norm_vector(std::string_view name, int n);
  std::vector<float> f32_vector(std::string_view name, int n);

  ModelConfig config_;
  const ArchitectureDescription& arch_;
  const CheckpointLayout& layout_;
  formats::TensorStore weights_;
  util::ThreadPool& pool_;
  // Copies of tensors whose bytes are not aligned to their element size in the file.
  std::vector<std::vector<std::uint8_t>> realigned_;
  // Matrices repacked into the CPU target's layout (the file's pages of them are released).
  std::vector<util::AlignedBytes> repacked_;
  kernels::WeightMatrix embed_;
  kernels::WeightMatrix lm_head_;
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_;
  std::vector<float> local_inv_freq_;   // empty when local layers rotate like global ones
  float rope_attention_factor_ = 1.0f;  // on the global cos/sin tables (yarn, longrope)
  Workspace ws_;
  std::size_t weight_bytes_ = 0;
  // Repack::kInBackground until every copy is adopted; last, so that it stops before the
  // weights it reads go.
  std::vector<RepackJob> pending_repacks_;
  std::unique_ptr<BackgroundRepack> background_repack_;
};

}  // namespace lmserve::model
