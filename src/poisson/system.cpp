// Pressure systems as files: scene -> (A, b, flags, JSON), loading, and import of matrices
// made by other tools with inference of the domain (see include/dcdm/system.hpp).
#include "dcdm/system.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/poisson.hpp"

namespace dcdm {

namespace fs = std::filesystem;

const char* to_string(RhsKind k) {
  switch (k) {
    case RhsKind::Random: return "random";
    case RhsKind::Smooth: return "smooth";
    case RhsKind::File: return "file";
  }
  return "invalid";
}

RhsKind parse_rhs_kind(const std::string& text) {
  if (text == "random") return RhsKind::Random;
  if (text == "smooth") return RhsKind::Smooth;
  if (text.empty()) throw InputError("--rhs: expected random, smooth or a file name");
  return RhsKind::File;
}

// ---------------------------------------------------------------- memory guard

std::int64_t estimate_system_bytes(const Dims& d, bool weighted, SystemMatrix matrix) {
  // Per cell, without the matrix: domain 1 + b 8 + component labels 4 + the scene's and the
  // labelling's work arrays ~11 (measured: 22.9 bytes a cell at the peak of building a 256^3
  // obstacles system), 24. With it: + CSR (7 x (8 value + 4 column) + 8 row offset) 92 +
  // operator set-up 2 + file buffers (reference binary and .npy copies) ~70, rounded up to 200.
  // Weighted: coefficient arrays (3 face arrays + diagonal, float64) 32 + the weighted
  // operator's diagonal and couplings 32 + a coefficient array's .npy buffer or import scan
  // ~40: 104, rounded up to 120.
  const std::int64_t per_cell = (matrix == SystemMatrix::Skip ? 24 : 200) + (weighted ? 120 : 0);
  return d.size() * per_cell;
}

void check_system_fits_memory(const Dims& dims, const std::string& option, bool weighted, SystemMatrix matrix) {
  const std::int64_t need = estimate_system_bytes(dims, weighted, matrix), have = physical_memory_bytes();
  if (have > 0 && need > have)
    throw InputError(fmt::format("{}: a {} system needs about {:.1f} GiB, more than the {:.1f} GiB of memory this process may use",
                                 option, dims.str(), need / 1073741824.0, have / 1073741824.0));
}

// ---------------------------------------------------------------- description

nlohmann::json describe_domain(const Domain& domain, const FluidComponents* components) {
  nlohmann::json j;
  const Dims d = domain.dims();
  j["dims"] = {d.nx, d.ny, d.nz};
  j["cells"] = {{"fluid", domain.count(CellType::Fluid)},
                {"air", domain.count(CellType::Air)},
                {"solid", domain.count(CellType::Solid)}};
  nlohmann::json faces;
  for (int f = 0; f < 6; ++f)
    faces[to_string(static_cast<Face>(f))] = domain.faces[f] == FaceBoundary::Open ? "open" : "wall";
  j["faces"] = faces;
  FluidComponents computed;
  if (!components) computed = fluid_components(domain);
  const FluidComponents& fc = components ? *components : computed;
  nlohmann::json singular = nlohmann::json::array();
  constexpr int kListed = 100;
  for (int c = 0; c < fc.count(); ++c)
    if (!fc.touches_dirichlet[c] && static_cast<int>(singular.size()) < kListed) {
      const std::int64_t cell = fc.first_cell[c];
      const int i = static_cast<int>(cell % d.nx), jj = static_cast<int>((cell / d.nx) % d.ny),
                k = static_cast<int>(cell / (std::int64_t(d.nx) * d.ny));
      singular.push_back({{"id", c}, {"size", fc.size[c]}, {"first_cell", {i, jj, k}}});
    }
  j["components"] = {{"count", fc.count()},
                     {"singular_count", fc.singular_count()},
                     {"singular", singular},
                     {"singular_listed", singular.size()}};
  return j;
}

// ---------------------------------------------------------------- scene systems

namespace {

class Random {
 public:
  explicit Random(std::uint64_t seed) : rng_(seed * 0x9E3779B97F4A7C15ull + 0x5851F42D4C957F2Dull) {}
  double uniform() { return (double(rng_() >> 11) + 0.5) * 0x1.0p-53; }  // in (0, 1)
  double normal() {  // Box-Muller, one value per call
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 rng_;
};

// SplitMix64's output function: a bijective mix of 64 bits.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The normal pair of cells 2m and 2m+1 (Marsaglia's polar method: no sine or cosine): points
// (u, v) uniform in the square from the seed's stream at pair m, attempt a, until one falls
// inside the unit disc (pi/4 of them do).
struct NormalPair {
  double first, second;
};
NormalPair normal_pair(std::uint64_t seed, std::int64_t m) {
  // The pair's own stream: a hash of the seed and m, so that no two pairs share draws.
  const std::uint64_t pair = mix64(mix64(seed ^ 0x5851F42D4C957F2Dull) + static_cast<std::uint64_t>(m) * 0x9E3779B97F4A7C15ull);
  for (std::uint64_t a = 0;; a += 2) {
    // Uniform in (-1, 1): 53 random bits, centred.
    const double u = (double(mix64(pair + a * 0xD1B54A32D192ED03ull) >> 11) + 0.5) * 0x1.0p-52 - 1.0;
    const double v = (double(mix64(pair + (a + 1) * 0xD1B54A32D192ED03ull) >> 11) + 0.5) * 0x1.0p-52 - 1.0;
    const double r2 = u * u + v * v;
    if (r2 >= 1.0) continue;  // outside the disc (r2 > 0: u and v are never 0)
    const double f = std::sqrt(-2.0 * std::log(r2) / r2);
    return {u * f, v * f};
  }
}

std::vector<double> make_rhs(const Domain& dom, RhsKind kind, std::uint64_t seed, const fs::path& file,
                             nlohmann::json& meta) {
  const Dims d = dom.dims();
  const auto n = static_cast<std::size_t>(d.size());
  std::vector<double> b(n, 0.0);
  Random rng(seed);
  meta["kind"] = to_string(kind);
  if (kind == RhsKind::Random) {
    meta["seed"] = seed;
    const std::int64_t pairs = (d.size() + 1) / 2;
    const CellType* cells = dom.cells.data();
#pragma omp parallel for schedule(static)
    for (std::int64_t m = 0; m < pairs; ++m) {
      const std::int64_t c = 2 * m;
      const bool first = cells[c] == CellType::Fluid, second = c + 1 < d.size() && cells[c + 1] == CellType::Fluid;
      if (!first && !second) continue;
      const NormalPair p = normal_pair(seed, m);
      if (first) b[static_cast<std::size_t>(c)] = p.first;
      if (second) b[static_cast<std::size_t>(c + 1)] = p.second;
    }
  } else if (kind == RhsKind::Smooth) {
    meta["seed"] = seed;
    struct Mode {
      int k[3];
      double phase[3], amplitude;
    };
    std::vector<Mode> modes(6);
    for (auto& m : modes) {
      for (int a = 0; a < 3; ++a) {
        m.k[a] = 1 + static_cast<int>(rng.uniform() * 3.0);
        m.phase[a] = 2.0 * std::numbers::pi * rng.uniform();
      }
      m.amplitude = (0.5 + 0.5 * rng.uniform()) / (m.k[0] * m.k[0] + m.k[1] * m.k[1] + m.k[2] * m.k[2]);
    }
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const auto c = d.index(i, j, k);
          if (dom.cells[c] != CellType::Fluid) continue;
          const double x[3] = {(i + 0.5) / d.nx, (j + 0.5) / d.ny, (k + 0.5) / d.nz};
          double v = 0;
          for (const auto& m : modes) {
            double p = m.amplitude;
            for (int a = 0; a < 3; ++a) p *= std::cos(std::numbers::pi * m.k[a] * x[a] + m.phase[a]);
            v += p;
          }
          b[c] = v;
        }
  } else {
    meta["file"] = file.string();
    std::vector<double> v = io::read_vector(file);
    if (static_cast<std::int64_t>(v.size()) != d.size())
      throw InputError(fmt::format("{}: {} values, but the grid {} has {} cells", file.string(), v.size(), d.str(), d.size()));
    std::int64_t zeroed = 0;
    for (std::size_t c = 0; c < n; ++c) {
      if (dom.cells[c] == CellType::Fluid) b[c] = v[c];
      else if (v[c] != 0.0) ++zeroed;
    }
    meta["nonfluid_values_zeroed"] = zeroed;
  }
  return b;
}

// Projects b for singular components and records what was removed.
void project_rhs(const RangeProjector& proj, std::vector<double>& b, nlohmann::json& meta) {
  if (!proj.singular()) {
    meta["projected"] = false;
    return;
  }
  const auto means = proj.project(b);
  meta["projected"] = true;
  nlohmann::json removed = nlohmann::json::array();
  for (std::size_t s = 0; s < means.size() && s < 100; ++s)
    removed.push_back({{"component", proj.singular_components()[s]}, {"mean_removed", means[s]}});
  meta["projection"] = removed;
}

}  // namespace

double random_rhs_value(std::uint64_t seed, std::int64_t cell) {
  const NormalPair p = normal_pair(seed, cell / 2);
  return cell % 2 == 0 ? p.first : p.second;
}

PoissonSystem make_scene_system(const SceneSpec& scene, RhsKind rhs, std::uint64_t seed, const fs::path& rhs_file,
                                SystemMatrix matrix) {
  check_system_fits_memory(scene.dims, "--n/--dims", false, matrix);
  check_min_dims(scene.dims);
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  PoissonSystem sys;
  nlohmann::json scene_info;
  auto t = Clock::now();
  sys.domain = make_scene(scene, &scene_info);
  const double scene_seconds = since(t);
  // A weighted scene needs more (its coefficients, the weighted operator): checked again.
  if (sys.domain.weighted()) check_system_fits_memory(scene.dims, "--n/--dims", true, matrix);
  if (matrix == SystemMatrix::Assemble) sys.matrix = assemble_full_grid(sys.domain);
  nlohmann::json rhs_meta;
  t = Clock::now();
  sys.rhs = make_rhs(sys.domain, rhs, seed, rhs_file, rhs_meta);
  const double rhs_seconds = since(t);
  // The components once (a flood fill over the grid), for the projection and the description.
  t = Clock::now();
  auto projector = std::make_shared<const RangeProjector>(sys.domain);
  const double components_seconds = since(t);
  project_rhs(*projector, sys.rhs, rhs_meta);
  rhs_meta["norm2"] = norm2(sys.rhs);
  sys.meta = describe_domain(sys.domain, &projector->components());
  sys.projector = std::move(projector);
  sys.meta["format"] = "dcdm-system";
  sys.meta["version"] = 1;
  sys.meta["scene"] = scene_info;
  sys.meta["rhs"] = rhs_meta;
  sys.meta["matrix"] = {{"rows", sys.domain.dims().size()}, {"layout", "full-grid"}};
  if (sys.has_matrix()) sys.meta["matrix"]["nnz"] = sys.matrix.nnz();
  sys.build_seconds = {scene_seconds, rhs_seconds, components_seconds};
  return sys;
}

// ---------------------------------------------------------------- save / load

namespace {

std::vector<std::int64_t> grid_shape(const Dims& d) { return {d.nz, d.ny, d.nx}; }

// Same operator: equal sizes and equal entries row by row, an entry missing on one side
// counting as 0 (explicit zeros ignored). tol 0: exact; else |a - b| <= tol * the largest
// magnitude in the row (of either matrix). Returns the first differing row, or -1. Columns are
// sorted within rows (CsrMatrix::check_structure).
std::int64_t first_difference(const CsrMatrix& a, const CsrMatrix& b, double tol = 0.0) {
  if (a.rows != b.rows || a.cols != b.cols) return 0;
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const auto pb = a.row_ptr[r], pe = a.row_ptr[r + 1], qb = b.row_ptr[r], qe = b.row_ptr[r + 1];
    double big = 0.0;
    if (tol > 0.0) {
      for (auto p = pb; p < pe; ++p) big = std::max(big, std::abs(a.values[p]));
      for (auto q = qb; q < qe; ++q) big = std::max(big, std::abs(b.values[q]));
    }
    const double allowed = tol * big;
    auto p = pb, q = qb;
    while (p < pe || q < qe) {
      const std::int64_t ca = p < pe ? a.col_idx[p] : std::numeric_limits<std::int64_t>::max();
      const std::int64_t cb = q < qe ? b.col_idx[q] : std::numeric_limits<std::int64_t>::max();
      double diff;
      if (ca == cb) diff = std::abs(a.values[p++] - b.values[q++]);
      else if (ca < cb) diff = std::abs(a.values[p++]);
      else diff = std::abs(b.values[q++]);
      if (!(diff <= allowed)) return r;
    }
  }
  return -1;
}

std::string cell_name(const Dims& d, std::int64_t cell) {
  return fmt::format("row {} = cell ({}, {}, {})", cell, cell % d.nx, (cell / d.nx) % d.ny,
                     cell / (std::int64_t(d.nx) * d.ny));
}

// ---- coefficient files (Domain::coefficients) ----

constexpr const char* kCoefficientNames[4] = {"face_x", "face_y", "face_z", "diagonal"};

// NumPy shape of coefficient array `a` (0..2 the MAC face arrays, 3 the diagonal term).
std::vector<std::int64_t> coefficient_shape(const Dims& d, int a) {
  switch (a) {
    case 0: return {d.nz, d.ny, std::int64_t(d.nx) + 1};
    case 1: return {d.nz, std::int64_t(d.ny) + 1, d.nx};
    case 2: return {std::int64_t(d.nz) + 1, d.ny, d.nx};
    default: return {d.nz, d.ny, d.nx};
  }
}

std::vector<double>& coefficient_array(Coefficients& c, int a) {
  return a == 0 ? c.face_x : a == 1 ? c.face_y : a == 2 ? c.face_z : c.diagonal;
}
const std::vector<double>& coefficient_array(const Coefficients& c, int a) {
  return a == 0 ? c.face_x : a == 1 ? c.face_y : a == 2 ? c.face_z : c.diagonal;
}

// Empty, or every value the default (weights 1, diagonal term 0): no file is written.
bool default_coefficients(const std::vector<double>& v, int a) {
  const double def = a < 3 ? 1.0 : 0.0;
  return std::all_of(v.begin(), v.end(), [def](double x) { return x == def; });
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string t = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) t += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return t + (shape.size() == 1 ? ",)" : ")");
}

