#pragma once
// Grid-sized arrays whose new elements are left uninitialised (default-initialised), for arrays
// that a parallel loop writes first anyway: the page faults and the kernel's page zeroing are
// then shared among the threads, instead of falling on one thread's serial value-initialisation
// before the parallel loop runs (std::vector<T>(n) writes every element once more).
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dcdm::detail {

// Asks the kernel to back the whole 2 MiB pages inside [p, p + bytes) with transparent huge
// pages (where it offers them only on request, "madvise" mode): one page fault per 2 MiB
// instead of per 4 KiB, which on virtual machines, where a fault is expensive, is most of a
// large set-up. Only pages wholly inside the block, so nothing beyond it becomes resident.
// DCDM_HUGE_PAGES=0 in the environment turns it off (a machine where clearing 2 MiB pages or
// compacting memory for them costs more than the faults saved).
inline void advise_huge_pages(void* p, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  static const bool enabled = [] {
    const char* v = std::getenv("DCDM_HUGE_PAGES");
    return !(v && std::string_view(v) == "0");
  }();
  if (!enabled || bytes < 2 * kHuge) return;
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

template <class T>
struct UninitialisedAllocator {
  using value_type = T;
  UninitialisedAllocator() = default;
  template <class U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    T* p = std::allocator<T>().allocate(n);
    advise_huge_pages(p, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const UninitialisedAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const UninitialisedAllocator<U>&) const noexcept { return false; }
};

template <class T>
using UninitialisedVector = std::vector<T, UninitialisedAllocator<T>>;

}  // namespace dcdm::detail
