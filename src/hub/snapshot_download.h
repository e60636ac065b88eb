// A Hub model in the local HF cache: downloads the files lmserve needs into it (resumable,
// verified, written atomically, huggingface_hub's layout) or, offline or with the Hub
// unreachable, finds them there. Returns the path to load.
#pragma once

#include <filesystem>
#include <string>

#include "hub/repo_files.h"
#include "hub/settings.h"

namespace lmserve::hub {

struct HubModel {
  std::string repo_id;  // org/name
  std::string revision = "main";
  FileChoice choice;  // which GGUF, for a GGUF repo
};

// The snapshot folder (HF layout) or the GGUF file inside it. Throws FileError with one clear
// message (HubError for the Hub's refusals) when the model cannot be had.
std::filesystem::path fetch_model(const HubModel& model, const HubSettings& settings);

// Hex SHA-256 of a file's bytes.
std::string file_sha256(const std::filesystem::path& path);

}  // namespace lmserve::hub
