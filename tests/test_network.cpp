// The reference network: shapes, masking, padding, model files, and DCDM with a network.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/poisson.hpp"

using namespace dcdm;
using namespace dcdm::learn;
namespace fs = std::filesystem;

namespace {

Field<float> random_field(Dims d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  Field<float> f(d);
  for (std::int64_t i = 0; i < f.size(); ++i) f[i] = g(rng);
  return f;
}

// A box with an obstacle, an air layer on top and one open face.
Domain test_domain(Dims d) {
  Domain dom(d);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const double x = i - d.nx / 2.0, y = j - d.ny / 2.0, z = k - d.nz / 2.0;
        if (x * x + y * y + z * z < d.nx * d.nx / 16.0) dom.cells(i, j, k) = CellType::Solid;
        if (k == d.nz - 1) dom.cells(i, j, k) = CellType::Air;
      }
  dom.set_face(Face::XMin, FaceBoundary::Open);
  return dom;
}

struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / ("dcdm_test_network_" + std::to_string(::getpid()))) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

// Expects load(path) to throw InputError whose message names the file and contains `what`.
void expect_load_fails(const fs::path& path, const std::string& what) {
  try {
    DirectionNetwork::load(path);
    ADD_FAILURE() << "loading " << path << " did not fail";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

double max_abs(const Field<float>& f) {
  double m = 0;
  for (std::int64_t i = 0; i < f.size(); ++i) m = std::max(m, double(std::abs(f[i])));
  return m;
}

}  // namespace

TEST(Network, VariantsHaveTheReferenceParameterCounts) {
  // 16->16 3x3x3 conv: 27*256 + 16 = 6928; c0: 27*16 + 16 = 448; out: 16 + 1 = 17.
  EXPECT_EQ(DirectionNetwork::random("paper64", 1).parameter_count(), 448 + 14 * 6928 + 17);
  EXPECT_EQ(DirectionNetwork::random("paper128", 1).parameter_count(), 448 + 22 * 6928 + 17);
  EXPECT_THROW(DirectionNetwork::random("paper256", 1), InputError);
}

TEST(Network, OnednnPathMatchesTheModuleForward) {
  auto net = DirectionNetwork::random("paper64", 3);
  const auto in = random_field({16, 12, 10}, 1);
  const auto fast = net.forward(in);
  InferenceOptions ref;
  ref.onednn = false;
  net.set_inference_options(ref);
  const auto slow = net.forward(in);
  const double scale = max_abs(slow);
  ASSERT_GT(scale, 0.0);
  for (std::int64_t i = 0; i < in.size(); ++i) ASSERT_NEAR(fast[i], slow[i], 1e-4 * scale) << i;
}

TEST(Network, OddAndNonCubicSizesArePaddedWithZeros) {
  auto net = DirectionNetwork::random("paper64", 4);
  const Dims odd{13, 10, 7}, even{14, 10, 8};
  const auto in = random_field(odd, 2);
  Field<float> padded(even, 0.0f);
  for (int k = 0; k < odd.nz; ++k)
    for (int j = 0; j < odd.ny; ++j)
      for (int i = 0; i < odd.nx; ++i) padded(i, j, k) = in(i, j, k);
  const auto out = net.forward(in);
  const auto out_padded = net.forward(padded);
  ASSERT_EQ(out.dims(), odd);
  for (int k = 0; k < odd.nz; ++k)
    for (int j = 0; j < odd.ny; ++j)
      for (int i = 0; i < odd.nx; ++i) {
        ASSERT_TRUE(std::isfinite(out(i, j, k)));
        ASSERT_EQ(out(i, j, k), out_padded(i, j, k));
      }
}

TEST(Network, GeneratorOutputIsZeroOutsideFluidAndIgnoresInputThere) {
  auto net = DirectionNetwork::random("paper64", 5);
  const Domain dom = test_domain({15, 12, 9});
  auto gen = net.make_generator(dom);
  ASSERT_EQ(gen->size(), dom.dims().size());
  const auto f = random_field(dom.dims(), 3);
  Vector x(f.vector().begin(), f.vector().end()), y(x.size()), y2(x.size());
  gen->apply(x, y);
  Vector x2 = x;
  std::int64_t fluid = 0;
  for (std::int64_t c = 0; c < dom.dims().size(); ++c) {
    if (dom.cells[c] != CellType::Fluid) {
      EXPECT_EQ(y[c], 0.0);
      x2[c] = 1e3;  // garbage where there is no unknown
    } else {
      ++fluid;
    }
  }
  ASSERT_GT(fluid, 0);
  ASSERT_LT(fluid, dom.dims().size());
  gen->apply(x2, y2);
  EXPECT_EQ(y, y2);
  EXPECT_GT(norm2(y), 0.0);
}

TEST(Network, AutoInputScaleMatchesTheTrainingGridsPerCellSize) {
  // Trained on 8^3 and applied on 16x12x9: auto must feed sqrt(1728 / 512) times the input,
  // i.e. give what an explicit scale of that size gives, and differ from scale 1 (the network
  // is not scale-invariant), while an untrained model (no training grid) uses 1.
  const Domain dom = test_domain({16, 12, 9});
  const auto f = random_field(dom.dims(), 4);
  const Vector x(f.vector().begin(), f.vector().end());
  const auto output = [&](Dims trained, double scale) {
    auto net = DirectionNetwork::random("paper64", 6);
    net.metadata().trained_grid = trained;
    InferenceOptions o;
    o.input_scale = scale;
    net.set_inference_options(o);
    Vector y(x.size());
    net.make_generator(dom)->apply(x, y);
    return y;
  };
  const Vector automatic = output({8, 8, 8}, 0.0);
  const Vector same = output({8, 8, 8}, std::sqrt(16.0 * 12 * 9 / 512));
  const Vector plain = output({8, 8, 8}, 1.0);
  for (std::size_t c = 0; c < x.size(); ++c) ASSERT_NEAR(automatic[c], same[c], 1e-6 * (1 + std::abs(same[c])));
  Vector diff(x.size());
  for (std::size_t c = 0; c < x.size(); ++c) diff[c] = automatic[c] / std::sqrt(16.0 * 12 * 9 / 512) - plain[c];
  EXPECT_GT(norm2(diff), 1e-3 * norm2(plain));
  EXPECT_EQ(output({0, 0, 0}, 0.0), plain);
}

TEST(Network, ModelFileRoundTripGivesBitIdenticalOutputs) {
  TempDir dir;
  auto net = DirectionNetwork::random("paper64", 11);
  net.metadata().trained_grid = {64, 64, 64};
  net.metadata().data_recipe_json = R"({"lanczos_steps":100})";
  net.metadata().training_summary_json = R"({"epochs":2,"loss":0.5})";
  net.save(dir / "m.dcdm");
  const auto loaded = DirectionNetwork::load(dir / "m.dcdm");
  EXPECT_EQ(loaded.metadata().variant, "paper64");
  EXPECT_EQ(loaded.metadata().architecture, kArchitecture);
  EXPECT_EQ(loaded.metadata().trained_grid, (Dims{64, 64, 64}));
  EXPECT_EQ(loaded.metadata().parameter_count, net.parameter_count());
  EXPECT_NE(loaded.metadata().training_summary_json.find("\"epochs\":2"), std::string::npos);
  const auto in = random_field({16, 16, 16}, 7);
  const auto a = net.forward(in), b = loaded.forward(in);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * a.size()));
  // Saving the loaded model again reproduces the file byte for byte.
  loaded.save(dir / "m2.dcdm");
  EXPECT_EQ(read_bytes(dir / "m.dcdm"), read_bytes(dir / "m2.dcdm"));
  // Equal seeds give equal networks, different seeds different ones.
  const auto c = DirectionNetwork::random("paper64", 11).forward(in);
  const auto d = DirectionNetwork::random("paper64", 12).forward(in);
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), sizeof(float) * a.size()));
  EXPECT_NE(0, std::memcmp(a.data(), d.data(), sizeof(float) * a.size()));
}

