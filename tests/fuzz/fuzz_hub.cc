// Fuzzes what lmserve_hub reads from the network and from other programs' files: the Hub's
// revision answer, a safetensors index, an Ollama manifest, and a repo's file list with a
// quantization tag. Any bytes must parse or throw FileError, and what parses must be safe to
// use as paths (the first byte picks the parser).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/hf_cache.h"
#include "hub/hub_client.h"
#include "hub/ollama_store.h"
#include "hub/repo_files.h"
#include "util/error.h"

namespace {

using namespace lmserve::hub;

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t at = text.find('\n'); at != text.npos; at = text.find('\n', start)) {
    out.emplace_back(text.substr(start, at - start));
    start = at + 1;
  }
  out.emplace_back(text.substr(start));
  return out;
}

// A plan names only files of the repo; a GGUF plan fetches its model (a whole file, or
// every part of a split, the first part named first).
void check_plan(const RepoPlan& plan, const std::vector<std::string>& files) {
  for (const auto& f : plan.files) {
    if (std::find(files.begin(), files.end(), f) == files.end()) __builtin_trap();
  }
  if (plan.gguf && (plan.files.empty() || plan.files.front() != *plan.gguf)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        const RepoRevision r = parse_revision_info(text, "revision");
        if (!is_commit_sha(r.commit)) __builtin_trap();
        for (const auto& f : r.files) {
          if (!is_safe_repo_path(f)) __builtin_trap();
        }
        check_plan(plan_repo_files("org/name", r.files, {}), r.files);
        break;
      }
      case 1:
        for (const auto& shard : shards_of_index(text, "index")) {
          if (!is_safe_repo_path(shard) || shard.find('/') != shard.npos) __builtin_trap();
        }
        break;
      case 2: {
        const ModelLayer layer = read_ollama_manifest(text, "manifest");
        if (layer.sha256.size() != 64 || layer.sha256.find('/') != std::string::npos) {
          __builtin_trap();
        }
        break;
      }
      default: {
        std::vector<std::string> files = lines(text);
        const std::string tag = files.front();
        files.erase(files.begin());
        const FileChoice choice{.tag = tag.empty() ? std::nullopt : std::optional(tag)};
        check_plan(plan_repo_files("org/name", files, choice), files);
      }
    }
  } catch (const lmserve::FileError&) {
  }
  return 0;
}
