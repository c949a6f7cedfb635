#pragma once
// Grid-sized arrays whose new elements are left uninitialised (default-initialised), for arrays
// that a parallel loop writes first anyway: the page faults and the kernel's page zeroing are
// then shared among the threads, instead of falling on one thread's serial value-initialisation
// before the parallel loop runs (std::vector<T>(n) writes every element once more).
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dcdm::detail {

inline constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

// Whether the large blocks below ask for transparent huge pages: DCDM_HUGE_PAGES=0 in the
// environment turns it off (a machine where clearing 2 MiB pages or compacting memory for them
// costs more than the faults saved).
inline bool huge_pages_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("DCDM_HUGE_PAGES");
    return !(v && std::string_view(v) == "0");
  }();
  return enabled;
}

// Asks the kernel to back the whole 2 MiB pages inside [p, p + bytes) with transparent huge
// pages (where it offers them only on request, "madvise" mode): one page fault per 2 MiB
// instead of per 4 KiB, which on virtual machines, where a fault is expensive, is most of a
// large set-up. Only pages wholly inside the block, so nothing beyond it becomes resident.
inline void advise_huge_pages(void* p, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = kHugePageBytes;
  if (!huge_pages_enabled() || bytes < kHuge) return;
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// A block of `bytes` aligned to `align` (a power of two, at least a pointer's), released with
// std::free. A large one (2 MiB or more, huge pages enabled) starts on a 2 MiB boundary, so that
// huge pages back all of it but the tail beyond its last whole 2 MiB: an unaligned block leaves
// on average 2 MiB of its ends to 4 KiB faults, 512 of them, which on a virtual machine with
// 12-microsecond faults is 6 ms a block. (Padding the tail to a whole huge page as well measured
// no faster, and costs up to 2 MiB a block.) Null where memory is short.
inline void* allocate_large_aligned(std::size_t bytes, std::size_t align) {
  void* p = nullptr;
  const bool large = huge_pages_enabled() && bytes >= kHugePageBytes;
  if (posix_memalign(&p, std::max(align, large ? kHugePageBytes : sizeof(void*)), bytes == 0 ? 1 : bytes) != 0)
    return nullptr;
  if (large) advise_huge_pages(p, bytes);
  return p;
}

// What the allocators below share: elements default-initialised (no value-initialising pass
// before the loop that writes them), and an array's size in bytes, checked.
struct DefaultInitialising {
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <class T>
std::size_t array_bytes(std::size_t n) {
  if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
  return n * sizeof(T);
}

template <class T>
constexpr std::size_t kArrayAlign = alignof(T) > 64 ? alignof(T) : 64;  // a cache line at least

template <class T>
T* allocated_or_throw(void* p) {
  if (!p) throw std::bad_alloc();
  return static_cast<T*>(p);
}

template <class T>
struct UninitialisedAllocator : DefaultInitialising {
  using value_type = T;
  UninitialisedAllocator() = default;
  template <class U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return allocated_or_throw<T>(allocate_large_aligned(array_bytes<T>(n), kArrayAlign<T>)); }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const UninitialisedAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const UninitialisedAllocator<U>&) const noexcept { return false; }
};

template <class T>
using UninitialisedVector = std::vector<T, UninitialisedAllocator<T>>;

// A bump allocator over one reservation of address space, for arrays made once and freed
// together (a multigrid hierarchy's levels): they lie end to end in huge pages (the
// reservation starts on a 2 MiB boundary and is advised), so that small arrays and the ends of
// large ones share whole huge pages instead of each taking 4 KiB faults of its own (a 0.7 MB
// level array is 170 faults). Only the pages the arrays touch become resident. Freeing inside
// the arena does nothing (the space returns with it); a request beyond the reservation, or an
// arena whose reservation the kernel refused, gets a block of its own (allocate_large_aligned).
class Arena {
 public:
  explicit Arena(std::size_t capacity) {
    const std::size_t bytes = (capacity + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
    void* m = ::mmap(nullptr, bytes + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (m == MAP_FAILED) return;
    map_ = m;
    map_bytes_ = bytes + kHugePageBytes;
    base_ = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(m) + kHugePageBytes - 1) & ~(kHugePageBytes - 1));
    capacity_ = bytes;
    advise_huge_pages(base_, capacity_);
  }
  ~Arena() {
    if (map_) ::munmap(map_, map_bytes_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* allocate(std::size_t bytes, std::size_t align) {
    const std::size_t start = (used_ + align - 1) & ~(align - 1);
    if (base_ && start <= capacity_ && bytes <= capacity_ - start) {
      used_ = start + bytes;
      return base_ + start;
    }
    return allocate_large_aligned(bytes, align);
  }
  void deallocate(void* p) noexcept {
    if (!owns(p)) std::free(p);
  }
  bool owns(const void* p) const noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(base_);
    return base_ && a >= b && a < b + capacity_;
  }
  std::size_t used() const noexcept { return used_; }

 private:
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  char* base_ = nullptr;
  std::size_t capacity_ = 0, used_ = 0;
};

// An allocator over an Arena (elements default-initialised, as UninitialisedAllocator's);
// without one (default-constructed) it allocates as UninitialisedAllocator does.
template <class T>
struct ArenaAllocator : DefaultInitialising {
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;
  Arena* arena = nullptr;
  ArenaAllocator() = default;
  explicit ArenaAllocator(Arena* a) noexcept : arena(a) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& o) noexcept : arena(o.arena) {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = array_bytes<T>(n);
    return allocated_or_throw<T>(arena ? arena->allocate(bytes, kArrayAlign<T>) : allocate_large_aligned(bytes, kArrayAlign<T>));
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (arena)
      arena->deallocate(p);
    else
      std::free(p);
  }
  template <class U>
  bool operator==(const ArenaAllocator<U>& o) const noexcept { return arena == o.arena; }
  template <class U>
  bool operator!=(const ArenaAllocator<U>& o) const noexcept { return arena != o.arena; }
};

template <class T>
using ArenaVector = std::vector<T, ArenaAllocator<T>>;

// Makes the (empty) vectors allocate from `arena` from now on.
template <class... Vectors>
void use_arena(Arena* arena, Vectors&... vectors) {
  ((vectors = Vectors(typename Vectors::allocator_type(arena))), ...);
}

}  // namespace dcdm::detail
