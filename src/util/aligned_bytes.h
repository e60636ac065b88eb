// An owned, uninitialised byte array aligned for the widest vector loads (64 bytes).
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace lmserve::util {

class AlignedBytes {
 public:
  static constexpr std::size_t kAlignment = 64;

  AlignedBytes() = default;
  explicit AlignedBytes(std::size_t size)
      : data_(new (std::align_val_t(kAlignment)) std::byte[size]), size_(size) {}

  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Delete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(kAlignment)); }
  };
  std::unique_ptr<std::byte[], Delete> data_;
  std::size_t size_ = 0;
};

}  // namespace lmserve::util
