// Ollama's local model store, read-only: NAME[:TAG] → its manifest
// (manifests/<registry>/<namespace>/<model>/<tag>) → the model layer's GGUF blob
// (blobs/sha256-<hex>), so models pulled with Ollama are served without a copy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace lmserve::hub {

// The model layer of a manifest: its blob digest (64 hex digits) and size when given.
struct ModelLayer {
  std::string sha256;
  std::optional<std::uint64_t> size;
};

// Reads a manifest's text. Throws FileError naming `where` when it is malformed or has no
// model layer.
ModelLayer read_ollama_manifest(std::string_view text, const std::string& where);

// `name` is "model", "namespace/model" or "registry/namespace/model", with an optional
// ":tag" (default "latest"); a bare model is in the library namespace of Ollama's registry.
// Throws FileError naming the manifest or blob that is missing or malformed.
std::filesystem::path find_ollama_model(const std::filesystem::path& models_dir,
                                        std::string_view name);

}  // namespace lmserve::hub
