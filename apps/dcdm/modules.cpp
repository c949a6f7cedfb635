// Loading the tool's optional modules (modules.hpp).
#include "modules.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/models.hpp"

namespace dcdm::cli {

const void* load_module(const std::string& file_name, const char* env_override, const char* entry,
                        int interface_version, const std::string& needed_for,
                        const std::vector<std::filesystem::path>& first_dirs) {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv(env_override); env && *env) {
    candidates.emplace_back(env);  // explicit: the only place looked
  } else {
    for (const auto& dir : first_dirs) candidates.push_back(dir / file_name);
    const std::filesystem::path dir = executable_dir();
    candidates.push_back(dir / file_name);
    candidates.push_back((dir / DCDM_MODULE_DIR_FROM_BIN / file_name).lexically_normal());
  }
  std::string tried;
  for (const auto& path : candidates) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      tried += fmt::format("\n  {}: not found", path.string());
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      tried += fmt::format("\n  {}: {}", path.string(), ::dlerror());
      continue;
    }
    using Entry = const void* (*)(int);
    auto function = reinterpret_cast<Entry>(::dlsym(handle, entry));
    const void* object = function ? function(interface_version) : nullptr;
    if (object) return object;
    tried += fmt::format("\n  {}: {}", path.string(),
                         function ? "built for another version of dcdm" : fmt::format("no entry point {}", entry));
    ::dlclose(handle);
  }
  throw InputError(fmt::format("{} needs the module {}, and none could be loaded ({} names one explicitly). "
                               "Looked at:{}",
                               needed_for, file_name, env_override, tried));
}

}  // namespace dcdm::cli
