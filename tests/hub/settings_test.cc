#include "hub/settings.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "support/temp_dir.h"

namespace lmserve::hub {
namespace {

using testing::TempDir;
using testing::write_file;

constexpr const char* kVariables[] = {
    "HOME",         "HF_HOME",  "XDG_CACHE_HOME",         "HF_HUB_CACHE",  "HUGGINGFACE_HUB_CACHE",
    "HF_ENDPOINT",  "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE",
    "OLLAMA_MODELS"};

// Clears the variables HubSettings reads for one test and restores them after it.
class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVariables) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
    ::setenv("HOME", home_.path().c_str(), 1);
  }
  void TearDown() override {
    for (const char* name : kVariables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

  TempDir home_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(SettingsTest, DefaultsAreHuggingFaceHubs) {
  const HubSettings s = HubSettings::from_environment();
  EXPECT_EQ(s.cache_dir, home_.path() / ".cache" / "huggingface" / "hub");
  EXPECT_EQ(s.endpoint, kDefaultEndpoint);
  EXPECT_EQ(s.token, std::nullopt);
  EXPECT_FALSE(s.offline);
  EXPECT_EQ(s.ollama_models, home_.path() / ".ollama" / "models");
}

TEST_F(SettingsTest, VariablesOverrideInHuggingFaceHubsOrder) {
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(HubSettings::from_environment().cache_dir,
            std::filesystem::path("/xdg/huggingface/hub"));
  ::setenv("HF_HOME", "~/hf", 1);
  EXPECT_EQ(HubSettings::from_environment().cache_dir, home_.path() / "hf" / "hub");
  ::setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
  EXPECT_EQ(HubSettings::from_environment().cache_dir, std::filesystem::path("/legacy"));
  ::setenv("HF_HUB_CACHE", "/cache", 1);
  EXPECT_EQ(HubSettings::from_environment().cache_dir, std::filesystem::path("/cache"));

  ::setenv("HF_ENDPOINT", "http://127.0.0.1:5000//", 1);
  EXPECT_EQ(HubSettings::from_environment().endpoint, "http://127.0.0.1:5000");
  ::setenv("OLLAMA_MODELS", "/ollama", 1);
  EXPECT_EQ(HubSettings::from_environment().ollama_models, std::filesystem::path("/ollama"));
  for (const char* on : {"1", "ON", "yes", "True"}) {
    ::setenv("HF_HUB_OFFLINE", on, 1);
    EXPECT_TRUE(HubSettings::from_environment().offline) << on;
  }
  for (const char* off : {"0", "false", "no", ""}) {
    ::setenv("HF_HUB_OFFLINE", off, 1);
    EXPECT_FALSE(HubSettings::from_environment().offline) << off;
  }
}

TEST_F(SettingsTest, TokenFromTheVariableElseTheLoginFile) {
  std::filesystem::create_directories(home_.path() / "hf");
  write_file(home_.path() / "hf" / "token", "hf_from_file\n");
  ::setenv("HF_HOME", (home_.path() / "hf").c_str(), 1);
  EXPECT_EQ(HubSettings::from_environment().token, "hf_from_file");
  ::setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
  EXPECT_EQ(HubSettings::from_environment().token, "hf_legacy");
  ::setenv("HF_TOKEN", "hf_variable", 1);
  EXPECT_EQ(HubSettings::from_environment().token, "hf_variable");
}

}  // namespace
}  // namespace lmserve::hub