// Every value of A exact in float32 (the reference binary's precision).
bool exact_in_float32(const CsrMatrix& a) {
  return std::all_of(a.values.begin(), a.values.end(), [](double v) {
    return std::abs(v) <= double(std::numeric_limits<float>::max()) && double(static_cast<float>(v)) == v;
  });
}

// Reads the coefficients system.json names, checks each file on its own (InputError naming it)
// and sets them on `dom` (Domain::set_coefficients; an error there names system.json and the
// files).
void load_coefficients(const fs::path& dir, const fs::path& json_path, const nlohmann::json& cj, Domain& dom) {
  const Dims d = dom.dims();
  const CoefficientFiles named = coefficient_files(dir, json_path, cj);
  Coefficients co;
  co.scale = named.scale;
  for (int a = 0; a < 4; ++a) {
    const fs::path& path = named.paths[static_cast<std::size_t>(a)];
    if (path.empty()) continue;
    const io::NpyArray arr = io::read_npy(path);  // non-finite values: InputError naming the file
    const auto shape = coefficient_shape(d, a);
    if (arr.dtype != io::DType::Float32 && arr.dtype != io::DType::Float64)
      throw InputError(fmt::format("{}: dtype {}, expected float64 or float32", path.string(), io::to_string(arr.dtype)));
    if (arr.shape != shape)
      throw InputError(fmt::format("{}: shape {}, expected {} for {} on a {} grid", path.string(), shape_text(arr.shape),
                                   shape_text(shape), kCoefficientNames[a], d.str()));
    Coefficients one;  // this array alone, so that a bad value is blamed on its file
    coefficient_array(one, a) = arr.to_double();
    try {
      one.check(d);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", path.string(), e.what()));
    }
    coefficient_array(co, a) = std::move(coefficient_array(one, a));
  }
  try {
    dom.set_coefficients(std::move(co));
  } catch (const InputError& e) {
    throw InputError(fmt::format("{} (coefficients {}): {}", json_path.string(),
                                 named.names.empty() ? "scale only" : named.names, e.what()));
  }
}

