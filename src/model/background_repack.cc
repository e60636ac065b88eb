#include "model/background_repack.h"

#include <new>

#include "kernels/cpu.h"

namespace lmserve::model {

BackgroundRepack::BackgroundRepack(std::vector<kernels::WeightMatrix> sources,
                                   std::size_t ahead_bytes)
    : sources_(std::move(sources)), ahead_bytes_(ahead_bytes) {
  thread_ = std::thread([this] { run(); });
}

BackgroundRepack::~BackgroundRepack() {
  stop_ = true;
  changed_.notify_all();
  thread_.join();
}

void BackgroundRepack::run() {
  const auto& target = kernels::active_kernels();
  for (std::size_t i = 0; i < sources_.size(); ++i) {
    const auto& w = sources_[i];
    const std::size_t size = kernels::weight_row_bytes(w.type, w.cols) * w.rows;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] {
        return stop_ || finished_.empty() || finished_bytes_ + size <= ahead_bytes_;
      });
    }
    if (stop_) break;
    try {
      util::AlignedBytes bytes(size);
      auto packed = kernels::repack(target, w, bytes.data(), stop_);
      if (!packed) break;
      std::lock_guard lock(mutex_);
      finished_.push_back({i, *packed, std::move(bytes)});
      finished_bytes_ += size;
    } catch (const std::bad_alloc&) {
      // The model keeps computing from the file's layout: slower, the same results.
      break;
    }
    changed_.notify_all();
  }
  std::lock_guard lock(mutex_);
  done_ = true;
  changed_.notify_all();
}

std::vector<BackgroundRepack::Copy> BackgroundRepack::take_finished() {
  std::vector<Copy> out;
  {
    std::lock_guard lock(mutex_);
    out.swap(finished_);
    finished_bytes_ = 0;
  }
  changed_.notify_all();
  return out;
}

bool BackgroundRepack::pending() const {
  std::lock_guard lock(mutex_);
  return !(done_ && finished_.empty());
}

}  // namespace lmserve::model
