#pragma once
// Per-process scratch folders. ctest runs every test in its own process, several at a
// time, so a folder named only after the test would be shared (and removed) by tests
// that happen to run together: the name carries the process id.
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dcdm::test {

// An empty folder "dcdm_test_<name>_<pid>" under the system temp folder.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / ("dcdm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace dcdm::test
