// lmserve's only main(): declares the command line and dispatches to a command
// (serve by default; generate, tokenize, detokenize).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "kernels/cpu.h"
#include "util/error.h"

namespace {

using namespace lmserve;
using namespace lmserve::cli;

void add_model_options(CLI::App& app, ModelOptions& o) {
  app.add_option("--model,-m", o.model,
                 "Model: a directory in the HF layout (config.json, *.safetensors, "
                 "tokenizer.json), a .gguf file, a Hugging Face repo id (org/name, or "
                 "org/name:QUANT for one GGUF of the repo; through the HF cache, downloaded "
                 "when missing) or ollama:NAME[:TAG] (a model in Ollama's store)");
  app.add_option("--revision", o.revision,
                 "Branch, tag or commit of a Hugging Face repo id (default: main)");
  app.add_option("--hf-file", o.hf_file, "The GGUF file of a Hugging Face repo id to serve");
  app.add_option("--threads,-t", o.threads, "Compute threads (0 = one per physical core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_sampling_options(CLI::App& app, engine::SamplingParams& s) {
  app.add_option("--temp", s.temperature, "Sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--top-p", s.top_p, "Nucleus sampling mass in [0, 1] (1 = off, 0 = greedy)")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app.add_option("--top-k", s.top_k, "Keep the k most probable tokens (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--min-p", s.min_p,
                 "Drop tokens below min_p times the best token's probability (0 = off)")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
}

void add_engine_options(CLI::App& app, ServeOptions& o) {
  engine::EngineOptions& e = o.engine;
  app.add_option("--parallel,--decode-concurrency", e.max_sequences,
                 "Sequences generated at once, each with a --ctx-size context")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--ctx-size,-c", e.ctx_size,
                 "Positions per sequence (0 = the model's context, capped at 4096)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--kv-type", o.kv_type, "KV cache element type")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}))
      ->capture_default_str();
  app.add_option("--kv-memory", e.kv_memory,
                 "KV pool bytes, shared by all sequences and the prefix cache "
                 "(0 = --parallel full contexts)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-batch-tokens", e.max_batch_tokens,
                 "Rows (decode tokens + prompt tokens) in one forward step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--prefill-step-size", e.prefill_step_size,
                 "Prompt tokens of one sequence evaluated per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--admission-wait", e.admission_wait,
                 "An idle engine given a request first waits this fraction of its last step "
                 "(at most 50 ms) for more, so requests sent together prefill together "
                 "(0 = start at once)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--max-queue", e.max_queue,
                 "Requests waiting for a slot beyond which new ones get 429")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_serve_options(CLI::App& app, ServeOptions& o) {
  add_model_options(app, o.model);
  app.add_option("--host", o.server.host, "Address to bind")->capture_default_str();
  app.add_option("--port", o.server.port, "Port to listen on (0 = any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--alias", o.server.model_id,
                 "Model id reported by /v1/models (default: --model as given)");
  app.add_option("--max-tokens", o.server.default_max_tokens, "Default max_tokens of a request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_sampling_options(app, o.server.default_sampling);
  app.add_option("--max-body", o.server.max_body_bytes, "Largest request body in bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_engine_options(app, o);
  app.add_option("--cors-origins,--allowed-origins", o.server.cors_origins,
                 "Origins allowed to call the API from a browser (comma list; * = any; "
                 "default: loopback origins only)")
      ->delimiter(',');
  app.add_option("--allowed-host", o.server.allowed_hosts,
                 "Host name accepted in the Host header besides localhost, 127.0.0.1 and [::1] "
                 "when bound to a loopback address (repeatable; * = any)");
  app.add_option("--max-connections", o.server.max_connections,
                 "Open connections; more get 503 (at most half the open-file limit)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--api-key", o.server.api_keys,
                 "Key a request must carry (Authorization: Bearer KEY or X-Api-Key: KEY) on every "
                 "route but /health (repeatable; also LMSERVE_API_KEY and --api-key-file)");
  app.add_option("--api-key-file", o.api_key_file,
                 "File of API keys, one per line (blank lines and # comments skipped)")
      ->check(CLI::ExistingFile);
  app.add_flag("--strict-model", o.server.strict_model,
               "Answer 404 model_not_found when a request names another model");
  app.add_option("--sse-ping-interval", o.server.sse_ping_interval_s,
                 "Seconds of silence after which a stream gets a keepalive comment")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--http-threads", o.server.io_threads, "Threads running the HTTP event loop")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--timeout", o.server.request_timeout_s,
                 "Seconds a non-streaming generation may take; then it is cancelled and answered "
                 "504 (0 = no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--idle-timeout", o.server.idle_timeout_s,
                 "Seconds an idle keep-alive connection (or a slow request) may take")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--write-timeout", o.server.write_timeout_s,
                 "Seconds a client may leave a response write untaken (a stream it stopped "
                 "reading); then its generation is cancelled and the connection closed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--watchdog", o.server.watchdog_s,
                 "Seconds an engine step may run before /health answers 503 worker_unavailable "
                 "(0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  server::ResponseStoreLimits& store = o.server.responses_store;
  app.add_option("--responses-store", store.max_entries,
                 "Responses (POST /v1/responses, store: true) kept for previous_response_id; the "
                 "least recently used goes first (0 = none)")
      ->capture_default_str();
  app.add_option("--responses-store-ttl", store.ttl_s,
                 "Seconds a stored response lasts after its last use")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--responses-store-memory", store.max_bytes,
                 "Bytes of stored responses and conversations (JSON text) at most")
      ->capture_default_str();
  app.add_option("--chat-template", o.chat_template_file,
                 "File with a Jinja chat template that replaces the model's")
      ->check(CLI::ExistingFile);
  app.add_option("--chat-template-args", o.chat_template_args,
                 "JSON object of chat template variables (e.g. '{\"enable_thinking\": false}'); "
                 "a request's chat_template_kwargs override them");
  app.add_option("--reasoning-format", o.reasoning_format,
                 "Message key of the model's thinking: reasoning_content, reasoning, both, or "
                 "none (thinking stays in content)")
      ->check(CLI::IsMember({"reasoning_content", "reasoning", "both", "none"}))
      ->capture_default_str();
  app.add_option("--tool-call-format", o.tool_call_format,
                 "How the model writes tool calls: json_tools, qwen3_coder, llama3_json, mistral, "
                 "pythonic, or none (default: inferred from the chat template)")
      ->check(CLI::IsMember(
          {"json_tools", "qwen3_coder", "llama3_json", "mistral", "pythonic", "none"}));
}

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o) {
  CLI::App* cmd = app.add_subcommand("generate", "Print one completion of --prompt and exit");
  add_model_options(*cmd, o.model);
  cmd->get_option("--model")->required();
  cmd->add_option("--prompt,-p", o.prompt, "Prompt text (BOS added as the tokenizer says)")
      ->required();
  cmd->add_option("--max-tokens,-n", o.max_tokens, "Tokens to generate at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_sampling_options(*cmd, o.sampling);
  cmd->add_option("--seed", o.seed, "Random seed (default: random)");
  cmd->add_option("--stop", o.stop, "Stop string (repeatable)");
  cmd->add_flag("--json", o.json,
                "Print {text, tokens, finish_reason, usage} as JSON instead of the text");
  return cmd;
}

constexpr const char* kTokenizerHelp =
    "Tokenizer: tokenizer.json, a directory holding it (a model or tokenizer files only), or a "
    ".gguf file (vocab-only or full model)";

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of TEXT");
  cmd->add_option("--model,-m", o.tokenizer, kTokenizerHelp)->required();
  cmd->add_flag("--no-special", o.no_special, "Add no BOS/EOS tokens");
  cmd->add_flag("--no-parse-special", o.no_parse_special,
                "Treat special-token text such as </s> as plain text");
  cmd->add_flag("--json", o.json, R"(Print {"ids": [...], "pieces": [...]})");
  cmd->add_option("text", o.text, "Text to tokenize")->required();
  return cmd;
}

