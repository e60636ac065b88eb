// The subcommands of the lmserve binary: their options and entry points.
// main.cc declares the flags; each command lives in its own file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampling.h"
#include "server/server.h"

namespace lmserve::cli {

// Usage errors (bad values that CLI11 cannot check) exit with this code, like parse errors.
constexpr int kUsageExitCode = 2;

// Thrown by a command for a usage error: main prints it and exits with kUsageExitCode.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelOptions {
  std::string model;  // a path, a Hugging Face repo id or ollama:NAME (hub::resolve_model)
  std::optional<std::string> revision;  // --revision of a repo id
  std::optional<std::string> hf_file;   // --hf-file: the GGUF of a repo id
  int threads = 0;                      // 0 = one per core
};

struct ServeOptions {
  ModelOptions model;
  server::ServerOptions server;
  std::optional<std::string> chat_template_file;
  engine::EngineOptions engine;
  std::string kv_type = "f16";
  std::optional<std::string> chat_template_args;  // JSON object
  std::string reasoning_format = "reasoning_content";
  std::optional<std::string> tool_call_format;
  std::optional<std::string> api_key_file;  // one key per line
};

struct GenerateOptions {
  ModelOptions model;
  std::string prompt;
  int max_tokens = 100;
  engine::SamplingParams sampling;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;
  bool json = false;
};

struct TokenizeOptions {
  std::string tokenizer;  // tokenizer.json, a directory with tokenizer files, or a .gguf
  std::string text;
  bool no_special = false;        // add no BOS/EOS
  bool no_parse_special = false;  // special-token text is plain text
  bool json = false;
};

struct DetokenizeOptions {
  std::string tokenizer;
  std::vector<std::int64_t> ids;
  bool skip_special = false;
};

int run_serve(const ServeOptions& options);
int run_generate(const GenerateOptions& options);
int run_tokenize(const TokenizeOptions& options);
int run_detokenize(const DetokenizeOptions& options);

}  // namespace lmserve::cli
