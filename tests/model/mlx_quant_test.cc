// MLX affine-quantized checkpoints: the tiny llama fixture quantized here by a quantizer that
// follows MLX's algorithm (api-contract §6.4-6.5) loads and gives the logits of the same model
// with the dequantized weights stored as F32; malformed quantized checkpoints are FileErrors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "formats/tensor_store.h"
#include "kernels/convert.h"
#include "model/model.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

namespace fs = std::filesystem;
using lmserve::testing::fixture;
using lmserve::testing::read_json;
using lmserve::testing::TempDir;
using lmserve::testing::write_file;
using nlohmann::json;

struct Stored {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::string bytes;
};
using Checkpoint = std::map<std::string, Stored>;

void write_safetensors(const fs::path& path, const Checkpoint& tensors) {
  json header = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype},
                    {"shape", t.shape},
                    {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  const std::string h = header.dump();  // unpadded, as MLX's writer leaves it
  const std::uint64_t len = h.size();
  write_file(path, std::string(reinterpret_cast<const char*>(&len), 8) + h + data);
}

Stored f32_tensor(std::vector<std::int64_t> shape, const std::vector<float>& v) {
  return {"F32", std::move(shape),
          std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float))};
}

// Rounds v to `dtype` and appends its bytes; returns the rounded value.
float store(float v, const std::string& dtype, std::string& out) {
  if (dtype == "F32") {
    out.append(reinterpret_cast<const char*>(&v), 4);
    return v;
  }
  const std::uint16_t h = dtype == "F16" ? kernels::f32_to_f16(v) : kernels::f32_to_bf16(v);
  out.append(reinterpret_cast<const char*>(&h), 2);
  return dtype == "F16" ? kernels::f16_to_f32(h) : kernels::bf16_to_f32(h);
}

struct Params {
  int bits = 4;
  int group_size = 64;
};

// MLX's affine quantizer (mx.quantize on the CPU) for one [rows, cols] weight: per group,
// s = max((max - min) / n, 1e-7) with n = 2^bits - 1, negated when the maximum has the larger
// magnitude, so that edge (the larger-magnitude extreme) is exactly q0 = round(edge / s) steps;
// then s = edge / q0 and bias = edge (bias = 0 when q0 = 0); codes clamp(round((w - bias) / s))
// in [0, n], rounding half to even; scales and biases are then rounded to `dtype`. Writes the
// three tensors of `module` and returns the dequantized weight, scale * q + bias in f32.
std::vector<float> quantize(const std::string& module, const std::vector<float>& w, int rows,
                            int cols, Params p, const std::string& dtype, Checkpoint& out) {
  const int n = (1 << p.bits) - 1;
  const int groups = cols / p.group_size;
  std::vector<std::uint8_t> packed(static_cast<std::size_t>(rows) * cols * p.bits / 8, 0);
  std::string scales, biases;
  std::vector<float> deq(w.size());
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const float* x = w.data() + static_cast<std::size_t>(r) * cols + g * p.group_size;
      const auto [lo, hi] = std::minmax_element(x, x + p.group_size);
      const float w_min = *lo, w_max = *hi;
      float s = std::max((w_max - w_min) / static_cast<float>(n), 1e-7f);
      float edge = w_min;
      if (std::fabs(w_min) <= std::fabs(w_max)) {
        s = -s;
        edge = w_max;
      }
      const float q0 = std::nearbyint(edge / s);
      float bias = 0.0f;
      if (q0 != 0.0f) {
        s = edge / q0;
        bias = edge;
      }
      const float s_stored = store(s, dtype, scales);
      const float b_stored = store(bias, dtype, biases);
      for (int j = 0; j < p.group_size; ++j) {
        const int k = g * p.group_size + j;
        const int q = static_cast<int>(
            std::clamp(std::nearbyint((x[j] - bias) / s), 0.0f, static_cast<float>(n)));
        // One LSB-first bit stream per row (§6.5).
        const std::size_t bit = (static_cast<std::size_t>(r) * cols + k) * p.bits;
        for (int i = 0; i < p.bits; ++i)
          if ((q >> i) & 1)
            packed[(bit + i) / 8] |= static_cast<std::uint8_t>(1u << ((bit + i) % 8));
        deq[static_cast<std::size_t>(r) * cols + k] = s_stored * static_cast<float>(q) + b_stored;
      }
    }
  }
  out[module + ".weight"] = {
      "U32", {rows, cols * p.bits / 32}, std::string(packed.begin(), packed.end())};
  out[module + ".scales"] = {dtype, {rows, groups}, scales};
  out[module + ".biases"] = {dtype, {rows, groups}, std::move(biases)};
  return deq;
}

// A recipe: the default parameters, per-module overrides (nullopt: kept in f32), the dtype of
// scales and biases.
struct Recipe {
  Params defaults;
  std::map<std::string, std::optional<Params>> modules;
  std::string dtype = "F32";
};

