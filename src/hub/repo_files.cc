#include "hub/repo_files.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "hub/hf_cache.h"
#include "util/error.h"
#include "util/text_file.h"

namespace lmserve::hub {
namespace {

constexpr std::string_view kIndex = "model.safetensors.index.json";
constexpr std::string_view kSingle = "model.safetensors";
// Read beside the weights: the config, the tokenizer, generation defaults and chat templates.
constexpr std::string_view kSupportFiles[] = {"config.json",
                                              "tokenizer.json",
                                              "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "generation_config.json",
                                              "chat_template.jinja",
                                              "chat_template.json"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string basename(std::string_view path) {
  const auto slash = path.rfind('/');
  return std::string(slash == path.npos ? path : path.substr(slash + 1));
}

bool contains(const std::vector<std::string>& files, std::string_view name) {
  return std::find(files.begin(), files.end(), name) != files.end();
}

std::string join(const std::vector<std::string>& items, std::size_t most = 12) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < most; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > most) out += ", ... (" + std::to_string(items.size()) + " files)";
  return out.empty() ? "no files" : out;
}

// Model GGUFs of the repo, sorted; vision projectors (mmproj-*) are not models.
std::vector<std::string> gguf_files(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) {
    const std::string name = lower(basename(f));
    if (name.ends_with(".gguf") && !name.starts_with("mmproj")) out.push_back(f);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Where `tag` appears in the file name as a whole word (case-insensitive): "Q4_K" is not in
// "model-Q4_K_M.gguf", "F16" not in "model-BF16.gguf". npos when it does not.
std::size_t tag_position(std::string_view file, std::string_view tag) {
  const std::string name = lower(basename(file));
  const std::string t = lower(tag);
  for (auto at = name.find(t); at != name.npos; at = name.find(t, at + 1)) {
    const bool starts = at == 0 || !is_word_char(name[at - 1]);
    const std::size_t end = at + t.size();
    if (starts && (end == name.size() || !is_word_char(name[end]))) return at;
  }
  return std::string_view::npos;
}

// The GGUFs a tag names; those where the tag ends the name ("-Q4_K_M.gguf") come before
// variants ("-Q4_K_M-pure.gguf").
std::vector<std::string> matching(const std::vector<std::string>& ggufs, std::string_view tag) {
  std::vector<std::string> exact, other;
  for (const auto& f : ggufs) {
    const auto at = tag_position(f, tag);
    if (at == std::string_view::npos) continue;
    (lower(basename(f)).substr(at + tag.size()) == ".gguf" ? exact : other).push_back(f);
  }
  exact.insert(exact.end(), other.begin(), other.end());
  return exact;
}

// A part of a split GGUF ("dir/NAME-00002-of-00003.gguf"): its prefix ("dir/NAME") and
// part count; nullopt for a whole GGUF, and for numbers no split has (part 0, "-of-00000",
// a part past the count), which name no set of files to fetch.
struct SplitName {
  std::string prefix;
  int count = 0;
};
std::optional<SplitName> split_name(const std::string& file) {
  static const std::regex kSplit("(.+)-([0-9]{5})-of-([0-9]{5})\\.gguf", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(file, m, kSplit)) return std::nullopt;
  const int part = std::stoi(m[2].str());
  const int count = std::stoi(m[3].str());
  if (part < 1 || part > count) return std::nullopt;
  return SplitName{m[1].str(), count};
}

std::string split_part(const SplitName& split, int number) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "-%05d-of-%05d.gguf", number, split.count);
  return split.prefix + suffix;
}

// One GGUF model, or every part of the split one `file` belongs to (the loader takes the
// first part and finds the others beside it).
RepoPlan gguf_plan(std::string_view repo_id, const std::vector<std::string>& repo_files,
                   const std::string& file, std::string note) {
  const auto split = split_name(file);
  if (!split) return {.files = {file}, .gguf = file, .note = std::move(note)};
  RepoPlan plan{.gguf = split_part(*split, 1), .note = std::move(note)};
  for (int i = 1; i <= split->count; ++i) {
    plan.files.push_back(split_part(*split, i));
    if (!contains(repo_files, plan.files.back())) {
      throw FileError(std::string(repo_id) + ": " + file + " is one part of a GGUF split into " +
                      std::to_string(split->count) + " files, but the repo has no " +
                      plan.files.back());
    }
  }
  return plan;
}