// b.npy of a folder: one value per cell (size checked from the header, before reading).
std::vector<double> read_system_rhs(const fs::path& b_path, const Dims& d) {
  const io::NpyHeader h = io::read_npy_header(b_path);
  if (h.count() != d.size())
    throw InputError(fmt::format("{}: {} values for a {} grid of {} cells", b_path.string(), h.count(), d.str(), d.size()));
  return io::read_npy_vector(b_path);
}

// The matrix file of a folder read without its matrix: present, and with one row and column
// per cell in its header (A.bin's first two int32, A.mtx's size line).
void check_matrix_header(const fs::path& a_path, const Dims& d) {
  std::int64_t rows = 0, cols = 0;
  if (a_path.extension() == ".bin") {
    const std::string head = io::read_file_prefix(a_path, 8);
    if (head.size() < 8) throw InputError(fmt::format("{}: byte {}: file ends inside the header", a_path.string(), head.size()));
    std::int32_t h[2];
    std::memcpy(h, head.data(), 8);
    rows = h[0];
    cols = h[1];
  } else {
    const io::MatrixMarketInfo info = io::read_matrix_market_header(a_path);
    rows = info.rows;
    cols = info.cols;
  }
  if (rows != d.size() || cols != d.size())
    throw InputError(fmt::format("{}: the matrix is {} x {}, but flags.npy has {} cells ({} grid)", a_path.string(),
                                 rows, cols, d.size(), d.str()));
}

}  // namespace

CoefficientFiles coefficient_files(const fs::path& dir, const fs::path& json_path, const nlohmann::json& cj) {
  if (!cj.is_object())
    throw InputError(fmt::format("{}: \"coefficients\" is {}, expected an object such as {{\"scale\": 1, "
                                 "\"face_x\": \"face_x.npy\"}}",
                                 json_path.string(), cj.dump()));
  CoefficientFiles out;
  for (const auto& [key, value] : cj.items()) {
    if (key == "scale") {
      if (!value.is_number())
        throw InputError(fmt::format("{}: coefficients.scale is {}, expected a number", json_path.string(), value.dump()));
      out.scale = value.get<double>();
      if (!(std::isfinite(out.scale) && out.scale > 0.0))
        throw InputError(fmt::format("{}: coefficients.scale {} must be a positive finite number", json_path.string(),
                                     out.scale));
      continue;
    }
    int a = 0;
    while (a < 4 && key != kCoefficientNames[a]) ++a;
    if (a == 4)
      throw InputError(fmt::format("{}: coefficients.{} is not a coefficient (scale, face_x, face_y, face_z, diagonal)",
                                   json_path.string(), key));
    if (!value.is_string() || value.get<std::string>().empty())
      throw InputError(fmt::format("{}: coefficients.{} is {}, expected a file name", json_path.string(), key, value.dump()));
    const fs::path path = dir / value.get<std::string>();
    if (!fs::is_regular_file(path))
      throw MissingFileError(fmt::format("{}: no such file (system.json's coefficients.{} names it)", path.string(), key));
    out.paths[static_cast<std::size_t>(a)] = path;
    out.names += fmt::format("{}{}", out.names.empty() ? "" : ", ", path.filename().string());
  }
  return out;
}