// Writes the fixture quantized by `recipe` to quant/ and its dequantized F32 copy to deq/.
void make_checkpoints(const Recipe& recipe, const fs::path& quant_dir, const fs::path& deq_dir) {
  const fs::path src = fixture("models/tiny/llama/hf");
  auto weights = formats::TensorStore::open(src);
  Checkpoint quant, deq;
  json q = {{"group_size", recipe.defaults.group_size}, {"bits", recipe.defaults.bits}};
  for (const auto& name : weights.names()) {
    const auto& t = weights.get(name);
    std::vector<float> v(static_cast<std::size_t>(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * sizeof(float));
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    const bool quantizable = t.rank() == 2 && name.ends_with(".weight");
    const auto entry = recipe.modules.find(module);
    if (!quantizable || (entry != recipe.modules.end() && !entry->second)) {
      if (entry != recipe.modules.end()) q[module] = false;
      quant[name] = deq[name] = f32_tensor(t.shape, v);
      continue;
    }
    Params p = recipe.defaults;
    if (entry != recipe.modules.end()) {
      p = *entry->second;
      q[module] = {{"group_size", p.group_size}, {"bits", p.bits}};
    }
    const int rows = static_cast<int>(t.shape[0]), cols = static_cast<int>(t.shape[1]);
    deq[name] = f32_tensor(t.shape, quantize(module, v, rows, cols, p, recipe.dtype, quant));
  }
  json config = read_json(src / "config.json");
  fs::create_directories(deq_dir);
  write_file(deq_dir / "config.json", config.dump());
  write_safetensors(deq_dir / "model.safetensors", deq);
  config["quantization"] = q;
  config["quantization_config"] = q;
  fs::create_directories(quant_dir);
  write_file(quant_dir / "config.json", config.dump());
  write_safetensors(quant_dir / "model.safetensors", quant);
}

const std::vector<std::int32_t> kPrompt = {1, 17, 300, 45, 2, 99, 511, 0, 250, 64, 128, 7};

// The logits after every prompt position, one forward call per token.
std::vector<std::vector<float>> logits_at_every_position(const fs::path& dir) {
  util::ThreadPool pool(2);
  auto model = Model::load(dir, pool);
  auto cache = model->new_cache(64);
  std::vector<std::vector<float>> out;
  for (const std::int32_t token : kPrompt) {
    std::vector<float> logits(static_cast<std::size_t>(model->config().vocab_size));
    model->forward(std::span(&token, 1), *cache, logits);
    out.push_back(std::move(logits));
  }
  return out;
}

struct Diff {
  float max = 0.0f;
  double mean = 0.0;
};
Diff diff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  Diff d;
  std::size_t n = 0;
  for (std::size_t p = 0; p < a.size(); ++p) {
    for (std::size_t v = 0; v < a[p].size(); ++v, ++n) {
      const float e = std::fabs(a[p][v] - b[p][v]);
      d.max = std::max(d.max, e);
      d.mean += e;
    }
  }
  d.mean /= static_cast<double>(n);
  return d;
}

struct Case {
  const char* name;
  Recipe recipe;
  bool weight_error_dominates;  // 2-6 bits somewhere: quantizing moves logits far more
};

class MlxQuantized : public ::testing::TestWithParam<Case> {};

// The quantized model computes with int8 activations (Q8_32 blocks, as llama.cpp does for its
// 32-value formats), the dequantized one in f32. On these peaked models (logit std ~6) that
// alone moves logits by up to ~0.4-0.7 and ~0.1 on average (the fixtures' README measures the
// same for llama.cpp's Q8_0-Q4_K files against float activations), hence 0.8 max / 0.15 mean;
// the kernels' own tests check the products exactly against dequantized weights times the
// quantized activations. Quantizing to 4 bits moves the logits by several units, so those
// recipes also show that the match is not vacuous.
TEST_P(MlxQuantized, MatchesTheDequantizedModelAtEveryPosition) {
  TempDir dir;
  make_checkpoints(GetParam().recipe, dir.path() / "quant", dir.path() / "deq");
  const auto quant = logits_at_every_position(dir.path() / "quant");
  const auto deq = logits_at_every_position(dir.path() / "deq");
  const auto original = logits_at_every_position(fixture("models/tiny/llama/hf"));
  const Diff d = diff(quant, deq), weight_error = diff(deq, original);
  std::printf(
      "%s: |quantized - dequantized| max %.4f mean %.4f; "
      "|dequantized - original| max %.4f mean %.4f\n",
      GetParam().name, d.max, d.mean, weight_error.max, weight_error.mean);
  EXPECT_LT(d.max, 0.8f);
  EXPECT_LT(d.mean, 0.15);
  if (GetParam().weight_error_dominates) {
    EXPECT_GT(weight_error.mean, 5 * d.mean);
  }
}

Recipe mixed() {
  Recipe r;
  r.defaults = {4, 64};
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"})
    r.modules[std::string("model.layers.0.self_attn.") + m] = Params{8, 32};
  r.modules["model.layers.0.mlp.down_proj"] = Params{8, 32};
  r.modules["model.layers.1.mlp.down_proj"] = std::nullopt;  // kept in floating point
  r.modules["model.layers.1.self_attn.q_proj"] = Params{3, 32};
  r.modules["model.layers.1.self_attn.k_proj"] = Params{5, 64};
  r.modules["model.layers.1.self_attn.v_proj"] = Params{6, 32};
  r.modules["model.layers.2.mlp.up_proj"] = Params{2, 64};
  r.modules["lm_head"] = Params{6, 64};
  return r;
}

