// An allocator whose value-initialization (vector::resize(n)) leaves trivial elements
// uninitialized: a large scratch buffer is then committed page by page as it is first written,
// instead of being zeroed (and made resident) in full when it is sized.
#pragma once

#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace lmserve::util {

template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}

  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;  // default-, not value-initialized
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::allocator_traits<std::allocator<T>>::construct(static_cast<std::allocator<T>&>(*this), p,
                                                        std::forward<Args>(args)...);
  }
};

// A vector of scratch values whose resize() does not write them.
template <class T>
using ScratchVector = std::vector<T, UninitializedAllocator<T>>;

}  // namespace lmserve::util
