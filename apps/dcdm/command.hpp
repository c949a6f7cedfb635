#pragma once
// Each subcommand lives in its own file and registers itself here; main() builds the CLI
// from the registry, so adding a subcommand never touches another file.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace dcdm::cli {

struct CommandSpec {
  int order;  // position in --help
  std::function<void(CLI::App& root)> add;
};

std::vector<CommandSpec>& command_registry();

struct RegisterCommand {
  RegisterCommand(int order, std::function<void(CLI::App& root)> add) {
    command_registry().push_back({order, std::move(add)});
  }
};

}  // namespace dcdm::cli
