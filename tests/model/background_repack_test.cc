// Model::Repack::kInBackground: the model computes from the file's layout until it adopts the
// background copies, and gives the same bits before, between and after the adoptions as a
// model repacked at load.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "support/fixtures.h"

namespace lmserve::model {
namespace {

using lmserve::testing::fixture;

std::vector<float> last_logits(Model& model, const std::vector<std::int32_t>& ids) {
  auto cache = model.new_cache(64);
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  model.forward(ids, *cache, logits);
  return logits;
}

class BackgroundRepackTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BackgroundRepackTest, SameBitsBeforeBetweenAndAfterAdoption) {
  const auto path = fixture("models/tiny/llama-q/llama-q-" + GetParam() + ".gguf");
  util::ThreadPool pool(2);
  auto at_load = Model::load(path, pool);
  auto background = Model::load(path, pool, Model::Repack::kInBackground);
  const std::vector<std::int32_t> prompt = {1, 45, 96, 173, 17, 432, 204, 97, 278, 3};
  const auto expected = last_logits(*at_load, prompt);
  EXPECT_EQ(background->repacked_bytes(), 0u);
  EXPECT_EQ(last_logits(*background, prompt), expected) << "the file's layout";
  // Adopt as copies finish, checking the mixed layouts on the way.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int rounds = 0;
  while (background->adopt_repacked()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the background copy never ended";
    if (++rounds % 4 == 0) {
      EXPECT_EQ(last_logits(*background, prompt), expected) << rounds;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(last_logits(*background, prompt), expected) << "every copy adopted";
  EXPECT_FALSE(background->adopt_repacked());
  EXPECT_EQ(background->repacked_bytes(), at_load->repacked_bytes());
  // Non-vacuous where the target has a layout of its own for this format.
  const kernels::WeightMatrix probe{
      .type = *kernels::weight_type_named(GetParam().substr(0, 4)), .rows = 8, .cols = 256};
  if (kernels::repacked_type(kernels::active_kernels(), probe)) {
    EXPECT_GT(at_load->repacked_bytes(), 0u);
  }
}

// Formats with a repacked layout on the AVX-512 target (others have none: nothing to adopt).
INSTANTIATE_TEST_SUITE_P(LlamaQ, BackgroundRepackTest,
                         ::testing::Values("Q8_0", "Q4_0", "Q5_0", "Q4_K_M", "Q6_K"));

// A model dropped while its copy runs stops the copy and frees everything (ASan checks).
TEST(BackgroundRepack, DestroyedWhileCopying) {
  util::ThreadPool pool(2);
  for (int i = 0; i < 3; ++i) {
    auto model = Model::load(fixture("models/tiny/llama-q/llama-q-Q8_0.gguf"), pool,
                             Model::Repack::kInBackground);
    if (i == 1) model->adopt_repacked();
  }
}

}  // namespace
}  // namespace lmserve::model
