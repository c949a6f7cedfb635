#pragma once
/// @file
/// Finding model files: the shipped models (relaxnet.dcdm, flagnet.dcdm, paper64.dcdm) by bare
/// name, from wherever the program runs.
#include <filesystem>
#include <string>
#include <vector>

namespace dcdm {

/// The folder of the running executable (from /proc/self/exe); empty where it cannot be told.
std::filesystem::path executable_dir();

namespace learn {

/// The folders searched for a model given by bare name, in order:
///  1. each folder of the environment variable DCDM_MODEL_PATH (colon-separated);
///  1b. the folders a program added with add_model_folder() (e.g. the Python package's own);
///  2. `models/` next to the executable (a build tree: the build copies the shipped models there);
///  3. `../share/dcdm/models` relative to the executable (an installed tool or program);
///  4. the data folder of the installation this library was built for (`PREFIX/share/dcdm/models`).
std::vector<std::filesystem::path> model_search_path();

/// Adds a folder to model_search_path() (after DCDM_MODEL_PATH's), for programs and packages
/// that ship models beside themselves rather than next to an executable. Thread-safe.
void add_model_folder(const std::filesystem::path& folder);

/// A model file from a path or a bare name. A name with a folder in it ("models/relaxnet.dcdm",
/// "./x.dcdm") or naming an existing file is a path, taken as it is. A bare name ("relaxnet",
/// "relaxnet.dcdm") is looked up in model_search_path(), with ".dcdm" appended where it has no
/// extension. Throws InputError naming the model and every place it looked when none exists.
std::filesystem::path find_model(const std::string& name_or_path);

}  // namespace learn
}  // namespace dcdm
