// FlagNet (dcdm/flagnet.hpp): the OpenMP kernels against the dense LibTorch forward (two
// implementations), the untrained single-level model against damped Jacobi sweeps computed
// independently on the project's 7-point stencil, linearity, masking and NaN-freedom, DCDM
// convergence against an independent CG solution, the model-file round trip and wrong-file
// errors, a short training run with resume, and the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "../src/learn/weights_archive.hpp"  // crc32
#include "cli_test.hpp"
#include "dcdm/dataset.hpp"
#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"

#include "temp_dir.hpp"
#include "test_domains.hpp"

using namespace dcdm;
using namespace dcdm::learn;
namespace fs = std::filesystem;

namespace {

Domain random_domain(Dims d, std::uint64_t seed) { return dcdm::testing::random_domain(d, seed, 0.15, 0.07); }

std::vector<float> random_vector(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = g(rng);
  return v;
}

double max_abs(dcdm::span<const float> v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("flagnet_" + name); }

void expect_agreement(const FlagNet& net, const Domain& dom, std::uint64_t seed) {
  const auto gen = net.make_generator(dom);
  const int batch = 2;
  const auto x = random_vector(batch * dom.dims().size(), seed);
  const auto ref = flagnet_torch_forward(net.parameters(), dom, x, batch);
  for (int b = 0; b < batch; ++b) {
    const std::size_t n = static_cast<std::size_t>(dom.dims().size());
    std::vector<float> y(n);
    gen->apply(dcdm::span<const float>(x.data() + b * n, n), y);
    const dcdm::span<const float> r(ref.data() + b * n, n);
    const double scale = max_abs(r);
    ASSERT_GT(scale, 0.0);
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(y[i]) - double(r[i])));
    EXPECT_LE(worst, 2e-5 * scale) << "sample " << b << " on " << dom.dims().str();
  }
}

}  // namespace

TEST(FlagNetKernels, LevelsAndGroups) {
  EXPECT_EQ(FlagNetSpec::levels({4, 4, 4}), 1);
  EXPECT_EQ(FlagNetSpec::levels({8, 8, 8}), 2);
  EXPECT_EQ(FlagNetSpec::levels({32, 32, 32}), 4);
  EXPECT_EQ(FlagNetSpec::levels({128, 128, 128}), 6);
  EXPECT_EQ(FlagNetSpec::levels({15, 64, 64}), 5);  // down to 1x4x4 (ceil halving)
  EXPECT_EQ(FlagNetSpec::group(0, 1), 2);
  EXPECT_EQ(FlagNetSpec::group(0, 4), 0);
  EXPECT_EQ(FlagNetSpec::group(2, 4), 1);
  EXPECT_EQ(FlagNetSpec::group(3, 4), 2);
}

TEST(FlagNetKernels, AgreesWithTheLibTorchForward) {
  // Random corrections make every coefficient channel matter; random cells every pattern.
  const FlagNet net = FlagNet::random(7, 0.05);
  expect_agreement(net, random_domain({16, 16, 16}, 1), 11);
  expect_agreement(net, random_domain({16, 8, 32}, 2), 12);
  SceneSpec pool;
  pool.name = "pool";
  pool.dims = {16, 16, 16};
  expect_agreement(net, make_scene(pool), 13);
  expect_agreement(FlagNet::initial(), random_domain({16, 16, 16}, 3), 14);
}

TEST(FlagNetKernels, SingleLevelInitialModelIsTheExactInverse) {
  // With every axis below 8 there is one level, whose coarse solve is exact: the untrained
  // model inverts A (checked with the project's 7-point stencil) and DCDM needs 1 iteration.
  Domain dom({6, 7, 5}, CellType::Fluid);
  for (int k = 0; k < 4; ++k) dom.cells(2, 3, k) = CellType::Solid;
  dom.cells(4, 1, 4) = CellType::Air;
  dom.set_face(Face::ZMax, FaceBoundary::Open);
  const PoissonStencil a(dom);
  auto gen = FlagNet::initial().make_generator(dom);
  const std::int64_t n = dom.dims().size();
  const auto bf = random_vector(n, 5);
  std::vector<double> b(bf.begin(), bf.end()), x(n), ax(n);
  for (std::int64_t c = 0; c < n; ++c)
    if (dom.cells[c] != CellType::Fluid) b[c] = 0.0;
  gen->apply(b, x);
  a.apply(x, ax);
  for (std::int64_t c = 0; c < n; ++c) EXPECT_NEAR(ax[c], b[c], 1e-4) << "cell " << c;
  DcdmSolver dcdm(std::shared_ptr<const LinearOperator>(gen.release()));
  LinearSystemView view{&a, nullptr, &dom, nullptr};
  dcdm.setup(view);
  SolveOptions opt;
  opt.rtol = 1e-5;
  const auto rep = dcdm.solve(b, x, opt);
  EXPECT_TRUE(rep.converged());
  EXPECT_EQ(rep.iterations, 1);
}