CLI::App* add_detokenize_command(CLI::App& app, DetokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand("detokenize", "Print the text of token IDS");
  cmd->add_option("--model,-m", o.tokenizer, kTokenizerHelp)->required();
  cmd->add_flag("--skip-special", o.skip_special, "Leave special tokens out of the text");
  cmd->add_option("ids", o.ids, "Token ids")->required();
  return cmd;
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries command output (and serve's one "listening" line); logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("lmserve"));
  CLI::App app{
      "lmserve: an OpenAI-compatible LLM server for Linux CPUs (mlx_lm.server's API).\n"
      "Serves by default; subcommands generate, tokenize and detokenize work offline.",
      "lmserve"};
  app.set_version_flag("--version", [] {
    return std::string(LMSERVE_VERSION) + "\nkernels: " + kernels::cpu_description();
  });
  app.require_subcommand(0, 1);

  ServeOptions serve;
  GenerateOptions generate;
  TokenizeOptions tokenize;
  DetokenizeOptions detokenize;
  add_serve_options(app, serve);
  CLI::App* generate_cmd = add_generate_command(app, generate);
  CLI::App* tokenize_cmd = add_tokenize_command(app, tokenize);
  CLI::App* detokenize_cmd = add_detokenize_command(app, detokenize);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "lmserve: " << e.what() << " (see --help)\n";
    return kUsageExitCode;
  }

  try {
    if (generate_cmd->parsed()) return run_generate(generate);
    if (tokenize_cmd->parsed()) return run_tokenize(tokenize);
    if (detokenize_cmd->parsed()) return run_detokenize(detokenize);
    // --model is not CLI11-required on the top level: each subcommand brings its own.
    if (serve.model.model.empty()) throw UsageError("--model is required (see --help)");
    return run_serve(serve);
  } catch (const UsageError& e) {
    std::cerr << "lmserve: " << e.what() << "\n";
    return kUsageExitCode;
  } catch (const std::exception& e) {
    std::cerr << "lmserve: " << e.what() << "\n";
    return 1;
  }
}
