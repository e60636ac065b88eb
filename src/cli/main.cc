// lmserve's only main(): parses the command line and wires the stages together for
// `serve` (the default), `generate`, and friends.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <string>

#include "chat/chat_formatter.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace {

using namespace lmserve;

constexpr int kUsageExitCode = 2;

struct ModelOptions {
  std::string model;
  int threads = 0;
};

struct ServeOptions {
  ModelOptions model;
  server::ServerOptions server;
  std::optional<std::string> chat_template_file;
  int decode_concurrency = 32;
  int prefill_step_size = 2048;
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

void add_model_options(CLI::App& app, ModelOptions& o) {
  app.add_option("--model,-m", o.model,
                 "Model directory (HF layout: config.json, *.safetensors, tokenizer.json)");
  app.add_option("--threads,-t", o.threads, "Compute threads (0 = one per core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_sampling_options(CLI::App& app, engine::SamplingParams& s) {
  app.add_option("--temp", s.temperature, "Sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--top-p", s.top_p, "Nucleus sampling mass in [0, 1] (1 = off)")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app.add_option("--top-k", s.top_k, "Keep the k most probable tokens (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--min-p", s.min_p, "Drop tokens below min_p times the best probability (0 = off)")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
}

// Everything a command needs to generate: loaded once, destroyed in reverse order.
struct LoadedModel {
  explicit LoadedModel(const ModelOptions& o)
      : pool(o.threads),
        tokenizer(tokenizer::Tokenizer::load(o.model)),
        model(model::Model::load(o.model, pool)) {}

  util::ThreadPool pool;
  tokenizer::Tokenizer tokenizer;
  std::unique_ptr<model::Model> model;
};

int run_serve(const ServeOptions& o) {
  LoadedModel loaded(o.model);
  std::optional<std::string> template_override;
  if (o.chat_template_file) {
    std::ifstream in(*o.chat_template_file);
    if (!in) throw FileError("cannot read chat template " + *o.chat_template_file);
    template_override = std::string(std::istreambuf_iterator<char>(in), {});
  }
  chat::ChatFormatter chat(loaded.tokenizer, template_override);
  engine::Engine engine(*loaded.model, loaded.tokenizer,
                        {.max_sequences = o.decode_concurrency,
                         .prefill_step_size = o.prefill_step_size});
  server::ServerOptions server_options = o.server;
  if (server_options.model_id.empty()) server_options.model_id = o.model.model;
  return server::serve(server_options, {.engine = engine, .tokenizer = loaded.tokenizer, .chat = chat});
}

int run_generate(GenerateOptions o) {
  LoadedModel loaded(o.model);
  engine::Engine engine(*loaded.model, loaded.tokenizer, {.max_sequences = 1});
  o.sampling.seed = o.seed;
  engine::GenerationRequest request{.prompt = loaded.tokenizer.encode(o.prompt),
                                    .sampling = o.sampling,
                                    .max_tokens = o.max_tokens,
                                    .stop = o.stop};
  if (request.prompt.empty()) throw std::invalid_argument("the prompt encodes to no tokens");
  const auto n_prompt = request.prompt.size();
  if (n_prompt >= static_cast<std::size_t>(engine.context_length())) {
    throw std::invalid_argument("the prompt (" + std::to_string(n_prompt) +
                                " tokens) does not fit the context length (" +
                                std::to_string(engine.context_length()) + ")");
  }

  std::promise<engine::GenerationEvent> finished;
  std::string text;
  engine.submit(std::move(request), [&](const engine::GenerationEvent& ev) {
    switch (ev.kind) {
      case engine::GenerationEvent::Kind::kText:
        text += ev.text;
        if (!o.json) {
          std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
          std::fflush(stdout);
        }
        break;
      case engine::GenerationEvent::Kind::kFinished:
      case engine::GenerationEvent::Kind::kFailed:
        finished.set_value(ev);
        break;
      case engine::GenerationEvent::Kind::kProgress:
        break;
    }
  });
  const engine::GenerationEvent end = finished.get_future().get();
  if (end.kind == engine::GenerationEvent::Kind::kFailed) {
    std::cerr << "lmserve: generation failed: " << end.error << "\n";
    return 1;
  }
  if (o.json) {
    nlohmann::json out = {{"text", text},
                          {"tokens", end.completion_ids},
                          {"finish_reason", engine::to_string(end.finish_reason)},
                          {"usage",
                           {{"prompt_tokens", end.usage.prompt_tokens},
                            {"completion_tokens", end.usage.completion_tokens}}}};
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "lmserve: an OpenAI-compatible LLM server for Linux CPUs (mlx_lm.server's API).\n"
      "Serves by default; `lmserve generate` prints one completion.",
      "lmserve"};
  app.set_version_flag("--version", std::string(LMSERVE_VERSION));
  app.require_subcommand(0, 1);

  ServeOptions serve;
  add_model_options(app, serve.model);
  app.add_option("--host", serve.server.host, "Address to bind")->capture_default_str();
  app.add_option("--port", serve.server.port, "Port to listen on (0 = any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--alias", serve.server.model_id,
                 "Model id reported by /v1/models (default: --model as given)");
  app.add_option("--max-tokens", serve.server.default_max_tokens,
                 "Default max_tokens of a request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_sampling_options(app, serve.server.default_sampling);
  app.add_option("--max-body", serve.server.max_body_bytes, "Largest request body in bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--decode-concurrency", serve.decode_concurrency,
                 "Sequences generated concurrently")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--prefill-step-size", serve.prefill_step_size,
                 "Prompt tokens evaluated per engine step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--chat-template", serve.chat_template_file,
                 "File with a Jinja chat template that replaces the model's")
      ->check(CLI::ExistingFile);

  GenerateOptions gen;
  CLI::App* generate = app.add_subcommand("generate", "Print one completion of --prompt and exit");
  add_model_options(*generate, gen.model);
  generate->add_option("--prompt,-p", gen.prompt, "Prompt text (BOS added as the tokenizer says)")
      ->required();
  generate->add_option("--max-tokens,-n", gen.max_tokens, "Tokens to generate at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_sampling_options(*generate, gen.sampling);
  generate->add_option("--seed", gen.seed, "Random seed (default: random)");
  generate->add_option("--stop", gen.stop, "Stop string (repeatable)");
  generate->add_flag("--json", gen.json,
                     "Print {text, tokens, finish_reason, usage} as JSON instead of the text");

  generate->get_option("--model")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "lmserve: " << e.what() << " (see --help)\n";
    return kUsageExitCode;
  }

  try {
    if (generate->parsed()) return run_generate(gen);
    if (serve.model.model.empty()) {  // not CLI11-required: `generate` brings its own --model
      std::cerr << "lmserve: --model is required (see --help)\n";
      return kUsageExitCode;
    }
    return run_serve(serve);
  } catch (const FileError& e) {
    std::cerr << "lmserve: " << e.what() << "\n";
    return 1;
  } catch (const std::invalid_argument& e) {
    std::cerr << "lmserve: " << e.what() << "\n";
    return kUsageExitCode;
  } catch (const std::exception& e) {
    std::cerr << "lmserve: " << e.what() << "\n";
    return 1;
  }
}
