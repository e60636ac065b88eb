#include "hub/model_source.h"

#include "hub/hf_cache.h"
#include "hub/ollama_store.h"
#include "hub/snapshot_download.h"
#include "util/error.h"

namespace lmserve::hub {

namespace {
constexpr std::string_view kOllamaPrefix = "ollama:";
}

ModelSource classify_model(std::string_view model) {
  const std::string text(model);
  std::error_code ec;
  if (std::filesystem::exists(text, ec)) return {SourceKind::kLocalPath, text};
  if (model.starts_with(kOllamaPrefix)) {
    return {SourceKind::kOllama, std::string(model.substr(kOllamaPrefix.size()))};
  }
  // Repo names have no ':', so one after the last '/' starts a quantization tag.
  const auto colon = model.rfind(':');
  const bool tagged = colon != model.npos && model.find('/', colon) == model.npos;
  const std::string_view repo = tagged ? model.substr(0, colon) : model;
  if (is_repo_id(repo) && (!tagged || colon + 1 < model.size())) {
    return {SourceKind::kHub, std::string(repo),
            tagged ? std::optional<std::string>(model.substr(colon + 1)) : std::nullopt};
  }
  throw FileError("model not found: " + text +
                  " is neither an existing file or folder nor a Hugging Face repo id "
                  "(org/name, or org/name:QUANT for one GGUF of the repo)");
}

std::filesystem::path resolve_model(std::string_view model, const SourceOptions& options,
                                    const HubSettings& settings) {
  const ModelSource source = classify_model(model);
  if (source.kind != SourceKind::kHub && (options.revision || options.hf_file)) {
    throw FileError("--revision and --hf-file choose files of a Hugging Face repo; " +
                    std::string(model) + " is not a repo id");
  }
  switch (source.kind) {
    case SourceKind::kLocalPath:
      return source.name;
    case SourceKind::kOllama:
      return find_ollama_model(settings.ollama_models, source.name);
    case SourceKind::kHub:
      break;
  }
  if (source.tag && options.hf_file) {
    throw FileError("give the GGUF file either as " + std::string(model) +
                    " or with --hf-file, "
                    "not both");
  }
  return fetch_model({.repo_id = source.name,
                      .revision = options.revision.value_or("main"),
                      .choice = {.tag = source.tag, .hf_file = options.hf_file}},
                     settings);
}

}  // namespace lmserve::hub
