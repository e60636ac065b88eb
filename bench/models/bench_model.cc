// Prompt processing and decode speed of one model file with lmserve's kernels, the way
// llama-bench measures them: pp = one forward over N prompt tokens, tg = M single-token forwards
// after it; medians of --reps runs after a warm-up, JSON on stdout. bench/models/compare.sh runs
// it beside the llama.cpp peer on the same files.
//
// Usage: bench_model --model FILE|DIR [--threads 2] [--pp 512] [--tg 128] [--reps 3]
//        bench_model --model FILE|DIR --batch 1,4,16 [--context 128] [--tg 32]
//                    (decode of N sequences in lockstep, one batched forward a step, the way
//                    the engine steps them: aggregate tokens/s per N, without HTTP or clients)
//        bench_model --bandwidth [--threads 2]   (read bandwidth: decode's ceiling is
//                                                 bandwidth / bytes of weights per token)
// tg_ceiling_fraction: the median over reps of tg / ceiling, each rep's ceiling from the
// bandwidth measured right before and right after its tg run.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "model/kv_pool.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Read bandwidth: GB/s reading a buffer much larger than any cache, best of a few passes. The
// buffer lives only while it is measured, so that it can be left out of the peak RSS (PeakRss).
double read_bandwidth(lmserve::util::ThreadPool& pool, int passes) {
  const std::vector<std::uint64_t> buffer((std::size_t{1} << 30) / sizeof(std::uint64_t), 1);
  const std::size_t n = buffer.size();
  const auto parts = static_cast<std::size_t>(pool.size());
  double best = 0.0;
  for (int pass = 0; pass < passes; ++pass) {
    std::vector<std::uint64_t> sums(parts);
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(
        parts,
        [&](std::size_t begin, std::size_t end) {
          for (std::size_t t = begin; t < end; ++t) {
            std::uint64_t sum = 0;
            for (std::size_t i = t * n / parts; i < (t + 1) * n / parts; ++i) sum += buffer[i];
            sums[t] = sum;
          }
        },
        1);
    best = std::max(best, static_cast<double>(n * sizeof(std::uint64_t)) / seconds_since(t0) / 1e9);
    if (sums[0] == 0) std::cerr << "";  // keep the reads
  }
  return best;
}

std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Aggregate decode tokens/s of n sequences that each hold `context` positions and then
// generate `tg` tokens together: every step one forward of n rows (greedy, as the engine's
// sampler would pick from each row's logits).
double batched_decode_rate(lmserve::model::Model& model, int n, int context, int tg) {
  using namespace lmserve::model;
  constexpr int kBlock = 16;
  const KvLayout layout = model.kv_layout(KvType::kF16, kBlock, context + tg);
  const int per_sequence = (context + tg + kBlock - 1) / kBlock;
  KvPools pools(layout, std::vector<int>(layout.kinds.size(), n * per_sequence));
  std::vector<std::vector<std::vector<BlockId>>> tables(static_cast<std::size_t>(n));
  for (auto& table : tables) {
    for (int k = 0; k < pools.num_kinds(); ++k) {
      auto& blocks = table.emplace_back();
      for (int b = 0; b < per_sequence; ++b) blocks.push_back(*pools[k].allocate());
    }
  }
  const auto vocab = static_cast<std::size_t>(model.config().vocab_size);
  std::vector<float> logits(vocab * static_cast<std::size_t>(n));
  std::vector<std::int32_t> tokens;
  std::vector<BatchSequence> sequences;
  // Each sequence's context, one prefill each (distinct tokens: no two sequences alike).
  for (int s = 0; s < n; ++s) {
    tokens.assign(static_cast<std::size_t>(context), 0);
    for (int i = 0; i < context; ++i)
      tokens[static_cast<std::size_t>(i)] = 1000 + (i * 7919 + s * 104729) % 20000;
    const BatchSequence seq{.n_rows = context,
                            .start_pos = 0,
                            .blocks = tables[static_cast<std::size_t>(s)],
                            .want_logits = true};
    model.forward({.tokens = tokens, .sequences = std::span(&seq, 1)}, pools,
                  std::span(logits).first(vocab));
  }
  tokens.assign(static_cast<std::size_t>(n), 1000);
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < tg; ++step) {
    sequences.clear();
    for (int s = 0; s < n; ++s) {
      sequences.push_back({.n_rows = 1,
                           .start_pos = context + step,
                           .blocks = tables[static_cast<std::size_t>(s)],
                           .want_logits = true});
    }
    model.forward({.tokens = tokens, .sequences = sequences}, pools, logits);
    for (int s = 0; s < n; ++s) {
      tokens[static_cast<std::size_t>(s)] =
          argmax(std::span(logits).subspan(static_cast<std::size_t>(s) * vocab, vocab));
    }
  }
  return static_cast<double>(n) * tg / seconds_since(t0);
}

long high_water_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// The peak resident memory of the model's work, less the bandwidth probe's buffer: the kernel's
// high-water mark is taken before each probe and reset to the current RSS after it.
class PeakRss {
 public:
  double read_bandwidth_outside(lmserve::util::ThreadPool& pool, int passes) {
    peak_kib_ = std::max(peak_kib_, high_water_rss_kib());
    const double gb_s = read_bandwidth(pool, passes);
    std::ofstream("/proc/self/clear_refs") << "5";
    return gb_s;
  }
  long kib() const { return std::max(peak_kib_, high_water_rss_kib()); }