TEST(Network, BadModelFilesFailCleanlyNamingTheFile) {
  TempDir dir;
  DirectionNetwork::random("paper64", 1).save(dir / "good64.dcdm");
  DirectionNetwork::random("paper128", 1).save(dir / "good128.dcdm");
  const std::string good = read_bytes(dir / "good64.dcdm");
  expect_load_fails(dir / "missing.dcdm", "no such model file");
  EXPECT_THROW(DirectionNetwork::load(dir / "missing.dcdm"), MissingFileError);
  for (std::size_t cut : {std::size_t(0), std::size_t(5), std::size_t(15), std::size_t(40), good.size() / 2,
                          good.size() - 1}) {
    write_bytes(dir / "cut.dcdm", good.substr(0, cut));
    expect_load_fails(dir / "cut.dcdm", "truncated");
  }
  std::string bad = good;
  bad[0] = 'X';
  write_bytes(dir / "magic.dcdm", bad);
  expect_load_fails(dir / "magic.dcdm", "bad magic");
  bad = good;
  bad[8] = 9;
  write_bytes(dir / "version.dcdm", bad);
  expect_load_fails(dir / "version.dcdm", "version 9");
  bad = good;
  bad[bad.size() - 100] ^= 0x55;
  write_bytes(dir / "flip.dcdm", bad);
  expect_load_fails(dir / "flip.dcdm", "checksum");
  write_bytes(dir / "trailing.dcdm", good + "xyz");
  expect_load_fails(dir / "trailing.dcdm", "trailing");

  // Rewrites the metadata of a valid file (format documented in dcdm/learn.hpp).
  const auto with_metadata = [](const std::string& file, auto&& edit) {
    std::uint64_t len;
    std::memcpy(&len, file.data() + 12, 8);
    std::string json = file.substr(20, len);
    edit(json);
    std::string out = file.substr(0, 12);
    const std::uint64_t new_len = json.size();
    out.append(reinterpret_cast<const char*>(&new_len), 8);
    return out + json + file.substr(20 + len);
  };
  const auto replace = [](std::string& s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
  };
  write_bytes(dir / "arch.dcdm", with_metadata(good, [&](std::string& j) {
                replace(j, kArchitecture, "unet-2d");
              }));
  expect_load_fails(dir / "arch.dcdm", "architecture 'unet-2d'");
  write_bytes(dir / "variant.dcdm", with_metadata(good, [&](std::string& j) {
                replace(j, "\"paper64\"", "\"paper256\"");
              }));
  expect_load_fails(dir / "variant.dcdm", "paper256");
  write_bytes(dir / "json.dcdm", with_metadata(good, [&](std::string& j) { j[0] = '['; }));
  expect_load_fails(dir / "json.dcdm", "JSON");
  // A paper128 archive presented as paper64 (the parameter count in the metadata kept).
  const std::string big = read_bytes(dir / "good128.dcdm");
  write_bytes(dir / "other.dcdm", with_metadata(big, [&](std::string& j) {
                replace(j, "\"paper128\"", "\"paper64\"");
              }));
  expect_load_fails(dir / "other.dcdm", "another architecture");
  // Metadata that sets the input scaling: a zero or negative trained grid is a damaged file.
  for (const auto& grid : {std::vector<int>{16, -2, 16}, std::vector<int>{0, 16, 16}}) {
    write_bytes(dir / "grid.dcdm", with_metadata(good, [&](std::string& j) {
                  nlohmann::json meta = nlohmann::json::parse(j);
                  meta["trained_grid"] = grid;
                  j = meta.dump();
                }));
    expect_load_fails(dir / "grid.dcdm", "trained_grid");
  }
}

