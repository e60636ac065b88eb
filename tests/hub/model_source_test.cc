#include "hub/model_source.h"

#include <gtest/gtest.h>

#include "hub/hf_cache.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::hub {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_file;

std::string resolve_error(std::string_view model, const SourceOptions& options,
                          const HubSettings& settings) {
  try {
    resolve_model(model, options, settings);
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << model;
  return "";
}

TEST(ClassifyModel, AnExistingPathWins) {
  TempDir dir;
  fs::create_directories(dir.path() / "org" / "name");
  const fs::path local = dir.path() / "org" / "name";
  EXPECT_EQ(classify_model(local.string()).kind, SourceKind::kLocalPath);
  // A relative path that exists is a path even though it reads as a repo id.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  EXPECT_EQ(classify_model("org/name").kind, SourceKind::kLocalPath);
  fs::current_path(cwd);
  EXPECT_EQ(classify_model("org/name").kind, SourceKind::kHub);
}

TEST(ClassifyModel, ReadsRepoIdsTagsAndOllamaNames) {
  const ModelSource tagged = classify_model("org/name-GGUF:Q4_K_M");
  EXPECT_EQ(tagged.kind, SourceKind::kHub);
  EXPECT_EQ(tagged.name, "org/name-GGUF");
  EXPECT_EQ(tagged.tag, "Q4_K_M");
  EXPECT_EQ(classify_model("org/name").tag, std::nullopt);
  const ModelSource ollama = classify_model("ollama:llama3.2:1b");
  EXPECT_EQ(ollama.kind, SourceKind::kOllama);
  EXPECT_EQ(ollama.name, "llama3.2:1b");
  for (const char* nothing :
       {"/no/such/model.gguf", "./missing", "model.gguf", "org/name:", "a/b/c"}) {
    try {
      classify_model(nothing);
      ADD_FAILURE() << nothing;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find("is neither an existing file or folder nor a Hugging "
                                           "Face repo id"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(ResolveModel, OfflineUsesTheCacheOrSaysWhy) {
  TempDir dir;
  const HubSettings settings{
      .cache_dir = dir.path(), .endpoint = "http://127.0.0.1:9", .offline = true};
  const std::string cold = resolve_error("org/name", {}, settings);
  EXPECT_NE(cold.find("HF_HUB_OFFLINE is set, and org/name (revision main) is not in the Hugging "
                      "Face cache at " +
                      dir.path().string()),
            std::string::npos)
      << cold;

  const HfCache cache(dir.path());
  const std::string commit(40, 'a');
  fs::create_directories(cache.snapshot_dir("org/name", commit));
  write_file(cache.snapshot_dir("org/name", commit) / "config.json", "{}");
  cache.write_ref("org/name", "main", commit);
  const std::string incomplete = resolve_error("org/name", {}, settings);
  EXPECT_NE(incomplete.find("cannot be used: org/name has no usable weights"), std::string::npos)
      << incomplete;
  write_file(cache.snapshot_dir("org/name", commit) / "model.safetensors", "x");
  EXPECT_EQ(resolve_model("org/name", {}, settings), cache.snapshot_dir("org/name", commit));
  EXPECT_EQ(resolve_model("org/name", {.revision = commit}, settings),
            cache.snapshot_dir("org/name", commit));
  EXPECT_NE(resolve_error("org/name", {.revision = "v2"}, settings).find("(revision v2)"),
            std::string::npos);
}

TEST(ResolveModel, HubOptionsNeedARepoId) {
  TempDir dir;
  const HubSettings settings{.cache_dir = dir.path(), .offline = true};
  EXPECT_NE(resolve_error(dir.path().string(), {.revision = "v1"}, settings)
                .find("--revision and --hf-file choose files of a Hugging Face repo"),
            std::string::npos);
  EXPECT_NE(resolve_error("org/name:Q8_0", {.hf_file = "x.gguf"}, settings).find("not both"),
            std::string::npos);
  EXPECT_EQ(resolve_model(dir.path().string(), {}, settings), dir.path());
}

}  // namespace
}  // namespace lmserve::hub
