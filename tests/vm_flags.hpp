#pragma once
// The kernel's flags for the mapping of this process that holds an address (/proc/self/smaps
// "VmFlags", e.g. "hg" for a range advised MADV_HUGEPAGE), for the huge-page tests.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace dcdm::test {

// The VmFlags of the mapping that holds address a, space-separated with a space on each side
// (" rd wr mr mw me ac hg "); "" if no mapping holds it.
inline std::string vm_flags_at(std::uintptr_t a) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line.substr(8) + " ";
  }
  return "";
}

// Whether transparent huge pages can be asked for here (mode "always" or "madvise").
inline bool huge_pages_offered() {
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  return std::getline(mode, modes) && modes.find("[never]") == std::string::npos;
}

}  // namespace dcdm::test
