#include "hub/hub_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "hub/hf_cache.h"
#include "util/text_file.h"

namespace lmserve::hub {
namespace {

constexpr long kConnectTimeoutS = 15;
constexpr long kMetadataTimeoutS = 60;  // the API and HEAD requests, whole
constexpr long kStallSeconds = 60;      // a download under 1 byte/s this long is broken off
constexpr std::size_t kMaxApiBytes = 64u << 20;
constexpr std::size_t kMaxErrorBytes = 4096;
constexpr int kMaxRelativeRedirects = 5;

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // the last response's, names lowercased
  std::string body;                            // API answers and error bodies (bounded)

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool ok() const { return status >= 200 && status < 300; }
};

struct Transfer {
  std::string url;
  bool head = false;
  bool follow_redirects = false;
  std::optional<std::uint64_t> range_from;
  // Takes the body of a 2xx answer (else it goes to Response::body); false aborts.
  std::function<bool(const Response&, std::string_view)> sink;
  std::function<void(std::uint64_t)> progress;  // body bytes received by this transfer
};

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// RFC 3986 percent-encoding; '/' kept when it separates path segments.
std::string encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

class Call {
 public:
  Call(const Transfer& t, Response& r) : transfer_(t), response_(r) {}

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* self) {
    auto& r = static_cast<Call*>(self)->response_;
    const std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {  // a new response (after a redirect or a 100)
      r.headers.clear();
      const auto space = line.find(' ');
      r.status = space == line.npos ? 0 : std::atol(std::string(line.substr(space + 1)).c_str());
    } else if (const auto colon = line.find(':'); colon != line.npos) {
      r.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
    return size * n;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* self) {
    auto* call = static_cast<Call*>(self);
    const std::string_view bytes(data, size * n);
    Response& r = call->response_;
    if (r.ok() && call->transfer_.sink) return call->transfer_.sink(r, bytes) ? bytes.size() : 0;
    const std::size_t cap = r.ok() ? kMaxApiBytes : kMaxErrorBytes;
    if (r.body.size() + bytes.size() > cap) {
      if (r.ok()) return 0;  // an API answer this large is not one
      r.body.append(bytes.substr(0, cap - std::min(cap, r.body.size())));
      return bytes.size();
    }
    r.body.append(bytes);
    return bytes.size();
  }

  static int on_progress(void* self, curl_off_t, curl_off_t now, curl_off_t, curl_off_t) {
    auto* call = static_cast<Call*>(self);
    if (call->transfer_.progress && call->response_.ok()) {
      call->transfer_.progress(static_cast<std::uint64_t>(now));
    }
    return 0;
  }

 private:
  const Transfer& transfer_;
  Response& response_;
};

Response perform(const Transfer& t, const std::optional<std::string>& token) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) throw TransferError("libcurl could not start a transfer");
  std::unique_ptr<curl_slist, CurlDeleter> headers;
  if (token) {
    // libcurl sends this header to the original host only, never to a redirect's other host.
    headers.reset(curl_slist_append(nullptr, ("Authorization: Bearer " + *token).c_str()));
  }
  Response response;
  Call call(t, response);
  char error[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "lmserve");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutS);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  if (!t.sink) curl_easy_setopt(c, CURLOPT_TIMEOUT, kMetadataTimeoutS);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, t.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_NOBODY, t.head ? 1L : 0L);
  if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  const std::string range = t.range_from ? std::to_string(*t.range_from) + "-" : "";
  if (t.range_from) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Call::on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &call);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Call::on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &call);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Call::on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &call);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    throw TransferError(t.url + ": " + (error[0] ? error : curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

// One clear message for an error answer, as huggingface_hub reads them: X-Error-Code says
// which of repo, revision or file was not found, or that the repo is gated.
[[noreturn]] void throw_answer(const Response& r, const std::string& repo_id,
                               const std::string& what, bool has_token) {
  const std::string code = r.header("x-error-code");
  std::string detail = r.header("x-error-message");
  if (detail.empty() && !r.body.empty()) {
    const auto body = nlohmann::json::parse(r.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
      detail = body["error"].get<std::string>();
    }
  }
  const std::string status = "HTTP " + std::to_string(r.status);
  const std::string suffix = " (" + status + (detail.empty() ? "" : ": " + detail) + ")";
  const std::string token_hint = has_token ? "the token in HF_TOKEN has no access to it"
                                           : "set HF_TOKEN to a token with access";
  if (code == "GatedRepo" || r.status == 403) {
    throw HubError(repo_id + " is gated or private: accept its terms on the Hub, and " +
                   token_hint + suffix);
  }
  if (code == "RevisionNotFound") throw HubError(what + ": revision not found" + suffix);
  if (code == "EntryNotFound") throw HubError(what + ": file not found" + suffix);
  if (r.status == 401) {
    throw HubError(repo_id + " was not found or needs authentication (" + token_hint + ")" +
                   suffix);
  }
  if (r.status == 404) {
    throw HubError(
        what + ": " +
        (code == "RepoNotFound" ? "repository not found" : "repository or revision not found") +
        suffix);
  }
  if (r.status >= 500 || r.status == 429) throw TransferError(what + ": the Hub answered" + suffix);
  throw HubError(what + ": unexpected answer" + suffix);
}

std::string strip_etag(std::string etag) {
  if (etag.starts_with("W/")) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  return etag;
}

bool is_safe_etag(std::string_view etag) {
  return !etag.empty() && etag.size() <= 128 &&
         std::all_of(etag.begin(), etag.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
}

}  // namespace

RepoRevision parse_revision_info(std::string_view body, const std::string& where) {
  if (!util::json_nesting_within(body, 32)) throw HubError(where + ": nested too deeply");
  const auto info = nlohmann::json::parse(body, nullptr, false);
  if (info.is_discarded() || !info.is_object()) throw HubError(where + ": not a JSON object");
  RepoRevision out;
  if (auto sha = info.find("sha"); sha != info.end() && sha->is_string()) out.commit = *sha;
  if (!is_commit_sha(out.commit)) throw HubError(where + ": no commit sha in the answer");
  if (auto siblings = info.find("siblings"); siblings != info.end() && siblings->is_array()) {
    for (const auto& s : *siblings) {
      if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
      auto name = s["rfilename"].get<std::string>();
      if (is_safe_repo_path(name)) out.files.push_back(std::move(name));
    }
  }
  return out;
}

HubClient::HubClient(std::string endpoint, std::optional<std::string> token)
    : endpoint_(std::move(endpoint)), token_(std::move(token)) {}

std::string HubClient::resolve_url(const std::string& repo_id, const std::string& revision,
                                   const std::string& file) const {
  return endpoint_ + "/" + repo_id + "/resolve/" + encode(revision, false) + "/" +
         encode(file, true);
}

RepoRevision HubClient::revision(const std::string& repo_id, const std::string& revision) const {
  const std::string url =
      endpoint_ + "/api/models/" + repo_id + "/revision/" + encode(revision, false);
  const Response r = perform({.url = url}, token_);
  const std::string what = repo_id + " at revision " + revision;
  if (!r.ok()) throw_answer(r, repo_id, what, token_.has_value());
  return parse_revision_info(r.body, url);
}

FileMetadata HubClient::file_metadata(const std::string& repo_id, const std::string& commit,
                                      const std::string& file) const {
  std::string url = resolve_url(repo_id, commit, file);
  const std::string what = repo_id + "/" + file;
  // Follow redirects within the Hub (a renamed repo) but not to the file's storage: the
  // first answer off the Hub's own paths carries the X-Linked-* headers of an LFS file.
  for (int hop = 0;; ++hop) {
    const Response r = perform({.url = url, .head = true}, token_);
    const std::string location = r.header("location");
    if (r.status >= 300 && r.status < 400 && r.header("x-linked-etag").empty() &&
        location.starts_with('/') && hop < kMaxRelativeRedirects) {
      url = endpoint_ + location;
      continue;
    }
    if (!r.ok() && !(r.status >= 300 && r.status < 400)) {
      throw_answer(r, repo_id, what, token_.has_value());
    }
    FileMetadata meta;
    const std::string linked_etag = r.header("x-linked-etag");
    meta.etag = strip_etag(linked_etag.empty() ? r.header("etag") : linked_etag);
    if (!is_safe_etag(meta.etag)) throw HubError(what + ": the Hub sent no usable ETag");
    const std::string linked_size = r.header("x-linked-size");
    const std::string size = linked_size.empty() ? r.header("content-length") : linked_size;
    char* end = nullptr;
    meta.size = std::strtoull(size.c_str(), &end, 10);
    if (size.empty() || *end != '\0') throw HubError(what + ": the Hub sent no file size");
    return meta;
  }
}

void HubClient::download(const std::string& repo_id, const std::string& commit,
                         const std::string& file, const std::filesystem::path& dest,
                         const std::function<void(std::uint64_t)>& progress) const {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(dest.c_str(), "ab"), &std::fclose);
  if (!out) throw FileError("cannot write " + dest.string());
  // Unbuffered: whatever arrived is on disk when the process dies, ready to be resumed.
  std::setvbuf(out.get(), nullptr, _IONBF, 0);
  std::uint64_t offset = std::filesystem::file_size(dest);
  bool started = false;
  Transfer t{.url = resolve_url(repo_id, commit, file), .follow_redirects = true};
  if (offset > 0) t.range_from = offset;
  t.sink = [&](const Response& r, std::string_view bytes) {
    if (!started && offset > 0 && r.status != 206) {  // the whole file: start over
      if (::ftruncate(::fileno(out.get()), 0) != 0) return false;
      offset = 0;
    }
    started = true;
    return std::fwrite(bytes.data(), 1, bytes.size(), out.get()) == bytes.size();
  };
  t.progress = [&](std::uint64_t received) { progress(offset + received); };
  const Response r = perform(t, token_);
  if (r.status == 416) {  // the file is shorter than what we hold: not the bytes we have
    if (::ftruncate(::fileno(out.get()), 0) != 0) throw FileError("cannot write " + dest.string());
    throw TransferError(repo_id + "/" + file + ": the server refused to resume; starting over");
  }
  if (!r.ok()) throw_answer(r, repo_id, repo_id + "/" + file, token_.has_value());
}

}  // namespace lmserve::hub
