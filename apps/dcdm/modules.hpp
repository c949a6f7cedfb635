#pragma once
// Loading the tool's optional modules: shared objects built with the tool that carry a heavy
// dependency (LibTorch: dcdm_torch.so, torch_backend.hpp; OpenVDB: dcdm_vdb.so,
// vdb_backend.hpp), loaded with dlopen the first time a command needs one, so that every other
// command starts without loading them.
#include <filesystem>
#include <string>
#include <vector>

namespace dcdm::cli {

// The object a module's entry point `entry(interface_version)` returns. The module is looked for
// at the path in the environment variable `env_override` when set (only there), else in
// `first_dirs` (e.g. the Python package's folder), next to the running executable (the tool's
// build tree) and in <prefix>/lib/dcdm relative to it (installed tool). Throws InputError naming what
// needs the module (`needed_for`) and every place looked at when none loads. The module stays
// loaded for the life of the process.
const void* load_module(const std::string& file_name, const char* env_override, const char* entry,
                        int interface_version, const std::string& needed_for,
                        const std::vector<std::filesystem::path>& first_dirs = {});

}  // namespace dcdm::cli
