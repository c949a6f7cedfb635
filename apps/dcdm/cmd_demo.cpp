// `dcdm demo`: the main job on the built-in default scene (grows as capabilities land).
#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::cli {
namespace {

void run_demo() {
  fmt::print("dcdm demo: nothing to solve yet\n");
}

RegisterCommand reg(100, [](CLI::App& root) {
  auto* cmd = root.add_subcommand("demo", "Run the main job on the built-in default scene");
  cmd->callback([] { run_demo(); });
});

}  // namespace
}  // namespace dcdm::cli
