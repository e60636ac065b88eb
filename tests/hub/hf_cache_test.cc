#include "hub/hf_cache.h"

#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace lmserve::hub {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kOther = "fedcba9876543210fedcba9876543210fedcba98";
const std::string kEtag = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

TEST(RepoId, FollowsHuggingFaceHubRules) {
  for (const char* good : {"org/name", "mistralai/Mistral-7B-Instruct-v0.1",
                           "mlx-community/Qwen2.5-0.5B-Instruct-4bit", "a/b", "user_1/m.v2"}) {
    EXPECT_TRUE(is_repo_id(good)) << good;
  }
  for (const char* bad :
       {"name", "org/", "/name", "org/name/x", "org/na--me", "org/na..me", "./org/name",
        "org/-name", "org/name.", "org/na me", "~/models/x", "org/name:Q4_K_M", ""}) {
    EXPECT_FALSE(is_repo_id(bad)) << bad;
  }
}

TEST(RepoPath, RefusesPathsThatLeaveTheSnapshot) {
  for (const char* good : {"config.json", "sub/dir/model.gguf", "refs/pr/1", ".gitattributes"}) {
    EXPECT_TRUE(is_safe_repo_path(good)) << good;
  }
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", "."}) {
    EXPECT_FALSE(is_safe_repo_path(bad)) << bad;
  }
}

TEST(HfCache, LaysOutFilesAsHuggingFaceHubDoes) {
  TempDir dir;
  const HfCache cache(dir.path());
  const fs::path repo = dir.path() / "models--org--name";
  EXPECT_EQ(cache.repo_dir("org/name"), repo);
  EXPECT_EQ(cache.snapshot_dir("org/name", kCommit), repo / "snapshots" / kCommit);
  EXPECT_EQ(cache.blob_path("org/name", kEtag), repo / "blobs" / kEtag);
  EXPECT_EQ(cache.incomplete_path("org/name", kEtag), repo / "blobs" / (kEtag + ".incomplete"));
  EXPECT_EQ(cache.lock_path("org/name", kEtag),
            dir.path() / ".locks" / "models--org--name" / (kEtag + ".lock"));

  fs::create_directories(repo / "blobs");
  write_file(cache.blob_path("org/name", kEtag), "weights");
  cache.link_snapshot_file("org/name", kCommit, "model.safetensors", kEtag);
  cache.link_snapshot_file("org/name", kCommit, "sub/dir/model.gguf", kEtag);
  const fs::path snapshot = cache.snapshot_dir("org/name", kCommit);
  // Relative links, so the cache can move (huggingface_hub's _create_symlink).
  EXPECT_EQ(fs::read_symlink(snapshot / "model.safetensors"), fs::path("../../blobs") / kEtag);
  EXPECT_EQ(fs::read_symlink(snapshot / "sub/dir/model.gguf"),
            fs::path("../../../../blobs") / kEtag);
  EXPECT_EQ(read_file(snapshot / "sub/dir/model.gguf"), "weights");
  EXPECT_EQ(snapshot_files(snapshot),
            (std::vector<std::string>{"model.safetensors", "sub/dir/model.gguf"}));

  cache.write_ref("org/name", "main", kCommit);
  EXPECT_EQ(read_file(repo / "refs" / "main"), kCommit);  // no newline, as huggingface_hub
  cache.write_ref("org/name", "refs/pr/1", kOther);
  EXPECT_EQ(cache.commit_of("org/name", "refs/pr/1"), kOther);
  cache.write_ref("org/name", kOther, kOther);  // a commit needs no ref
  EXPECT_FALSE(fs::exists(repo / "refs" / kOther));
}

TEST(HfCache, ResolvesRevisionsThroughRefs) {
  TempDir dir;
  const HfCache cache(dir.path());
  EXPECT_EQ(cache.commit_of("org/name", kOther), kOther);
  EXPECT_EQ(cache.commit_of("org/name", "main"), std::nullopt);
  fs::create_directories(cache.repo_dir("org/name") / "refs");
  write_file(cache.repo_dir("org/name") / "refs" / "main", kCommit + "\n");
  EXPECT_EQ(cache.commit_of("org/name", "main"), kCommit);
  write_file(cache.repo_dir("org/name") / "refs" / "v1", "not a sha");
  EXPECT_EQ(cache.commit_of("org/name", "v1"), std::nullopt);
  EXPECT_EQ(cache.commit_of("org/name", "../../x"), std::nullopt);
}

TEST(HfCache, ListsReposWithAConfigOrAGguf) {
  TempDir dir;
  const HfCache cache(dir.path());
  auto add = [&](const std::string& repo, const std::string& commit, const std::string& file) {
    fs::create_directories(cache.snapshot_dir(repo, commit));
    write_file(cache.snapshot_dir(repo, commit) / file, "x");
  };
  add("org/hf-model", kCommit, "config.json");
  cache.write_ref("org/hf-model", "main", kCommit);
  add("org/hf-model", kOther, "README.md");              // another snapshot, not the main one
  add("other/gguf-model", kOther, "model-Q4_K_M.gguf");  // no refs/main: any usable snapshot
  add("org/readme-only", kCommit, "README.md");
  add("org/tokenizer-only", kCommit, "tokenizer.json");
  fs::create_directories(dir.path() / "datasets--org--data" / "snapshots" / kCommit);
  write_file(dir.path() / "datasets--org--data" / "snapshots" / kCommit / "config.json", "x");

  const std::vector<CachedModel> models = cache.list_models();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].repo_id, "org/hf-model");
  EXPECT_EQ(models[0].snapshot, cache.snapshot_dir("org/hf-model", kCommit));
  EXPECT_GT(models[0].modified, 1'600'000'000);
  EXPECT_EQ(models[1].repo_id, "other/gguf-model");
  EXPECT_TRUE(HfCache(dir.path() / "absent").list_models().empty());
}

}  // namespace
}  // namespace lmserve::hub
