#include <cstdio>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/loaded_model.h"
#include "engine/engine.h"

namespace lmserve::cli {

int run_generate(const GenerateOptions& o) {
  LoadedModel loaded(o.model, hub::HubSettings::from_environment());
  engine::Engine engine(*loaded.model, loaded.tokenizer, {.max_sequences = 1});
  engine::GenerationRequest request{.prompt = loaded.tokenizer.encode(o.prompt),
                                    .sampling = o.sampling,
                                    .max_tokens = o.max_tokens,
                                    .stop = o.stop};
  request.sampling.seed = o.seed;
  if (request.prompt.empty()) throw UsageError("the prompt encodes to no tokens");
  const auto n_prompt = request.prompt.size();
  if (n_prompt >= static_cast<std::size_t>(engine.context_length())) {
    throw UsageError("the prompt (" + std::to_string(n_prompt) +
                     " tokens) does not fit the context length (" +
                     std::to_string(engine.context_length()) + ")");
  }

  std::promise<engine::GenerationEvent> finished;
  std::string text;
  engine.submit(std::move(request), [&](const engine::GenerationEvent& ev) {
    using Kind = engine::GenerationEvent::Kind;
    if (ev.kind == Kind::kText) {
      text += ev.text;
      if (!o.json) {
        std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
        std::fflush(stdout);
      }
    } else if (ev.kind == Kind::kFinished || ev.kind == Kind::kFailed) {
      finished.set_value(ev);
    }
  });
  const engine::GenerationEvent end = finished.get_future().get();
  if (end.kind == engine::GenerationEvent::Kind::kFailed) {
    std::cerr << "lmserve: generation failed: " << end.error << "\n";
    return 1;
  }
  if (o.json) {
    const nlohmann::json out = {{"text", text},
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

}  // namespace lmserve::cli
