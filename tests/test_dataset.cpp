// Ritz-vector training data: Ritz pairs against a dense eigen-decomposition, samples unit-norm
// and in the span of the Ritz vectors, the boost weighting, determinism, shards + manifest
// round trip, resume, and bad input naming the file.
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen is
// vectorised with -march=native (a known false positive, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <fstream>
#include <random>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"
#include "temp_dir.hpp"

#include <nlohmann/json.hpp>

using namespace dcdm;
using namespace dcdm::learn;
namespace fs = std::filesystem;

namespace {

// A small box with a solid pillar, a few air cells and an open top: non-singular.
Domain small_domain(Dims d) {
  Domain dom(d, CellType::Fluid);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        if (i == d.nx / 2 && k == d.nz / 2 && j < d.ny - 1) dom.cells(i, j, k) = CellType::Solid;
        if (i == 0 && j == d.ny - 1 && k == 0) dom.cells(i, j, k) = CellType::Air;
      }
  dom.set_face(Face::YMax, FaceBoundary::Open);
  return dom;
}

Eigen::MatrixXd dense(const LinearOperator& a) {
  const auto n = a.size();
  Eigen::MatrixXd m(n, n);
  std::vector<double> e(static_cast<std::size_t>(n), 0.0), y(static_cast<std::size_t>(n));
  for (std::int64_t c = 0; c < n; ++c) {
    e[c] = 1.0;
    a.apply(e, y);
    for (std::int64_t r = 0; r < n; ++r) m(r, c) = y[r];
    e[c] = 0.0;
  }
  return m;
}

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("dataset_" + name); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(DatasetRitz, FullLanczosGivesTheEigenpairsAndSamplesLieInTheirSpan) {
  const Domain dom = small_domain({4, 4, 3});
  const PoissonStencil a(dom);
  const Eigen::MatrixXd m = dense(a);
  const auto fluid = dom.count(CellType::Fluid);
  // Eigenvalues of A restricted to fluid cells (all positive: Dirichlet contact).
  std::vector<std::int64_t> cells;
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] == CellType::Fluid) cells.push_back(c);
  Eigen::MatrixXd af(fluid, fluid);
  for (std::int64_t r = 0; r < fluid; ++r)
    for (std::int64_t c = 0; c < fluid; ++c) af(r, c) = m(cells[r], cells[c]);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(af);

  // Lanczos may end early on an invariant subspace (repeated eigenvalues); whatever it
  // returns must then be exact eigenpairs.
  const RitzBasis basis = compute_ritz_basis(a, dom.dims(), static_cast<int>(fluid), 11);
  ASSERT_EQ(basis.count(), basis.lanczos_steps);
  ASSERT_GT(basis.count(), fluid / 2);
  const double scale = eig.eigenvalues().maxCoeff();
  if (basis.count() == fluid) {
    for (std::int64_t j = 0; j < fluid; ++j) EXPECT_NEAR(basis.values[j], eig.eigenvalues()[j], 1e-6 * scale);
  }
  for (std::int64_t j = 0; j < basis.count(); ++j) {
    EXPECT_LT((eig.eigenvalues().array() - basis.values[j]).abs().minCoeff(), 1e-6 * scale) << j;
    // A v = lambda v (float32 storage), zero outside fluid, unit norm.
    Eigen::VectorXd v(dom.dims().size());
    for (std::int64_t c = 0; c < v.size(); ++c) v[c] = basis.vector(j)[c];
    EXPECT_NEAR(v.norm(), 1.0, 1e-6);
    EXPECT_LT((m * v - basis.values[j] * v).norm(), 1e-5) << j;
    for (std::int64_t c = 0; c < v.size(); ++c) {
      if (dom.cells[c] != CellType::Fluid) {
        EXPECT_EQ(v[c], 0.0);
      }
    }
  }
  SampleRecipe recipe{static_cast<int>(fluid), 2, 9.0, 5};
  const auto k = basis.count();
  std::vector<float> s(static_cast<std::size_t>(6 * dom.dims().size()));
  generate_samples(basis, recipe, 0, 6, s);
  Eigen::MatrixXd v(dom.dims().size(), k);
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t c = 0; c < v.rows(); ++c) v(c, j) = basis.vector(j)[c];
  for (int i = 0; i < 6; ++i) {
    Eigen::VectorXd b(dom.dims().size());
    for (std::int64_t c = 0; c < b.size(); ++c) b[c] = s[i * b.size() + c];
    EXPECT_NEAR(b.norm(), 1.0, 1e-6);
    EXPECT_LT((b - v * (v.transpose() * b)).norm(), 1e-5) << i;
  }
}

