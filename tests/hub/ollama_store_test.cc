#include "hub/ollama_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::hub {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_file;

const std::string kHex(64, 'a');

// An Ollama store in a temp dir: one manifest with a template layer and a model layer.
class OllamaStoreTest : public ::testing::Test {
 protected:
  void add_manifest(const fs::path& relative, const std::string& digest, std::uint64_t size) {
    const nlohmann::json manifest = {
        {"schemaVersion", 2},
        {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}}},
        {"layers",
         {{{"mediaType", "application/vnd.ollama.image.template"},
           {"digest", "sha256:" + std::string(64, 'b')},
           {"size", 10}},
          {{"mediaType", "application/vnd.ollama.image.model"},
           {"digest", digest},
           {"size", size}}}}};
    const fs::path path = dir_.path() / "manifests" / relative;
    fs::create_directories(path.parent_path());
    write_file(path, manifest.dump());
  }
  std::string error(std::string_view name) {
    try {
      find_ollama_model(dir_.path(), name);
    } catch (const FileError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error for " << name;
    return "";
  }

  void SetUp() override {
    fs::create_directories(dir_.path() / "blobs");
    write_file(blob_, "GGUF....");
  }

  TempDir dir_;
  fs::path blob_ = dir_.path() / "blobs" / ("sha256-" + kHex);
};

TEST_F(OllamaStoreTest, FindsTheModelLayerBlob) {
  add_manifest("registry.ollama.ai/library/tiny/latest", "sha256:" + kHex, 8);
  add_manifest("registry.ollama.ai/library/tiny/q8", "sha256:" + kHex, 8);
  add_manifest("registry.ollama.ai/someone/tiny/latest", "sha256:" + kHex, 8);
  add_manifest("example.com/team/tiny/v1", "sha256:" + kHex, 8);
  for (const char* name :
       {"tiny", "tiny:latest", "tiny:q8", "someone/tiny", "example.com/team/tiny:v1"}) {
    EXPECT_EQ(find_ollama_model(dir_.path(), name), blob_) << name;
  }
}

TEST_F(OllamaStoreTest, SaysWhatIsMissing) {
  add_manifest("registry.ollama.ai/library/tiny/q8", "sha256:" + kHex, 8);
  const std::string tag = error("tiny");
  EXPECT_NE(tag.find("ollama:tiny is not in Ollama's store"), std::string::npos) << tag;
  EXPECT_NE(tag.find("its tags there: q8"), std::string::npos) << tag;
  EXPECT_NE(error("other").find("pull it with ollama"), std::string::npos);
  EXPECT_NE(error("../../etc:x").find("is not an Ollama model name"), std::string::npos);
  EXPECT_NE(error("a/b/c/d").find("is not an Ollama model name"), std::string::npos);

  add_manifest("registry.ollama.ai/library/short/latest", "sha256:" + kHex, 9);
  EXPECT_NE(error("short").find("the manifest says 9"), std::string::npos);
  add_manifest("registry.ollama.ai/library/gone/latest", "sha256:" + std::string(64, 'c'), 8);
  EXPECT_NE(error("gone").find("is missing"), std::string::npos);
  add_manifest("registry.ollama.ai/library/bad/latest", "sha256:../../x", 8);
  EXPECT_NE(error("bad").find("is not sha256:<64 hex digits>"), std::string::npos);
  write_file(dir_.path() / "manifests/registry.ollama.ai/library/tiny/broken", "{");
  EXPECT_NE(error("tiny:broken").find("not an Ollama manifest"), std::string::npos);
}

}  // namespace
}  // namespace lmserve::hub
