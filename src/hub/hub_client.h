// The Hugging Face Hub's HTTP API over libcurl: a repo's files and commit at a revision
// (/api/models/{repo}/revision/{rev}), a file's metadata (HEAD /{repo}/resolve/{rev}/{file},
// redirects not followed: X-Repo-Commit, X-Linked-Etag/ETag, X-Linked-Size/Content-Length)
// and its bytes (GET, redirects followed, continued with Range).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace lmserve::hub {

// The Hub answered with an error (401, 403, 404, ...): retrying will not help.
class HubError : public FileError {
 public:
  using FileError::FileError;
};

// The connection failed or broke off: trying again (and resuming) may succeed.
class TransferError : public FileError {
 public:
  using FileError::FileError;
};

struct RepoRevision {
  std::string commit;              // the revision's commit sha
  std::vector<std::string> files;  // every file of the repo at that commit
};

struct FileMetadata {
  std::string etag;  // the blob's name in the cache: the sha256 of an LFS file, else git's sha1
  std::uint64_t size = 0;
};

// The answer of /api/models/{repo}/revision/{rev}: its commit sha and the files whose names
// are safe paths (others are left out). Throws HubError naming `where` when malformed.
RepoRevision parse_revision_info(std::string_view body, const std::string& where);

class HubClient {
 public:
  HubClient(std::string endpoint, std::optional<std::string> token);

  RepoRevision revision(const std::string& repo_id, const std::string& revision) const;
  FileMetadata file_metadata(const std::string& repo_id, const std::string& commit,
                             const std::string& file) const;
  // Appends the file's bytes to `dest` from its current size on (a Range request), or
  // rewrites it when the server sends the whole file. `progress` gets the bytes in `dest`.
  void download(const std::string& repo_id, const std::string& commit, const std::string& file,
                const std::filesystem::path& dest,
                const std::function<void(std::uint64_t)>& progress) const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string resolve_url(const std::string& repo_id, const std::string& revision,
                          const std::string& file) const;

  std::string endpoint_;
  std::optional<std::string> token_;
};

}  // namespace lmserve::hub
