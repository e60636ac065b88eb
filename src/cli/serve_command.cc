#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include "chat/chat_formatter.h"
#include "cli/commands.h"
#include "cli/loaded_model.h"
#include "engine/engine.h"
#include "hub/hf_cache.h"
#include "server/api_keys.h"
#include "util/error.h"

namespace lmserve::cli {

namespace {

chat::ChatOptions chat_options(const ServeOptions& o) {
  chat::ChatOptions options;
  if (o.chat_template_file) {
    std::ifstream in(*o.chat_template_file, std::ios::binary);
    if (!in) throw FileError("cannot read chat template " + *o.chat_template_file);
    options.template_override = std::string(std::istreambuf_iterator<char>(in), {});
  }
  if (o.chat_template_args) {
    auto args = nlohmann::ordered_json::parse(*o.chat_template_args, nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
      throw UsageError("--chat-template-args must be a JSON object");
    }
    options.default_kwargs = std::move(args);
  }
  options.tool_call_format = o.tool_call_format;
  options.extract_reasoning = o.reasoning_format != "none";
  return options;
}

// --api-key, then the keys of --api-key-file and LMSERVE_API_KEY: all are accepted.
std::vector<std::string> api_keys(const ServeOptions& o) {
  std::vector<std::string> keys = o.server.api_keys;
  if (o.api_key_file) {
    std::vector<std::string> from_file = server::read_api_key_file(*o.api_key_file);
    if (from_file.empty()) throw UsageError("--api-key-file " + *o.api_key_file + " has no key");
    keys.insert(keys.end(), from_file.begin(), from_file.end());
  }
  if (const char* env = std::getenv("LMSERVE_API_KEY"); env && *env) keys.emplace_back(env);
  return keys;
}

// Test hooks, documented in docs/architecture.md: milliseconds from the environment, 0 when
// unset.
int test_hook_ms(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::max(0, std::atoi(value)) : 0;
}

// GET /v1/models lists the models of the HF cache too, as mlx_lm.server does.
server::ModelCatalog hf_cache_models(const hub::HubSettings& settings) {
  return [cache = hub::HfCache(settings.cache_dir)] {
    std::vector<server::ListedModel> listed;
    for (const hub::CachedModel& m : cache.list_models()) {
      listed.push_back({.id = m.repo_id,
                        .created = m.modified,
                        .owned_by = m.repo_id.substr(0, m.repo_id.find('/'))});
    }
    return listed;
  };
}

}  // namespace

int run_serve(const ServeOptions& o) {
  server::ServerOptions server_options = o.server;
  server_options.api_keys = api_keys(o);
  chat::ChatOptions options = chat_options(o);
  const hub::HubSettings hub_settings = hub::HubSettings::from_environment();
  engine::EngineOptions engine_options = o.engine;
  engine_options.kv_type = *model::parse_kv_type(o.kv_type);  // CLI11 checked the name
  engine_options.test_stall_step_ms = test_hook_ms("LMSERVE_TEST_STALL_STEP_MS");
  engine_options.test_fail_step = test_hook_ms("LMSERVE_TEST_FAIL_STEP") > 0;
  server_options.reasoning_format = *server::parse_reasoning_format(o.reasoning_format);
  if (server_options.model_id.empty()) server_options.model_id = o.model.model;
  server_options.cached_models = hf_cache_models(hub_settings);

  // Built by serve()'s loader thread while the server already answers (503 model_loading);
  // destroyed here after serving, the engine first.
  std::optional<LoadedModel> loaded;
  std::optional<chat::ChatFormatter> chat;
  std::optional<engine::Engine> engine;
  auto load = [&]() -> server::LoadedService {
    if (int delay = test_hook_ms("LMSERVE_TEST_LOAD_DELAY_MS")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    loaded.emplace(o.model, hub_settings, model::Model::Repack::kInBackground);
    std::string chat_template =  // for /props
        options.template_override.value_or(loaded->tokenizer.chat_template().value_or(""));
    chat.emplace(loaded->tokenizer, std::move(options));
    if (!chat->has_template()) {
      spdlog::warn(
          "the model has no chat template: chat requests get mlx_lm's role_mapping prompt; give "
          "the model's template with --chat-template FILE");
    }
    if (!chat->tool_call_format().empty() && !chat->parses_tool_calls()) {
      spdlog::warn("tool-call format '{}' is not implemented: tool calls stay in content",
                   chat->tool_call_format());
    } else if (chat->parses_tool_calls()) {
      spdlog::info("tool calls: {}", chat->tool_call_format());
    }
    engine.emplace(*loaded->model, loaded->tokenizer, engine_options);
    const engine::EngineMemory& memory = engine->memory();
    spdlog::info(
        "memory: weights {} MiB, KV pool {} MiB ({} blocks of {} positions, {}, {} x {} "
        "positions), workspace {} MiB",
        loaded->model->weight_bytes() >> 20, memory.kv_pool_bytes >> 20, memory.kv_blocks,
        engine_options.block_size, o.kv_type, engine_options.max_sequences, memory.ctx_size,
        memory.workspace_bytes >> 20);
    for (const engine::KvKindMemory& kind : memory.kv_kinds) {
      spdlog::info(
          "KV {}: {} layer(s), {:.1f} MiB, {} blocks ({} per sequence + {} for a prefill chunk)",
          kind.window == 0 ? std::string("full attention")
                           : "sliding window " + std::to_string(kind.window),
          kind.layers, static_cast<double>(kind.bytes) / (1 << 20), kind.blocks,
          kind.sequence_blocks, kind.chunk_blocks);
    }
    server::ServerProps props{.model_path = o.model.model,
                              .parallel = engine_options.max_sequences,
                              .kv_type = o.kv_type,
                              .chat_template = std::move(chat_template),
                              .chat_template_source = o.chat_template_file ? "--chat-template"
                                                      : loaded->tokenizer.chat_template() ? "model"
                                                                                          : "none",
                              .cpu = loaded->cpu};
    return {.context = {.engine = *engine, .tokenizer = loaded->tokenizer, .chat = *chat},
            .props = std::move(props)};
  };
  return server::serve(server_options, load);
}

}  // namespace lmserve::cli
