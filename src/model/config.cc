// ModelConfig from HF config.json / generation_config.json, and the RoPE frequencies it implies.
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>

#include "model/architecture.h"
#include "model/loading.h"
#include "model/model.h"
#include "util/error.h"
#include "util/text_file.h"

namespace lmserve::model {

namespace {

using nlohmann::json;

json parse_object(std::string_view text, const std::string& what) {
  // nlohmann recurses over nesting: bound it before parsing.
  if (!util::json_nesting_within(text, 64)) throw FileError(what + ": JSON nested too deeply");
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw FileError(what + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw FileError(what + ": not a JSON object");
  return j;
}

std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 60) + "..." : s;
}

class ConfigReader {
 public:
  ConfigReader(const json& j, std::string what) : j_(j), what_(std::move(what)) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // A strictly positive int; `fallback` when absent (0 = required).
  int positive_int(const char* key, int fallback = 0) const {
    const json* v = find(key);
    if (v == nullptr) {
      if (fallback > 0) return fallback;
      throw FileError(what_ + ": missing \"" + key + "\"");
    }
    if (!v->is_number_integer())
      throw FileError(what_ + ": \"" + key + "\" must be an integer, got " + show(*v));
    if (v->is_number_unsigned()) {
      auto u = v->get<std::uint64_t>();
      if (u == 0) throw FileError(what_ + ": \"" + key + "\" = 0 must be a positive integer");
      if (u > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
        throw FileError(what_ + ": \"" + key + "\" = " + show(*v) +
                        " is out of range (must be 1.." +
                        std::to_string(std::numeric_limits<int>::max()) + ")");
      }
      return static_cast<int>(u);
    }
    auto s = v->get<std::int64_t>();
    if (s <= 0 || s > std::numeric_limits<int>::max()) {
      throw FileError(what_ + ": \"" + key + "\" = " + show(*v) + " must be a positive integer");
    }
    return static_cast<int>(s);
  }

  // A finite, strictly positive number.
  float positive_float(const char* key, float fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number())
      throw FileError(what_ + ": \"" + key + "\" must be a number, got " + show(*v));
    double d = v->get<double>();
    if (!std::isfinite(d) || d <= 0.0 || d > std::numeric_limits<float>::max()) {
      throw FileError(what_ + ": \"" + key + "\" = " + show(*v) +
                      " must be a positive finite number");
    }
    return static_cast<float>(d);
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean())
      throw FileError(what_ + ": \"" + key + "\" must be true or false, got " + show(*v));
    return v->get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_string())
      throw FileError(what_ + ": \"" + key + "\" must be a string, got " + show(*v));
    return v->get<std::string>();
  }

  // eos_token_id / bos_token_id: an int or a list of ints (null or absent: nothing).
  void token_ids(const char* key, std::vector<std::int32_t>& out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    auto one = [&](const json& e) {
      if (!e.is_number_integer() || e.get<std::int64_t>() < 0 ||
          e.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max()) {
        throw FileError(what_ + ": \"" + key +
                        "\" must be a non-negative token id or a list of them, got " + show(*v));
      }
      auto id = static_cast<std::int32_t>(e.get<std::int64_t>());
      if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
    };
    if (v->is_array()) {
      for (const auto& e : *v) one(e);
    } else {
      one(*v);
    }
  }

  const std::string& what() const { return what_; }

 private:
  const json& j_;
  std::string what_;
};

