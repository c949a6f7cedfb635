#include "dcdm/memory.hpp"

#include <malloc.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace dcdm {
namespace {

// kB value of a /proc/self/status field (VmRSS, VmHWM), 0 if unreadable.
std::int64_t status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':')
      return std::atoll(line.c_str() + len + 1);
  return 0;
}

}  // namespace

std::int64_t resident_bytes() { return status_kb("VmRSS") * 1024; }
std::int64_t peak_resident_bytes() { return status_kb("VmHWM") * 1024; }

void restore_allocator_defaults() {
  mallopt(M_MMAP_MAX, 65536);             // glibc's default count of mmapped blocks
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);  // glibc's default (fixed from here on)
}

bool reset_peak_resident() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::int64_t bytes = pages > 0 && page > 0 ? std::int64_t(pages) * page : 0;
  const auto lower = [&bytes](long long l) {
    if (l > 0 && (bytes == 0 || l < bytes)) bytes = l;
  };
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cg >> limit && limit != "max") lower(std::atoll(limit.c_str()));
  // An address-space or data limit (ulimit -v / -d) caps what this process can allocate.
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    rlimit rl{};
    if (getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lower(static_cast<long long>(rl.rlim_cur));
  }
  return bytes;
}

}  // namespace dcdm
