#pragma once
/// @file
/// The process's memory as the kernel counts it, and the machine's, for the memory guards and
/// the reports (`dcdm solve --json`, `dcdm bench`).
#include <cstdint>

namespace dcdm {

/// Resident set size of this process now (VmRSS), in bytes; 0 where /proc is unreadable.
std::int64_t resident_bytes();
/// The resident set's high-water mark since the start (or the last reset), VmHWM, in bytes.
std::int64_t peak_resident_bytes();
/// Resets the high-water mark to the current resident set (Linux >= 4.0); false if refused.
bool reset_peak_resident();
/// The memory this process may use: the machine's physical memory, or less where a container
/// limit (cgroup v2) or a resource limit (ulimit -v, -d) says so; 0 if unknown.
std::int64_t physical_memory_bytes();
/// Puts glibc's allocator back to its defaults for large blocks (mmap for blocks of 128 KiB and
/// more, trimming of the heap's top). Debian's SuperLU_dist, which hypre and PETSc bring in,
/// turns both off in its library constructor (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD -1), so
/// that in any process that loads it freed temporaries stay resident for good. The programs
/// (dcdm, dcdm-mpi) and the Python module call this once at start-up.
void restore_allocator_defaults();

}  // namespace dcdm