TEST(Network, RandomNetworkInsideDcdmNeverGivesNaNAndReportsItsReason) {
  const Domain dom = test_domain({16, 16, 16});
  const PoissonStencil a(dom);
  const RangeProjector projector(dom);
  auto net = DirectionNetwork::random("paper64", 21);
  std::shared_ptr<const LinearOperator> gen = net.make_generator(dom);
  DcdmSolver solver(gen);
  LinearSystemView view{&a, nullptr, &dom, projector.singular() ? projector.as_function() : nullptr};
  solver.setup(view);
  Vector b(dom.dims().size(), 0.0);
  std::mt19937 rng(5);
  std::normal_distribution<double> g;
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] == CellType::Fluid) b[c] = g(rng);
  Vector x(b.size());
  SolveOptions opt;
  opt.rtol = 1e-6;
  opt.max_iterations = 12;
  const auto rep = solver.solve(b, x, opt);
  EXPECT_EQ(count_non_finite(x), 0);
  EXPECT_TRUE(std::isfinite(rep.final_residual));
  EXPECT_LT(rep.final_residual, rep.initial_residual);
  EXPECT_FALSE(format_reason_line(rep).empty());
  EXPECT_TRUE(rep.reason == SolveReason::MaxIterations || rep.converged()) << format_reason_line(rep);
  EXPECT_EQ(solver.last_stats().generator_directions + solver.last_stats().fallback_directions, rep.iterations);
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] != CellType::Fluid) {
      ASSERT_EQ(x[c], 0.0);
    }
}

TEST(Network, BFloat16InferenceIsCloseToFloat32) {
  if (!cpu_has_native_bf16()) GTEST_SKIP() << "no native bfloat16 on this CPU";
  auto net = DirectionNetwork::random("paper64", 8);
  const auto in = random_field({16, 16, 16}, 9);
  const auto f32 = net.forward(in);
  InferenceOptions o;
  o.precision = NetworkPrecision::BFloat16;
  net.set_inference_options(o);
  const auto bf = net.forward(in);
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < in.size(); ++i) {
    num += (double(f32[i]) - bf[i]) * (double(f32[i]) - bf[i]);
    den += double(f32[i]) * f32[i];
  }
  EXPECT_LT(std::sqrt(num / den), 0.05);
}