namespace {

void save_parts(const fs::path& dir, const Domain& domain, const std::vector<double>& rhs, const CsrMatrix* matrix,
                const nlohmann::json& given_meta, MatrixFiles matrix_files, const FluidComponents* components) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw InputError(fmt::format("--out {}: cannot create the folder ({})", dir.string(), ec ? ec.message() : "not a folder"));
  const Dims d = domain.dims();
  if (static_cast<std::int64_t>(rhs.size()) != d.size())
    throw Error(fmt::format("save_system: b has {} values for a {} grid", rhs.size(), d.str()));
  bool reference = false;
  if (matrix_files == MatrixFiles::Write) {
    CsrMatrix assembled;
    if (!matrix) assembled = assemble_full_grid(domain);
    const CsrMatrix& a = matrix ? *matrix : assembled;
    if (a.rows != d.size())
      throw Error(fmt::format("save_system: matrix has {} rows for a {} grid", a.rows, d.str()));
    io::write_matrix_market(dir / "A.mtx", a, true,
                            fmt::format("dcdm pressure matrix, full grid {} (x fastest), see system.json", d.str()));
    // The reference binary holds float32 values: written only when that is exact (always for
    // the unit operator), else A.mtx alone is the matrix (and an older A.bin must not stay).
    reference = exact_in_float32(a);
    if (reference) io::write_reference_matrix(dir / "A.bin", a, io::ValuePrecision::Float32);
    else fs::remove(dir / "A.bin", ec);
  } else {
    fs::remove(dir / "A.mtx", ec);  // from an earlier system in this folder
    fs::remove(dir / "A.bin", ec);
    fs::remove(dir / "b.bin", ec);
  }
  io::write_npy(dir / "b.npy", rhs, grid_shape(d));
  if (matrix_files == MatrixFiles::Write) io::write_reference_vector(dir / "b.bin", rhs);
  std::vector<std::uint8_t> flags(domain.cells.vector().size());
  for (std::size_t c = 0; c < flags.size(); ++c) flags[c] = static_cast<std::uint8_t>(domain.cells[c]);
  io::write_npy(dir / "flags.npy", flags, grid_shape(d));
  nlohmann::json meta = given_meta;
  meta.update(describe_domain(domain, components));
  meta["format"] = "dcdm-system";
  meta["version"] = 1;
  meta["files"] = {{"rhs", "b.npy"}, {"flags", "flags.npy"}};
  if (matrix_files == MatrixFiles::Omit) {
    meta["files"]["matrix"] = "omitted";
  } else {
    meta["files"]["rhs_reference"] = "b.bin";
    meta["files"]["matrix_market"] = "A.mtx";
    if (reference) meta["files"]["matrix_reference"] = "A.bin";
    else meta["files"]["matrix_reference_omitted"] = "A has values that float32 (A.bin's precision) would round";
  }
  meta.erase("coefficients");
  for (int a = 0; a < 4; ++a) {
    const std::string file = std::string(kCoefficientNames[a]) + ".npy";
    const Coefficients* co = domain.coefficients.get();
    if (co && !default_coefficients(coefficient_array(*co, a), a)) {
      io::write_npy(dir / file, coefficient_array(*co, a), coefficient_shape(d, a));
      meta["coefficients"][kCoefficientNames[a]] = file;
      meta["files"][kCoefficientNames[a]] = file;
    } else {
      fs::remove(dir / file, ec);  // from an earlier system in this folder
    }
  }
  if (domain.weighted()) meta["coefficients"]["scale"] = domain.coefficients->scale;
  meta["flags_encoding"] = {{"0", "solid"}, {"1", "fluid"}, {"2", "air"}};
  meta["layout"] = "arrays have shape (nz, ny, nx); cell (i, j, k) is row i + nx*(j + ny*k) of A";
  io::write_file_atomic(dir / "system.json", meta.dump(2) + "\n");
}

}  // namespace

void save_system(const fs::path& dir, const PoissonSystem& sys, MatrixFiles matrix_files) {
  save_parts(dir, sys.domain, sys.rhs, sys.has_matrix() ? &sys.matrix : nullptr, sys.meta, matrix_files, nullptr);
}

void save_system(const fs::path& dir, const Domain& domain, const std::vector<double>& rhs, const nlohmann::json& meta,
                 MatrixFiles matrix_files, const FluidComponents* components) {
  save_parts(dir, domain, rhs, nullptr, meta, matrix_files, components);
}

std::vector<std::string> system_files(const PoissonSystem& sys, MatrixFiles matrix_files) {
  std::vector<std::string> files;
  if (matrix_files == MatrixFiles::Write) {
    files.push_back("A.mtx");
    // The unit operator's values are small integers, always exact in float32.
    const bool reference = sys.has_matrix() ? exact_in_float32(sys.matrix)
                           : !sys.domain.weighted() || exact_in_float32(assemble_full_grid(sys.domain));
    if (reference) files.push_back("A.bin");
  }
  for (const char* f : {"b.npy", "b.bin", "flags.npy"})
    if (matrix_files == MatrixFiles::Write || std::string(f) != "b.bin") files.push_back(f);
  if (const Coefficients* co = sys.domain.coefficients.get())
    for (int a = 0; a < 4; ++a)
      if (!default_coefficients(coefficient_array(*co, a), a)) files.push_back(std::string(kCoefficientNames[a]) + ".npy");
  files.push_back("system.json");
  return files;
}

Dims dims_from_json(const nlohmann::json& value, const std::string& what) {
  if (!value.is_array() || value.size() != 3)
    throw InputError(fmt::format("{}: {} is not [nx, ny, nz]", what, value.dump()));
  int axes[3];
  for (int a = 0; a < 3; ++a) {
    const auto& v = value[static_cast<std::size_t>(a)];
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::int64_t>() > kMaxGridCells)
      throw InputError(fmt::format("{}: [{}] = {} is not a positive 32-bit integer", what, a, v.dump()));
    axes[a] = static_cast<int>(v.get<std::int64_t>());
  }
  const Dims d{axes[0], axes[1], axes[2]};
  check_grid_dims(d, what);
  return d;
}