TEST(FlagNetKernels, LinearMaskedAndFinite) {
  const Domain dom = random_domain({20, 17, 24}, 6);  // odd sizes: ceil coarsening
  const auto gen = FlagNet::random(8, 0.05).make_generator(dom);
  const std::int64_t n = dom.dims().size();
  const auto u = random_vector(n, 1), v = random_vector(n, 2);
  std::vector<double> ud(u.begin(), u.end()), vd(v.begin(), v.end()), mix(n), gu(n), gv(n), gm(n);
  for (std::int64_t c = 0; c < n; ++c) mix[c] = 2.0 * ud[c] - 3.0 * vd[c];
  gen->apply(ud, gu);
  gen->apply(vd, gv);
  gen->apply(mix, gm);
  double scale = 0;
  for (std::int64_t c = 0; c < n; ++c) scale = std::max(scale, std::fabs(gm[c]));
  ASSERT_GT(scale, 0.0);
  for (std::int64_t c = 0; c < n; ++c) {
    ASSERT_TRUE(std::isfinite(gm[c]));
    EXPECT_NEAR(gm[c], 2.0 * gu[c] - 3.0 * gv[c], 1e-4 * scale);
    if (dom.cells[c] != CellType::Fluid) {
      EXPECT_EQ(gm[c], 0.0);
    }
  }
  // The input outside the fluid is ignored, NaN included.
  std::vector<double> poisoned = ud, gp(n);
  for (std::int64_t c = 0; c < n; ++c)
    if (dom.cells[c] != CellType::Fluid) poisoned[c] = std::nan("");
  gen->apply(poisoned, gp);
  for (std::int64_t c = 0; c < n; ++c) EXPECT_EQ(gp[c], gu[c]);
}

TEST(FlagNetKernels, InteriorStencilSharingCutsTheTables) {
  SceneSpec s;
  s.name = "sphere";
  s.dims = {32, 32, 32};
  const auto gen = FlagNet::initial().make_generator(make_scene(s));
  const auto info = gen->level_info();
  ASSERT_EQ(info.size(), 4u);
  EXPECT_LT(info[0].special_cells, info[0].fluid_cells / 2);
  EXPECT_LT(info[0].patterns, info[0].special_cells);
  EXPECT_GT(gen->memory_bytes(), 0);
}

TEST(FlagNetDcdm, ConvergesToTheIndependentCgSolution) {
  for (const char* scene : {"obstacles", "pool"}) {
    SceneSpec s;
    s.name = scene;
    s.dims = {32, 32, 32};
    s.seed = 3;
    const Domain dom = make_scene(s);
    const PoissonStencil a(dom);
    const RangeProjector project(dom);
    LinearSystemView view{&a, nullptr, &dom, project.singular() ? project.as_function() : nullptr};
    std::vector<double> b(dom.dims().size(), 0.0);
    std::mt19937_64 rng(9);
    std::normal_distribution<double> g;
    for (std::int64_t c = 0; c < dom.dims().size(); ++c)
      if (dom.cells[c] == CellType::Fluid) b[c] = g(rng);
    if (project.singular()) project(b);
    SolveOptions opt;
    opt.rtol = 1e-8;
    opt.max_iterations = 2000;
    auto cg = make_cg_solver();
    cg->setup(view);
    std::vector<double> xref(b.size());
    ASSERT_TRUE(cg->solve(b, xref, opt).converged());
    const FlagNet net = FlagNet::initial();
    DcdmSolver dcdm([&](const LinearSystemView& v) -> std::unique_ptr<LinearOperator> {
      return net.make_generator(*v.domain);
    });
    dcdm.setup(view);
    opt.rtol = 1e-6;
    std::vector<double> x(b.size());
    const auto rep = dcdm.solve(b, x, opt);
    ASSERT_TRUE(rep.converged()) << scene << ": " << rep.detail;
    EXPECT_LT(rep.iterations, 60) << scene;
    EXPECT_EQ(dcdm.last_stats().fallback_directions, 0) << scene;
    if (project.singular()) project(x);
    double err = 0, ref = 0;
    for (std::size_t c = 0; c < x.size(); ++c) {
      err = std::max(err, std::fabs(x[c] - xref[c]));
      ref = std::max(ref, std::fabs(xref[c]));
    }
    EXPECT_LE(err, 1e-4 * ref) << scene;
  }
}

