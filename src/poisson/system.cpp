// Pressure systems as files: scene -> (A, b, flags, JSON), loading, and import of matrices
// made by other tools with inference of the domain (see include/dcdm/system.hpp).
#include "dcdm/system.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <deque>
#include <fstream>
#include <numbers>
#include <random>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
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

std::int64_t estimate_system_bytes(const Dims& d) {
  // Per cell: domain 1 + CSR (7 x (8 value + 4 column) + 8 row offset) 92 + rhs 8 + operator
  // set-up 2 + component labels and traversal stack 12 + file buffers (reference binary and
  // .npy copies) ~70 + flags 1. Rounded up to 200.
  return d.size() * 200;
}

std::int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::int64_t bytes = pages > 0 && page > 0 ? std::int64_t(pages) * page : 0;
  // A container's limit (cgroup v2) is what counts when it is lower.
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cg >> limit && limit != "max") {
    try {
      const std::int64_t l = std::stoll(limit);
      if (l > 0 && (bytes == 0 || l < bytes)) bytes = l;
    } catch (const std::exception&) {
    }
  }
  return bytes;
}

void check_system_fits_memory(const Dims& dims, const std::string& option) {
  const std::int64_t need = estimate_system_bytes(dims), have = physical_memory_bytes();
  if (have > 0 && need > have)
    throw InputError(fmt::format("{}: a {} system needs about {:.1f} GiB, more than this machine's {:.1f} GiB of memory",
                                 option, dims.str(), need / 1073741824.0, have / 1073741824.0));
}

// ---------------------------------------------------------------- description