RopeScaling parse_rope_scaling(const json& j, const std::string& what) {
  RopeScaling rs;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return rs;
  if (!it->is_object())
    throw FileError(what + ": \"rope_scaling\" must be an object or null, got " + show(*it));
  ConfigReader r(*it, what + ": rope_scaling");
  // Newer configs say "rope_type", older ones "type".
  std::string type = r.string("rope_type", r.string("type", "default"));
  if (type == "default") return rs;
  if (type == "linear") {
    rs.type = RopeScaling::Type::kLinear;
    rs.factor = r.positive_float("factor", 0.0f);
    if (rs.factor <= 0.0f)
      throw FileError(what + ": rope_scaling type \"linear\" needs \"factor\"");
    return rs;
  }
  if (type == "dynamic") {
    rs.type = RopeScaling::Type::kDynamic;
    rs.factor = r.positive_float("factor", 0.0f);
    if (rs.factor <= 0.0f)
      throw FileError(what + ": rope_scaling type \"dynamic\" needs \"factor\"");
    return rs;
  }
  if (type == "llama3") {
    rs.type = RopeScaling::Type::kLlama3;
    rs.factor = r.positive_float("factor", 0.0f);
    if (rs.factor <= 0.0f)
      throw FileError(what + ": rope_scaling type \"llama3\" needs \"factor\"");
    rs.low_freq_factor = r.positive_float("low_freq_factor", 1.0f);
    rs.high_freq_factor = r.positive_float("high_freq_factor", 4.0f);
    rs.original_max_position_embeddings = r.positive_int("original_max_position_embeddings", 8192);
    if (!(rs.high_freq_factor > rs.low_freq_factor)) {
      throw FileError(what + ": rope_scaling llama3 needs high_freq_factor > low_freq_factor");
    }
    return rs;
  }
  throw FileError(what + ": rope_scaling type \"" + type +
                  "\" is not supported (supported: default, linear, dynamic, llama3)");
}

// "layer_types": one "sliding_attention" or "full_attention" per layer.
void read_layer_types(const json& types, ModelConfig& c, const std::string& what) {
  if (!types.is_array() || types.size() != static_cast<std::size_t>(c.num_layers)) {
    throw FileError(what + ": \"layer_types\" must list one type per layer (" +
                    std::to_string(c.num_layers) + "), got " + show(types));
  }
  for (const auto& t : types) {
    if (t == "sliding_attention") {
      c.local_layers.push_back(true);
    } else if (t == "full_attention") {
      c.local_layers.push_back(false);
    } else {
      throw FileError(what + ": layer type " + show(t) +
                      " is not supported (supported: sliding_attention, full_attention)");
    }
  }
}

}  // namespace

void finish_local_layers(ModelConfig& c, const ArchitectureDescription& arch,
                         const std::string& what) {
  if (c.sliding_window <= 0) {
    c.sliding_window = 0;
    c.local_layers.clear();
    c.local_rope_theta = 0.0f;
    return;
  }
  if (c.local_layers.empty()) {
    for (int l = 0; l < c.num_layers; ++l) {
      switch (arch.block.local_layers) {
        case LocalLayers::kAll:
          c.local_layers.push_back(true);
          break;
        case LocalLayers::kEvenLayers:
          c.local_layers.push_back(l % 2 == 0);
          break;
        case LocalLayers::kFiveOfSix:
          c.local_layers.push_back(l % 6 < 5);
          break;
      }
    }
  }
  if (c.local_layers.size() != static_cast<std::size_t>(c.num_layers))
    throw FileError(what + ": the local layer list does not cover every layer");
  if (c.local_rope_theta <= 0.0f) c.local_rope_theta = arch.block.default_local_rope_theta;
}

// One {group_size, bits, mode} object of the quantization block; `where` names it in errors.
// Missing or null values take MLX's affine defaults (64, 4), as mlx-lm does for per-layer
// entries.
MlxQuantization::Params parse_quant_params(const json& j, const std::string& where) {
  if (!j.is_object()) throw FileError(where + " must be an object or false, got " + show(j));
  ConfigReader r(j, where);
  const std::string mode = r.string("mode", "affine");
  if (mode != "affine") {
    throw FileError(where + ": quantization mode \"" + mode + "\" is not supported (only affine)");
  }
  MlxQuantization::Params p;
  p.group_size = r.positive_int("group_size", 64);
  p.bits = r.positive_int("bits", 4);
  if (p.bits > 8 || p.bits < 2 || p.bits == 7) {
    throw FileError(where + ": bits " + std::to_string(p.bits) +
                    " is not supported (2, 3, 4, 5, 6 or 8)");
  }
  if (p.group_size != 32 && p.group_size != 64 && p.group_size != 128) {
    throw FileError(where + ": group_size " + std::to_string(p.group_size) +
                    " is not supported (32, 64 or 128)");
  }
  return p;
}