TEST(FlagNetModel, RoundTripAndWrongFiles) {
  const fs::path dir = temp_dir("model");
  FlagNet net = FlagNet::random(5, 0.1);
  net.metadata().created_by = "test";
  net.save(dir / "f.dcdm");
  EXPECT_EQ(model_file_architecture(dir / "f.dcdm"), "flagnet");
  const FlagNet back = FlagNet::load(dir / "f.dcdm");
  EXPECT_EQ(back.parameters().weight, net.parameters().weight);
  EXPECT_EQ(back.parameters().bias, net.parameters().bias);
  EXPECT_EQ(back.metadata().created_by, "test");
  // A paper-CNN file is not a flagnet model, and the other way round; both name the file.
  DirectionNetwork::random("paper64", 1).save(dir / "p.dcdm");
  EXPECT_EQ(model_file_architecture(dir / "p.dcdm"), kArchitecture);
  try {
    FlagNet::load(dir / "p.dcdm");
    FAIL() << "paper64 file loaded as flagnet";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("p.dcdm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("flagnet"), std::string::npos) << e.what();
  }
  try {
    DirectionNetwork::load(dir / "f.dcdm");
    FAIL() << "flagnet file loaded as paper64";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("f.dcdm"), std::string::npos) << e.what();
  }
  // Truncated and corrupted files.
  std::string bytes;
  {
    std::ifstream in(dir / "f.dcdm", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(dir / "t.dcdm", std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 10));
  }
  EXPECT_THROW(FlagNet::load(dir / "t.dcdm"), InputError);
  bytes[bytes.size() - 20] ^= 0x5a;
  {
    std::ofstream out(dir / "c.dcdm", std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  EXPECT_THROW(FlagNet::load(dir / "c.dcdm"), InputError);
  EXPECT_THROW(FlagNet::load(dir / "missing.dcdm"), InputError);
  fs::remove_all(dir);
}

// On a closed (all-Neumann) domain the trainer works with the samples projected onto the range
// and renormalised, as the solver projects b: its validation loss before any step equals the
// LibTorch loss of the projected validation samples, not of the raw ones (whose null-space
// part the iteration cannot reduce).
TEST(FlagNetTraining, ClosedDomainSamplesAreProjected) {
  const fs::path dir = temp_dir("closed");
  SceneSpec s;
  s.name = "box";
  s.dims = {16, 16, 16};
  s.parameters["open_top"] = 0;
  const Domain dom = make_scene(s);
  const PoissonStencil a(dom);
  const RangeProjector project(dom);
  ASSERT_TRUE(project.singular());
  DatasetSpec spec;
  spec.recipe = {40, 4, 9.0, 1};
  spec.samples = 10;
  spec.shard_size = 10;
  spec.source = "closed box";
  write_dataset(dir / "data", dom, a, project.as_function(), spec);
  const auto n = static_cast<std::size_t>(dom.dims().size());
  // The last ceil(0.1 * 10) = 1 sample validates. Long Lanczos runs leave the Ritz data of a
  // singular matrix a null-space (constant) part (about 0.1 of the norm in the 32^3 sets);
  // this short one barely does, so add one to that sample in the shard.
  std::vector<float> raw(n);
  {
    const fs::path shard = dir / "data" / "shard-00000.npy";
    const NpyInfo info = read_npy_info(shard);
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    const auto at = static_cast<std::streamoff>(info.data_offset + 9 * n * sizeof(float));
    f.seekg(at);
    f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(n * sizeof(float)));
    double norm2 = 0;
    for (float& x : raw) {
      x += 0.3f / std::sqrt(static_cast<float>(n));
      norm2 += static_cast<double>(x) * x;
    }
    for (float& x : raw) x = static_cast<float>(x / std::sqrt(norm2));
    f.seekp(at);
    f.write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(n * sizeof(float)));
  }
  {  // The manifest records each shard's CRC-32 (a changed shard is refused): record the edit's.
    std::ifstream shard_in(dir / "data" / "shard-00000.npy", std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(shard_in), {});
    std::ifstream manifest_in(dir / "data" / "manifest.json");
    auto manifest = nlohmann::json::parse(manifest_in);
    manifest["shards"][0]["crc32"] = fmt::format("{:08x}", dcdm::learn::crc32(bytes));
    std::ofstream(dir / "data" / "manifest.json", std::ios::trunc) << manifest.dump(2);
  }
  std::vector<double> v(raw.begin(), raw.end());
  project(v);
  const double norm = std::sqrt(dot(v, v));
  std::vector<float> projected(n);
  for (std::size_t i = 0; i < n; ++i) projected[i] = static_cast<float>(v[i] / norm);

  const FlagNet start = FlagNet::initial();
  start.save(dir / "start.dcdm");
  FlagNetTrainOptions o;
  o.data = {dir / "data"};
  o.steps = 1;
  o.batch = 4;
  o.validate_every = 1;
  o.loss_steps = 2;
  o.init = dir / "start.dcdm";
  o.out = dir / "m.dcdm";
  const auto r = train_flagnet(o);
  const double expected = flagnet_training_loss(start.parameters(), dom, projected, 1, 2);
  const double unprojected = flagnet_training_loss(start.parameters(), dom, raw, 1, 2);
  ASSERT_GT(std::abs(unprojected - expected), 0.1 * expected);  // the check below can tell them apart
  EXPECT_NEAR(r.initial_val_loss, expected, 1e-4 * expected);
  fs::remove_all(dir);
}