INSTANTIATE_TEST_SUITE_P(
    Recipes, MlxQuantized,
    ::testing::Values(Case{"4-bit group 64", Recipe{{4, 64}, {}, "F32"}, true},
                      Case{"8-bit group 32", Recipe{{8, 32}, {}, "F32"}, false},
                      Case{"4-bit group 64, F16 scales", Recipe{{4, 64}, {}, "F16"}, true},
                      Case{"8-bit group 32, BF16 scales", Recipe{{8, 32}, {}, "BF16"}, false},
                      Case{"mixed per layer", mixed(), true}),
    [](const auto& info) { return "Recipe" + std::to_string(info.index); });

// ---------------------------------------------------------------------------------------------
// Load errors

class MlxLoadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    make_checkpoints(Recipe{{4, 64}, {}, "F32"}, dir_.path() / "quant", dir_.path() / "deq");
  }
  fs::path quant() const { return dir_.path() / "quant"; }
  json config() const { return read_json(quant() / "config.json"); }
  void expect_error(std::initializer_list<std::string> needles) const {
    util::ThreadPool pool(1);
    try {
      Model::load(quant(), pool);
      ADD_FAILURE() << "loading succeeded";
    } catch (const FileError& e) {
      for (const auto& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }
  // The checkpoint with tensor `name` changed (nullopt: removed).
  void edit_tensor(const std::string& name, std::optional<Stored> t) const {
    auto store = formats::TensorStore::open(quant());
    Checkpoint c;
    for (const auto& n : store.names()) {
      const auto& v = store.get(n);
      c[n] = {std::string(formats::dtype_name(v.dtype)), v.shape,
              std::string(reinterpret_cast<const char*>(v.data), v.nbytes)};
    }
    if (t) {
      c[name] = *t;
    } else {
      c.erase(name);
    }
    write_safetensors(quant() / "model.safetensors.new", c);
    fs::rename(quant() / "model.safetensors.new", quant() / "model.safetensors");
  }
  TempDir dir_;
};

TEST_F(MlxLoadErrors, UnsupportedBitsAndGroupSizes) {
  const json original = config();
  auto c = original;
  c["quantization"]["bits"] = 7;
  write_file(quant() / "config.json", c.dump());
  expect_error({"quantization", "bits 7", "2, 3, 4, 5, 6 or 8"});
  c = original;
  c["quantization"]["model.layers.1.mlp.up_proj"] = {{"group_size", 16}, {"bits", 4}};
  write_file(quant() / "config.json", c.dump());
  expect_error({"model.layers.1.mlp.up_proj", "group_size 16", "32, 64 or 128"});
  c = original;
  c["quantization"]["mode"] = "mxfp4";
  write_file(quant() / "config.json", c.dump());
  expect_error({"mode \"mxfp4\""});
  c = original;
  c.erase("quantization");
  c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  write_file(quant() / "config.json", c.dump());
  expect_error({"quant_method \"gptq\""});
}

TEST_F(MlxLoadErrors, MissingScalesOrBiases) {
  edit_tensor("model.layers.2.mlp.gate_proj.biases", std::nullopt);
  expect_error({"model.layers.2.mlp.gate_proj", "model.layers.2.mlp.gate_proj.biases"});
  // Without scales the module is not quantized by mlx-lm's rule; its U32 weight is an error.
  edit_tensor("model.layers.2.mlp.gate_proj.scales", std::nullopt);
  expect_error(
      {"model.layers.2.mlp.gate_proj.weight", "U32", "model.layers.2.mlp.gate_proj.scales"});
}

TEST_F(MlxLoadErrors, ShapesThatDoNotMatch) {
  // Packed as 4-bit while the config says 8-bit.
  const json original = config();
  auto c = original;
  c["quantization"]["model.layers.0.self_attn.o_proj"] = {{"group_size", 64}, {"bits", 8}};
  write_file(quant() / "config.json", c.dump());
  expect_error({"model.layers.0.self_attn.o_proj.weight"});
  // A group size that does not divide the input dimension (192 for down_proj).
  c = original;
  c["quantization"]["model.layers.0.mlp.down_proj"] = {{"group_size", 128}, {"bits", 4}};
  write_file(quant() / "config.json", c.dump());
  expect_error({"model.layers.0.mlp.down_proj", "192", "not a multiple of the group size"});
  // Scales for group size 32 while the config says 64.
  write_file(quant() / "config.json", original.dump());
  edit_tensor("model.layers.0.self_attn.o_proj.scales",
              f32_tensor({64, 2}, std::vector<float>(128)));
  expect_error({"model.layers.0.self_attn.o_proj.scales", "[64, 2]"});
}

}  // namespace
}  // namespace lmserve::model
