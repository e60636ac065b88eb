// Prompt processing and decode speed of one model file with lmserve's kernels, the way
// llama-bench measures its pp512 and tg128: pp = one forward over N prompt tokens, tg = M
// single-token forwards from an empty context (a test of its own, as llama-bench's tg has no
// prompt); medians of --reps runs after a warm-up, JSON on stdout. bench/models/compare.sh runs
// it beside the llama.cpp peer on the same files; bench/serving measures decode at long contexts.
//
// Usage: bench_model --model FILE|DIR [--threads 2] [--pp 512] [--tg 128] [--reps 3]
//        bench_model --model FILE|DIR --batch 1,4,16 [--context 128] [--tg 32]
//                    (decode of N sequences in lockstep, one batched forward a step, the way
//                    the engine steps them: aggregate tokens/s per N, without HTTP or clients)
//        bench_model --bandwidth [--threads 2]   (read bandwidth: decode's ceiling is
//                                                 bandwidth / bytes of weights per token)
// tg_ceiling_fraction: the median of tg / ceiling over the parts of the reps' tg runs, each
// part's ceiling from the bandwidth measured right before and right after it (timed_decode).
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
#include "kernels/ops.h"
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
// buffer is the probe's own, so that it can be left out of the peak RSS (PeakRss).
class BandwidthProbe {
 public:
  explicit BandwidthProbe(std::size_t bytes) : buffer_(bytes / sizeof(std::uint64_t), 1) {}

  double measure(lmserve::util::ThreadPool& pool, int passes) const {
    const std::size_t n = buffer_.size();
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
              for (std::size_t i = t * n / parts; i < (t + 1) * n / parts; ++i) sum += buffer_[i];
              sums[t] = sum;
            }
          },
          1);
      const double bytes = static_cast<double>(n * sizeof(std::uint64_t));
      best = std::max(best, bytes / seconds_since(t0) / 1e9);
      if (sums[0] == 0) std::cerr << "";  // keep the reads
    }
    return best;
  }

 private:
  std::vector<std::uint64_t> buffer_;
};

// The greedy pick, as the engine's sampler makes it.
std::int32_t argmax(std::span<const float> logits) {
  return lmserve::kernels::argmax(logits.data(), static_cast<int>(logits.size()));
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

long status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return 0;
}

// The peak resident memory of the model's work, less the bandwidth probe's buffer: while a probe
// lives, the kernel's high-water mark is set aside; after it, the model's memory (which only
// grows) is the current RSS, and the mark is reset to it.
class PeakRss {
 public:
  void probe_begins() { peak_kib_ = std::max(peak_kib_, status_kib("VmHWM:")); }
  void probe_ended() {
    peak_kib_ = std::max(peak_kib_, status_kib("VmRSS:"));
    std::ofstream("/proc/self/clear_refs") << "5";
  }
  long kib() const { return std::max(peak_kib_, status_kib("VmHWM:")); }

 private:
  long peak_kib_ = 0;
};

// One tg run of `tg` greedy tokens after `first`, in kSegments parts with the read bandwidth
// measured between them: this VM's bandwidth moves from one second to the next, so each part's
// ceiling is the mean of the bandwidths right before and right after it.
struct DecodeRun {
  double seconds = 0.0;
  std::vector<double> ceiling_fractions;  // one a part
  std::vector<double> bandwidths_gb_s;
};
DecodeRun timed_decode(lmserve::model::Model& model, lmserve::model::KvCache& cache,
                       std::int32_t first, int tg, lmserve::util::ThreadPool& pool,
                       PeakRss& peak_rss) {
  constexpr int kSegments = 4, kProbePasses = 2;
  constexpr std::size_t kProbeBytes = std::size_t{256} << 20;  // 8x this machine's L3
  std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
  DecodeRun run;
  peak_rss.probe_begins();
  {
    const BandwidthProbe probe(kProbeBytes);
    run.bandwidths_gb_s.push_back(probe.measure(pool, kProbePasses));
    std::int32_t next = first;
    for (int s = 0; s < kSegments; ++s) {
      const int n = tg * (s + 1) / kSegments - tg * s / kSegments;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) {
        model.forward(std::span(&next, 1), cache, logits);
        next = argmax(logits);
      }
      const double seconds = seconds_since(t0);
      run.seconds += seconds;
      run.bandwidths_gb_s.push_back(probe.measure(pool, kProbePasses));
      const double gb_s = (run.bandwidths_gb_s[s] + run.bandwidths_gb_s[s + 1]) / 2;
      const double ceiling = gb_s * 1e9 / static_cast<double>(model.weight_bytes());
      if (n > 0) run.ceiling_fractions.push_back(n / seconds / ceiling);
    }
  }
  peak_rss.probe_ended();
  return run;
}

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
      std::cout << BandwidthProbe(std::size_t{1} << 30).measure(pool, 5) << "\n";
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
    PeakRss peak_rss;
    // A warm-up forward, as llama-bench does: the first one pays once-only costs (the
    // workspace, the first touch of the KV pool) that a served model has long paid.
    {
      auto cache = model->new_cache(pp + tg, lmserve::model::KvType::kF16);
      model->forward(std::span(prompt).first(std::min(pp, 16)), *cache, logits);
    }
    std::vector<double> pp_rate, tg_rate, tg_ceiling_fraction, bandwidth_around_tg;
    for (int r = 0; r < reps; ++r) {
      // F16, the server's default KV type.
      auto prompt_cache = model->new_cache(pp, lmserve::model::KvType::kF16);
      const auto t0 = std::chrono::steady_clock::now();
      model->forward(prompt, *prompt_cache, logits);
      pp_rate.push_back(pp / seconds_since(t0));
      auto cache = model->new_cache(tg, lmserve::model::KvType::kF16);
      const DecodeRun run = timed_decode(*model, *cache, prompt.front(), tg, pool, peak_rss);
      tg_rate.push_back(tg / run.seconds);
      tg_ceiling_fraction.insert(tg_ceiling_fraction.end(), run.ceiling_fractions.begin(),
                                 run.ceiling_fractions.end());
      bandwidth_around_tg.insert(bandwidth_around_tg.end(), run.bandwidths_gb_s.begin(),
                                 run.bandwidths_gb_s.end());
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
