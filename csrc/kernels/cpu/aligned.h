// Storage for packed weights: cache-line aligned, as torch's CPU allocator
// aligns tensors (kernels that read 64 bytes per load from packed weights
// would otherwise split every load across two lines: malloc aligns large
// blocks to 16 bytes only), and, from kHugePageMin bytes on Linux, on
// transparent huge pages: a decode step streams every weight once, and from
// 4 KB pages each 4 KB costs a TLB miss and a page walk (a 2 GB torch.sum read
// 24.6-25.5 GB/s from 4 KB pages against 27.1-28.6 from 2 MB ones, Intel Xeon
// VM, 2 threads). The pages are asked for before the first write (with THP in
// its default "madvise" mode a later request would wait for khugepaged).
// TORCHAO_CPP_HUGE_PAGES=0 turns this off (read at each allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace torchao_cpp {
namespace kernels {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugePageMin = 2 * kHugePage;  // below, the aligned tail would waste more than it gains

inline bool huge_pages_wanted(size_t bytes) {
#ifdef __linux__
  if (bytes < kHugePageMin) return false;
  const char* env = std::getenv("TORCHAO_CPP_HUGE_PAGES");
  return env == nullptr || std::strcmp(env, "0") != 0;
#else
  (void)bytes;
  return false;
#endif
}

// `bytes` of storage, 64-byte aligned. From kHugePageMin bytes on Linux a
// mapping of its own, 2 MB aligned and, where huge_pages_wanted, advised as
// huge pages before its first write (heap memory that malloc hands out again
// is already on 4 KB pages). Free with free_weight_storage(p, bytes), which
// decides by size alone. Throws std::bad_alloc.
inline void* allocate_weight_storage(size_t bytes) {
#ifdef __linux__
  if (bytes >= kHugePageMin) {
    const size_t len = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t r = reinterpret_cast<uintptr_t>(raw), a = (r + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
    if (a > r) munmap(raw, a - r);
    if (a - r < kHugePage) munmap(reinterpret_cast<void*>(a + len), kHugePage - (a - r));
    // Advice only: without THP the block stays on 4 KB pages. A tail short of 2 MB keeps them too, so that
    // it commits only the pages it uses.
    if (huge_pages_wanted(bytes)) (void)madvise(reinterpret_cast<void*>(a), bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
    return reinterpret_cast<void*>(a);
  }
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0) throw std::bad_alloc();
  return p;
#else
  return ::operator new(bytes, std::align_val_t{64});
#endif
}
inline void free_weight_storage(void* p, size_t bytes) {
#ifdef __linux__
  if (bytes >= kHugePageMin) {
    munmap(p, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    return;
  }
  std::free(p);
#else
  (void)bytes;
  ::operator delete(p, std::align_val_t{64});
#endif
}

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_weight_storage(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_weight_storage(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace kernels
}  // namespace torchao_cpp
