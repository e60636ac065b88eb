// An owned, uninitialised byte array aligned for the widest vector loads (64 bytes). Arrays of
// 2 MiB and more (repacked weights) are aligned to 2 MiB and asked to be backed by transparent
// huge pages: a tenth of the page faults to fill them, and fewer TLB misses streaming them.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace lmserve::util {

// Frees an array allocated with `alignment`.
struct AlignedDelete {
  std::size_t alignment = 64;
  void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(alignment)); }
};

class AlignedBytes {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  AlignedBytes() = default;
  explicit AlignedBytes(std::size_t size);

  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<std::byte[], AlignedDelete> data_;
  std::size_t size_ = 0;
};

}  // namespace lmserve::util