// config.json's "quantization" block (mlx-lm; "quantization_config" holds a copy). Other
// tools' quantization_config (quant_method: awq, gptq, ...) is rejected.
MlxQuantization parse_quantization(const json& j, const std::string& what) {
  MlxQuantization q;
  auto block = j.find("quantization");
  if (block == j.end() || block->is_null()) {
    block = j.find("quantization_config");
    if (block == j.end() || block->is_null()) return q;
    if (block->is_object() && block->contains("quant_method")) {
      throw FileError(what + ": quantization_config with quant_method " +
                      show((*block)["quant_method"]) +
                      " is not supported (only MLX affine quantization)");
    }
  }
  const std::string where = what + ": quantization";
  q.defaults = parse_quant_params(*block, where);
  q.present = true;
  for (const auto& [key, value] : block->items()) {
    if (key == "group_size" || key == "bits" || key == "mode") continue;
    if (value.is_boolean() && !value.get<bool>()) {
      q.modules[key] = std::nullopt;
    } else {
      q.modules[key] = parse_quant_params(value, where + "[\"" + key + "\"]");
    }
  }
  return q;
}

void check_dimensions(const ModelConfig& c, const std::string& what) {
  if (c.num_heads % c.num_kv_heads != 0) {
    throw FileError(what + ": num_attention_heads " + std::to_string(c.num_heads) +
                    " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  }
  if (c.head_dim % 2 != 0) {
    throw FileError(what + ": head_dim " + std::to_string(c.head_dim) +
                    " must be even for rotary embeddings");
  }
  // Every activation row and weight matrix is indexed with int; keep products in range.
  const long long q_dim = static_cast<long long>(c.num_heads) * c.head_dim;
  if (q_dim > (1 << 24) || c.hidden_size > (1 << 24) || c.intermediate_size > (1 << 26) ||
      c.vocab_size > (1 << 26) || c.num_layers > 100000) {
    throw FileError(what + ": dimensions are implausibly large");
  }
}

ModelConfig parse_model_config(std::string_view config_json,
                               std::string_view generation_config_json) {
  const std::string what = "config.json";
  json j = parse_object(config_json, what);
  ConfigReader r(j, what);

  ModelConfig c;
  const json* mt = r.find("model_type");
  if (mt == nullptr) throw FileError(what + ": missing \"model_type\"");
  if (!mt->is_string())
    throw FileError(what + ": \"model_type\" must be a string, got " + show(*mt));
  const auto* arch = find_architecture(mt->get<std::string>());
  if (arch == nullptr) {
    throw FileError(what + ": unsupported model_type \"" + mt->get<std::string>() +
                    "\" (supported: " + supported_model_types() + ")");
  }
  c.architecture = std::string(arch->name);

  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_layers = r.positive_int("num_hidden_layers");
  c.num_heads = r.positive_int("num_attention_heads");
  c.num_kv_heads = r.positive_int("num_key_value_heads", c.num_heads);
  c.vocab_size = r.positive_int("vocab_size");
  // HF LlamaConfig's defaults for the optional keys.
  c.max_position_embeddings = r.positive_int("max_position_embeddings", 2048);
  c.rms_norm_eps = r.positive_float("rms_norm_eps", 1e-6f);
  c.rope_theta = r.positive_float("rope_theta", 10000.0f);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);

  if (r.find("head_dim") != nullptr) {
    c.head_dim = r.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      throw FileError(what + ": hidden_size " + std::to_string(c.hidden_size) +
                      " is not divisible by num_attention_heads " + std::to_string(c.num_heads) +
                      " (and no head_dim is given)");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  check_dimensions(c, what);

  const bool gelu = arch->block.activation == Activation::kGeluTanh;
  const std::string act = r.string(std::string(arch->hf_activation_key).c_str(),
                                   r.string("hidden_act", gelu ? "gelu_pytorch_tanh" : "silu"));
  const bool act_ok = gelu ? (act == "gelu_pytorch_tanh" || act == "gelu_tanh") : act == "silu";
  if (!act_ok) {
    throw FileError(what + ": " + std::string(arch->hf_activation_key) + " \"" + act +
                    "\" is not supported for " + c.architecture + " (only " +
                    (gelu ? "gelu_pytorch_tanh" : "silu") + ")");
  }
  if (r.boolean("attention_bias", false) && !arch->block.qkv_bias)
    throw FileError(what + ": attention_bias true is not supported for " + c.architecture);
  if (r.boolean("mlp_bias", false)) throw FileError(what + ": mlp_bias true is not supported yet");
  c.rope_scaling = parse_rope_scaling(j, what);

  if (arch->has_sliding_window && r.find("sliding_window") != nullptr) {
    c.sliding_window = r.positive_int("sliding_window");
    if (const json* types = r.find("layer_types")) read_layer_types(*types, c, what);
  } else if (r.boolean("use_sliding_window", false)) {
    // Qwen2's optional window covers only some layers (max_window_layers): not implemented.
    throw FileError(what + ": use_sliding_window true is not supported for " + c.architecture);
  }
  c.local_rope_theta = r.positive_float("rope_local_base_freq", 0.0f);
  c.attn_logit_softcap = r.positive_float("attn_logit_softcapping", 0.0f);
  c.final_logit_softcap = r.positive_float("final_logit_softcapping", 0.0f);
  c.query_pre_attn_scalar = r.positive_float("query_pre_attn_scalar", 0.0f);
  finish_local_layers(c, *arch, what);
  c.quantization = parse_quantization(j, what);

  std::vector<std::int32_t> bos;
  r.token_ids("bos_token_id", bos);
  r.token_ids("eos_token_id", c.eos_token_ids);
  if (!generation_config_json.empty()) {
    json g = parse_object(generation_config_json, "generation_config.json");
    ConfigReader gr(g, "generation_config.json");
    gr.token_ids("eos_token_id", c.eos_token_ids);
    if (bos.empty()) gr.token_ids("bos_token_id", bos);
  }
  if (!bos.empty()) c.bos_token_id = bos.front();
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto config_path = dir / "config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_path, ec))
    throw FileError(dir.string() + ": no config.json");
  const auto gen_path = dir / "generation_config.json";
  std::string gen;
  if (std::filesystem::is_regular_file(gen_path, ec)) {
    gen = util::read_text_file(gen_path);
    if (gen.empty()) throw FileError(gen_path.string() + ": empty file");
  }
  try {
    return parse_model_config(util::read_text_file(config_path), gen);
  } catch (const FileError& e) {
    throw FileError(dir.string() + "/" + e.what());
  }
}

std::vector<float> local_rope_inv_freq(const ModelConfig& config) {
  // Without a base of their own, local layers rotate exactly like global ones.
  if (config.local_rope_theta <= 0.0f) return rope_inv_freq(config);
  ModelConfig local;
  local.head_dim = config.head_dim;
  local.rope_theta = config.local_rope_theta;
  return rope_inv_freq(local);
}

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  const int half = config.head_dim / 2;
  std::vector<float> out(static_cast<std::size_t>(half));
  const auto& rs = config.rope_scaling;
  for (int i = 0; i < half; ++i) {
    // f32 like HF (torch float32 pow) and llama2.c (powf).
    float inv = 1.0f / std::pow(config.rope_theta,
                                static_cast<float>(2 * i) / static_cast<float>(config.head_dim));
    if (rs.type == RopeScaling::Type::kLinear) {
      inv /= rs.factor;
    } else if (rs.type == RopeScaling::Type::kLlama3) {
      // Long wavelengths are slowed by `factor`, short ones kept, and the band between
      // interpolated (HF's _compute_llama3_parameters).
      const double old_ctx = rs.original_max_position_embeddings;
      const double low_wavelen = old_ctx / rs.low_freq_factor;
      const double high_wavelen = old_ctx / rs.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / static_cast<double>(inv);
      if (wavelen > low_wavelen) {
        inv = static_cast<float>(inv / static_cast<double>(rs.factor));
      } else if (wavelen >= high_wavelen) {
        const double smooth =
            (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        inv = static_cast<float>((1.0 - smooth) * inv / rs.factor + smooth * inv);
      }
    }
    // GGUF's rope_freqs divide the angle per frequency (how llama.cpp stores llama3 scaling).
    if (!config.rope_freq_factors.empty())
      inv /= config.rope_freq_factors[static_cast<std::size_t>(i)];
    out[static_cast<std::size_t>(i)] = inv;
  }
  return out;
}

}  // namespace lmserve::model