 private:
  long peak_kib_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lmserve model speed: pp and tg tokens per second"};
  std::string model_path;
  int threads = 2, pp = 512, tg = 128, reps = 3, context = 128;
  bool bandwidth = false;
  std::vector<int> batch;
  app.add_option("--model", model_path, "GGUF file or HF folder");
  app.add_flag("--bandwidth", bandwidth, "Measure read bandwidth instead (GB/s)");
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--pp", pp, "Prompt tokens")->capture_default_str();
  app.add_option("--tg", tg, "Generated tokens")->capture_default_str();
  app.add_option("--reps", reps)->capture_default_str();
  app.add_option("--batch", batch, "Batched decode: sequence counts (e.g. 1,4,16)")->delimiter(',');
  app.add_option("--context", context, "Batched decode: positions each sequence holds first")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (bandwidth) {
      lmserve::util::ThreadPool pool(threads);
      std::cout << read_bandwidth(pool, 5) << "\n";
      return 0;
    }
    if (model_path.empty()) throw std::runtime_error("--model is required");
    const auto t_load = std::chrono::steady_clock::now();
    lmserve::util::ThreadPool pool(threads);
    auto model = lmserve::model::Model::load(model_path, pool);
    const double load_s = seconds_since(t_load);
    if (!batch.empty()) {
      // Every count once a rep, in turn: the counts see the same machine (this VM's bandwidth
      // moves from minute to minute), so their ratios hold even when the rates move.
      std::vector<std::vector<double>> rate(batch.size());
      for (int r = 0; r < reps; ++r) {
        for (std::size_t i = 0; i < batch.size(); ++i)
          rate[i].push_back(batched_decode_rate(*model, batch[i], context, tg));
      }
      nlohmann::json rates = nlohmann::json::object();
      for (std::size_t i = 0; i < batch.size(); ++i)
        rates[std::to_string(batch[i])] = median(rate[i]);
      std::cout << nlohmann::json{{"engine", "lmserve"},
                                  {"threads", threads},
                                  {"context", context},
                                  {"tg", tg},
                                  {"batch_decode_tok_s", rates}}
                       .dump()
                << "\n";
      return 0;
    }
    const int vocab = model->config().vocab_size;
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    // Arbitrary in-vocabulary ids: speed does not depend on which.
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(pp));
    for (int i = 0; i < pp; ++i) prompt[static_cast<std::size_t>(i)] = 1000 + (i * 7919) % 20000;
    // This VM's read bandwidth moves from minute to minute, so each tg run's ceiling is the
    // bandwidth measured right before and right after it (their mean; both are reported).
    PeakRss peak_rss;
    // A warm-up forward, as llama-bench does: the first one pays once-only costs (the
    // workspace, the first touch of the KV pool) that a served model has long paid.
    {
      auto cache = model->new_cache(pp + tg, lmserve::model::KvType::kF16);
      model->forward(std::span(prompt).first(std::min(pp, 16)), *cache, logits);
    }
    std::vector<double> pp_rate, tg_rate, tg_ceiling_fraction, bandwidth_around_tg;
    for (int r = 0; r < reps; ++r) {
      auto cache = model->new_cache(pp + tg, lmserve::model::KvType::kF16);  // the server's default
      auto t0 = std::chrono::steady_clock::now();
      model->forward(prompt, *cache, logits);
      pp_rate.push_back(pp / seconds_since(t0));
      const double bandwidth_before = peak_rss.read_bandwidth_outside(pool, 3);
      t0 = std::chrono::steady_clock::now();
      std::int32_t next = prompt.back();
      for (int i = 0; i < tg; ++i) {
        model->forward(std::span(&next, 1), *cache, logits);
        next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                         logits.begin());
      }
      tg_rate.push_back(tg / seconds_since(t0));
      const double bandwidth_after = peak_rss.read_bandwidth_outside(pool, 3);
      bandwidth_around_tg.push_back(bandwidth_before);
      bandwidth_around_tg.push_back(bandwidth_after);
      const double ceiling = (bandwidth_before + bandwidth_after) / 2 * 1e9 /
                             static_cast<double>(model->weight_bytes());
      tg_ceiling_fraction.push_back(tg_rate.back() / ceiling);
    }
    const auto [low, high] =
        std::minmax_element(bandwidth_around_tg.begin(), bandwidth_around_tg.end());
    nlohmann::json out = {{"engine", "lmserve"},
                          {"cpu", lmserve::kernels::cpu_description()},
                          {"threads", threads},
                          {"load_s", load_s},
                          {"pp", pp},
                          {"tg", tg},
                          {"pp_tok_s", median(pp_rate)},
                          {"tg_tok_s", median(tg_rate)},
                          {"weight_bytes", model->weight_bytes()},
                          {"tg_ceiling_fraction", median(tg_ceiling_fraction)},
                          {"bandwidth_around_tg_gb_s", {*low, *high}},
                          {"peak_rss_mib", peak_rss.kib() / 1024}};
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_model: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