TEST(FlagNetTraining, ShortRunImprovesAndResumes) {
  const fs::path dir = temp_dir("train");
  std::vector<fs::path> data;
  for (int i = 0; i < 2; ++i) {
    SceneSpec s;
    s.name = i == 0 ? "obstacles" : "pool";
    s.dims = {16, 16, 16};
    s.seed = static_cast<std::uint64_t>(i + 1);
    const Domain dom = make_scene(s);
    const PoissonStencil a(dom);
    const RangeProjector project(dom);
    DatasetSpec spec;
    spec.recipe = {40, 4, 9.0, 1};
    spec.samples = 24;
    spec.shard_size = 24;
    spec.source = s.name;
    data.push_back(dir / s.name);
    write_dataset(data.back(), dom, a, project.singular() ? project.as_function() : nullptr, spec);
  }
  FlagNetTrainOptions o;
  o.data = data;
  o.steps = 6;
  o.batch = 4;
  o.lr = 1e-4;
  o.validate_every = 3;
  o.out = dir / "m.dcdm";
  o.seed = 1;
  o.time_limit_s = 1e-9;  // stops after the first validation
  auto r = train_flagnet(o);
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(r.stop_reason, "time-limit");
  o.time_limit_s = 0;
  o.resume = true;
  r = train_flagnet(o);
  EXPECT_EQ(r.steps, 6);
  EXPECT_TRUE(std::isfinite(r.best_val_loss));
  EXPECT_LT(r.best_val_loss, r.initial_val_loss);
  const FlagNet trained = FlagNet::load(o.out);
  EXPECT_EQ(trained.metadata().trained_grid, (Dims{16, 16, 16}));
  // Resuming with other options is refused, naming the checkpoint.
  o.lr = 1e-2;
  EXPECT_THROW(train_flagnet(o), InputError);
  // Fine-tuning: a new run from the trained weights with the 2-step loss; its validation loss
  // starts from the trained model's, and its checkpoint refuses another loss.
  FlagNetTrainOptions f = o;
  f.lr = 1e-4;
  f.resume = false;
  f.init = o.out;
  f.loss_steps = 2;
  f.steps = 3;
  f.out = dir / "fine.dcdm";
  r = train_flagnet(f);
  EXPECT_EQ(r.steps, 3);
  EXPECT_TRUE(std::isfinite(r.initial_val_loss));
  EXPECT_NE(FlagNet::load(f.out).metadata().training_summary_json.find("\"loss_steps\":2"), std::string::npos);
  f.resume = true;
  f.loss_steps = 3;
  f.steps = 6;
  EXPECT_THROW(train_flagnet(f), InputError);
  f.loss_steps = 0;
  f.resume = false;
  EXPECT_THROW(train_flagnet(f), InputError);

  // Keeping the weights with the fewest validation iterations: solving again here with the
  // kept file (the first validation sample of each dataset as b) gives integer counts k_i
  // with k_i - 1 < the recorded fractional count <= k_i.
  FlagNetTrainOptions g = o;
  g.resume = false;
  g.init = o.out;
  g.select = "iterations";
  g.steps = 4;
  g.validate_every = 2;
  g.out = dir / "selected.dcdm";
  r = train_flagnet(g);
  EXPECT_GT(r.initial_val_iterations, 0.0);
  EXPECT_LE(r.best_val_iterations, r.initial_val_iterations);
  const FlagNet kept = FlagNet::load(g.out);
  int sum = 0;
  for (const auto& folder : data) {
    ShardedDataset ds(folder);
    const Domain& dom = ds.domain();
    const std::int64_t n = ds.size();
    const std::int64_t first_validation = n - std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(0.1 * n)), 1, n - 1);
    std::vector<float> sample(static_cast<std::size_t>(dom.dims().size()));
    ds.read(first_validation, sample);
    std::vector<double> b(sample.begin(), sample.end()), x(b.size(), 0.0);
    const PoissonStencil a(dom);
    const RangeProjector project(dom);
    DcdmSolver solver(std::shared_ptr<const LinearOperator>(kept.make_generator(dom)));
    LinearSystemView view{&a, nullptr, &dom, nullptr};
    if (project.singular()) {
      view.project_range = project.as_function();
      project(b);
    }
    solver.setup(view);
    SolveOptions opt;
    opt.rtol = 1e-6;
    const SolveReport rep = solver.solve(b, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    sum += rep.iterations;
  }
  EXPECT_LE(r.best_val_iterations, sum);
  EXPECT_GT(r.best_val_iterations, sum - static_cast<int>(data.size()));
  EXPECT_NE(kept.metadata().training_summary_json.find("\"select\":\"iterations\""), std::string::npos);
  g.select = "speed";
  EXPECT_THROW(train_flagnet(g), InputError);
  fs::remove_all(dir);
}

