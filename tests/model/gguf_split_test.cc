// Split GGUFs (llama.cpp's gguf-split layout) written here from the tiny qwen3 fixture: loaded
// from the first part they compute the unsplit file's logits bit for bit; a missing,
// mismatched or misnamed part, or a later part given first, is a FileError that says so.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/tensor_store.h"
#include "model/model.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace lmserve::model {
namespace {

namespace fs = std::filesystem;
using formats::GgufFile;

// What a test may get wrong on purpose: a part's split.no, the first's split.tensors.count.
struct Faults {
  int part = -1;                   // this part (0-based) ...
  std::uint32_t says_no = 0;       // ... claims this split.no
  std::uint32_t tensor_count = 0;  // 0: the true count
};

// Splits `source` into `parts` files named PREFIX-0000i-of-0000N.gguf in `dir`, as gguf-split
// does: the first part keeps every metadata key, each part has split.no / split.count, and
// the first split.tensors.count. Returns the first part's path.
fs::path write_split(const GgufFile& source, const fs::path& dir, const std::string& prefix,
                     int parts, Faults faults = {}) {
  const auto& infos = source.tensor_infos();
  const std::size_t per_part = (infos.size() + parts - 1) / parts;
  auto path = [&](int i) {
    char name[64];
    std::snprintf(name, sizeof name, "-%05d-of-%05d.gguf", i + 1, parts);
    return dir / (prefix + name);
  };
  for (int i = 0; i < parts; ++i) {
    formats::GgufWriter w;
    if (i == 0) {
      for (const auto& kv : source.metadata()) w.add(std::string(kv.key), kv.value);
      w.add_uint32("split.tensors.count", faults.tensor_count
                                              ? faults.tensor_count
                                              : static_cast<std::uint32_t>(infos.size()));
    }
    w.add_uint32("split.no", i == faults.part ? faults.says_no : static_cast<std::uint32_t>(i));
    w.add_uint32("split.count", static_cast<std::uint32_t>(parts));
    const std::size_t end = std::min(infos.size(), (i + 1) * per_part);
    for (std::size_t t = i * per_part; t < end; ++t) {
      const formats::TensorView& view = *source.find_tensor(infos[t].name);
      std::vector<std::byte> data(view.nbytes);
      std::memcpy(data.data(), view.data, view.nbytes);
      w.add_tensor(std::string(infos[t].name), infos[t].dims, infos[t].ggml_type, std::move(data));
    }
    w.write(path(i));
  }
  return path(0);
}

std::vector<float> last_logits(Model& model, const std::vector<std::int32_t>& prompt) {
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  auto cache = model.new_cache(static_cast<int>(prompt.size()));
  model.forward(prompt, *cache, logits);
  return logits;
}

std::string load_error(const fs::path& path) {
  util::ThreadPool pool(1);
  try {
    Model::load(path, pool);
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "loading " << path << " succeeded";
  return "";
}

class GgufSplit : public ::testing::Test {
 protected:
  const fs::path whole_ = testing::fixture("models/tiny/qwen3/qwen3-F32.gguf");
  const GgufFile source_{whole_};
  testing::TempDir dir_;
  util::ThreadPool pool_{2};
};

TEST_F(GgufSplit, ThePartsComputeTheWholeFilesLogits) {
  const fs::path first = write_split(source_, dir_.path(), "qwen3", 3);
  const std::vector<std::int32_t> prompt = {1, 400, 261, 356, 271, 302, 350, 261, 424};
  auto whole = Model::load(whole_, pool_);
  auto split = Model::load(first, pool_);
  EXPECT_EQ(split->weight_bytes(), whole->weight_bytes());
  const std::vector<float> expected = last_logits(*whole, prompt);
  const std::vector<float> got = last_logits(*split, prompt);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
  // Every part holds tensors, so a part left out would be missed.
  for (int i = 2; i <= 3; ++i) {
    const GgufFile part(dir_.path() / ("qwen3-0000" + std::to_string(i) + "-of-00003.gguf"));
    EXPECT_FALSE(part.tensors().empty());
    EXPECT_FALSE(part.has("general.architecture"));
  }
}

TEST_F(GgufSplit, MissingMismatchedOrMisnamedPartsAreRefused) {
  const fs::path first = write_split(source_, dir_.path(), "m", 3);
  fs::remove(dir_.path() / "m-00003-of-00003.gguf");
  EXPECT_NE(load_error(first).find("part 3 of 3 of this split GGUF is missing"), std::string::npos)
      << load_error(first);

  // Part 2 claims to be part 3.
  write_split(source_, dir_.path(), "m", 3, {.part = 1, .says_no = 2});
  std::string error = load_error(first);
  EXPECT_NE(error.find("m-00002-of-00003.gguf should be part 2 of 3 of a split GGUF, but its "
                       "metadata says part 3 of 3"),
            std::string::npos)
      << error;

  // A tensor count that the parts do not add up to.
  write_split(source_, dir_.path(), "m", 3, {.tensor_count = 5});
  error = load_error(first);
  EXPECT_NE(error.find("split.tensors.count is 5, but the 3 parts hold"), std::string::npos)
      << error;

  // The other parts are found by name: a renamed first part cannot find them.
  const fs::path renamed = dir_.path() / "renamed.gguf";
  write_split(source_, dir_.path(), "m", 3);
  fs::copy_file(first, renamed);
  error = load_error(renamed);
  EXPECT_NE(error.find("does not follow llama.cpp's NAME-00001-of-00003.gguf"), std::string::npos)
      << error;
}

TEST_F(GgufSplit, ALaterPartNamesTheFirst) {
  write_split(source_, dir_.path(), "m", 2);
  const auto part = std::make_shared<const GgufFile>(dir_.path() / "m-00002-of-00002.gguf");
  try {
    formats::TensorStore::from_gguf(part);
    ADD_FAILURE() << "no FileError";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "m-00002-of-00002.gguf is part 2 of 2 of a split GGUF: load the first part, "
                  "m-00001-of-00002.gguf"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lmserve::model
