// Which files of a model repo lmserve needs: the safetensors weights (one file, or an index and
// the shards it names) with the config, tokenizer and generation files, or exactly one GGUF
// chosen by a quantization tag ("org/name:Q4_K_M") or by name (--hf-file).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::hub {

// The quantization lmserve picks in a repo of several GGUFs when none is asked for.
inline constexpr std::string_view kDefaultQuant = "Q4_K_M";

struct FileChoice {
  std::optional<std::string> tag;      // "Q8_0" from "org/name:Q8_0"
  std::optional<std::string> hf_file;  // --hf-file: a file name in the repo
};

struct RepoPlan {
  // The files to fetch, in order. For sharded safetensors the index comes first and the
  // shards it names are added by shards_of_index once it is read.
  std::vector<std::string> files;
  std::optional<std::string> gguf;   // the one GGUF, for a GGUF repo
  std::optional<std::string> index;  // model.safetensors.index.json, for sharded weights
  std::string note;                  // why a GGUF was picked, for the log ("" when asked for)
};

// Plans the download of a repo listing `repo_files` (its file names). Throws FileError naming
// what was found when nothing usable is there, or when the tag or file matches nothing.
RepoPlan plan_repo_files(std::string_view repo_id, const std::vector<std::string>& repo_files,
                         const FileChoice& choice);

// The shard files an index's weight_map names, sorted and unique. Throws FileError on a
// malformed index or a shard name that would leave the snapshot.
std::vector<std::string> shards_of_index(std::string_view index_json, std::string_view where);

}  // namespace lmserve::hub