TEST(DatasetRitz, PartialLanczosSamplesLieInTheSpanOfTheKeptRitzVectors) {
  const Domain dom = small_domain({6, 5, 4});
  const PoissonStencil a(dom);
  const int m = 12;  // far fewer than the fluid cells: the span is a real restriction
  const RitzBasis basis = compute_ritz_basis(a, dom.dims(), m, 3);
  ASSERT_EQ(basis.count(), m);
  const auto n = dom.dims().size();
  Eigen::MatrixXd v(n, m);
  for (int j = 0; j < m; ++j)
    for (std::int64_t c = 0; c < n; ++c) v(c, j) = basis.vector(j)[c];
  EXPECT_LT((v.transpose() * v - Eigen::MatrixXd::Identity(m, m)).cwiseAbs().maxCoeff(), 1e-5);
  for (int j = 1; j < m; ++j) EXPECT_LE(basis.values[j - 1], basis.values[j]);

  SampleRecipe recipe{m, 0, 9.0, 99};
  const int count = 8;
  std::vector<float> s(static_cast<std::size_t>(count * n));
  generate_samples(basis, recipe, 0, count, s);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  for (int i = 0; i < count; ++i) {
    Eigen::VectorXd b(n);
    for (std::int64_t c = 0; c < n; ++c) b[c] = s[i * n + c];
    EXPECT_NEAR(b.norm(), 1.0, 1e-6);
    const Eigen::VectorXd coeff = v.transpose() * b;
    EXPECT_LT((b - v * coeff).norm(), 1e-5) << "sample " << i << " leaves the Ritz span";
    // The coefficients are the recipe's, normalised.
    const auto c = sample_coefficients(basis, recipe, i);
    const double cn = Eigen::Map<const Eigen::VectorXd>(c.data(), m).norm();
    for (int j = 0; j < m; ++j) EXPECT_NEAR(coeff[j], c[j] / cn, 2e-5);
    // A random vector is far from the span (the check above can fail).
    Eigen::VectorXd r(n);
    for (std::int64_t k = 0; k < n; ++k) r[k] = dom.cells[k] == CellType::Fluid ? g(rng) : 0.0;
    r.normalize();
    EXPECT_GT((r - v * (v.transpose() * r)).norm(), 0.5);
  }
}

TEST(DatasetRitz, LowestMHalfPlusThetaCoefficientsAreBoostedByNine) {
  RitzBasis basis;
  basis.dims = {2, 2, 2};
  basis.lanczos_steps = 20;
  basis.values.assign(20, 1.0);
  SampleRecipe recipe{20, 3, 9.0, 7};  // boosted: 20/2 + 3 = 13
  EXPECT_EQ(recipe.boosted(20), 13);
  EXPECT_EQ(recipe.boosted(8), 8);
  std::vector<double> sq(20, 0.0);
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const auto c = sample_coefficients(basis, recipe, t);
    for (int j = 0; j < 20; ++j) sq[j] += c[j] * c[j] / trials;
  }
  for (int j = 0; j < 20; ++j) EXPECT_NEAR(sq[j], j < 13 ? 81.0 : 1.0, j < 13 ? 81.0 * 0.12 : 0.12) << j;
}

TEST(DatasetRitz, SamplesAreDeterministicPerSeed) {
  const Domain dom = small_domain({6, 4, 4});
  const PoissonStencil a(dom);
  const RitzBasis b1 = compute_ritz_basis(a, dom.dims(), 10, 21);
  const RitzBasis b2 = compute_ritz_basis(a, dom.dims(), 10, 21);
  EXPECT_EQ(b1.values, b2.values);
  EXPECT_EQ(b1.vectors, b2.vectors);
  const auto n = dom.dims().size();
  std::vector<float> s1(static_cast<std::size_t>(4 * n)), s2(s1.size()), s3(s1.size()), one(static_cast<std::size_t>(n));
  generate_samples(b1, {10, 1, 9.0, 5}, 0, 4, s1);
  generate_samples(b2, {10, 1, 9.0, 5}, 0, 4, s2);
  generate_samples(b1, {10, 1, 9.0, 6}, 0, 4, s3);
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, s3);
  // Sample i depends on (seed, i) only, not on the block it was generated in.
  generate_samples(b1, {10, 1, 9.0, 5}, 2, 1, one);
  for (std::int64_t c = 0; c < n; ++c) EXPECT_NEAR(one[c], s1[2 * n + c], 1e-6);
}