// The S-step training loss (LibTorch, float32, autograd path) against the DCDM solver run for
// S iterations with the OpenMP kernels of the same model (double Krylov state): both are
// ||r_S||^(2/S) for a unit-norm b.
TEST(FlagNetTraining, UnrolledLossMatchesTheDcdmSolver) {
  SceneSpec spec;
  spec.name = "pool";
  spec.dims = {16, 16, 16};
  spec.seed = 2;
  const Domain dom = make_scene(spec);
  const RangeProjector project(dom);
  ASSERT_FALSE(project.singular());
  const PoissonStencil a(dom);
  const FlagNet net = FlagNet::random(7, 0.05);
  std::vector<float> b(dom.dims().size(), 0.0f);
  std::mt19937_64 rng(4);
  std::normal_distribution<double> g;
  double norm = 0;
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] == CellType::Fluid) {
      b[c] = static_cast<float>(g(rng));
      norm += double(b[c]) * b[c];
    }
  for (auto& v : b) v = static_cast<float>(v / std::sqrt(norm));
  const std::vector<double> bd(b.begin(), b.end());
  for (int steps : {1, 2, 4}) {
    const double loss = flagnet_training_loss(net.parameters(), dom, b, 1, steps);
    DcdmOptions o;
    o.weak_fallback = false;
    DcdmSolver dcdm([&](const LinearSystemView& v) -> std::unique_ptr<LinearOperator> {
      return net.make_generator(*v.domain);
    }, o);
    dcdm.setup(LinearSystemView{&a, nullptr, &dom, nullptr});
    SolveOptions opt;
    opt.rtol = 0;
    opt.atol = 0;
    opt.max_iterations = steps;
    std::vector<double> x(bd.size());
    const auto rep = dcdm.solve(bd, x, opt);
    ASSERT_EQ(rep.iterations, steps) << rep.detail;
    EXPECT_EQ(dcdm.last_stats().fallback_directions, 0);
    const double expected = std::pow(rep.residual_history[steps] / rep.residual_history[0], 2.0 / steps);
    EXPECT_LT(expected, 1.0);
    EXPECT_NEAR(loss, expected, 2e-3 * expected) << steps << " steps";
  }
}

namespace {
class FlagNetCli : public dcdm::testing::CliTest {
 protected:
  FlagNetCli() : CliTest("flagnet", 1) {}
};
}  // namespace

TEST_F(FlagNetCli, SolveWithInitialAndModelFileDispatch) {
  EXPECT_EQ(run_cli("solve --scene obstacles --n 16 --method dcdm-flag:initial"), 0) << log();
  EXPECT_NE(log().find("converged"), std::string::npos) << log();
  FlagNet::initial().save(dir_ / "f.dcdm");
  EXPECT_EQ(run_cli(fmt::format("solve --scene pool --n 16 --method dcdm --model {}", (dir_ / "f.dcdm").string())), 0)
      << log();
  EXPECT_NE(log().find("converged"), std::string::npos) << log();
  EXPECT_EQ(run_cli(fmt::format("model info {}", (dir_ / "f.dcdm").string())), 0) << log();
  EXPECT_NE(log().find("flagnet"), std::string::npos) << log();
  std::ofstream(dir_ / "bad.dcdm") << "not a model";
  EXPECT_EQ(run_cli(fmt::format("solve --scene pool --n 16 --method dcdm-flag:{}", (dir_ / "bad.dcdm").string())), 2)
      << log();
  EXPECT_NE(log().find("bad.dcdm"), std::string::npos) << log();
}