nlohmann::json describe_domain(const Domain& domain) {
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
  const FluidComponents fc = fluid_components(domain);
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

std::vector<double> make_rhs(const Domain& dom, RhsKind kind, std::uint64_t seed, const fs::path& file,
                             nlohmann::json& meta) {
  const Dims d = dom.dims();
  const auto n = static_cast<std::size_t>(d.size());
  std::vector<double> b(n, 0.0);
  Random rng(seed);
  meta["kind"] = to_string(kind);
  if (kind == RhsKind::Random) {
    meta["seed"] = seed;
    for (std::size_t c = 0; c < n; ++c)
      if (dom.cells[c] == CellType::Fluid) b[c] = rng.normal();
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
void project_rhs(const Domain& dom, std::vector<double>& b, nlohmann::json& meta) {
  RangeProjector proj(dom);
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

PoissonSystem make_scene_system(const SceneSpec& scene, RhsKind rhs, std::uint64_t seed, const fs::path& rhs_file) {
  check_system_fits_memory(scene.dims);
  check_min_dims(scene.dims);
  PoissonSystem sys;
  nlohmann::json scene_info;
  sys.domain = make_scene(scene, &scene_info);
  sys.matrix = assemble_full_grid(sys.domain);
  nlohmann::json rhs_meta;
  sys.rhs = make_rhs(sys.domain, rhs, seed, rhs_file, rhs_meta);
  project_rhs(sys.domain, sys.rhs, rhs_meta);
  rhs_meta["norm2"] = norm2(sys.rhs);
  sys.meta = describe_domain(sys.domain);
  sys.meta["format"] = "dcdm-system";
  sys.meta["version"] = 1;
  sys.meta["scene"] = scene_info;
  sys.meta["rhs"] = rhs_meta;
  sys.meta["matrix"] = {{"rows", sys.matrix.rows}, {"nnz", sys.matrix.nnz()}, {"layout", "full-grid"}};
  return sys;
}

// ---------------------------------------------------------------- save / load

namespace {

std::vector<std::int64_t> grid_shape(const Dims& d) { return {d.nz, d.ny, d.nx}; }

// Same operator: equal sizes and equal non-zero entries row by row (explicit zeros ignored).
// Returns the first differing row, or -1.
std::int64_t first_difference(const CsrMatrix& a, const CsrMatrix& b) {
  if (a.rows != b.rows || a.cols != b.cols) return 0;
  for (std::int64_t r = 0; r < a.rows; ++r) {
    auto p = a.row_ptr[r], q = b.row_ptr[r];
    const auto pe = a.row_ptr[r + 1], qe = b.row_ptr[r + 1];
    while (true) {
      while (p < pe && a.values[p] == 0.0) ++p;
      while (q < qe && b.values[q] == 0.0) ++q;
      if (p == pe || q == qe) {
        if (p != pe || q != qe) return r;
        break;
      }
      if (a.col_idx[p] != b.col_idx[q] || a.values[p] != b.values[q]) return r;
      ++p;
      ++q;
    }
  }
  return -1;
}

std::string cell_name(const Dims& d, std::int64_t cell) {
  return fmt::format("row {} = cell ({}, {}, {})", cell, cell % d.nx, (cell / d.nx) % d.ny,
                     cell / (std::int64_t(d.nx) * d.ny));
}

}  // namespace

void save_system(const fs::path& dir, const PoissonSystem& sys) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw InputError(fmt::format("--out {}: cannot create the folder ({})", dir.string(), ec ? ec.message() : "not a folder"));
  const Dims d = sys.domain.dims();
  if (sys.matrix.rows != d.size() || static_cast<std::int64_t>(sys.rhs.size()) != d.size())
    throw Error(fmt::format("save_system: matrix has {} rows and b {} values for a {} grid", sys.matrix.rows,
                            sys.rhs.size(), d.str()));
  io::write_matrix_market(dir / "A.mtx", sys.matrix, true,
                          fmt::format("dcdm pressure matrix, full grid {} (x fastest), see system.json", d.str()));
  io::write_reference_matrix(dir / "A.bin", sys.matrix, io::ValuePrecision::Float32);
  io::write_npy(dir / "b.npy", sys.rhs, grid_shape(d));
  io::write_reference_vector(dir / "b.bin", sys.rhs);
  std::vector<std::uint8_t> flags(sys.domain.cells.vector().size());
  for (std::size_t c = 0; c < flags.size(); ++c) flags[c] = static_cast<std::uint8_t>(sys.domain.cells[c]);
  io::write_npy(dir / "flags.npy", flags, grid_shape(d));
  nlohmann::json meta = sys.meta;
  meta.update(describe_domain(sys.domain));
  meta["format"] = "dcdm-system";
  meta["version"] = 1;
  meta["files"] = {{"matrix_market", "A.mtx"}, {"matrix_reference", "A.bin"}, {"rhs", "b.npy"},
                   {"rhs_reference", "b.bin"}, {"flags", "flags.npy"}};
  meta["flags_encoding"] = {{"0", "solid"}, {"1", "fluid"}, {"2", "air"}};
  meta["layout"] = "arrays have shape (nz, ny, nx); cell (i, j, k) is row i + nx*(j + ny*k) of A";
  io::write_file_atomic(dir / "system.json", meta.dump(2) + "\n");
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

PoissonSystem load_system(const fs::path& dir) {
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
  const io::NpyArray flags = io::read_npy(flags_path);
  if (flags.dtype != io::DType::UInt8 || flags.shape != grid_shape(d))
    throw InputError(fmt::format("{}: expected uint8 of shape ({}, {}, {}) as system.json says", flags_path.string(), d.nz, d.ny, d.nx));
  for (std::int64_t c = 0; c < d.size(); ++c) {
    const std::uint8_t v = flags.bytes[c];
    if (v > 2) throw InputError(fmt::format("{}: value {} at element {} is not 0, 1 or 2", flags_path.string(), v, c));
    dom.cells[c] = static_cast<CellType>(v);
  }
  const fs::path a_path = fs::exists(dir / "A.bin") ? dir / "A.bin" : dir / "A.mtx";
  CsrMatrix a = io::read_matrix(a_path);
  sys.matrix = assemble_full_grid(dom);
  const std::int64_t diff = first_difference(a, sys.matrix);
  if (diff >= 0)
    throw InputError(fmt::format("{}: the matrix is not the operator of flags.npy and the faces in system.json "
                                 "(first difference at {})",
                                 a_path.string(), a.rows == sys.matrix.rows ? cell_name(d, diff) : "the size"));
  const fs::path b_path = dir / "b.npy";
  sys.rhs = io::read_npy_vector(b_path);
  if (static_cast<std::int64_t>(sys.rhs.size()) != d.size())
    throw InputError(fmt::format("{}: {} values for a {} grid of {} cells", b_path.string(), sys.rhs.size(), d.str(), d.size()));
  sys.domain = std::move(dom);
  return sys;
}

// ---------------------------------------------------------------- import

namespace {

struct CellCoords {
  int i, j, k;
};

}  // namespace

Domain infer_domain(const CsrMatrix& a, const Dims& d, const std::string& name, std::vector<std::string>* notes) {
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
    project_rhs(sys.domain, sys.rhs, rhs_meta);
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
