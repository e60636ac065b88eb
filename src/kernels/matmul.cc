#include "kernels/matmul.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu.h"
#include "kernels/target_kernels.h"
#include "util/aligned_bytes.h"

namespace lmserve::kernels {

namespace {

// Below this many multiply-adds a product is cheaper than waking the pool.
constexpr long kMinParallelWork = 1L << 17;
// Rows per unit of parallel work: a multiple of every kernel's tile height and of the
// interleaved formats' groups.
constexpr int kRowGrain = 16;

// The quantized activations of one product, grown to the largest product seen and then reused:
// a step allocates nothing once the first one has run.
class ActivationBuffer {
 public:
  std::byte* fit(std::size_t bytes) {
    if (bytes > bytes_.size()) bytes_ = util::AlignedBytes(bytes);
    return bytes_.data();
  }

 private:
  util::AlignedBytes bytes_;
};

}  // namespace

void matmul(const TargetKernels& target, util::ThreadPool& pool,
            std::span<const Product> products, const float* x, int n_tokens) {
  if (n_tokens <= 0 || products.empty()) return;
  const int cols = products.front().w->cols;
  long work = 0;
  std::size_t n_units = 0;
  for (const Product& p : products) {
    if (p.w->cols != cols) {
      throw std::invalid_argument("matmul: products of one input have " + std::to_string(cols) +
                                  " and " + std::to_string(p.w->cols) + " columns");
    }
    work += static_cast<long>(p.w->rows) * cols * n_tokens;
    n_units += static_cast<std::size_t>((p.w->rows + kRowGrain - 1) / kRowGrain);
  }
  if (n_units == 0) return;
  const bool parallel = work >= kMinParallelWork && pool.size() > 1;

  // x in each activation form the products read, quantized once per form.
  struct Input {
    const std::byte* data = nullptr;
    std::size_t stride = 0;
  };
  Input inputs[kActivationTypeCount];
  thread_local ActivationBuffer buffers[kActivationTypeCount];
  for (const Product& p : products) {
    const ActivationType act = weight_format(p.w->type).activation;
    Input& in = inputs[static_cast<int>(act)];
    if (in.data != nullptr) continue;
    if (act == ActivationType::kF32) {
      in = {reinterpret_cast<const std::byte*>(x), static_cast<std::size_t>(cols) * sizeof(float)};
      continue;
    }
    const std::size_t stride = activation_row_bytes(act, cols);
    std::byte* q = buffers[static_cast<int>(act)].fit(stride * static_cast<std::size_t>(n_tokens));
    const QuantizeFn quantize = target.quantize[static_cast<int>(act)];
    auto quantize_rows = [&](std::size_t begin, std::size_t end) {
      for (std::size_t t = begin; t < end; ++t)
        quantize(x + t * static_cast<std::size_t>(cols), q + t * stride, cols);
    };
    if (parallel && n_tokens > 1) {
      pool.parallel_for(static_cast<std::size_t>(n_tokens), quantize_rows);
    } else {
      quantize_rows(0, static_cast<std::size_t>(n_tokens));
    }
    in = {q, stride};
  }

  // Units of kRowGrain rows, the products' one after another.
  auto body = [&](std::size_t begin, std::size_t end) {
    std::size_t first = 0;  // the current product's first unit
    for (const Product& p : products) {
      const WeightMatrix& w = *p.w;
      const auto units = static_cast<std::size_t>((w.rows + kRowGrain - 1) / kRowGrain);
      const std::size_t lo = std::max(begin, first), hi = std::min(end, first + units);
      if (lo < hi) {
        const Input& in = inputs[static_cast<int>(weight_format(w.type).activation)];
        target.matmul_rows[static_cast<int>(w.type)](
            w, in.data, in.stride, n_tokens, p.y, static_cast<int>(lo - first) * kRowGrain,
            std::min(w.rows, static_cast<int>(hi - first) * kRowGrain));
      }
      first += units;
      if (first >= end) break;
    }
  };
  if (!parallel) {
    body(0, n_units);
    return;
  }
  const long per_unit = static_cast<long>(kRowGrain) * cols * n_tokens;
  const auto min_chunk = static_cast<std::size_t>(std::max(1L, (kMinParallelWork / 4) / per_unit));
  pool.parallel_for(n_units, body, min_chunk);
}

void matmul(util::ThreadPool& pool, std::span<const Product> products, const float* x,
            int n_tokens) {
  matmul(active_kernels(), pool, products, x, n_tokens);
}

void matmul(const TargetKernels& target, util::ThreadPool& pool, const WeightMatrix& w,
            const float* x, int n_tokens, float* y) {
  const Product product{&w, y};
  matmul(target, pool, std::span(&product, 1), x, n_tokens);
}

void matmul(util::ThreadPool& pool, const WeightMatrix& w, const float* x, int n_tokens, float* y) {
  matmul(active_kernels(), pool, w, x, n_tokens, y);
}

WeightMatrix weight_rows(const WeightMatrix& w, int first, int n) {
  const int group = weight_format(w.type).interleave;
  if (first % group != 0 || n % group != 0) {
    throw std::invalid_argument("weight_rows: rows " + std::to_string(first) + " + " +
                                std::to_string(n) + " split a group of " + std::to_string(group) +
                                " interleaved rows");
  }
  WeightMatrix part = w;
  part.rows = n;
  part.data = weight_row(w, first);
  if (w.group_size > 0) {
    const std::size_t skip = static_cast<std::size_t>(first) *
                             static_cast<std::size_t>(w.cols / w.group_size) *
                             weight_format(w.scale_type).block_bytes;
    part.scales = static_cast<const std::byte*>(w.scales) + skip;
    part.biases = static_cast<const std::byte*>(w.biases) + skip;
  }
  return part;
}

std::optional<WeightType> repacked_type(const TargetKernels& target, const WeightMatrix& w) {
  const auto& repack = target.repack[static_cast<int>(w.type)];
  const int group = repack.fn != nullptr ? weight_format(repack.type).interleave : 0;
  if (group == 0 || w.rows % group != 0 ||
      w.cols % weight_format(repack.type).block_elements != 0 || w.group_size != 0) {
    return std::nullopt;
  }
  return repack.type;
}

namespace {

// The repack function of w's format on `target`, its group count, and the matrix over `out`.
struct RepackPlan {
  RepackFn fn;
  int groups;
  WeightMatrix packed;
};
RepackPlan plan_repack(const TargetKernels& target, const WeightMatrix& w, std::byte* out) {
  const auto type = repacked_type(target, w);
  if (!type) throw std::invalid_argument("repack: the target keeps this matrix as it is");
  WeightMatrix packed = w;
  packed.type = *type;
  packed.data = out;
  return {target.repack[static_cast<int>(w.type)].fn, w.rows / weight_format(*type).interleave,
          packed};
}

}  // namespace

WeightMatrix repack(const TargetKernels& target, util::ThreadPool& pool, const WeightMatrix& w,
                    std::byte* out) {
  const RepackPlan plan = plan_repack(target, w, out);
  pool.parallel_for(static_cast<std::size_t>(plan.groups), [&](std::size_t begin, std::size_t end) {
    plan.fn(w, out, static_cast<int>(begin), static_cast<int>(end));
  });
  return plan.packed;
}

std::optional<WeightMatrix> repack(const TargetKernels& target, const WeightMatrix& w,
                                   std::byte* out, const std::atomic<bool>& stop) {
  // A slice is a few MiB: stopping waits milliseconds, not a whole embedding's copy.
  constexpr int kSliceGroups = 256;
  const RepackPlan plan = plan_repack(target, w, out);
  for (int g = 0; g < plan.groups; g += kSliceGroups) {
    if (stop.load(std::memory_order_relaxed)) return std::nullopt;
    plan.fn(w, out, g, std::min(plan.groups, g + kSliceGroups));
  }
  return plan.packed;
}

void weight_row_to_f32(const WeightMatrix& w, int row, float* out) {
  active_kernels().dequantize[static_cast<int>(w.type)](w, row, out);
}

}  // namespace lmserve::kernels
