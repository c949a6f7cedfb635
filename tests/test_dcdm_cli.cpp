// DCDM on real scene systems with classical generators (the controls), and the CLI: `dcdm
// model init/info`, `dcdm solve --method dcdm --model FILE`, bad model files -> exit 2.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli_test.hpp"
#include <nlohmann/json.hpp>

#include "dcdm/dcdm.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {

template <class Precond>
GeneratorFactory generator_from() {
  return [](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    auto p = std::make_unique<Precond>();
    p->setup(view);
    return p;
  };
}

struct SceneProblem {
  PoissonSystem sys;
  PoissonStencil op;
  RangeProjector projector;
  explicit SceneProblem(const SceneSpec& spec)
      : sys(make_scene_system(spec, RhsKind::Random, 3)), op(sys.domain), projector(sys.domain) {}
  LinearSystemView view() const {
    return {&op, &sys.matrix, &sys.domain, projector.singular() ? projector.as_function() : nullptr};
  }
  // ||b - A x|| / ||P b|| recomputed independently of the solver.
  double relative_residual(dcdm::span<const double> x) const {
    Vector b = sys.rhs, ax(b.size());
    if (projector.singular()) projector(b);
    op.apply(x, ax);
    for (std::size_t i = 0; i < b.size(); ++i) ax[i] = b[i] - ax[i];
    if (projector.singular()) projector(ax);
    return norm2(ax) / norm2(b);
  }
};

}  // namespace

TEST(DcdmScene, MultigridAndJacobiGeneratorsConverge) {
  SceneSpec spec;
  spec.name = "bunny";
  spec.dims = {20, 18, 16};
  SceneProblem p(spec);
  SolveOptions opt;
  opt.rtol = 1e-8;
  opt.max_iterations = 2000;
  int mg_iterations = 0;
  {
    DcdmSolver solver(generator_from<MultigridPreconditioner>(), DcdmOptions{}, "dcdm-mg");
    solver.setup(p.view());
    Vector x(p.sys.rhs.size());
    const auto rep = solver.solve(p.sys.rhs, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    EXPECT_LE(p.relative_residual(x), 1.01e-8);
    EXPECT_EQ(solver.last_stats().fallback_directions, 0);
    mg_iterations = rep.iterations;
  }
  {
    DcdmSolver solver(generator_from<JacobiPreconditioner>(), DcdmOptions{}, "dcdm-jacobi");
    solver.setup(p.view());
    Vector x(p.sys.rhs.size());
    opt.stagnation_window = 0;
    const auto rep = solver.solve(p.sys.rhs, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    EXPECT_LE(p.relative_residual(x), 1.01e-8);
    EXPECT_GT(rep.iterations, mg_iterations);  // the V-cycle is the far better generator
  }
}

class DcdmCli : public dcdm::testing::CliTest {
 protected:
  DcdmCli() : CliTest("dcdm_cli", 1) {}
  int cli(const std::string& args) { return run_cli(args); }
};

TEST_F(DcdmCli, ModelInitInfoAndSolve) {
  const fs::path model = dir_ / "m.dcdm", report = dir_ / "r.json";
  ASSERT_EQ(cli(fmt::format("model init --arch paper64 --seed 3 --out {}", model.string())), 0) << log();
  ASSERT_EQ(cli(fmt::format("model info {}", model.string())), 0) << log();
  EXPECT_NE(log().find("paper64"), std::string::npos) << log();
  EXPECT_NE(log().find("97457"), std::string::npos) << log();
  // An untrained network does not converge in 5 iterations: exit 3, finite report.
  const int rc = cli(fmt::format("solve --scene box --dims 12,10,9 --method dcdm --model {} --max-iters 5 --json {}",
                                 model.string(), report.string()));
  EXPECT_EQ(rc, 3) << log();
  std::ifstream in(report);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << log();
  EXPECT_NE(j.dump().find("max-iterations"), std::string::npos) << j.dump();
  // The spec form dcdm:FILE and the V-cycle control (which converges).
  EXPECT_EQ(cli(fmt::format("solve --scene box --dims 12,10,9 --method dcdm:{} --max-iterations 3", model.string())), 3)
      << log();
  EXPECT_EQ(cli("solve --scene box --dims 12,10,9 --method dcdm-mg --rtol 1e-8"), 0) << log();
}

// --network-precision: the report names a bfloat16 run; auto follows the CPU; a bad value is
// refused naming the option.
TEST_F(DcdmCli, NetworkPrecisionOption) {
  const fs::path model = dir_ / "m.dcdm", report = dir_ / "r.json";
  ASSERT_EQ(cli(fmt::format("model init --arch paper64 --seed 3 --out {}", model.string())), 0) << log();
  const auto method_of = [&](const std::string& precision) {
    cli(fmt::format("solve --scene box --dims 12,10,9 --method dcdm:{} --max-iters 2 --network-precision {} --json {}",
                    model.string(), precision, report.string()));
    std::ifstream in(report);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    return j.is_discarded() ? std::string("(no report)") : j.value("method", std::string("(none)"));
  };
  EXPECT_EQ(method_of("float32"), "dcdm") << log();
  EXPECT_EQ(method_of("auto"), learn::cpu_has_native_bf16() ? "dcdm[bf16]" : "dcdm") << log();
  if (learn::cpu_has_native_bf16()) {
    EXPECT_EQ(method_of("bf16"), "dcdm[bf16]") << log();
  }
  EXPECT_EQ(cli(fmt::format("solve --scene box --n 8 --method dcdm:{} --network-precision half", model.string())), 2)
      << log();
  EXPECT_NE(log().find("--network-precision"), std::string::npos) << log();
}

TEST_F(DcdmCli, BadModelFilesExitWithStatus2NamingTheFile) {
  const fs::path bad = dir_ / "bad.dcdm";
  std::ofstream(bad) << "DCDMMODL\x01";
  EXPECT_EQ(cli(fmt::format("solve --scene box --n 8 --method dcdm --model {}", bad.string())), 2) << log();
  EXPECT_NE(log().find(bad.string()), std::string::npos) << log();
  EXPECT_EQ(cli(fmt::format("model info {}", bad.string())), 2) << log();
  EXPECT_EQ(cli("solve --scene box --n 8 --method dcdm"), 2) << log();
  EXPECT_NE(log().find("--model"), std::string::npos) << log();
  EXPECT_EQ(cli(fmt::format("model init --arch paper256 --out {}", (dir_ / "x.dcdm").string())), 2) << log();
}
