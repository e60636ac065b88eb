// Model::load on GGUF files: stories260K reproduces llama2.c and matches its HF copy's logits;
// tiny llama (F32/F16) and llama-q (F32/BF16) match llama.cpp; Meta's interleaved Q/K order is
// handled by adjacent-pair RoPE; quantized and unsupported files are clear FileErrors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

using lmserve::testing::fixture;
using lmserve::testing::read_json;

std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

void expect_load_error(const std::filesystem::path& path,
                       std::initializer_list<std::string> needles) {
  util::ThreadPool pool(1);
  try {
    Model::load(path, pool);
    ADD_FAILURE() << "loading " << path << " succeeded";
  } catch (const FileError& e) {
    for (const auto& n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message: " << e.what() << "\nexpected to contain: " << n;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// stories260K

class Stories260KGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    gguf_ = Model::load(fixture("models/stories260K/stories260K.gguf"), pool_);
    hf_ = Model::load(fixture("models/stories260K"), pool_);
  }
  util::ThreadPool pool_{2};
  std::unique_ptr<Model> gguf_;
  std::unique_ptr<Model> hf_;
};

TEST_F(Stories260KGguf, ConfigMatchesTheHfCopy) {
  const auto& g = gguf_->config();
  const auto& h = hf_->config();
  EXPECT_EQ(g.architecture, h.architecture);
  EXPECT_EQ(g.hidden_size, h.hidden_size);
  EXPECT_EQ(g.intermediate_size, h.intermediate_size);
  EXPECT_EQ(g.num_layers, h.num_layers);
  EXPECT_EQ(g.num_heads, h.num_heads);
  EXPECT_EQ(g.num_kv_heads, h.num_kv_heads);
  EXPECT_EQ(g.head_dim, h.head_dim);
  EXPECT_EQ(g.vocab_size, h.vocab_size);
  EXPECT_EQ(g.max_position_embeddings, h.max_position_embeddings);
  EXPECT_FLOAT_EQ(g.rms_norm_eps, h.rms_norm_eps);
  EXPECT_FLOAT_EQ(g.rope_theta, h.rope_theta);
  EXPECT_EQ(g.tie_word_embeddings, h.tie_word_embeddings);
  EXPECT_EQ(g.eos_token_ids, h.eos_token_ids);
  EXPECT_EQ(g.bos_token_id, h.bos_token_id);
  EXPECT_EQ(g.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_TRUE(g.rope_freq_factors.empty());
}

// Same rule as stories260k_test.cc: output_ids_ignoring_bos_stop where present, 200 tokens.
TEST_F(Stories260KGguf, GreedyDecodingReproducesLlama2c) {
  auto ref = read_json(fixture("models/stories260K/reference_greedy.json"));
  const int n = ref.at("max_new_tokens").get<int>();
  ASSERT_EQ(ref.at("cases").size(), 18u);
  std::vector<float> logits(512);
  for (const auto& c : ref.at("cases")) {
    SCOPED_TRACE(c.at("prompt").get<std::string>());
    auto prompt = c.at("prompt_ids").get<std::vector<std::int32_t>>();
    auto expected =
        (c.contains("output_ids_ignoring_bos_stop") ? c.at("output_ids_ignoring_bos_stop")
                                                    : c.at("output_ids"))
            .get<std::vector<std::int32_t>>();
    ASSERT_EQ(expected.size(), static_cast<std::size_t>(n));
    auto cache = gguf_->new_cache(512);
    gguf_->forward(prompt, *cache, logits);
    std::vector<std::int32_t> out;
    for (int i = 0; i < n; ++i) {
      std::int32_t next = argmax(logits);
      out.push_back(next);
      if (i + 1 < n) gguf_->forward(std::span(&next, 1), *cache, logits);
    }
    EXPECT_EQ(out, expected);
  }
}

// A model loaded from an open checkpoint reads the one mapping (it keeps the file alive) and
// equals the model loaded from the path.
TEST_F(Stories260KGguf, LoadsFromAnOpenCheckpointSharingItsMapping) {
  const auto checkpoint = formats::Checkpoint::open(fixture("models/stories260K/stories260K.gguf"));
  ASSERT_NE(checkpoint.gguf(), nullptr);
  const auto model = Model::load(checkpoint, pool_);
  EXPECT_GT(checkpoint.gguf().use_count(), 1);
  const std::vector<std::int32_t> prompt = {1, 403, 407, 261, 378};
  std::vector<float> a(512), b(512);
  auto cache_a = model->new_cache(16), cache_b = gguf_->new_cache(16);
  model->forward(prompt, *cache_a, a);
  gguf_->forward(prompt, *cache_b, b);
  EXPECT_EQ(a, b);
}

TEST(GgufModelErrors, AFileThatIsNotGgufIsRefusedWhenOpened) {
  lmserve::testing::TempDir dir;
  const auto path = dir.path() / "model.bin";
  std::ofstream(path) << "not a checkpoint";
  EXPECT_THROW(formats::Checkpoint::open(path), FileError);
}

// The interleaved (GGUF) and HF-permuted forms are the same model: identical logits at every
// prompt position, token by token and with a whole-prompt prefill.
TEST_F(Stories260KGguf, LogitsMatchTheHfCopy) {
  auto ref = read_json(fixture("models/stories260K/reference_greedy.json"));
  std::vector<float> lg(512), lh(512);
  float worst = 0.0f;
  for (const auto& c : ref.at("cases")) {
    auto prompt = c.at("prompt_ids").get<std::vector<std::int32_t>>();
    auto out = c.at("output_ids").get<std::vector<std::int32_t>>();
    prompt.insert(prompt.end(), out.begin(), out.begin() + std::min<std::size_t>(out.size(), 40));
    auto cg = gguf_->new_cache(512);
    auto ch = hf_->new_cache(512);
    for (std::size_t i = 0; i < prompt.size(); ++i) {
      gguf_->forward(std::span(&prompt[i], 1), *cg, lg);
      hf_->forward(std::span(&prompt[i], 1), *ch, lh);
      for (std::size_t v = 0; v < lg.size(); ++v) {
        worst = std::max(worst, std::abs(lg[v] - lh[v]));
        ASSERT_NEAR(lg[v], lh[v], 1e-4f) << "position " << i << " logit " << v;
      }
    }
    auto pg = gguf_->new_cache(512);
    auto ph = hf_->new_cache(512);
    gguf_->forward(prompt, *pg, lg);
    hf_->forward(prompt, *ph, lh);
    for (std::size_t v = 0; v < lg.size(); ++v) ASSERT_NEAR(lg[v], lh[v], 1e-4f) << "logit " << v;
  }
  // Differences are float rounding only: the logits are of order 10.
  EXPECT_LT(worst, 1e-4f);
}

// Why the GGUF layout says RopeStyle::kAdjacentPairs: its Q/K rows are the HF rows with each
// head's two halves interleaved (HF row h*d + j*d/2 + i is GGUF row h*d + 2i + j).
TEST(GgufLayout, QkRowsAreHfRowsInterleaved) {
  formats::GgufFile g(fixture("models/stories260K/stories260K.gguf"));
  formats::SafetensorsFile h(fixture("models/stories260K/model.safetensors"));
  const int dim = 64, head_dim = 8, half = 4;
  for (const auto& [gname, hname, heads] :
       {std::tuple{"blk.2.attn_q.weight", "model.layers.2.self_attn.q_proj.weight", 8},
        std::tuple{"blk.2.attn_k.weight", "model.layers.2.self_attn.k_proj.weight", 4}}) {
    const auto* gt = g.find_tensor(gname);
    const auto* ht = h.find(hname);
    ASSERT_NE(gt, nullptr);
    ASSERT_NE(ht, nullptr);
    ASSERT_EQ(gt->shape, ht->shape);
    // Not simply equal (that would make the test below vacuous).
    EXPECT_NE(std::memcmp(gt->data, ht->data, gt->nbytes), 0);
    for (int hd = 0; hd < heads; ++hd) {
      for (int j = 0; j < 2; ++j) {
        for (int i = 0; i < half; ++i) {
          const std::size_t hf_row = static_cast<std::size_t>(hd * head_dim + j * half + i);
          const std::size_t gguf_row = static_cast<std::size_t>(hd * head_dim + 2 * i + j);
          EXPECT_EQ(
              std::memcmp(gt->data + gguf_row * dim * 4, ht->data + hf_row * dim * 4, dim * 4), 0)
              << gname << " head " << hd << " j " << j << " i " << i;
        }
      }
    }
  }
}

// Adjacent-pair RoPE on interleaved rows is rotate_half RoPE on HF rows, permuted.
TEST(GgufLayout, AdjacentPairRopeIsPermutedRotateHalf) {
  const int heads = 3, head_dim = 8, half = 4;
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  std::vector<float> hf(heads * head_dim), inter(heads * head_dim);
  for (auto& v : hf) v = dist(rng);
  auto to_inter = [&](const std::vector<float>& x) {
    std::vector<float> y(x.size());
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < half; ++i) y[h * head_dim + 2 * i + j] = x[h * head_dim + j * half + i];
    return y;
  };
  inter = to_inter(hf);
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f}, c(half), s(half);
  kernels::rope_cos_sin(37, inv.data(), half, c.data(), s.data());
  kernels::rope_rotate_half(hf.data(), heads, head_dim, half, c.data(), s.data());
  kernels::rope_rotate_adjacent_pairs(inter.data(), heads, head_dim, half, c.data(), s.data());
  auto expected = to_inter(hf);
  for (std::size_t i = 0; i < inter.size(); ++i) EXPECT_FLOAT_EQ(inter[i], expected[i]) << i;
  // And it is not the identity.
  std::vector<float> orig(heads * head_dim);
  EXPECT_NE(inter, to_inter(orig));
}

