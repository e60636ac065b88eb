// Copies weight matrices into the CPU target's faster layout (kernels/matmul.h repack) on a
// thread of its own, while the model computes from the file's layout: both layouts give the same
// bits, so a server answers its first request as soon as the file is mapped instead of after
// copying every weight. The thread that runs forward passes takes each finished copy between
// passes and swaps it in (TransformerModel::adopt_repacked).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/matmul.h"
#include "util/aligned_bytes.h"

namespace lmserve::model {

class BackgroundRepack {
 public:
  // A finished copy of sources[index].
  struct Copy {
    std::size_t index = 0;
    kernels::WeightMatrix packed;
    util::AlignedBytes bytes;
  };

  // Starts copying `sources` (each one the target repacks) in order. Finished copies not yet
  // taken are held to `ahead_bytes` (one copy may always wait, however large), so the copies
  // and the file pages they replace are never both resident for more than that.
  BackgroundRepack(std::vector<kernels::WeightMatrix> sources, std::size_t ahead_bytes);
  ~BackgroundRepack();  // stops within one slice of rows and joins
  BackgroundRepack(const BackgroundRepack&) = delete;
  BackgroundRepack& operator=(const BackgroundRepack&) = delete;

  // The copies finished since the last call, in order (none: empty).
  std::vector<Copy> take_finished();
  // True until every copy was taken (or the thread gave up: out of memory).
  bool pending() const;

 private:
  void run();

  const std::vector<kernels::WeightMatrix> sources_;
  const std::size_t ahead_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Copy> finished_;      // guarded by mutex_
  std::size_t finished_bytes_ = 0;  // guarded by mutex_
  bool done_ = false;               // the thread has ended; guarded by mutex_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lmserve::model
