// std::vector storage aligned to cache lines, as torch's CPU allocator aligns
// tensors: kernels that read 64 bytes per load from packed weights would
// otherwise split every load across two lines (malloc aligns large blocks to
// 16 bytes only).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace torchao_cpp {
namespace kernels {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace kernels
}  // namespace torchao_cpp
