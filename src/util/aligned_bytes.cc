#include "util/aligned_bytes.h"

#include <sys/mman.h>

namespace lmserve::util {

AlignedBytes::AlignedBytes(std::size_t size) : size_(size) {
  const std::size_t alignment = size >= kHugePage ? kHugePage : kAlignment;
  data_ = std::unique_ptr<std::byte[], AlignedDelete>(
      new (std::align_val_t(alignment)) std::byte[size], AlignedDelete{alignment});
  // Advice only: without transparent huge pages the array is simply made of small ones.
  if (alignment == kHugePage) ::madvise(data_.get(), size / kHugePage * kHugePage, MADV_HUGEPAGE);
}

}  // namespace lmserve::util
