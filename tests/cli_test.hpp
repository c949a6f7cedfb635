#pragma once
// A fixture for tests that run the built `dcdm` executable: a fresh temporary folder per test,
// the exit status of each run, and its combined output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace dcdm::testing {

class CliTest : public ::testing::Test {
 protected:
  // `threads`: OMP_NUM_THREADS of the runs (fixed, so that results compare across machines).
  CliTest(std::string prefix, int threads) : prefix_(std::move(prefix)), threads_(threads) {}

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("dcdm_{}_{}_{}", prefix_, ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `dcdm ARGS`; returns its exit status (-1 if it did not exit normally). The output
  // goes to dir_/log.txt (see log()).
  int run_cli(const std::string& args) {
    const std::string cmd = fmt::format("OMP_NUM_THREADS={} {} {} > {} 2>&1", threads_, DCDM_CLI_PATH, args,
                                        (dir_ / "log.txt").string());
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string log() const {
    std::ifstream in(dir_ / "log.txt");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
  int threads_;
};

}  // namespace dcdm::testing
