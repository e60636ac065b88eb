#include "hub/settings.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

namespace lmserve::hub {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// The first of two variables that is set (a current name and its legacy one).
std::optional<std::string> env(const char* name, const char* legacy) {
  auto value = env(name);
  return value ? value : env(legacy);
}

std::filesystem::path home() { return env("HOME").value_or("/"); }

// "~" and "~/x" as Python's expanduser reads them (huggingface_hub expands its paths).
std::filesystem::path expand_user(const std::string& path) {
  if (path == "~") return home();
  if (path.starts_with("~/")) return home() / path.substr(2);
  return path;
}

// huggingface_hub's truthy values for boolean variables.
bool is_true(std::optional<std::string> value) {
  if (!value) return false;
  std::string v = *value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "on" || v == "yes" || v == "true";
}

std::optional<std::string> token_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token)) return std::nullopt;
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return std::nullopt;
  return token;
}

}  // namespace

HubSettings HubSettings::from_environment() {
  HubSettings s;
  const std::filesystem::path hf_home =
      env("HF_HOME") ? expand_user(*env("HF_HOME"))
                     : expand_user(env("XDG_CACHE_HOME").value_or("~/.cache")) / "huggingface";
  if (auto cache = env("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")) {
    s.cache_dir = expand_user(*cache);
  } else {
    s.cache_dir = hf_home / "hub";
  }
  s.endpoint = env("HF_ENDPOINT").value_or(kDefaultEndpoint);
  while (s.endpoint.ends_with('/')) s.endpoint.pop_back();
  s.token = env("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN");
  if (!s.token) {
    s.token =
        token_file(env("HF_TOKEN_PATH") ? expand_user(*env("HF_TOKEN_PATH")) : hf_home / "token");
  }
  s.offline = is_true(env("HF_HUB_OFFLINE"));
  s.ollama_models =
      env("OLLAMA_MODELS") ? expand_user(*env("OLLAMA_MODELS")) : home() / ".ollama" / "models";
  return s;
}

}  // namespace lmserve::hub
