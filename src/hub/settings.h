// Where models come from, as the environment configures it: the Hugging Face cache, endpoint,
// token and offline switch (huggingface_hub's variables and defaults), and Ollama's store.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace lmserve::hub {

// The public Hub; HF_ENDPOINT replaces it (mirrors, or a test server).
inline constexpr const char* kDefaultEndpoint = "https://huggingface.co";

struct HubSettings {
  std::filesystem::path cache_dir;   // HF_HUB_CACHE, else $HF_HOME/hub
  std::string endpoint;              // HF_ENDPOINT without a trailing '/'
  std::optional<std::string> token;  // HF_TOKEN, else the token file `huggingface-cli login` wrote
  bool offline = false;              // HF_HUB_OFFLINE=1: never touch the network
  std::filesystem::path ollama_models;  // OLLAMA_MODELS, else ~/.ollama/models

  static HubSettings from_environment();
};

}  // namespace lmserve::hub