PoissonSystem load_system(const fs::path& dir, SystemMatrix matrix) {
  const fs::path json_path = dir / "system.json";
  if (!fs::exists(dir))
    throw MissingFileError(fmt::format("{}: no such system folder", dir.string()));
  if (!fs::is_regular_file(json_path))
    throw InputError(fmt::format("{}: not a system folder (no system.json; write one with dcdm export or dcdm import)", dir.string()));
  PoissonSystem sys;
  try {
    sys.meta = nlohmann::json::parse(io::read_file(json_path));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: invalid JSON: {}", json_path.string(), e.what()));
  }
  Dims d;
  Domain dom;
  try {
    const auto& dims = sys.meta.at("dims");
    d = dims_from_json(dims, json_path.string() + " dims");
    dom = Domain(d);
    for (int f = 0; f < 6; ++f) {
      const std::string v = sys.meta.at("faces").at(to_string(static_cast<Face>(f))).get<std::string>();
      if (v != "open" && v != "wall")
        throw InputError(fmt::format("{}: face {} is '{}', expected open or wall", json_path.string(), to_string(static_cast<Face>(f)), v));
      dom.faces[f] = v == "open" ? FaceBoundary::Open : FaceBoundary::Wall;
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: missing or malformed dims/faces: {}", json_path.string(), e.what()));
  }
  const fs::path flags_path = dir / "flags.npy";
  {
    // Straight into the domain's cells (a byte each, as CellType is).
    static_assert(sizeof(CellType) == 1);
    const io::NpyHeader h = io::read_npy_header(flags_path);
    if (h.dtype != io::DType::UInt8 || h.shape != grid_shape(d))
      throw InputError(fmt::format("{}: expected uint8 of shape ({}, {}, {}) as system.json says", flags_path.string(),
                                   d.nz, d.ny, d.nx));
    auto* cells = reinterpret_cast<std::uint8_t*>(dom.cells.vector().data());
    io::read_file_range(flags_path, h.data_offset, cells, static_cast<std::size_t>(d.size()));
    std::int64_t first_bad = -1;
#pragma omp parallel for reduction(max : first_bad) schedule(static)
    for (std::int64_t c = 0; c < d.size(); ++c)
      if (cells[c] > 2) first_bad = std::max(first_bad, d.size() - c);  // max of n - c: the first
    if (first_bad >= 0) {
      const std::int64_t c = d.size() - first_bad;
      throw InputError(fmt::format("{}: value {} at element {} is not 0, 1 or 2", flags_path.string(), cells[c], c));
    }
  }
  if (sys.meta.contains("coefficients") && !sys.meta["coefficients"].is_null())
    load_coefficients(dir, json_path, sys.meta["coefficients"], dom);
  // The reference binary when the folder has one (system.json lists it when save_system wrote
  // it; a folder made by hand may have it unlisted), else the Matrix Market file.
  const auto* files = sys.meta.contains("files") && sys.meta["files"].is_object() ? &sys.meta["files"] : nullptr;
  if (files && files->contains("matrix") && (*files)["matrix"] == "omitted") {
    // Written without matrix files: the operator is the flags', faces' and coefficients'.
    if (matrix == SystemMatrix::Assemble) sys.matrix = assemble_full_grid(dom);
    sys.domain = std::move(dom);
    sys.rhs = read_system_rhs(dir / "b.npy", d);
    return sys;
  }
  const bool listed = files && files->contains("matrix_reference");
  const bool omitted = files && files->contains("matrix_market") && !listed;
  const fs::path a_path = !omitted && fs::exists(dir / "A.bin") ? dir / "A.bin" : dir / "A.mtx";
  if (matrix == SystemMatrix::Skip) {
    check_matrix_header(a_path, d);
    sys.domain = std::move(dom);
    sys.rhs = read_system_rhs(dir / "b.npy", d);
    return sys;
  }
  io::ValuePrecision precision = io::ValuePrecision::Float64;
  CsrMatrix a = a_path.extension() == ".bin" ? io::read_reference_matrix(a_path, &precision) : io::read_matrix(a_path);
  sys.matrix = assemble_full_grid(dom);
  // Unit operator: small integers, exact. Weighted: the file's values may come from another
  // summation order (or float32), so within a tolerance of the row's magnitude.
  const double tol = !dom.weighted() ? 0.0 : precision == io::ValuePrecision::Float32 ? 1e-6 : 1e-12;
  const std::int64_t diff = first_difference(a, sys.matrix, tol);
  if (diff >= 0)
    throw InputError(fmt::format("{}: the matrix is not the operator of flags.npy{} and the faces in system.json "
                                 "(first difference at {})",
                                 a_path.string(), dom.weighted() ? ", the coefficients" : "",
                                 a.rows == sys.matrix.rows ? cell_name(d, diff) : "the size"));
  sys.rhs = read_system_rhs(dir / "b.npy", d);
  sys.domain = std::move(dom);
  return sys;
}

// ---------------------------------------------------------------- import

namespace {

struct CellCoords {
  int i, j, k;
};

// Rule 1 of infer_domain: the unit operator (every off-diagonal -1, whole diagonals), verified
// exactly.
Domain infer_unit_domain(const CsrMatrix& a, const Dims& d, const std::string& name, std::vector<std::string>* notes) {
  if (a.rows != a.cols)
    throw InputError(fmt::format("{}: matrix is {}x{}, not square", name, a.rows, a.cols));
  if (a.rows != d.size())
    throw InputError(fmt::format("{}: matrix has {} rows but the grid {} has {} cells", name, a.rows, d.str(), d.size()));
  const std::int64_t n = d.size();
  const std::int64_t sy = d.nx, sz = std::int64_t(d.nx) * d.ny;
  auto coords = [&](std::int64_t c) {
    return CellCoords{static_cast<int>(c % d.nx), static_cast<int>((c / d.nx) % d.ny), static_cast<int>(c / sz)};
  };
  auto not_poisson = [&](std::int64_t row, const std::string& why) {
    return InputError(fmt::format("{}: not a 7-point grid Poisson matrix on a {} grid: {}: {}", name, d.str(),
                                  cell_name(d, row), why));
  };
  // Neighbour across face f, or -1 beyond the grid.
  auto neighbour = [&](std::int64_t c, int f) -> std::int64_t {
    const CellCoords p = coords(c);
    switch (f) {
      case 0: return p.i > 0 ? c - 1 : -1;
      case 1: return p.i < d.nx - 1 ? c + 1 : -1;
      case 2: return p.j > 0 ? c - sy : -1;
      case 3: return p.j < d.ny - 1 ? c + sy : -1;
      case 4: return p.k > 0 ? c - sz : -1;
      default: return p.k < d.nz - 1 ? c + sz : -1;
    }
  };

  // 1. Fluid cells, their diagonal and their fluid-neighbour bits, from the rows.
  std::vector<std::uint8_t> fluid(n, 0), mask(n, 0);
  std::vector<int> diag(n, 0);
  for (std::int64_t r = 0; r < n; ++r) {
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) {
      const double v = a.values[p];
      if (v == 0.0) continue;
      const std::int64_t c = a.col_idx[p];
      fluid[r] = 1;
      if (c == r) {
        if (v != std::round(v) || v < 1 || v > 6)
          throw not_poisson(r, fmt::format("diagonal {} is not a whole number from 1 to 6", v));
        diag[r] = static_cast<int>(v);
        continue;
      }
      int face = -1;
      for (int f = 0; f < 6; ++f)
        if (neighbour(r, f) == c) face = f;
      if (face < 0) throw not_poisson(r, fmt::format("entry in column {} is not a grid neighbour", c));
      if (v != -1.0) throw not_poisson(r, fmt::format("off-diagonal entry {} in column {} (expected -1)", v, c));
      mask[r] |= std::uint8_t(1u << face);
    }
    if (fluid[r] && diag[r] == 0) throw not_poisson(r, "row has off-diagonal entries but no diagonal");
  }
  // Dirichlet count of each fluid cell; in-grid non-fluid neighbours; outer faces touched.
  std::vector<int> dirichlet(n, 0), free_neighbours(n, 0);
  for (std::int64_t r = 0; r < n; ++r) {
    if (!fluid[r]) continue;
    dirichlet[r] = diag[r] - std::popcount(unsigned(mask[r]));
    if (dirichlet[r] < 0) throw not_poisson(r, "diagonal smaller than the number of fluid neighbours");
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(r, f);
      if (nb >= 0 && !fluid[nb]) ++free_neighbours[r];
      if (nb >= 0 && fluid[nb] && !(mask[r] & (1u << f)))
        throw not_poisson(r, fmt::format("fluid neighbour {} (its row is non-zero) is not coupled", nb));
    }
  }

  // 2. Outer faces: wall when a fluid cell on the face has no Dirichlet neighbour; open when a
  // fluid cell needs more Dirichlet neighbours than its in-grid non-fluid cells can give and
  // the face is the only remaining candidate; undecided faces are open if some cell on them has
  // such an excess, else walls.
  enum class F { Unknown, Wall, Open };
  std::array<F, 6> face{F::Unknown, F::Unknown, F::Unknown, F::Unknown, F::Unknown, F::Unknown};
  std::array<bool, 6> touched{};
  auto faces_of = [&](std::int64_t c) {
    std::vector<int> list;
    for (int f = 0; f < 6; ++f)
      if (neighbour(c, f) < 0) list.push_back(f);
    return list;
  };
  std::vector<std::int64_t> boundary_fluid;
  for (std::int64_t r = 0; r < n; ++r) {
    if (!fluid[r]) continue;
    const auto outer = faces_of(r);
    if (outer.empty()) continue;
    boundary_fluid.push_back(r);
    for (int f : outer) {
      touched[f] = true;
      if (dirichlet[r] == 0) face[f] = F::Wall;
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (std::int64_t r : boundary_fluid) {
      const int excess = dirichlet[r] - free_neighbours[r];
      if (excess <= 0) continue;
      std::vector<int> candidates;
      int open = 0;
      for (int f : faces_of(r)) {
        if (face[f] == F::Open) ++open;
        if (face[f] == F::Unknown) candidates.push_back(f);
      }
      if (open + static_cast<int>(candidates.size()) < excess)
        throw not_poisson(r, fmt::format("{} Dirichlet neighbours needed but at most {} available", dirichlet[r],
                                         free_neighbours[r] + open + static_cast<int>(candidates.size())));
      if (open < excess && open + static_cast<int>(candidates.size()) == excess)
        for (int f : candidates) {
          face[f] = F::Open;
          changed = true;
        }
    }
  }
  for (int f = 0; f < 6; ++f) {
    if (face[f] != F::Unknown) continue;
    bool needed = false;
    for (std::int64_t r : boundary_fluid) {
      const auto outer = faces_of(r);
      if (std::find(outer.begin(), outer.end(), f) != outer.end() && dirichlet[r] > free_neighbours[r]) needed = true;
    }
    face[f] = needed ? F::Open : F::Wall;
    if (notes && !touched[f])
      notes->push_back(fmt::format("face {}: no fluid cell touches it, reported as wall", to_string(static_cast<Face>(f))));
    else if (notes)
      notes->push_back(fmt::format("face {}: ambiguous, chosen {}", to_string(static_cast<Face>(f)), needed ? "open" : "wall"));
  }
  Domain dom(d, CellType::Solid);
  for (int f = 0; f < 6; ++f) dom.faces[f] = face[f] == F::Open ? FaceBoundary::Open : FaceBoundary::Wall;

  // 3. Air cells among the in-grid non-fluid neighbours: need[r] of them for fluid cell r.
  std::vector<int> need(n, 0);
  for (std::int64_t r = 0; r < n; ++r) {
    if (!fluid[r]) continue;
    int open = 0;
    for (int f : faces_of(r))
      if (dom.faces[f] == FaceBoundary::Open) ++open;
    need[r] = dirichlet[r] - open;
    if (need[r] < 0 || need[r] > free_neighbours[r])
      throw not_poisson(r, fmt::format("{} Dirichlet neighbours cannot be made of {} open faces and {} non-fluid cells",
                                       dirichlet[r], open, free_neighbours[r]));
  }
  enum : std::uint8_t { kUnknown = 0, kAir = 1, kSolid = 2 };
  std::vector<std::uint8_t> label(n, kUnknown);
  std::vector<std::int64_t> work;
  // Forces the undecided non-fluid neighbours of fluid cell r when its count allows one answer.
  auto settle = [&](std::int64_t r) {
    int air = 0, unknown = 0;
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(r, f);
      if (nb < 0 || fluid[nb]) continue;
      air += label[nb] == kAir;
      unknown += label[nb] == kUnknown;
    }
    if (air > need[r] || air + unknown < need[r])
      throw not_poisson(r, fmt::format("cannot give it exactly {} air neighbours", need[r]));
    if (unknown == 0) return;
    const std::uint8_t forced = air == need[r] ? kSolid : air + unknown == need[r] ? kAir : kUnknown;
    if (forced == kUnknown) return;
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(r, f);
      if (nb < 0 || fluid[nb] || label[nb] != kUnknown) continue;
      label[nb] = forced;
      for (int g = 0; g < 6; ++g) {
        const std::int64_t m = neighbour(nb, g);
        if (m >= 0 && fluid[m]) work.push_back(m);
      }
    }
  };
  auto propagate = [&] {
    while (!work.empty()) {
      const std::int64_t r = work.back();
      work.pop_back();
      settle(r);
    }
  };
  for (std::int64_t r = 0; r < n; ++r)
    if (fluid[r]) work.push_back(r);
  propagate();
  // Left free by the counts: follow the decided non-fluid neighbours, keeping the counts right.
  std::int64_t ambiguous = 0;
  for (std::int64_t c = 0; c < n; ++c) {
    if (fluid[c] || label[c] != kUnknown) continue;
    bool seen = false, may_air = true, may_solid = true;
    int air_votes = 0, solid_votes = 0;
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(c, f);
      if (nb < 0) continue;
      if (!fluid[nb]) {
        air_votes += label[nb] == kAir;
        solid_votes += label[nb] == kSolid;
        continue;
      }
      seen = true;
      int air = 0, unknown = 0;
      for (int g = 0; g < 6; ++g) {
        const std::int64_t m = neighbour(nb, g);
        if (m < 0 || fluid[m]) continue;
        air += label[m] == kAir;
        unknown += label[m] == kUnknown;
      }
      if (air + 1 > need[nb]) may_air = false;
      if (air + unknown - 1 < need[nb]) may_solid = false;
    }
    if (!seen) continue;
    ++ambiguous;
    const bool prefer_air = air_votes > solid_votes;
    label[c] = (prefer_air && may_air) || !may_solid ? kAir : kSolid;
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(c, f);
      if (nb >= 0 && fluid[nb]) work.push_back(nb);
    }
    propagate();
  }
  if (notes && ambiguous > 0)
    notes->push_back(fmt::format("{} non-fluid cells next to fluid could be air or solid; decided by their "
                                 "non-fluid neighbours",
                                 ambiguous));
  // 4. Non-fluid cells no fluid cell sees: nearest seen non-fluid cell, breadth first.
  std::deque<std::int64_t> queue;
  std::int64_t unseen = 0;
  for (std::int64_t c = 0; c < n; ++c)
    if (!fluid[c] && label[c] != kUnknown) queue.push_back(c);
  while (!queue.empty()) {
    const std::int64_t c = queue.front();
    queue.pop_front();
    for (int f = 0; f < 6; ++f) {
      const std::int64_t nb = neighbour(c, f);
      if (nb >= 0 && !fluid[nb] && label[nb] == kUnknown) {
        label[nb] = label[c];
        ++unseen;
        queue.push_back(nb);
      }
    }
  }
  if (notes && unseen > 0)
    notes->push_back(fmt::format("{} non-fluid cells no fluid cell sees took the type of the nearest seen one", unseen));
  for (std::int64_t c = 0; c < n; ++c)
    dom.cells[c] = fluid[c] ? CellType::Fluid : label[c] == kAir ? CellType::Air : CellType::Solid;

  // 5. Verify: the inferred domain must reproduce the matrix exactly.
  const std::int64_t diff = first_difference(a, assemble_full_grid(dom));
  if (diff >= 0)
    throw not_poisson(diff, "no cell and face assignment reproduces this row (the matrix is not symmetric, or not "
                            "of the form diagonal = non-solid neighbours, -1 per fluid neighbour)");
  return dom;
}

