#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/version.hpp"

namespace dcdm::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}
}  // namespace dcdm::cli

int main(int argc, char** argv) {
  dcdm::restore_allocator_defaults();  // freed temporaries leave the resident set (memory.hpp)
  CLI::App app{"dcdm: Deep Conjugate Direction Method and classical solvers for pressure Poisson systems"};
  app.set_version_flag("--version", std::string("dcdm ") + dcdm::kVersion);
  app.require_subcommand(1);
  auto& registry = dcdm::cli::command_registry();
  std::stable_sort(registry.begin(), registry.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  for (auto& spec : registry) spec.add(app);
  // One check for every number option of every subcommand: NaN, infinities and values beyond
  // double's range are refused, naming the option (range checks of each option come after).
  const CLI::Validator finite(
      [](std::string& text) -> std::string {
        const char* begin = text.c_str();
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(begin, &end);
        if (end == begin) return {};  // not a number at all: the conversion reports it
        if (!std::isfinite(v) || errno == ERANGE) return "'" + text + "' is not a finite number within double's range";
        return {};
      },
      "");
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options())
      if (opt->get_type_name().rfind("FLOAT", 0) == 0) opt->check(finite);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // bad options are bad input
  } catch (const dcdm::InputError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "dcdm: error: {}\n", e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // An --out that cannot be created (a file in the way, no permission, a full disk): the
    // path the user gave, not a bug. what() names the operation, the path and the errno text.
    std::fflush(stdout);
    fmt::print(stderr, "dcdm: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "dcdm: internal error: {}\n", e.what());
    return 1;
  }
  return 0;
}