TEST(DatasetFolder, WritesShardsReadsThemBackAndResumes) {
  const Domain dom = small_domain({8, 6, 4});
  const PoissonStencil a(dom);
  const fs::path dir = temp_dir("roundtrip");
  DatasetSpec spec;
  spec.recipe = {16, 2, 9.0, 4};
  spec.samples = 10;
  spec.shard_size = 4;
  spec.source = "test";
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 3);
  ShardedDataset data(dir);
  ASSERT_EQ(data.size(), 10);
  EXPECT_EQ(data.dims(), dom.dims());
  EXPECT_EQ(data.domain().cells.vector(), dom.cells.vector());
  EXPECT_EQ(data.domain().faces, dom.faces);
  const auto n = dom.dims().size();
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < 10; ++i) {
    data.read(i, x);
    double sq = 0;
    for (float v : x) sq += double(v) * v;
    EXPECT_NEAR(sq, 1.0, 1e-5) << i;
  }
  // Resume: a lost shard is regenerated bit-identically from the cached basis; complete
  // shards are skipped.
  const std::string shard1 = slurp(dir / "shard-00001.npy");
  fs::remove(dir / "shard-00001.npy");
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 1);
  EXPECT_EQ(slurp(dir / "shard-00001.npy"), shard1);
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 0);
  // Another recipe in the same folder is refused, naming the folder, the manifest and the setting.
  DatasetSpec other = spec;
  other.recipe.seed = 5;
  try {
    write_dataset(dir, dom, a, {}, other);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.string() + ": holds a different dataset (manifest.json: seed = 4, this command asks for 5)"),
              std::string::npos)
        << what;
  }
  // So is another domain of the same size and recipe (a --system folder that changed): its
  // shards would be samples of other Ritz vectors.
  Domain moved = dom;
  moved.cells(1, 1, 1) = CellType::Solid;
  const PoissonStencil a_moved(moved);
  try {
    write_dataset(dir, moved, a_moved, {}, spec);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.string() + ": holds a dataset of another domain (cells.npy"), std::string::npos) << what;
  }
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 0);  // the folder is untouched
  fs::remove_all(dir);
}

namespace {
void flip_byte(const fs::path& p, std::size_t from_end) {
  std::string b = slurp(p);
  ASSERT_GT(b.size(), from_end);
  b[b.size() - from_end] = static_cast<char>(b[b.size() - from_end] ^ 0x04);
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(b.data(), static_cast<std::streamsize>(b.size()));
}
template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}
}  // namespace

// One changed byte in a shard, in the cached Ritz basis or in cells.npy is found by its
// checksum when the dataset is read or resumed (not trained on, or extended with samples of a
// damaged basis); the message names the file.
TEST(DatasetFolder, DamagedFilesAreFoundByTheirChecksums) {
  const Domain dom = small_domain({8, 6, 4});
  const PoissonStencil a(dom);
  const fs::path dir = temp_dir("checksums");
  DatasetSpec spec;
  spec.recipe = {12, 1, 9.0, 2};
  spec.samples = 6;
  spec.shard_size = 3;
  write_dataset(dir, dom, a, {}, spec);
  const fs::path shard = dir / "shard-00001.npy";
  const std::string good_shard = slurp(shard);
  flip_byte(shard, 10);
  std::string what = input_error_of([&] { ShardedDataset d(dir); });
  EXPECT_NE(what.find(shard.string() + ": checksum mismatch"), std::string::npos) << what;
  what = input_error_of([&] { write_dataset(dir, dom, a, {}, spec); });
  EXPECT_NE(what.find(shard.string() + ": checksum mismatch"), std::string::npos) << what;
  // Deleting the damaged shard regenerates it, bit for bit.
  fs::remove(shard);
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 1);
  EXPECT_EQ(slurp(shard), good_shard);

  // The Ritz cache is checked before new shards are made from it.
  flip_byte(dir / "ritz_basis.f32", 5);
  fs::remove(shard);
  what = input_error_of([&] { write_dataset(dir, dom, a, {}, spec); });
  EXPECT_NE(what.find((dir / "ritz_basis.f32").string() + ": checksum mismatch"), std::string::npos) << what;
  fs::remove(dir / "ritz_basis.f32");  // recomputed from Lanczos
  EXPECT_EQ(write_dataset(dir, dom, a, {}, spec), 1);
  EXPECT_EQ(ShardedDataset(dir).size(), 6);

  flip_byte(dir / "cells.npy", 3);
  what = input_error_of([&] { ShardedDataset d(dir); });
  EXPECT_NE(what.find((dir / "cells.npy").string() + ": checksum mismatch"), std::string::npos) << what;
  fs::remove_all(dir);
}

