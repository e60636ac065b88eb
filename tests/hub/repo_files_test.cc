#include "hub/repo_files.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace lmserve::hub {
namespace {

using Files = std::vector<std::string>;

// The message of the FileError that planning throws.
std::string plan_error(const Files& files, const FileChoice& choice = {}) {
  try {
    plan_repo_files("org/name", files, choice);
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

const Files kQuants = {
    "README.md",           "llama-q-BF16.gguf", "llama-q-F16.gguf",     "llama-q-Q4_K_M-pure.gguf",
    "llama-q-Q4_K_M.gguf", "llama-q-Q8_0.gguf", "mmproj-model-f16.gguf"};

TEST(PlanRepoFiles, SafetensorsRepoTakesOnlyWhatLoadingReads) {
  const RepoPlan plan = plan_repo_files(
      "org/name",
      {".gitattributes", "README.md", "config.json", "generation_config.json", "model.safetensors",
       "original/consolidated.pth", "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
       "tokenizer_config.json", "chat_template.jinja"},
      {});
  EXPECT_EQ(plan.files, (Files{"config.json", "tokenizer.json", "tokenizer_config.json",
                               "special_tokens_map.json", "generation_config.json",
                               "chat_template.jinja", "model.safetensors"}));
  EXPECT_FALSE(plan.gguf);
  EXPECT_FALSE(plan.index);
}

TEST(PlanRepoFiles, ShardedRepoStartsWithItsIndex) {
  const RepoPlan plan = plan_repo_files(
      "org/name",
      {"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
       "model.safetensors.index.json", "consolidated.safetensors", "tokenizer.json"},
      {});
  EXPECT_EQ(plan.files, (Files{"config.json", "tokenizer.json", "model.safetensors.index.json"}));
  EXPECT_EQ(plan.index, "model.safetensors.index.json");
}

TEST(PlanRepoFiles, TagPicksTheQuantizationAsAWholeWord) {
  EXPECT_EQ(plan_repo_files("org/name", kQuants, {.tag = "Q8_0"}).files,
            Files{"llama-q-Q8_0.gguf"});
  EXPECT_EQ(plan_repo_files("org/name", kQuants, {.tag = "q8_0"}).gguf, "llama-q-Q8_0.gguf");
  // F16 is not BF16; the plain Q4_K_M file comes before its -pure variant.
  EXPECT_EQ(plan_repo_files("org/name", kQuants, {.tag = "F16"}).gguf, "llama-q-F16.gguf");
  const RepoPlan q4 = plan_repo_files("org/name", kQuants, {.tag = "Q4_K_M"});
  EXPECT_EQ(q4.gguf, "llama-q-Q4_K_M.gguf");
  EXPECT_NE(q4.note.find("2 files match Q4_K_M"), std::string::npos) << q4.note;
  EXPECT_EQ(plan_repo_files("org/name", kQuants, {.hf_file = "llama-q-Q4_K_M-pure.gguf"}).gguf,
            "llama-q-Q4_K_M-pure.gguf");
  const std::string none = plan_error(kQuants, {.tag = "Q4_K"});
  EXPECT_NE(none.find("no GGUF file for quantization Q4_K"), std::string::npos) << none;
  EXPECT_NE(none.find("llama-q-Q8_0.gguf"), std::string::npos) << none;
  EXPECT_EQ(none.find("mmproj"), std::string::npos) << "a projector is not a model: " << none;
}

TEST(PlanRepoFiles, SeveralGgufsWithoutATagDefaultToQ4KM) {
  const RepoPlan plan = plan_repo_files("org/name", kQuants, {});
  EXPECT_EQ(plan.gguf, "llama-q-Q4_K_M.gguf");
  EXPECT_NE(plan.note.find("has 5 GGUF models; using llama-q-Q4_K_M.gguf"), std::string::npos)
      << plan.note;
  const RepoPlan first =
      plan_repo_files("org/name", {"b-Q8_0.gguf", "a-F16.gguf", "mmproj-a.gguf"}, {});
  EXPECT_EQ(first.gguf, "a-F16.gguf");
  const RepoPlan one = plan_repo_files("org/name", {"README.md", "model-Q8_0.gguf"}, {});
  EXPECT_EQ(one.gguf, "model-Q8_0.gguf");
  EXPECT_EQ(one.note, "");
}

TEST(PlanRepoFiles, ClearErrors) {
  const std::string none = plan_error({"README.md", "config.json", "pytorch_model.bin"});
  EXPECT_NE(none.find("org/name has no usable weights"), std::string::npos) << none;
  EXPECT_NE(none.find("found: README.md, config.json, pytorch_model.bin"), std::string::npos)
      << none;
  EXPECT_NE(plan_error({"config.json", "model.safetensors"}, {.tag = "Q8_0"})
                .find("the repo has no .gguf file"),
            std::string::npos);
  EXPECT_NE(plan_error(kQuants, {.hf_file = "nope.gguf"}).find("org/name has no file nope.gguf"),
            std::string::npos);
  EXPECT_NE(plan_error(kQuants, {.hf_file = "README.md"}).find("is not a .gguf"),
            std::string::npos);
  const std::string split =
      plan_error({"m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00002-of-00003.gguf"}, {.tag = "Q8_0"});
  EXPECT_NE(split.find("m-Q8_0-00001-of-00003.gguf is one part of a GGUF split into 3 files, but "
                       "the repo has no m-Q8_0-00003-of-00003.gguf"),
            std::string::npos)
      << split;
}

// A split GGUF is one model: every part is fetched, and the first is the one to load.
TEST(PlanRepoFiles, SplitGgufsBringEveryPart) {
  const Files repo = {"README.md",
                      "Q8_0/m-Q8_0-00002-of-00002.gguf",
                      "Q8_0/m-Q8_0-00001-of-00002.gguf",
                      "m-Q4_K_M-00001-of-00003.gguf",
                      "m-Q4_K_M-00002-of-00003.gguf",
                      "m-Q4_K_M-00003-of-00003.gguf",
                      "m-F16.gguf"};
  const Files q4_parts = {"m-Q4_K_M-00001-of-00003.gguf", "m-Q4_K_M-00002-of-00003.gguf",
                          "m-Q4_K_M-00003-of-00003.gguf"};
  for (const FileChoice& choice : {FileChoice{.tag = "Q4_K_M"}, FileChoice{},
                                   FileChoice{.hf_file = "m-Q4_K_M-00002-of-00003.gguf"}}) {
    const RepoPlan plan = plan_repo_files("org/name", repo, choice);
    EXPECT_EQ(plan.gguf, "m-Q4_K_M-00001-of-00003.gguf");
    EXPECT_EQ(plan.files, q4_parts);
    EXPECT_EQ(plan.note.find("files match"), std::string::npos) << plan.note;
  }
  EXPECT_NE(plan_repo_files("org/name", repo, {}).note.find("has 3 GGUF models"),
            std::string::npos);
  const RepoPlan q8 = plan_repo_files("org/name", repo, {.tag = "Q8_0"});
  EXPECT_EQ(q8.gguf, "Q8_0/m-Q8_0-00001-of-00002.gguf");
  EXPECT_EQ(q8.files,
            (Files{"Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf"}));
}

// Numbers no split has ("-of-00000", part 0, a part past the count) make a whole GGUF's
// name, fetched as the one file it is (found by fuzz_hub: "-00001-of-00000" gave a plan
// fetching nothing).
TEST(PlanRepoFiles, ImpossibleSplitNumbersNameAWholeFile) {
  for (const std::string file :
       {"m-00001-of-00000.gguf", "m-00000-of-00002.gguf", "m-00003-of-00002.gguf"}) {
    const RepoPlan plan = plan_repo_files("org/name", {file, "README.md"}, {});
    EXPECT_EQ(plan.gguf, file);
    EXPECT_EQ(plan.files, Files{file});
  }
}

TEST(ShardsOfIndex, NamesEachShardOnceAndStaysInTheSnapshot) {
  EXPECT_EQ(shards_of_index(R"({"metadata": {}, "weight_map": {"a": "m-2.safetensors",
                               "b": "m-1.safetensors", "c": "m-2.safetensors"}})",
                            "index"),
            (Files{"m-1.safetensors", "m-2.safetensors"}));
  for (const char* bad : {R"([])", R"({"weight_map": []})", R"({"weight_map": {}})",
                          R"({"weight_map": {"a": 1}})", R"({"weight_map": {"a": "../x"}})",
                          R"({"weight_map": {"a": "sub/x.safetensors"}})", "not json"}) {
    EXPECT_THROW(shards_of_index(bad, "index"), FileError) << bad;
  }
}

}  // namespace
}  // namespace lmserve::hub
