// A model with its tokenizer and compute threads, loaded once for a command's lifetime.
#pragma once

#include <spdlog/spdlog.h>

#include <future>
#include <memory>

#include "cli/commands.h"
#include "formats/checkpoint.h"
#include "hub/model_source.h"
#include "kernels/cpu.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace lmserve::cli {

struct LoadedModel {
  // `repack`: a server repacks weights in the background (its engine adopts them), so that
  // it answers from the moment the file is mapped; one-shot commands at load.
  LoadedModel(const ModelOptions& o, const hub::HubSettings& settings,
              model::Model::Repack repack = model::Model::Repack::kAtLoad)
      : cpu(kernels::cpu_description()),
        path(hub::resolve_model(o.model, {.revision = o.revision, .hf_file = o.hf_file}, settings)),
        checkpoint(formats::Checkpoint::open(path)),
        pool(o.threads),
        model_loading(
            std::async(std::launch::async,
                       [this, repack] { return model::Model::load(checkpoint, pool, repack); })),
        tokenizer(tokenizer::Tokenizer::load(checkpoint)),
        model(model_loading.get()) {
    spdlog::info("kernels: {}", cpu);
  }

  std::string cpu;                 // the kernels' CPU target (first: LMSERVE_CPU errors come early)
  std::filesystem::path path;      // where --model was found (a Hub id: its HF cache snapshot)
  formats::Checkpoint checkpoint;  // opened once: the model and the tokenizer read it
  util::ThreadPool pool;  // declared before the model, which computes on it until destroyed
  // The model binds its weights on a thread of its own while the tokenizer builds its vocabulary
  // (each takes a few hundred milliseconds on a large vocabulary or file); a failure of either is
  // thrown from here, the tokenizer's first.
  std::future<std::unique_ptr<model::Model>> model_loading;
  tokenizer::Tokenizer tokenizer;
  std::unique_ptr<model::Model> model;
};

}  // namespace lmserve::cli