// Relative tolerances of the weighted rules (infer_domain in system.hpp): equal values,
// symmetry, dominance and the rounding residue of a diagonal term; the re-assembly check gets
// a little more room for the rounding of its own sums.
constexpr double kRelTol = 1e-12;
constexpr double kVerifyTol = 4e-12;

}  // namespace

Domain infer_domain(const CsrMatrix& a, const Dims& d, const std::string& name, std::vector<std::string>* notes) {
  if (a.rows != a.cols)
    throw InputError(fmt::format("{}: matrix is {}x{}, not square", name, a.rows, a.cols));
  if (a.rows != d.size())
    throw InputError(fmt::format("{}: matrix has {} rows but the grid {} has {} cells", name, a.rows, d.str(), d.size()));
  const std::int64_t n = d.size();
  const std::int64_t stride[3] = {1, d.nx, std::int64_t(d.nx) * d.ny};
  auto not_poisson = [&](std::int64_t row, const std::string& why) {
    return InputError(fmt::format("{}: not a 7-point grid Poisson matrix on a {} grid: {}: {}", name, d.str(),
                                  cell_name(d, row), why));
  };
  // Face of cell r that column c lies across (0..5 as Face), or -1 if c is not a grid neighbour.
  auto face_to = [&](std::int64_t r, std::int64_t c) -> int {
    const int i = static_cast<int>(r % d.nx), j = static_cast<int>((r / d.nx) % d.ny), k = static_cast<int>(r / stride[2]);
    const int pos[3] = {i, j, k}, size[3] = {d.nx, d.ny, d.nz};
    for (int ax = 0; ax < 3; ++ax) {
      if (c == r - stride[ax] && pos[ax] > 0) return 2 * ax;
      if (c == r + stride[ax] && pos[ax] < size[ax] - 1) return 2 * ax + 1;
    }
    return -1;
  };
  auto entry = [&](std::int64_t r, std::int64_t c) {
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p)
      if (a.col_idx[p] == c) return a.values[p];
    return 0.0;
  };

  // The checks every rule shares, and what the weighted rules read: the diagonal, the coupling
  // -A(c, c - stride) with the cell below along each axis, and whether all off-diagonals are
  // one value (-s) with whole multiples of s on the diagonal.
  std::vector<std::uint8_t> fluid(static_cast<std::size_t>(n), 0);
  std::vector<double> diag(static_cast<std::size_t>(n), 0.0);
  std::vector<double> lower[3];
  for (auto& l : lower) l.assign(static_cast<std::size_t>(n), 0.0);
  double s = 0.0;  // the first off-diagonal magnitude
  bool same_off = true, unit_like = true;
  for (std::int64_t r = 0; r < n; ++r) {
    double off_sum = 0.0;
    bool has_diag = false;
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) {
      const double v = a.values[p];
      const std::int64_t c = a.col_idx[p];
      if (!std::isfinite(v)) throw not_poisson(r, fmt::format("value {} in column {}", v, c));
      if (v == 0.0) continue;
      fluid[r] = 1;
      if (c == r) {
        diag[r] = v;
        has_diag = true;
        if (v != std::round(v) || v < 1 || v > 6) unit_like = false;
        continue;
      }
      const int f = face_to(r, c);
      if (f < 0) throw not_poisson(r, fmt::format("entry in column {} is not a grid neighbour", c));
      if (v > 0.0)
        throw not_poisson(r, fmt::format("off-diagonal entry {} in column {} is positive (couplings are <= 0)", v, c));
      const double mirror = entry(c, r);
      if (!(std::abs(v - mirror) <= kRelTol * std::max(std::abs(v), std::abs(mirror))))
        throw not_poisson(r, fmt::format("A({}, {}) = {} but A({}, {}) = {}: not symmetric", r, c, v, c, r, mirror));
      off_sum -= v;
      if (f % 2 == 0) lower[f / 2][r] = -v;
      if (v != -1.0) unit_like = false;
      if (s == 0.0) s = -v;
      else if (!(std::abs(s + v) <= kRelTol * s)) same_off = false;
    }
    if (!fluid[r]) continue;
    if (!has_diag || !(diag[r] > 0.0))
      throw not_poisson(r, fmt::format("the diagonal is {} (a row with entries needs a positive diagonal)", diag[r]));
    if (diag[r] < off_sum - kRelTol * std::max(diag[r], off_sum))
      throw not_poisson(r, fmt::format("the diagonal {} is less than the sum {} of the off-diagonal magnitudes "
                                       "(not diagonally dominant)",
                                       diag[r], off_sum));
  }

  // Rule 1: the unit operator.
  std::string why_not;
  if (unit_like) {
    try {
      return infer_unit_domain(a, d, name, notes);
    } catch (const InputError& e) {
      why_not = e.what();
    }
  }
  // Rule 2: a scaled unit operator.
  if (s > 0.0 && s != 1.0 && same_off) {
    CsrMatrix u = a;
    bool whole = true;
    for (std::int64_t r = 0; r < n && whole; ++r)
      for (auto p = u.row_ptr[r]; p < u.row_ptr[r + 1]; ++p) {
        double& v = u.values[p];
        if (v == 0.0) continue;
        if (u.col_idx[p] != r) {
          v = -1.0;
          continue;
        }
        const double k = std::round(v / s);
        if (k < 1 || k > 6 || !(std::abs(v - k * s) <= kRelTol * v)) {
          whole = false;
          why_not = fmt::format("{}: diagonal {} is not a whole multiple 1..6 of the coupling {}", cell_name(d, r), v, s);
          break;
        }
        v = k;
      }
    if (whole) {
      try {
        std::vector<std::string> unit_notes;
        Domain dom = infer_unit_domain(u, d, name, &unit_notes);
        Coefficients co;
        co.scale = s;
        dom.set_coefficients(std::move(co));
        const std::int64_t diff = first_difference(a, assemble_full_grid(dom), kVerifyTol);
        if (diff >= 0) throw not_poisson(diff, fmt::format("the unit operator scaled by {} does not reproduce it", s));
        if (notes) {
          notes->push_back(fmt::format("the unit operator scaled by {} (every coupling -{}): cells and faces inferred "
                                       "from A / {}, coefficients scale {}",
                                       s, s, s, s));
          notes->insert(notes->end(), unit_notes.begin(), unit_notes.end());
        }
        return dom;
      } catch (const InputError& e) {
        why_not = e.what();
      }
    }
  }
  // Rule 3: general weights on fluid cells, every other cell solid, outer faces walls.
  Domain dom(d, CellType::Solid);
  for (std::int64_t c = 0; c < n; ++c)
    if (fluid[c]) dom.cells[c] = CellType::Fluid;
  Coefficients co;
  const auto sizes = Coefficients::face_sizes(d);
  for (int ax = 0; ax < 3; ++ax) coefficient_array(co, ax).assign(static_cast<std::size_t>(sizes[ax]), 1.0);
  co.diagonal.assign(static_cast<std::size_t>(n), 0.0);
  std::int64_t with_term = 0;
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t c = d.index(i, j, k);
        if (!fluid[c]) continue;
        const int pos[3] = {i, j, k}, size[3] = {d.nx, d.ny, d.nz};
        double sum = 0.0;
        for (int ax = 0; ax < 3; ++ax) {
          // The face below c along ax: index of (i, j, k) in that axis's MAC array.
          const std::int64_t face = ax == 0   ? i + std::int64_t(d.nx + 1) * (j + std::int64_t(d.ny) * k)
                                    : ax == 1 ? i + std::int64_t(d.nx) * (j + std::int64_t(d.ny + 1) * k)
                                              : c;
          if (pos[ax] > 0 && fluid[c - stride[ax]]) {
            coefficient_array(co, ax)[static_cast<std::size_t>(face)] = lower[ax][c];
            sum += lower[ax][c];
          }
          if (pos[ax] < size[ax] - 1 && fluid[c + stride[ax]]) sum += lower[ax][c + stride[ax]];
        }
        double term = diag[c] - sum;
        if (std::abs(term) <= kRelTol * diag[c]) term = 0.0;
        if (term < 0.0)
          throw not_poisson(c, fmt::format("the diagonal {} is less than the sum {} of its couplings", diag[c], sum));
        co.diagonal[static_cast<std::size_t>(c)] = term;
        with_term += term > 0.0;
      }
  dom.set_coefficients(std::move(co));
  const std::int64_t diff = first_difference(a, assemble_full_grid(dom), kVerifyTol);
  if (diff >= 0)
    throw not_poisson(diff, "no cell types and weights reproduce this row (the matrix is not of the form diagonal = "
                            "face weights to non-solid neighbours + a term >= 0, -weight per fluid neighbour)");
  if (notes) {
    notes->push_back(fmt::format("general weights{}: rows with entries are fluid ({} cells), the others solid, outer "
                                 "faces walls; face weights -A(c, n), diagonal term A(c, c) minus the couplings "
                                 "({} cells have one, the Dirichlet part)",
                                 why_not.empty() ? "" : " (" + why_not + ")", dom.count(CellType::Fluid), with_term));
  }
  return dom;
}

