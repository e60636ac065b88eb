// The Hugging Face cache exactly as huggingface_hub lays it out, so lmserve and Python tools
// share downloads: <cache>/models--org--name/{blobs/<etag>, refs/<revision> (a commit sha),
// snapshots/<commit>/<file> -> ../../blobs/<etag>}, plus <cache>/.locks for writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmserve::hub {

// A Hub model id "org/name" (huggingface_hub's rules: letters, digits, '-', '_', '.', no
// "--" or "..", neither part starting or ending with '-' or '.').
bool is_repo_id(std::string_view text);
// A commit sha: 40 lowercase hex digits.
bool is_commit_sha(std::string_view text);
// A file name inside a repo: relative, no empty, "." or ".." part (it becomes a path here).
bool is_safe_repo_path(std::string_view path);

// A model repo found in the cache with a usable snapshot.
struct CachedModel {
  std::string repo_id;
  std::filesystem::path snapshot;
  std::int64_t modified = 0;  // Unix seconds: when the snapshot was last written
};

class HfCache {
 public:
  explicit HfCache(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path repo_dir(std::string_view repo_id) const;
  std::filesystem::path snapshot_dir(std::string_view repo_id, std::string_view commit) const;
  std::filesystem::path blob_path(std::string_view repo_id, std::string_view etag) const;
  // Bytes of a blob being downloaded (kept across runs, so a transfer can resume).
  std::filesystem::path incomplete_path(std::string_view repo_id, std::string_view etag) const;
  // The file a writer of that blob holds an exclusive lock on.
  std::filesystem::path lock_path(std::string_view repo_id, std::string_view etag) const;

  // The commit a revision names: a commit sha itself, else what refs/<revision> holds.
  std::optional<std::string> commit_of(std::string_view repo_id, std::string_view revision) const;
  // Records refs/<revision> = commit (atomically; nothing for a revision that is the commit).
  void write_ref(std::string_view repo_id, std::string_view revision,
                 std::string_view commit) const;
  // Makes snapshots/<commit>/<file> a relative link to blobs/<etag>, replacing it atomically.
  void link_snapshot_file(std::string_view repo_id, std::string_view commit, std::string_view file,
                          std::string_view etag) const;

  // Repos with a snapshot holding config.json or a .gguf (the refs/main one when it
  // qualifies, else the newest), sorted by id. Unreadable entries are skipped.
  std::vector<CachedModel> list_models() const;

 private:
  std::filesystem::path root_;
};

// Every regular file under a snapshot (links followed), as repo paths with '/'.
std::vector<std::string> snapshot_files(const std::filesystem::path& snapshot);

}  // namespace lmserve::hub
