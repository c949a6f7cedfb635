#pragma once
// Per-process scratch folders. ctest runs every test in its own process, several at a
// time, so a folder named only after the test would be shared (and removed) by tests
// that happen to run together: the name carries the process id. They are removed when the
// test process ends (DCDM_KEEP_TEST_DIRS=1 keeps them, to look at a failure's files).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace dcdm::test {

// Removes `p` and everything in it when the process exits normally.
inline void remove_at_exit(const std::filesystem::path& p) {
  struct Registry {
    std::mutex mutex;
    std::vector<std::filesystem::path> paths;
    ~Registry() {
      const char* keep = std::getenv("DCDM_KEEP_TEST_DIRS");
      if (keep && std::string(keep) == "1") return;
      for (const auto& path : paths) {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    }
  };
  static Registry registry;
  std::lock_guard lock(registry.mutex);
  registry.paths.push_back(p);
}

// An empty folder "dcdm_test_<name>_<pid>" under the system temp folder.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / ("dcdm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  remove_at_exit(p);
  return p;
}

}  // namespace dcdm::test