// The parts of one split GGUF count once: its first part stands for them.
std::vector<std::string> models_of(const std::vector<std::string>& ggufs) {
  std::vector<std::string> out;
  for (const auto& f : ggufs) {
    const auto split = split_name(f);
    const std::string model = split ? split_part(*split, 1) : f;
    if (!contains(out, model)) out.push_back(model);
  }
  return out;
}

}  // namespace

RepoPlan plan_repo_files(std::string_view repo_id, const std::vector<std::string>& repo_files,
                         const FileChoice& choice) {
  const std::string repo(repo_id);
  const std::vector<std::string> ggufs = gguf_files(repo_files);
  if (choice.hf_file) {
    const std::string& file = *choice.hf_file;
    if (!contains(repo_files, file)) {
      throw FileError(repo + " has no file " + file + " (GGUF files: " + join(ggufs) + ")");
    }
    if (!lower(file).ends_with(".gguf")) {
      throw FileError("--hf-file names one GGUF file; " + file + " is not a .gguf");
    }
    return gguf_plan(repo_id, repo_files, file, "");
  }
  if (choice.tag) {
    if (ggufs.empty()) {
      throw FileError(repo + ":" + *choice.tag +
                      " asks for a GGUF quantization, but the repo has no .gguf file (found: " +
                      join(repo_files) + ")");
    }
    const std::vector<std::string> found = models_of(matching(ggufs, *choice.tag));
    if (found.empty()) {
      throw FileError(repo + " has no GGUF file for quantization " + *choice.tag +
                      " (GGUF files: " + join(ggufs) + ")");
    }
    std::string note;
    if (found.size() > 1) {
      note = std::to_string(found.size()) + " files match " + *choice.tag + " (" + join(found) +
             "); using " + found.front() + " (name another with --hf-file)";
    }
    return gguf_plan(repo_id, repo_files, found.front(), std::move(note));
  }

  const bool has_index = contains(repo_files, kIndex);
  if (contains(repo_files, "config.json") && (has_index || contains(repo_files, kSingle))) {
    RepoPlan plan;
    for (std::string_view f : kSupportFiles) {
      if (contains(repo_files, f)) plan.files.emplace_back(f);
    }
    if (has_index) {
      plan.index = std::string(kIndex);
      plan.files.emplace_back(kIndex);
    } else {
      plan.files.emplace_back(kSingle);
    }
    return plan;
  }
  const std::vector<std::string> models = models_of(ggufs);
  if (!models.empty()) {
    if (models.size() == 1) return gguf_plan(repo_id, repo_files, models.front(), "");
    const std::vector<std::string> preferred = models_of(matching(ggufs, kDefaultQuant));
    const std::string& file = preferred.empty() ? models.front() : preferred.front();
    return gguf_plan(repo_id, repo_files, file,
                     repo + " has " + std::to_string(models.size()) + " GGUF models; using " +
                         file + " (choose with " + repo + ":QUANT or --hf-file)");
  }
  throw FileError(repo +
                  " has no usable weights: lmserve needs config.json with model.safetensors "
                  "(or model.safetensors.index.json and its shards), or a .gguf file; found: " +
                  join(repo_files));
}

std::vector<std::string> shards_of_index(std::string_view index_json, std::string_view where) {
  const std::string at(where);
  if (!util::json_nesting_within(index_json, 16)) throw FileError(at + ": nested too deeply");
  const auto index = nlohmann::json::parse(index_json, nullptr, false);
  if (index.is_discarded() || !index.is_object()) throw FileError(at + ": not a JSON object");
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) throw FileError(at + ": no \"weight_map\" object");
  std::set<std::string> shards;
  for (const auto& shard : *map) {
    if (!shard.is_string()) throw FileError(at + ": a weight_map value is not a string");
    const auto name = shard.get<std::string>();
    // Shards sit beside the index in the snapshot.
    if (!is_safe_repo_path(name) || name.find('/') != name.npos) {
      throw FileError(at + ": weight_map names the shard '" + name + "' outside its folder");
    }
    shards.insert(name);
  }
  if (shards.empty()) throw FileError(at + ": weight_map is empty");
  return {shards.begin(), shards.end()};
}

}  // namespace lmserve::hub
