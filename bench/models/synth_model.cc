// Synthesizes a deterministic random-weight checkpoint with a real model's shape (HF layout:
// config.json, model.safetensors in F16/F32, the tokenizer files of a given folder), so the
// benchmarks measure real-sized work without downloading a model.
//
// Usage: synth_model --shape llama-3.2-1b|qwen2.5-0.5b|tiny|tiny-qwen --tokenizer DIR --out DIR
// [--dtype f16|f32] [--seed N]
//    or: synth_model --shape ... --gguf f16|q8_0|q4_0|q4_k_m|iq4_xs --vocab VOCAB.gguf
//                    --out FILE.gguf
// The GGUF form (llama architecture, the vocabulary's tokenizer metadata copied from a
// vocab-only GGUF) is what the peer comparison feeds both lmserve and llama.cpp; its tensor types
// follow llama.cpp's recipes for those file types (below), with the project's own quantizers.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "kernels/convert.h"
#include "kernels/quant/quantize.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct Shape {
  std::string name;
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, context;
  float rope_theta;
  bool tied;
  json rope_scaling;  // null for none
  int bos;
  std::vector<int> eos;
};

Shape shape_named(const std::string& name) {
  if (name == "llama-3.2-1b") {
    return {name,
            2048,
            8192,
            16,
            32,
            8,
            64,
            128256,
            131072,
            500000.0f,
            true,
            json{{"factor", 32.0},
                 {"high_freq_factor", 4.0},
                 {"low_freq_factor", 1.0},
                 {"original_max_position_embeddings", 8192},
                 {"rope_type", "llama3"}},
            128000,
            {128001, 128008, 128009}};
  }
  if (name == "qwen2.5-0.5b") {
    // Qwen2.5-0.5B's sizes on the Llama block (the Qwen family lands with the model-family
    // work; until then this measures the same shapes without q/k/v biases).
    return {name,   896,   4864,       24,   14,      2,      64,
            151936, 32768, 1000000.0f, true, nullptr, 151643, {151645, 151643}};
  }
  if (name == "tiny-qwen") {
    // tiny's sizes with Qwen's 150k vocabulary and special ids (structured-output e2e tests).
    return {name,   256,  768,        4,    8,       2,      32,
            151936, 8192, 1000000.0f, true, nullptr, 151643, {151645, 151643}};
  }
  if (name == "tiny") {
    return {name,   256,  768,       4,    8,       2,      32,
            128256, 8192, 500000.0f, true, nullptr, 128000, {128001, 128009}};
  }
  throw CLI::ValidationError("--shape", "unknown shape " + name);
}

// splitmix64: fast, deterministic, good enough for weights nobody reads.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-a, a).
  float uniform(float a) {
    return (static_cast<float>(next() >> 40) / 16777216.0f * 2.0f - 1.0f) * a;
  }
};

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  float scale;  // uniform(-scale, scale); 0 = all ones (norm weights)
};

std::vector<Tensor> tensors_of(const Shape& s) {
  const std::int64_t q = static_cast<std::int64_t>(s.heads) * s.head_dim;
  const std::int64_t kv = static_cast<std::int64_t>(s.kv_heads) * s.head_dim;
  // Uniform(-a, a) has standard deviation a / sqrt(3); 0.02-ish keeps activations tame.
  const float a = 0.035f;
  std::vector<Tensor> t = {{"model.embed_tokens.weight", {s.vocab, s.hidden}, a}};
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {s.hidden}, 0});
    t.push_back({p + "self_attn.q_proj.weight", {q, s.hidden}, a});
    t.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}, a});
    t.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}, a});
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden, q}, a});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, 0});
    t.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, a});
    t.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, a});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, a});
  }
  t.push_back({"model.norm.weight", {s.hidden}, 0});
  if (!s.tied) t.push_back({"lm_head.weight", {s.vocab, s.hidden}, a});
  return t;
}

json config_of(const Shape& s) {
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_size", s.hidden},
            {"intermediate_size", s.intermediate},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_heads},
            {"head_dim", s.head_dim},
            {"vocab_size", s.vocab},
            {"max_position_embeddings", s.context},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", s.rope_theta},
            {"tie_word_embeddings", s.tied},
            {"hidden_act", "silu"},
            {"bos_token_id", s.bos},
            {"eos_token_id", s.eos},
            {"torch_dtype", "float16"}};
  if (!s.rope_scaling.is_null()) c["rope_scaling"] = s.rope_scaling;
  return c;
}

