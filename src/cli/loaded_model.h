// A model with its tokenizer and compute threads, loaded once for a command's lifetime.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

#include "cli/commands.h"
#include "kernels/cpu.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace lmserve::cli {

struct LoadedModel {
  explicit LoadedModel(const ModelOptions& o)
      : cpu(kernels::cpu_description()),
        pool(o.threads),
        tokenizer(tokenizer::Tokenizer::load(o.model)),
        model(model::Model::load(o.model, pool)) {
    spdlog::info("kernels: {}", cpu);
  }

  std::string cpu;        // the kernels' CPU target (first: LMSERVE_CPU errors come before loading)
  util::ThreadPool pool;  // declared first: the model computes on it until destroyed
  tokenizer::Tokenizer tokenizer;
  std::unique_ptr<model::Model> model;
};

}  // namespace lmserve::cli