PoissonSystem import_system(const fs::path& matrix, const fs::path& rhs, std::optional<Dims> dims) {
  CsrMatrix a = io::read_matrix(matrix);
  Dims d;
  if (dims) {
    d = *dims;
  } else {
    const auto side = static_cast<int>(std::llround(std::cbrt(static_cast<double>(a.rows))));
    if (std::int64_t(side) * side * side != a.rows)
      throw InputError(fmt::format("{}: {} rows is not a cube N^3; give the grid with --dims NX,NY,NZ", matrix.string(), a.rows));
    d = Dims{side, side, side};
  }
  check_system_fits_memory(d, "--dims");
  PoissonSystem sys;
  std::vector<std::string> notes;
  sys.domain = infer_domain(a, d, matrix.string(), &notes);
  sys.matrix = assemble_full_grid(sys.domain);
  nlohmann::json rhs_meta;
  if (!rhs.empty()) {
    sys.rhs = io::read_vector(rhs);
    if (static_cast<std::int64_t>(sys.rhs.size()) != d.size())
      throw InputError(fmt::format("{}: {} values, but the matrix {} has {} rows", rhs.string(), sys.rhs.size(), matrix.string(), d.size()));
    std::int64_t zeroed = 0;
    for (std::int64_t c = 0; c < d.size(); ++c)
      if (sys.domain.cells[c] != CellType::Fluid && sys.rhs[c] != 0.0) {
        sys.rhs[c] = 0.0;
        ++zeroed;
      }
    rhs_meta["kind"] = "file";
    rhs_meta["file"] = rhs.string();
    rhs_meta["nonfluid_values_zeroed"] = zeroed;
    if (zeroed > 0)
      notes.push_back(fmt::format("{}: {} non-zero values on non-fluid cells (empty rows) were set to zero", rhs.string(), zeroed));
    project_rhs(RangeProjector(sys.domain), sys.rhs, rhs_meta);
    rhs_meta["norm2"] = norm2(sys.rhs);
  } else {
    sys.rhs.assign(static_cast<std::size_t>(d.size()), 0.0);
    rhs_meta["kind"] = "none";
  }
  sys.meta = describe_domain(sys.domain);
  sys.meta["format"] = "dcdm-system";
  sys.meta["version"] = 1;
  sys.meta["import"] = {{"matrix", matrix.string()}, {"rhs", rhs.string()}, {"notes", notes}};
  sys.meta["rhs"] = rhs_meta;
  sys.meta["matrix"] = {{"rows", sys.matrix.rows}, {"nnz", sys.matrix.nnz()}, {"layout", "full-grid"}};
  return sys;
}

}  // namespace dcdm