// ---------------------------------------------------------------------------------------------
// tiny llama and llama-q against llama.cpp (shared/fixtures/models/tiny/README.md)

// llama3 rope scaling arrives as the rope_freqs tensor; it must give HF's llama3 frequencies.
TEST(TinyLlamaGguf, RopeFreqsTensorEqualsHfLlama3Scaling) {
  util::ThreadPool pool(1);
  auto g = Model::load(fixture("models/tiny/llama/llama-F32.gguf"), pool);
  auto h = Model::load(fixture("models/tiny/llama/hf"), pool);
  const auto& c = g->config();
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.max_position_embeddings, 256);
  ASSERT_EQ(c.rope_freq_factors.size(), 8u);
  auto fg = rope_inv_freq(c);
  auto fh = rope_inv_freq(h->config());
  ASSERT_EQ(fg.size(), fh.size());
  int scaled = 0;
  for (std::size_t i = 0; i < fg.size(); ++i) {
    EXPECT_NEAR(fg[i], fh[i], 1e-6 * std::abs(fh[i])) << i;
    if (c.rope_freq_factors[i] != 1.0f) ++scaled;
  }
  EXPECT_GT(scaled, 0);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(GgufModelErrors, TensorTypesWithoutKernelsNameTensorAndType) {
  // llama-q-Q3_K_M with token_embd relabelled IQ3_S (ggml type 21): the same block size as Q3_K,
  // so the file stays valid, but no kernel computes with that format.
  std::string bytes =
      lmserve::testing::read_file(fixture("models/tiny/llama-q/llama-q-Q3_K_M.gguf"));
  const std::string name = "token_embd.weight";
  std::size_t at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  at += name.size();
  std::uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at, 4);
  at += 4 + 8 * static_cast<std::size_t>(n_dims);
  std::uint32_t type;
  std::memcpy(&type, bytes.data() + at, 4);
  ASSERT_EQ(type, 11u);  // Q3_K
  const std::uint32_t iq3_s = 21;
  std::memcpy(bytes.data() + at, &iq3_s, 4);
  lmserve::testing::TempDir dir;
  const auto path = dir.path() / "iq3_s.gguf";
  lmserve::testing::write_file(path, bytes);
  expect_load_error(path, {"token_embd.weight", "IQ3_S", "cannot compute", "IQ4_XS"});
}

TEST(GgufModelErrors, UnsupportedOrIncompleteFiles) {
  expect_load_error(fixture("vocab/ggml-vocab-falcon.gguf"),
                    {"unsupported GGUF architecture \"falcon\"", "supported: llama, qwen2"});
  // Vocab-only file: hyper-parameters but no weights.
  expect_load_error(fixture("vocab/ggml-vocab-llama-spm.gguf"),
                    {"missing tensor \"token_embd.weight\""});
  expect_load_error(fixture("models/stories260K/config.json"), {"not a GGUF file"});
}

}  // namespace
}  // namespace lmserve::model
