#include "hub/snapshot_download.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "hub/hf_cache.h"
#include "hub/hub_client.h"
#include "hub/progress.h"
#include "util/text_file.h"

namespace lmserve::hub {
namespace fs = std::filesystem;

namespace {

constexpr int kAttempts = 5;  // per file; each resumes where the last one broke off
constexpr auto kRetryDelay = std::chrono::milliseconds(500);

// An exclusive flock on a blob's lock file, as huggingface_hub takes one, so two processes
// never write the same blob.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) throw FileError("cannot lock " + path.string());
  }
  ~BlobLock() { ::close(fd_); }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

bool is_sha256(std::string_view etag) {
  return etag.size() == 64 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::uint64_t size_or_zero(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// Downloads one blob to blobs/<etag>.incomplete, retrying broken transfers with Range,
// checks its size and (for LFS files, whose ETag is their sha256) its hash, then renames it
// into place. The partial file stays for the next run when every attempt fails.
void download_blob(const HubClient& client, const HfCache& cache, const std::string& repo_id,
                   const std::string& commit, const std::string& file, const FileMetadata& meta) {
  const fs::path partial = cache.incomplete_path(repo_id, meta.etag);
  const std::string label = repo_id + "/" + file;
  for (int attempt = 1;; ++attempt) {
    if (size_or_zero(partial) > meta.size) fs::remove(partial);
    const std::uint64_t have = size_or_zero(partial);
    if (have == meta.size && fs::exists(partial)) break;  // a run ended before its check
    try {
      DownloadProgress progress(label, meta.size, have);
      client.download(repo_id, commit, file, partial,
                      [&](std::uint64_t done) { progress.update(done); });
      progress.finish();
      if (size_or_zero(partial) < meta.size) {
        throw TransferError(label + ": the transfer ended after " +
                            std::to_string(size_or_zero(partial)) + " of " +
                            std::to_string(meta.size) + " bytes");
      }
      break;
    } catch (const TransferError& e) {
      if (attempt == kAttempts) {
        throw FileError("downloading " + label + " failed " + std::to_string(kAttempts) +
                        " times (" + e.what() + "); " + std::to_string(size_or_zero(partial)) +
                        " of " + std::to_string(meta.size) +
                        " bytes are kept in the cache: run again to resume");
      }
      spdlog::warn("{}; retrying ({} of {})", e.what(), attempt + 1, kAttempts);
      std::this_thread::sleep_for(kRetryDelay * attempt);
    }
  }
  const std::uint64_t size = size_or_zero(partial);
  std::string problem;
  if (size != meta.size) {
    problem = std::to_string(size) + " bytes where the Hub announced " + std::to_string(meta.size);
  } else if (is_sha256(meta.etag)) {
    if (const std::string sha = file_sha256(partial); sha != meta.etag) {
      problem = "sha256 " + sha + " where the Hub announced " + meta.etag;
    }
  }
  if (!problem.empty()) {
    fs::remove(partial);
    throw FileError("downloaded " + label + " is corrupt (" + problem + "); it was removed");
  }
  fs::rename(partial, cache.blob_path(repo_id, meta.etag));
}

// snapshots/<commit>/<file>, downloaded unless already there (a snapshot is immutable).
void fetch_file(const HubClient& client, const HfCache& cache, const std::string& repo_id,
                const std::string& commit, const std::string& file) {
  std::error_code ec;
  if (fs::exists(cache.snapshot_dir(repo_id, commit) / file, ec)) return;
  const FileMetadata meta = client.file_metadata(repo_id, commit, file);
  const fs::path blob = cache.blob_path(repo_id, meta.etag);
  fs::create_directories(blob.parent_path());
  {
    BlobLock lock(cache.lock_path(repo_id, meta.etag));
    if (!fs::exists(blob, ec)) download_blob(client, cache, repo_id, commit, file, meta);
  }
  cache.link_snapshot_file(repo_id, commit, file, meta.etag);
}

fs::path loadable_path(const fs::path& snapshot, const RepoPlan& plan) {
  return plan.gguf ? snapshot / *plan.gguf : snapshot;
}

std::vector<std::string> shards_in(const fs::path& snapshot, const std::string& index) {
  const fs::path path = snapshot / index;
  return shards_of_index(util::read_text_file(path), path.string());
}

// The model as the cache holds it, without the network. `why` says why the Hub is not asked.
fs::path from_cache(const HfCache& cache, const HubModel& m, const std::string& why) {
  const std::string name = m.repo_id + " (revision " + m.revision + ")";
  const auto commit = cache.commit_of(m.repo_id, m.revision);
  const fs::path snapshot = commit ? cache.snapshot_dir(m.repo_id, *commit) : fs::path();
  const std::vector<std::string> files =
      commit ? snapshot_files(snapshot) : std::vector<std::string>{};
  if (files.empty()) {
    throw FileError(why + ", and " + name + " is not in the Hugging Face cache at " +
                    cache.root().string() + " (download it once with the network)");
  }
  try {
    const RepoPlan plan = plan_repo_files(m.repo_id, files, m.choice);
    if (plan.index) {
      for (const auto& shard : shards_in(snapshot, *plan.index)) {
        if (!fs::exists(snapshot / shard)) throw FileError("shard " + shard + " is missing");
      }
    }
    if (!plan.note.empty()) spdlog::info("{}", plan.note);
    return loadable_path(snapshot, plan);
  } catch (const FileError& e) {
    throw FileError(why + ", and the cached snapshot of " + name + " at " + snapshot.string() +
                    " cannot be used: " + e.what());
  }
}

}  // namespace

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError("cannot read " + path.string());
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw FileError("SHA-256 is unavailable");
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw FileError("cannot read " + path.string());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

fs::path fetch_model(const HubModel& m, const HubSettings& settings) {
  const HfCache cache(settings.cache_dir);
  if (settings.offline) {
    const fs::path path = from_cache(cache, m, "HF_HUB_OFFLINE is set");
    spdlog::info("HF_HUB_OFFLINE is set: using {}", path.string());
    return path;
  }
  const HubClient client(settings.endpoint, settings.token);
  RepoRevision revision;
  try {
    revision = client.revision(m.repo_id, m.revision);
  } catch (const TransferError& e) {
    // As huggingface_hub does: an unreachable Hub leaves what the cache holds usable.
    const std::string why = "the Hub cannot be reached (" + std::string(e.what()) + ")";
    const fs::path path = from_cache(cache, m, why);
    spdlog::warn("{}; using the cached {}", why, path.string());
    return path;
  }
  const RepoPlan plan = plan_repo_files(m.repo_id, revision.files, m.choice);
  if (!plan.note.empty()) spdlog::info("{}", plan.note);
  const std::string& commit = revision.commit;
  for (const auto& file : plan.files) fetch_file(client, cache, m.repo_id, commit, file);
  const fs::path snapshot = cache.snapshot_dir(m.repo_id, commit);
  if (plan.index) {
    for (const auto& shard : shards_in(snapshot, *plan.index)) {
      if (std::find(revision.files.begin(), revision.files.end(), shard) == revision.files.end()) {
        throw FileError(m.repo_id + ": " + *plan.index + " names the shard " + shard +
                        ", which the repo does not have");
      }
      fetch_file(client, cache, m.repo_id, commit, shard);
    }
  }
  cache.write_ref(m.repo_id, m.revision, commit);
  return loadable_path(snapshot, plan);
}

}  // namespace lmserve::hub
