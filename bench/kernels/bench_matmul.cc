// Kernel micro-benchmark (not a test): weight x activation products at real model shapes for
// 1..N activation rows, reporting time per call, GFLOP/s and weight bytes read per second.
// Quantized weights come from the project's own quantizers (kernels/quant/quantize.h).
//
//   bench_matmul [--rows 8192] [--cols 2048] [--type f16|bf16|f32|q8_0|q4_0|q4_k|q6_k]
//                [--tokens 1,4,16] [--threads 0] [--no-repack]
#include <CLI/CLI.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant/quantize.h"
#include "util/thread_pool.h"

using namespace lmserve;

int main(int argc, char** argv) {
  CLI::App app{"matmul micro-benchmark"};
  int rows = 8192, cols = 2048, threads = 0;
  double seconds = 2.0;
  std::string type = "f16";
  std::vector<int> tokens = {1, 4, 16};
  app.add_option("--rows", rows)->capture_default_str();
  app.add_option("--cols", cols)->capture_default_str();
  app.add_option("--type", type,
                 "f32, f16, bf16 or a quantized format (q8_0, q4_0, q4_k, q6_k, iq4_nl, iq4_xs)")
      ->capture_default_str();
  app.add_option("--tokens", tokens)->delimiter(',');
  app.add_option("--threads", threads, "0 = one per core")->capture_default_str();
  app.add_option("--seconds", seconds, "Time per measurement")->capture_default_str();
  bool no_repack = false;
  app.add_flag("--no-repack", no_repack, "Keep the file layout (no interleaved repack)");
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  std::vector<float> w32(n);
  for (auto& v : w32) v = dist(rng) * 0.02f;
  std::string type_name = type;
  for (char& c : type_name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto weight_type = kernels::weight_type_named(type_name);
  if (!weight_type) {
    std::fprintf(stderr, "unknown --type %s\n", type.c_str());
    return 2;
  }
  std::vector<std::uint16_t> w16;
  std::vector<std::byte> wq;
  kernels::WeightMatrix w{*weight_type, w32.data(), rows, cols};
  if (*weight_type == kernels::WeightType::kF16) {
    w16.resize(n);
    kernels::f32_to_f16(w32.data(), w16.data(), static_cast<int>(n));
    w.data = w16.data();
  } else if (*weight_type == kernels::WeightType::kBF16) {
    w16.resize(n);
    for (std::size_t i = 0; i < n; ++i) w16[i] = kernels::f32_to_bf16(w32[i]);
    w.data = w16.data();
  } else if (*weight_type != kernels::WeightType::kF32) {
    if (!kernels::quant::can_quantize(*weight_type)) {
      std::fprintf(stderr, "no quantizer for --type %s\n", type.c_str());
      return 2;
    }
    const std::size_t row_bytes = kernels::weight_row_bytes(*weight_type, cols);
    wq.resize(row_bytes * static_cast<std::size_t>(rows));
    for (int r = 0; r < rows; ++r)
      kernels::quant::quantize_row(*weight_type, w32.data() + static_cast<std::size_t>(r) * cols,
                                   wq.data() + r * row_bytes, cols);
    w.data = wq.data();
  }
  const double weight_bytes =
      static_cast<double>(kernels::weight_row_bytes(*weight_type, cols)) * rows;
  util::ThreadPool pool(threads);
  // As the model loader does: the layout the CPU target prefers, unless --no-repack.
  std::vector<std::byte> packed;
  if (const auto packed_type = kernels::repacked_type(kernels::active_kernels(), w);
      packed_type && !no_repack) {
    packed.resize(kernels::weight_row_bytes(w.type, cols) * static_cast<std::size_t>(rows));
    w = kernels::repack(kernels::active_kernels(), pool, w, packed.data());
  }
  type = std::string(kernels::weight_format(w.type).name);
  std::printf("{\"rows\": %d, \"cols\": %d, \"type\": \"%s\", \"threads\": %d, \"results\": [\n",
              rows, cols, type.c_str(), pool.size());
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    const int t = tokens[k];
    std::vector<float> x(static_cast<std::size_t>(t) * static_cast<std::size_t>(cols));
    std::vector<float> y(static_cast<std::size_t>(t) * static_cast<std::size_t>(rows));
    for (auto& v : x) v = dist(rng);
    kernels::matmul(pool, w, x.data(), t, y.data());  // warm up
    int calls = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      kernels::matmul(pool, w, x.data(), t, y.data());
      ++calls;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    const double per_call = elapsed / calls;
    std::printf(
        "  {\"tokens\": %d, \"ms_per_call\": %.3f, \"gflops\": %.1f, \"weight_gb_per_s\": "
        "%.1f}%s\n",
        t, per_call * 1e3, 2.0 * static_cast<double>(n) * t / per_call / 1e9,
        weight_bytes / per_call / 1e9, k + 1 < tokens.size() ? "," : "");
  }
  std::printf("]}\n");
  return 0;
}