// A version-1 manifest (no checksums) is still read; a non-finite value in one of its shards
// is refused naming the shard file and the sample, when the dataset is opened and when a
// sample is read.
TEST(DatasetFolder, NonFiniteSampleNamesTheShardAndTheSample) {
  const Domain dom = small_domain({8, 6, 4});
  const PoissonStencil a(dom);
  const fs::path dir = temp_dir("nan");
  DatasetSpec spec;
  spec.recipe = {12, 1, 9.0, 2};
  spec.samples = 6;
  spec.shard_size = 3;
  write_dataset(dir, dom, a, {}, spec);
  {  // the manifest as version 1 wrote it
    auto m = nlohmann::json::parse(slurp(dir / "manifest.json"));
    m["version"] = 1;
    m.erase("cells_crc32");
    m["ritz"].erase("values_crc32");
    m["ritz"].erase("basis_crc32");
    for (auto& sh : m["shards"]) sh.erase("crc32");
    std::ofstream(dir / "manifest.json", std::ios::trunc) << m.dump(2);
  }
  ASSERT_EQ(ShardedDataset(dir).size(), 6);
  const fs::path shard = dir / "shard-00001.npy";  // samples 3, 4, 5
  const std::string good = slurp(shard);
  const NpyInfo info = read_npy_info(shard);
  const std::int64_t n = dom.dims().size();
  std::string bad = good;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(bad.data() + info.data_offset + (1 * n + 7) * 4, &nan, 4);  // sample 4, value 7
  std::ofstream(shard, std::ios::binary | std::ios::trunc).write(bad.data(), static_cast<std::streamsize>(bad.size()));
  std::string what = input_error_of([&] { ShardedDataset d(dir); });
  EXPECT_NE(what.find(shard.string() + ": sample 4 (row 1 of the shard, value 7"), std::string::npos) << what;
  EXPECT_EQ(what.find("--lr"), std::string::npos) << what;
  // Changed after the dataset was opened: the read names it.
  std::ofstream(shard, std::ios::binary | std::ios::trunc).write(good.data(), static_cast<std::streamsize>(good.size()));
  const ShardedDataset data(dir);
  std::ofstream(shard, std::ios::binary | std::ios::trunc).write(bad.data(), static_cast<std::streamsize>(bad.size()));
  std::vector<float> x(static_cast<std::size_t>(n));
  data.read(3, x);
  what = input_error_of([&] { data.read(4, x); });
  EXPECT_NE(what.find(shard.string() + ": sample 4"), std::string::npos) << what;
  fs::remove_all(dir);
}

TEST(DatasetFolder, BadInputNamesTheFile) {
  const Domain dom = small_domain({8, 6, 4});
  const PoissonStencil a(dom);
  const fs::path dir = temp_dir("bad");
  auto expect_error_naming = [](const fs::path& d, const std::string& name) {
    try {
      ShardedDataset data(d);
      FAIL() << "expected InputError naming " << name;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_error_naming(dir, "manifest.json");  // missing manifest
  DatasetSpec spec;
  spec.recipe = {8, 0, 9.0, 1};
  spec.samples = 6;
  spec.shard_size = 3;
  write_dataset(dir, dom, a, {}, spec);
  {  // truncated shard
    const std::string bytes = slurp(dir / "shard-00001.npy");
    std::ofstream(dir / "shard-00001.npy", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 7));
    expect_error_naming(dir, "shard-00001.npy");
    std::ofstream(dir / "shard-00001.npy", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  {  // cells of another grid size
    const std::string cells = slurp(dir / "cells.npy");
    write_cells_npy(dir / "cells.npy", small_domain({4, 6, 4}));
    expect_error_naming(dir, "cells.npy");
    std::ofstream(dir / "cells.npy", std::ios::binary).write(cells.data(), static_cast<std::streamsize>(cells.size()));
  }
  {  // not a .npy file
    std::ofstream(dir / "shard-00000.npy", std::ios::binary) << "garbage";
    expect_error_naming(dir, "shard-00000.npy");
  }
  {  // malformed manifest
    std::ofstream(dir / "manifest.json") << "{ \"format\": ";
    expect_error_naming(dir, "manifest.json");
  }
  EXPECT_THROW(write_dataset(dir / "x", dom, a, {}, DatasetSpec{}), InputError);  // 0 samples
  fs::remove_all(dir);
}
