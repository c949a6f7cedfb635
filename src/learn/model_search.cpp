// Finding model files by name (dcdm/models.hpp). Plain C++: part of the core library.
#include "dcdm/models.hpp"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm {

std::filesystem::path executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

namespace learn {
namespace {
std::mutex g_added_mutex;
std::vector<std::filesystem::path>& added_folders() {
  static std::vector<std::filesystem::path> folders;
  return folders;
}
}  // namespace

void add_model_folder(const std::filesystem::path& folder) {
  std::lock_guard lock(g_added_mutex);
  added_folders().push_back(folder);
}

std::vector<std::filesystem::path> model_search_path() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("DCDM_MODEL_PATH"); env && *env) {
    const std::string list = env;
    for (std::size_t start = 0; start <= list.size();) {
      const std::size_t colon = std::min(list.find(':', start), list.size());
      if (colon > start) dirs.emplace_back(list.substr(start, colon - start));
      start = colon + 1;
    }
  }
  {
    std::lock_guard lock(g_added_mutex);
    dirs.insert(dirs.end(), added_folders().begin(), added_folders().end());
  }
  if (const auto dir = executable_dir(); !dir.empty()) {
    dirs.push_back(dir / "models");
    dirs.push_back((dir / DCDM_MODEL_DIR_FROM_BIN).lexically_normal());
  }
  const std::filesystem::path installed = DCDM_INSTALL_MODEL_DIR;
  bool seen = false;
  for (const auto& d : dirs) seen = seen || d == installed;
  if (!seen) dirs.push_back(installed);
  return dirs;
}

std::filesystem::path find_model(const std::string& name_or_path) {
  if (name_or_path.empty()) throw InputError("model: empty name");
  const std::filesystem::path given(name_or_path);
  std::error_code ec;
  if (given.has_parent_path() || std::filesystem::is_regular_file(given, ec)) {
    if (!std::filesystem::exists(given, ec))
      throw MissingFileError(fmt::format("{}: no such model file", name_or_path));
    return given;
  }
  std::string file = name_or_path;
  if (!given.has_extension()) file += ".dcdm";
  std::string looked;
  for (const auto& dir : model_search_path()) {
    const auto candidate = dir / file;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    looked += fmt::format("{}{}", looked.empty() ? "" : ", ", dir.string());
  }
  throw MissingFileError(fmt::format("model '{}': no file {} in any model folder (looked in {}); pass a path, or add "
                               "the folder to DCDM_MODEL_PATH",
                               name_or_path, file, looked));
}

}  // namespace learn
}  // namespace dcdm
