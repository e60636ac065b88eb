#include "hub/ollama_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "util/error.h"
#include "util/text_file.h"

namespace lmserve::hub {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kRegistry = "registry.ollama.ai";
constexpr std::string_view kLibrary = "library";
constexpr std::string_view kModelLayer = "application/vnd.ollama.image.model";

bool is_part(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t at = s.find(sep); at != s.npos; at = s.find(sep, start)) {
    parts.emplace_back(s.substr(start, at - start));
    start = at + 1;
  }
  parts.emplace_back(s.substr(start));
  return parts;
}

}  // namespace

fs::path find_ollama_model(const fs::path& models_dir, std::string_view name) {
  const std::string spec(name);
  const auto slash = name.rfind('/');
  const auto colon = name.rfind(':');
  std::string_view model = name;
  std::string tag = "latest";
  if (colon != name.npos && (slash == name.npos || colon > slash)) {
    model = name.substr(0, colon);
    tag = std::string(name.substr(colon + 1));
  }
  std::vector<std::string> parts = split(model, '/');
  if (parts.size() == 1) parts.insert(parts.begin(), std::string(kLibrary));
  if (parts.size() == 2) parts.insert(parts.begin(), std::string(kRegistry));
  if (parts.size() != 3 || !std::all_of(parts.begin(), parts.end(), is_part) || !is_part(tag)) {
    throw FileError("ollama:" + spec + " is not an Ollama model name (NAME[:TAG])");
  }
  const fs::path model_dir = models_dir / "manifests" / parts[0] / parts[1] / parts[2];
  const fs::path manifest = model_dir / tag;
  std::error_code ec;
  if (!fs::is_regular_file(manifest, ec)) {
    std::string tags;
    for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
      tags += (tags.empty() ? "" : ", ") + entry.path().filename().string();
    }
    throw FileError("ollama:" + spec + " is not in Ollama's store at " + models_dir.string() +
                    (tags.empty() ? " (pull it with ollama, or set OLLAMA_MODELS)"
                                  : " (its tags there: " + tags + ")"));
  }
  const ModelLayer layer = read_ollama_manifest(util::read_text_file(manifest), manifest.string());
  const fs::path blob = models_dir / "blobs" / ("sha256-" + layer.sha256);
  if (!fs::is_regular_file(blob, ec)) {
    throw FileError("ollama:" + spec + ": its model blob " + blob.string() +
                    " is missing (pull the model again)");
  }
  if (layer.size && *layer.size != fs::file_size(blob)) {
    throw FileError("ollama:" + spec + ": " + blob.string() + " is " +
                    std::to_string(fs::file_size(blob)) + " bytes, the manifest says " +
                    std::to_string(*layer.size) + " (an unfinished pull?)");
  }
  return blob;
}

ModelLayer read_ollama_manifest(std::string_view text, const std::string& where) {
  const auto json = util::json_nesting_within(text, 16)
                        ? nlohmann::json::parse(text, nullptr, false)
                        : nlohmann::json();
  if (!json.is_object() || !json.contains("layers") || !json["layers"].is_array()) {
    throw FileError(where + ": not an Ollama manifest (no \"layers\" list)");
  }
  for (const auto& layer : json["layers"]) {
    const auto type = layer.is_object() ? layer.find("mediaType") : layer.end();
    if (type == layer.end() || !type->is_string() || type->get<std::string>() != kModelLayer) {
      continue;
    }
    const auto digest = layer.find("digest");
    const std::string text_digest =
        digest != layer.end() && digest->is_string() ? digest->get<std::string>() : "";
    const std::string hex = text_digest.starts_with("sha256:") ? text_digest.substr(7) : "";
    if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        })) {
      throw FileError(where + ": the model layer's digest '" + text_digest +
                      "' is not sha256:<64 hex digits>");
    }
    ModelLayer out{.sha256 = hex};
    if (const auto size = layer.find("size"); size != layer.end() && size->is_number_unsigned()) {
      out.size = size->get<std::uint64_t>();
    }
    return out;
  }
  throw FileError(where + ": no layer of type " + std::string(kModelLayer));
}

}  // namespace lmserve::hub
