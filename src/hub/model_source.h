// Turns --model into a local path to load, the way mlx_lm and huggingface_hub users expect:
// an existing file or folder as it is; "ollama:NAME[:TAG]" through Ollama's store; else a
// Hugging Face repo id ("org/name", "org/name:Q4_K_M") through the HF cache, downloading
// what is missing.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "hub/settings.h"

namespace lmserve::hub {

struct SourceOptions {
  std::optional<std::string> revision;  // --revision (a Hub id's branch, tag or commit)
  std::optional<std::string> hf_file;   // --hf-file (one GGUF of a Hub repo)
};

enum class SourceKind { kLocalPath, kHub, kOllama };

struct ModelSource {
  SourceKind kind = SourceKind::kLocalPath;
  std::string name;                // the path, the repo id, or Ollama's NAME[:TAG]
  std::optional<std::string> tag;  // a Hub id's ":QUANT"
};

// How `model` will be found (only the file system is consulted). Throws FileError when it
// names nothing: neither an existing path nor a repo id.
ModelSource classify_model(std::string_view model);

// The path to load. Throws FileError (one clear message) when it cannot be had.
std::filesystem::path resolve_model(std::string_view model, const SourceOptions& options,
                                    const HubSettings& settings);

}  // namespace lmserve::hub
