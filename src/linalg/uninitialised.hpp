#pragma once
// Grid-sized arrays whose new elements are left uninitialised (default-initialised), for arrays
// that a parallel loop writes first anyway: the page faults and the kernel's page zeroing are
// then shared among the threads, instead of falling on one thread's serial value-initialisation
// before the parallel loop runs (std::vector<T>(n) writes every element once more).
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace dcdm::detail {

template <class T>
struct UninitialisedAllocator {
  using value_type = T;
  UninitialisedAllocator() = default;
  template <class U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
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