void write_safetensors(const fs::path& path, const std::vector<Tensor>& tensors, bool f16,
                       std::uint64_t seed) {
  const std::size_t elem = f16 ? 2 : 4;
  json header = json::object();
  std::size_t offset = 0;
  for (const auto& t : tensors) {
    std::size_t n = 1;
    for (auto d : t.shape) n *= static_cast<std::size_t>(d);
    header[t.name] = {{"dtype", f16 ? "F16" : "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n * elem}}};
    offset += n * elem;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep tensor data 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t size = text.size();
  out.write(reinterpret_cast<const char*>(&size), 8);
  out << text;
  Rng rng{seed};
  constexpr std::size_t kChunk = 1 << 20;
  std::vector<float> values(kChunk);
  std::vector<std::uint16_t> halves(kChunk);
  for (const auto& t : tensors) {
    std::size_t n = 1;
    for (auto d : t.shape) n *= static_cast<std::size_t>(d);
    for (std::size_t done = 0; done < n; done += kChunk) {
      const std::size_t m = std::min(kChunk, n - done);
      for (std::size_t i = 0; i < m; ++i) values[i] = t.scale == 0 ? 1.0f : rng.uniform(t.scale);
      if (f16) {
        lmserve::kernels::f32_to_f16(values.data(), halves.data(), static_cast<int>(m));
        out.write(reinterpret_cast<const char*>(halves.data()),
                  static_cast<std::streamsize>(m * 2));
      } else {
        out.write(reinterpret_cast<const char*>(values.data()),
                  static_cast<std::streamsize>(m * 4));
      }
    }
  }
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// ggml's type ids for the types the recipes use.
// The ggml id of a type, from the GGUF reader's own table.
std::uint32_t ggml_type_id(const std::string& type) {
  for (std::uint32_t id = 0; id < 64; ++id) {
    const auto dtype = lmserve::formats::dtype_from_ggml_type(id);
    if (dtype && lmserve::formats::dtype_name(*dtype) == type) return id;
  }
  throw std::runtime_error("no ggml id for " + type);
}

// llama.cpp's "use more bits" layers of Q4_K_M (attn_v, ffn_down): the first and last eighth
// and every third one between.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

// llama.cpp's choice for a 256-value type on rows that are not whole 256-value blocks.
std::string k_fallback(const std::string& type, std::int64_t cols) {
  if (cols % 256 == 0) return type;
  if (type == "Q6_K") return "Q8_0";
  if (type == "Q4_K") return "Q5_0";
  if (type == "IQ4_XS") return "IQ4_NL";
  throw std::runtime_error("no fallback for " + type);
}

// The type llama.cpp's recipe gives a tensor of a file type; norms stay F32. (IQ4_XS: its
// base recipe, IQ4_XS everywhere but the Q6_K output; llama.cpp also raises attn_v to Q5_K
// where a kv head serves four or more query heads.)
std::string tensor_type(const std::string& file_type, const std::string& gguf_name, int layer,
                        int n_layers, std::int64_t cols) {
  if (gguf_name.ends_with("norm.weight")) return "F32";
  if (file_type == "f16") return "F16";
  if (file_type == "q8_0") return "Q8_0";
  const bool embedding = gguf_name == "token_embd.weight";  // tied: it is also the output
  if (embedding) return k_fallback("Q6_K", cols);
  if (file_type == "q4_0") return "Q4_0";
  if (file_type == "iq4_xs") return k_fallback("IQ4_XS", cols);
  if ((gguf_name.ends_with("attn_v.weight") || gguf_name.ends_with("ffn_down.weight")) &&
      use_more_bits(layer, n_layers)) {
    return k_fallback("Q6_K", cols);
  }
  return k_fallback("Q4_K", cols);
}

// HF tensor name -> GGUF name and layer.
std::pair<std::string, int> gguf_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return {"token_embd.weight", -1};
  if (hf == "model.norm.weight") return {"output_norm.weight", -1};
  if (hf == "lm_head.weight") return {"output.weight", -1};
  const std::string prefix = "model.layers.";
  const std::size_t dot = hf.find('.', prefix.size());
  const int layer = std::stoi(hf.substr(prefix.size(), dot - prefix.size()));
  const std::string rest = hf.substr(dot + 1);
  static const std::pair<const char*, const char*> kNames[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  for (const auto& [from, to] : kNames) {
    if (rest == from) return {"blk." + std::to_string(layer) + "." + to, layer};
  }
  throw std::runtime_error("no GGUF name for " + hf);
}

void write_gguf(const fs::path& path, const Shape& s, const std::string& file_type,
                const fs::path& vocab_path, std::uint64_t seed) {
  const lmserve::formats::GgufFile vocab(vocab_path);
  lmserve::formats::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "synth " + s.name + " " + file_type);
  w.add_uint32("llama.context_length", static_cast<std::uint32_t>(s.context));
  w.add_uint32("llama.embedding_length", static_cast<std::uint32_t>(s.hidden));
  w.add_uint32("llama.block_count", static_cast<std::uint32_t>(s.layers));
  w.add_uint32("llama.feed_forward_length", static_cast<std::uint32_t>(s.intermediate));
  w.add_uint32("llama.attention.head_count", static_cast<std::uint32_t>(s.heads));
  w.add_uint32("llama.attention.head_count_kv", static_cast<std::uint32_t>(s.kv_heads));
  w.add_uint32("llama.rope.dimension_count", static_cast<std::uint32_t>(s.head_dim));
  w.add_uint32("llama.vocab_size", static_cast<std::uint32_t>(s.vocab));
  w.add_float32("llama.rope.freq_base", s.rope_theta);
  w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  for (const auto& kv : vocab.metadata()) {
    if (kv.key.starts_with("tokenizer.")) w.add(std::string(kv.key), kv.value);
  }
  if (vocab.get_array_size("tokenizer.ggml.tokens") != static_cast<std::uint64_t>(s.vocab)) {
    throw std::runtime_error(vocab_path.string() + " does not have " + std::to_string(s.vocab) +
                             " tokens");
  }
  Rng rng{seed};
  for (const auto& t : tensors_of(s)) {
    const auto [name, layer] = gguf_name(t.name);
    const std::int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    const std::int64_t cols = t.shape.back();
    const std::string type = tensor_type(file_type, name, layer, s.layers, cols);
    std::vector<float> row(static_cast<std::size_t>(cols));
    std::vector<std::byte> data;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = t.scale == 0 ? 1.0f : rng.uniform(t.scale);
      const std::size_t at = data.size();
      if (type == "F32") {
        data.resize(at + row.size() * 4);
        std::memcpy(data.data() + at, row.data(), row.size() * 4);
      } else if (type == "F16") {
        data.resize(at + row.size() * 2);
        lmserve::kernels::f32_to_f16(row.data(), reinterpret_cast<std::uint16_t*>(data.data() + at),
                                     static_cast<int>(cols));
      } else {
        const auto wt = *lmserve::kernels::weight_type_named(type);
        data.resize(at + lmserve::kernels::weight_row_bytes(wt, static_cast<int>(cols)));
        lmserve::kernels::quant::quantize_row(wt, row.data(), data.data() + at,
                                              static_cast<int>(cols));
      }
    }
    std::vector<std::uint64_t> dims = {static_cast<std::uint64_t>(cols)};
    if (t.shape.size() == 2) dims.push_back(static_cast<std::uint64_t>(rows));
    w.add_tensor(name, std::move(dims), ggml_type_id(type), std::move(data));
  }
  w.write(path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Synthesize a random-weight checkpoint with a real model's shape"};
  std::string shape_name = "llama-3.2-1b", dtype = "f16", tokenizer, out_dir;
  std::uint64_t seed = 1;
  app.add_option("--shape", shape_name, "llama-3.2-1b | qwen2.5-0.5b | tiny")
      ->capture_default_str();
  app.add_option("--dtype", dtype, "f16 | f32")
      ->check(CLI::IsMember({"f16", "f32"}))
      ->capture_default_str();
  std::string gguf_type, vocab;
  auto* tok = app.add_option("--tokenizer", tokenizer,
                             "Folder with tokenizer.json (and tokenizer_config.json)")
                  ->check(CLI::ExistingDirectory);
  auto* gguf = app.add_option("--gguf", gguf_type, "Write one GGUF file of this type instead")
                   ->check(CLI::IsMember({"f16", "q8_0", "q4_0", "q4_k_m", "iq4_xs"}));
  app.add_option("--vocab", vocab, "Vocab-only GGUF whose tokenizer the GGUF gets")
      ->check(CLI::ExistingFile)
      ->needs(gguf);
  tok->excludes(gguf);
  app.add_option("--out", out_dir, "Output folder (GGUF: output file)")->required();
  app.add_option("--seed", seed, "Weight seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const Shape s = shape_named(shape_name);
    if (!gguf_type.empty()) {
      if (vocab.empty()) throw std::runtime_error("--gguf needs --vocab");
      write_gguf(out_dir, s, gguf_type, vocab, seed);
      std::cout << "synth_model: wrote " << s.name << " (" << gguf_type << ") to " << out_dir
                << "\n";
      return 0;
    }
    if (tokenizer.empty()) throw std::runtime_error("--tokenizer is required");
    fs::create_directories(out_dir);
    std::ofstream(fs::path(out_dir) / "config.json") << config_of(s).dump(2) << "\n";
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      if (fs::exists(fs::path(tokenizer) / f)) {
        fs::copy_file(fs::path(tokenizer) / f, fs::path(out_dir) / f,
                      fs::copy_options::overwrite_existing);
      }
    }
    write_safetensors(fs::path(out_dir) / "model.safetensors", tensors_of(s), dtype == "f16", seed);
    std::cout << "synth_model: wrote " << s.name << " (" << dtype << ") to " << out_dir << "\n";
  } catch (const std::exception& e) {
    std::cerr << "synth_model: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
