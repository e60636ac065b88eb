#include "hub/hf_cache.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "util/error.h"

namespace lmserve::hub {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kModelsPrefix = "models--";

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

bool is_name_part(std::string_view part) {
  if (part.empty() || part.size() > 96) return false;
  if (!std::all_of(part.begin(), part.end(), is_name_char)) return false;
  if (part.find("--") != part.npos || part.find("..") != part.npos) return false;
  auto edge = [](char c) { return c == '-' || c == '.'; };
  return !edge(part.front()) && !edge(part.back());
}

std::string folder_name(std::string_view repo_id) {
  std::string name(kModelsPrefix);
  for (char c : repo_id) c == '/' ? name += "--" : name += c;
  return name;
}

std::int64_t unix_seconds(fs::file_time_type t) {
  const auto system = std::chrono::file_clock::to_sys(t);
  return std::chrono::duration_cast<std::chrono::seconds>(system.time_since_epoch()).count();
}

// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
void write_atomically(const fs::path& path, std::string_view bytes) {
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw FileError("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

// A snapshot that a server could load: a config.json (HF layout) or a .gguf file.
bool is_usable_snapshot(const fs::path& snapshot) {
  std::error_code ec;
  if (fs::is_regular_file(snapshot / "config.json", ec)) return true;
  for (const auto& entry : fs::directory_iterator(snapshot, ec)) {
    if (entry.path().extension() == ".gguf" && fs::is_regular_file(entry.path(), ec)) return true;
  }
  return false;
}

}  // namespace

bool is_repo_id(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == text.npos) return false;
  return is_name_part(text.substr(0, slash)) && is_name_part(text.substr(slash + 1));
}

bool is_commit_sha(std::string_view text) {
  return text.size() == 40 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_safe_repo_path(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != path.npos) return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == path.npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

fs::path HfCache::repo_dir(std::string_view repo_id) const { return root_ / folder_name(repo_id); }

fs::path HfCache::snapshot_dir(std::string_view repo_id, std::string_view commit) const {
  return repo_dir(repo_id) / "snapshots" / commit;
}

fs::path HfCache::blob_path(std::string_view repo_id, std::string_view etag) const {
  return repo_dir(repo_id) / "blobs" / etag;
}

fs::path HfCache::incomplete_path(std::string_view repo_id, std::string_view etag) const {
  return repo_dir(repo_id) / "blobs" / (std::string(etag) + ".incomplete");
}

fs::path HfCache::lock_path(std::string_view repo_id, std::string_view etag) const {
  return root_ / ".locks" / folder_name(repo_id) / (std::string(etag) + ".lock");
}

std::optional<std::string> HfCache::commit_of(std::string_view repo_id,
                                              std::string_view revision) const {
  if (is_commit_sha(revision)) return std::string(revision);
  if (!is_safe_repo_path(revision)) return std::nullopt;
  std::ifstream in(repo_dir(repo_id) / "refs" / revision);
  std::string commit;
  if (!in || !std::getline(in, commit)) return std::nullopt;
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) {
    commit.pop_back();
  }
  if (!is_commit_sha(commit)) return std::nullopt;
  return commit;
}

void HfCache::write_ref(std::string_view repo_id, std::string_view revision,
                        std::string_view commit) const {
  if (revision == commit) return;
  // huggingface_hub writes the bare sha, without a newline.
  write_atomically(repo_dir(repo_id) / "refs" / revision, commit);
}

void HfCache::link_snapshot_file(std::string_view repo_id, std::string_view commit,
                                 std::string_view file, std::string_view etag) const {
  const fs::path link = snapshot_dir(repo_id, commit) / file;
  fs::create_directories(link.parent_path());
  // snapshots/<commit>/a/b/file -> ../../../blobs/<etag>: one ".." per directory level.
  fs::path target;
  const auto depth = std::count(file.begin(), file.end(), '/') + 2;
  for (long i = 0; i < depth; ++i) target /= "..";
  target = target / "blobs" / etag;
  const fs::path tmp = link.string() + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp);
  fs::rename(tmp, link);
}

std::vector<CachedModel> HfCache::list_models() const {
  std::vector<CachedModel> models;
  std::error_code ec;
  for (const auto& repo : fs::directory_iterator(root_, ec)) {
    const std::string folder = repo.path().filename().string();
    if (!folder.starts_with(kModelsPrefix)) continue;
    std::string repo_id;
    for (std::size_t i = kModelsPrefix.size(); i < folder.size(); ++i) {
      if (folder.compare(i, 2, "--") == 0) {
        repo_id += '/';
        ++i;
      } else {
        repo_id += folder[i];
      }
    }
    if (!is_repo_id(repo_id)) continue;

    std::optional<fs::path> chosen;
    if (auto main = commit_of(repo_id, "main")) {
      const fs::path snapshot = snapshot_dir(repo_id, *main);
      if (is_usable_snapshot(snapshot)) chosen = snapshot;
    }
    if (!chosen) {
      fs::file_time_type newest{};
      for (const auto& snap : fs::directory_iterator(repo.path() / "snapshots", ec)) {
        const auto time = fs::last_write_time(snap.path(), ec);
        if (!ec && (!chosen || time > newest) && is_usable_snapshot(snap.path())) {
          chosen = snap.path();
          newest = time;
        }
      }
    }
    if (!chosen) continue;
    const auto time = fs::last_write_time(*chosen, ec);
    models.push_back({repo_id, *chosen, ec ? 0 : unix_seconds(time)});
  }
  std::sort(models.begin(), models.end(),
            [](const CachedModel& a, const CachedModel& b) { return a.repo_id < b.repo_id; });
  return models;
}

std::vector<std::string> snapshot_files(const fs::path& snapshot) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(snapshot, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (fs::is_regular_file(it->path(), ec)) {
      files.push_back(it->path().lexically_relative(snapshot).generic_string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace lmserve::hub
