// The tool as a user meets it: every `dcdm ... --help` text names only subcommands and scenes
// that exist, the option vocabulary is the same across subcommands, and the commands that do
// not need LibTorch neither link nor load it, while those that do say where they looked for it.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cli_test.hpp"
#include "dcdm/scenes.hpp"

namespace {

class CliHelp : public dcdm::testing::CliTest {
 protected:
  CliHelp() : CliTest("help", 1) {}

  // The subcommands listed by `dcdm --help` (CLI11's "Subcommands:" section).
  std::vector<std::string> subcommands() {
    EXPECT_EQ(run_cli("--help"), 0) << log();
    const std::string text = log();
    std::vector<std::string> names;
    const auto at = text.find("Subcommands:");
    EXPECT_NE(at, std::string::npos) << text;
    const std::regex line(R"(\n  ([a-z]+)\s)");
    for (std::sregex_iterator it(text.begin() + static_cast<std::ptrdiff_t>(at), text.end(), line), end; it != end; ++it)
      names.push_back((*it)[1]);
    return names;
  }
};

TEST_F(CliHelp, EveryNamedSubcommandExists) {
  const auto names = subcommands();
  ASSERT_GE(names.size(), 10u);
  const std::set<std::string> known(names.begin(), names.end());
  // Every "dcdm WORD" in a help text is a subcommand reference (the help texts call the method
  // "the method dcdm", so that this stays unambiguous).
  const std::regex mention(R"(\bdcdm ([a-z]+)\b)");
  for (const auto& name : names) {
    ASSERT_EQ(run_cli(name + " --help"), 0) << name << ": " << log();
    const std::string text = log();
    for (std::sregex_iterator it(text.begin(), text.end(), mention), end; it != end; ++it)
      EXPECT_TRUE(known.count((*it)[1])) << "`dcdm " << name << " --help` names `dcdm " << (*it)[1]
                                         << "`, which is no subcommand";
  }
}

TEST_F(CliHelp, OneOptionVocabulary) {
  // The iteration cap is --max-iterations wherever there is one (the old --max-iters still parses).
  for (const char* name : {"solve", "simulate", "bench", "eval"}) {
    ASSERT_EQ(run_cli(std::string(name) + " --help"), 0) << log();
    EXPECT_NE(log().find("--max-iterations"), std::string::npos) << name;
  }
  EXPECT_EQ(run_cli("solve --scene box --n 8 --method cg --max-iters 1"), 3) << log();
  EXPECT_NE(log().find("DIVERGED_ITS"), std::string::npos) << log();
}

TEST_F(CliHelp, EveryCatalogSceneSolvesAndExports) {
  // The scenes bench accepts (plume included) are the scenes solve and export accept.
  for (const auto& scene : dcdm::scene_catalog()) {
    if (scene.name == "mesh") continue;  // needs --mesh
    EXPECT_EQ(run_cli("solve --scene " + scene.name + " --n 12 --method mgpcg"), 0) << scene.name << ": " << log();
    EXPECT_EQ(run_cli("export --scene " + scene.name + " --n 8 --out " + (dir_ / scene.name).string()), 0)
        << scene.name << ": " << log();
  }
}

TEST_F(CliHelp, ClassicalCommandsDoNotLoadLibTorch) {
  // Not linked: the executable's own dependencies name no LibTorch library.
  ASSERT_EQ(std::system(fmt::format("readelf -d {} > {} 2>&1", DCDM_CLI_PATH, (dir_ / "log.txt").string()).c_str()), 0);
  EXPECT_EQ(log().find("torch"), std::string::npos) << log();
  EXPECT_EQ(log().find("c10"), std::string::npos) << log();
  // Not loaded: with the module unreachable, --version, a classical solve and the relaxnet and
  // flagnet generators (plain C++ model files) still work.
  const std::string no_module = "DCDM_TORCH_MODULE=/nonexistent/dcdm_torch.so ";
  const std::string models = std::string(DCDM_SOURCE_DIR) + "/models/";
  EXPECT_EQ(std::system((no_module + DCDM_CLI_PATH + " --version > /dev/null").c_str()), 0);
  for (const std::string& method : std::vector<std::string>{"mgpcg", "dcdm-relax:" + models + "relaxnet.dcdm",
                                                            "dcdm-flag:" + models + "flagnet.dcdm"}) {
    const int rc = std::system(fmt::format("{}{} solve --scene sphere --n 16 --method {} > {} 2>&1", no_module,
                                           DCDM_CLI_PATH, method, (dir_ / "log.txt").string())
                                   .c_str());
    EXPECT_EQ(WEXITSTATUS(rc), 0) << method << ": " << log();
  }
  // The reference network needs the module: exit 2 and the place it looked.
  const int rc = std::system(fmt::format("{}{} solve --scene sphere --n 16 --method dcdm:{}paper64.dcdm > {} 2>&1",
                                         no_module, DCDM_CLI_PATH, models, (dir_ / "log.txt").string())
                                 .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2) << log();
  EXPECT_NE(log().find("/nonexistent/dcdm_torch.so"), std::string::npos) << log();
}

TEST_F(CliHelp, ShippedModelsByNameAndMissingOnesSayWhereTheyLooked) {
  EXPECT_EQ(run_cli("model info relaxnet"), 0) << log();
  EXPECT_NE(log().find("relaxnet-v2"), std::string::npos) << log();
  EXPECT_EQ(run_cli("solve --scene box --n 8 --method dcdm-relax:no-such-model"), 2) << log();
  EXPECT_NE(log().find("no-such-model.dcdm"), std::string::npos) << log();
  EXPECT_NE(log().find("looked in"), std::string::npos) << log();
  EXPECT_NE(log().find("DCDM_MODEL_PATH"), std::string::npos) << log();
}

}  // namespace
