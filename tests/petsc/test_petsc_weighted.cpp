// Weighted systems (Domain::coefficients) on the DMDA against the serial library: the
// assembled rows against assemble_full_grid entry for entry, the shell against the assembled
// operator and the serial stencil, the components and null space against fluid_components,
// KSPDCDM's solution against the serial CG's, a folder written by save_system against the
// domain it came from, bad coefficient files, and dcdm_mg's refusal. Run under mpiexec with
// 1..4 ranks (ctest petsc_tests_np*): the grids are small and odd, so that every rank's box
// has cut faces, free surfaces and density jumps, and the closed regions cross rank boundaries.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/petsc.hpp"
#include "dcdm/petsc_multigrid.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "petsc_test_util.hpp"

namespace dcdm::petsc::test {
namespace {

namespace fs = std::filesystem;

// Closed on every side, no air: a solid plane at x = 9 splits it into two halves. The left
// half has no diagonal term and a plane of zero-weight faces at y = 8 (fluid on both sides):
// two singular components that touch (they must not be joined). The right half has a
// positive diagonal term in one cell: not singular, with no air. Random weights in [0.5, 2],
// scale 2.5.
Domain closed_weighted() {
  const Dims d{19, 17, 15};
  Domain dom(d, CellType::Fluid);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) dom.cells(9, j, k) = CellType::Solid;
  Coefficients c;
  c.scale = 2.5;
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  const auto sizes = Coefficients::face_sizes(d);
  for (auto* a : {&c.face_x, &c.face_y, &c.face_z}) {
    a->resize(static_cast<std::size_t>(sizes[a == &c.face_x ? 0 : a == &c.face_y ? 1 : 2]));
    for (double& w : *a) w = u(rng);
  }
  for (int k = 0; k < d.nz; ++k)
    for (int i = 0; i < 9; ++i) c.face_y[static_cast<std::size_t>(i + d.nx * (8 + std::int64_t(d.ny + 1) * k))] = 0.0;
  c.diagonal.assign(static_cast<std::size_t>(d.size()), 0.0);
  c.diagonal[static_cast<std::size_t>(d.index(15, 11, 6))] = 0.75;
  dom.set_coefficients(std::move(c));
  return dom;
}

struct WeightedCase {
  std::string name;
  Domain domain;
};

std::vector<WeightedCase> weighted_cases() {
  std::vector<WeightedCase> out;
  for (const char* name : {"liquid", "cutcell", "density"}) out.push_back({name, scene(name, {19, 17, 15})});
  out.push_back({"closed, zero-weight plane, diagonal term", closed_weighted()});
  for (const auto& c : out) EXPECT_TRUE(c.domain.weighted()) << c.name;
  return out;
}

int global_sum(int v) {
  int out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_SUM, PETSC_COMM_WORLD);
  return out;
}

// Rows of the assembled MPIAIJ against the serial full-grid CSR: every entry equal (the same
// sums in the same order), the same non-zero entries present; identity rows off fluid.
TEST(PetscWeighted, AssembledRowsEqualSerialEntries) {
  for (const auto& c : weighted_cases()) {
    const Domain& dom = c.domain;
    const CsrMatrix serial = assemble_full_grid(dom);
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    ASSERT_TRUE(sys.weighted());
    Mat a = sys.assembled();
    ISLocalToGlobalMapping ltog = nullptr;
    DMGetLocalToGlobalMapping(sys.dm(), &ltog);
    const PetscInt* ghost_to_global = nullptr;
    ISLocalToGlobalMappingGetIndices(ltog, &ghost_to_global);
    PetscInt first = 0, last = 0;
    MatGetOwnershipRange(a, &first, &last);
    const Box& b = sys.box();
    const Dims d = dom.dims();
    int wrong = 0, rows = 0;
    PetscInt row = first;
    for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
      for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
        for (PetscInt i = b.xs; i < b.xs + b.xm; ++i, ++row) {
          const std::int64_t cell = d.index(int(i), int(j), int(k));
          PetscInt ncols = 0;
          const PetscInt* cols = nullptr;
          const PetscScalar* vals = nullptr;
          MatGetRow(a, row, &ncols, &cols, &vals);
          std::map<PetscInt, double> petsc_row;
          // The DMDA's matrix holds the whole stencil's pattern (explicit zeros where a row has
          // no entry), and the serial rows hold -0 across zero-weight faces: zeros are skipped.
          for (PetscInt p = 0; p < ncols; ++p)
            if (vals[p] != 0.0) petsc_row[cols[p]] = vals[p];
          MatRestoreRow(a, row, &ncols, &cols, &vals);
          std::map<PetscInt, double> expected;
          if (dom.cells[cell] != CellType::Fluid) {
            expected[row] = 1.0;
          } else {
            for (auto p = serial.row_ptr[cell]; p < serial.row_ptr[cell + 1]; ++p) {
              if (serial.values[p] == 0.0) continue;
              const std::int64_t col = serial.col_idx[p];
              const int ci = int(col % d.nx), cj = int((col / d.nx) % d.ny), ck = int(col / (std::int64_t(d.nx) * d.ny));
              expected[ghost_to_global[b.ghost_index(ci, cj, ck)]] = serial.values[p];
            }
          }
          ++rows;
          if (petsc_row != expected) {
            if (wrong++ < 3)
              ADD_FAILURE() << c.name << ": row of cell (" << i << ", " << j << ", " << k << ") has " << petsc_row.size()
                            << " entries, the serial row " << expected.size();
          }
        }
    ISLocalToGlobalMappingRestoreIndices(ltog, &ghost_to_global);
    EXPECT_EQ(global_sum(wrong), 0) << c.name;
    EXPECT_EQ(global_sum(rows), d.size()) << c.name;
  }
}

// Both operators against the serial weighted stencil (identity off fluid), and the shell's
// diagonal against operator_diagonal exactly.
TEST(PetscWeighted, ShellAndAssembledApplyTheSerialOperator) {
  for (const auto& c : weighted_cases()) {
    const Domain& dom = c.domain;
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    std::vector<double> x(static_cast<std::size_t>(dom.dims().size()));
    for (std::size_t n = 0; n < x.size(); ++n) x[n] = std::sin(0.37 * double(n)) + 0.1 * double(n % 7);
    const std::vector<double> ax = serial_apply(dom, x);
    Vec xv = nullptr, ya = nullptr, ys = nullptr;
    VecDuplicate(sys.rhs(), &xv);
    VecDuplicate(sys.rhs(), &ya);
    VecDuplicate(sys.rhs(), &ys);
    fill_owned(sys, x, xv);
    MatMult(sys.assembled(), xv, ya);
    MatMult(sys.shell(), xv, ys);
    const double tol = 1e-14 * max_abs(ax) * 8;
    EXPECT_LE(max_difference(sys, ya, ax), tol) << c.name << ": assembled";
    EXPECT_LE(max_difference(sys, ys, ax), tol) << c.name << ": shell";
    EXPECT_LE(max_difference(sys, ys, gather_full(sys, ya)), tol) << c.name << ": shell against assembled";
    MatGetDiagonal(sys.shell(), ys);
    std::vector<double> diag = operator_diagonal(dom);
    for (std::size_t n = 0; n < diag.size(); ++n)
      if (dom.cells[static_cast<std::int64_t>(n)] != CellType::Fluid) diag[n] = 1.0;
    EXPECT_EQ(max_difference(sys, ys, diag), 0.0) << c.name;
    VecDestroy(&xv);
    VecDestroy(&ya);
    VecDestroy(&ys);
  }
}

// The distributed labelling follows the weighted rules: components joined only across faces
// of positive weight, a diagonal term as good as air.
TEST(PetscWeighted, ComponentsMatchSerial) {
  for (const auto& c : weighted_cases()) {
    const Domain& dom = c.domain;
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    const FluidComponents fc = fluid_components(dom);
    EXPECT_EQ(sys.components, fc.count()) << c.name;
    EXPECT_EQ(sys.singular_components, fc.singular_count()) << c.name;
    if (c.name.rfind("closed", 0) == 0) {
      // Two singular halves of the left side, a regular right side.
      EXPECT_EQ(fc.count(), 3);
      EXPECT_EQ(fc.singular_count(), 2);
    }
    if (fc.singular_count() == 0) continue;
    const Box& b = sys.box();
    int wrong = 0;
    std::size_t n = 0;
    for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
      for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
        for (PetscInt i = b.xs; i < b.xs + b.xm; ++i, ++n) {
          const int id = fc.label(int(i), int(j), int(k));
          wrong += sys.labels()[n] != (id < 0 ? -1 : fc.first_cell[static_cast<std::size_t>(id)]);
        }
    EXPECT_EQ(global_sum(wrong), 0) << c.name;
    // The null space is A's: A applied to a null-space-free v equals A v.
    ASSERT_NE(sys.nullspace(), nullptr);
    PetscBool is_null = PETSC_FALSE;
    MatNullSpaceTest(sys.nullspace(), sys.assembled(), &is_null);
    EXPECT_TRUE(is_null) << c.name;
  }
}

// KSPDCDM on the distributed weighted system reaches the serial CG solution to 1e-8 relative.
TEST(PetscWeighted, SolutionMatchesSerial) {
  const std::vector<WeightedCase> cases = weighted_cases();
  const char* pcs[] = {"jacobi", "jacobi", "gamg", "jacobi"};
  const char* ops[] = {"shell", "assembled", "assembled", "shell"};
  for (std::size_t n = 0; n < cases.size(); ++n) {
    const WeightedCase& c = cases[n];
    const std::vector<double> b = serial_random_rhs(c.domain, 11);
    const std::vector<double> expected = serial_solve(c.domain, b);
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    Mat a = std::string(ops[n]) == "shell" ? sys.shell() : sys.assembled();
    const KspRun run = run_ksp(sys, a, x, [&](KSP ksp) {
      KSPSetType(ksp, KSPDCDM);
      KSPSetTolerances(ksp, 1e-12, PETSC_DEFAULT, PETSC_DEFAULT, 5000);
      PC pc = nullptr;
      KSPGetPC(ksp, &pc);
      PCSetType(pc, pcs[n]);
    });
    EXPECT_GT(run.reason, 0) << c.name << " " << pcs[n] << ": " << KSPConvergedReasons[run.reason];
    if (sys.nullspace()) MatNullSpaceRemove(sys.nullspace(), x);
    EXPECT_LE(max_difference(sys, x, expected), 1e-8 * max_abs(expected)) << c.name << " " << pcs[n] << " " << ops[n];
    VecDestroy(&x);
  }
}

// A scratch folder every rank knows (made by rank 0), removed at the end.
class SharedDir {
 public:
  SharedDir() {
    int rank = 0;
    MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
    long pid = rank == 0 ? static_cast<long>(::getpid()) : 0;
    MPI_Bcast(&pid, 1, MPI_LONG, 0, PETSC_COMM_WORLD);
    path_ = fs::temp_directory_path() / fmt::format("dcdm_petsc_weighted_{}", pid);
    if (rank == 0) {
      fs::remove_all(path_);
      fs::create_directories(path_);
    }
    MPI_Barrier(PETSC_COMM_WORLD);
  }
  ~SharedDir() {
    MPI_Barrier(PETSC_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
    if (rank == 0) fs::remove_all(path_);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

bool rank0() {
  int rank = 0;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  return rank == 0;
}

// Rank 0 writes with save_system; every rank reads its part back.
fs::path save_folder(const SharedDir& dir, const std::string& name, const Domain& dom, const std::vector<double>& b) {
  const fs::path out = dir.path() / name;
  if (rank0()) {
    PoissonSystem ps;
    ps.domain = dom;
    ps.rhs = b.empty() ? std::vector<double>(static_cast<std::size_t>(dom.dims().size()), 0.0) : b;
    ps.meta = describe_domain(dom);
    save_system(out, ps, MatrixFiles::Omit);
  }
  MPI_Barrier(PETSC_COMM_WORLD);
  return out;
}

// A folder written by the serial save_system, read back by from_folder (each rank its part),
// is the system from_domain makes of the domain: the same operator entries and b.
TEST(PetscWeighted, FolderEqualsDomain) {
  SharedDir dir;
  for (const auto& c : weighted_cases()) {
    const std::vector<double> b = random_on_fluid(c.domain, 5);
    const fs::path folder = save_folder(dir, "case", c.domain, b);
    PressureSystem from_domain = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    PressureSystem from_folder = PressureSystem::from_folder(PETSC_COMM_WORLD, folder);
    EXPECT_TRUE(from_folder.weighted()) << c.name;
    PetscBool equal = PETSC_FALSE;
    MatEqual(from_domain.assembled(), from_folder.assembled(), &equal);
    EXPECT_TRUE(equal) << c.name;
    VecEqual(from_domain.rhs(), from_folder.rhs(), &equal);
    EXPECT_TRUE(equal) << c.name;
    EXPECT_EQ(from_folder.components, from_domain.components) << c.name;
    EXPECT_EQ(from_folder.singular_components, from_domain.singular_components) << c.name;
    // The shell of the folder's system applies the domain's operator.
    Vec x = nullptr, y1 = nullptr, y2 = nullptr;
    VecDuplicate(from_domain.rhs(), &x);
    VecDuplicate(x, &y1);
    VecDuplicate(x, &y2);
    VecSetRandom(x, nullptr);
    MatMult(from_domain.shell(), x, y1);
    MatMult(from_folder.shell(), x, y2);
    VecEqual(y1, y2, &equal);
    EXPECT_TRUE(equal) << c.name;
    VecDestroy(&x);
    VecDestroy(&y1);
    VecDestroy(&y2);
    if (rank0()) fs::remove_all(folder);
    MPI_Barrier(PETSC_COMM_WORLD);
  }
}

// float32 coefficient files (load_system accepts them): the weights as float32 rounds them.
TEST(PetscWeighted, Float32CoefficientFiles) {
  SharedDir dir;
  Domain dom = closed_weighted();
  const fs::path folder = save_folder(dir, "f32", dom, {});
  Coefficients rounded = *dom.coefficients;
  for (auto* a : {&rounded.face_x, &rounded.face_y, &rounded.face_z, &rounded.diagonal})
    for (double& v : *a) v = static_cast<float>(v);
  if (rank0()) {
    const Dims d = dom.dims();
    const std::vector<std::int64_t> shape{d.nz, d.ny + 1, d.nx};
    io::write_npy(folder / "face_y.npy", std::vector<float>(rounded.face_y.begin(), rounded.face_y.end()), shape);
  }
  MPI_Barrier(PETSC_COMM_WORLD);
  rounded.face_x = dom.coefficients->face_x;  // only face_y was rewritten
  rounded.face_z = dom.coefficients->face_z;
  rounded.diagonal = dom.coefficients->diagonal;
  Domain expected = dom;
  expected.set_coefficients(rounded);
  PressureSystem a = PressureSystem::from_domain(PETSC_COMM_WORLD, expected, {});
  PressureSystem b = PressureSystem::from_folder(PETSC_COMM_WORLD, folder);
  PetscBool equal = PETSC_FALSE;
  MatEqual(a.assembled(), b.assembled(), &equal);
  EXPECT_TRUE(equal);
}

// Every rank throws the same InputError; returns its message ("" when none was thrown).
template <class Body>
std::string input_error(Body&& body) {
  try {
    body();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Bad coefficient files: InputError naming the file, the same on every rank (the ranks that
// read a good part agree with the one that found the bad value: no hang).
TEST(PetscWeighted, BadCoefficientFilesAreInputErrors) {
  SharedDir dir;
  const Domain dom = closed_weighted();
  const Dims d = dom.dims();
  struct Bad {
    std::string file;      // what the error must name
    std::string contains;  // and what else it must say
    std::function<void(const fs::path&)> spoil;
  };
  const std::vector<Bad> bad = {
      {"face_x.npy", "is nan",
       [&](const fs::path& f) {
         std::vector<double> w = dom.coefficients->face_x;
         w[w.size() - 3] = std::nan("");  // near the end: only the last rank's part holds it
         io::write_npy(f / "face_x.npy", w, {d.nz, d.ny, d.nx + 1});
       }},
      {"face_z.npy", "-1",
       [&](const fs::path& f) {
         std::vector<double> w = dom.coefficients->face_z;
         w[w.size() / 2] = -1.0;
         io::write_npy(f / "face_z.npy", w, {d.nz + 1, d.ny, d.nx});
       }},
      {"face_y.npy", "shape",
       [&](const fs::path& f) { io::write_npy(f / "face_y.npy", std::vector<double>(d.size(), 1.0), {d.nz, d.ny, d.nx}); }},
      {"diagonal.npy", "no such file", [&](const fs::path& f) { fs::remove(f / "diagonal.npy"); }},
      {"diagonal.npy", "dtype",
       [&](const fs::path& f) {
         io::write_npy(f / "diagonal.npy", std::vector<std::int32_t>(d.size(), 0), {d.nz, d.ny, d.nx});
       }},
      {"face_x.npy", "face_x.npy",
       [&](const fs::path& f) {  // truncated: half the file
         const std::string bytes = io::read_file(f / "face_x.npy");
         std::ofstream(f / "face_x.npy", std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size() / 2);
       }},
  };
  for (const auto& c : bad) {
    const fs::path folder = save_folder(dir, "bad", dom, {});
    if (rank0()) c.spoil(folder);
    MPI_Barrier(PETSC_COMM_WORLD);
    const std::string message = input_error([&] { PressureSystem::from_folder(PETSC_COMM_WORLD, folder); });
    EXPECT_NE(message.find(c.file), std::string::npos) << c.file << ": '" << message << "'";
    EXPECT_NE(message.find(c.contains), std::string::npos) << c.file << ": '" << message << "'";
    // The same message everywhere.
    const int length = static_cast<int>(message.size());
    int min_length = 0, max_length = 0;
    MPI_Allreduce(&length, &min_length, 1, MPI_INT, MPI_MIN, PETSC_COMM_WORLD);
    MPI_Allreduce(&length, &max_length, 1, MPI_INT, MPI_MAX, PETSC_COMM_WORLD);
    EXPECT_EQ(min_length, max_length) << c.file;
    if (rank0()) fs::remove_all(folder);
    MPI_Barrier(PETSC_COMM_WORLD);
  }
}

// dcdm_mg's cycle is the unit operator's: a weighted system is refused on every rank, both
// by the cycle and through a KSP's set-up; the unit system of the same cells is taken.
TEST(PetscWeighted, DcdmMgRefusesWeighted) {
  register_multigrid_pc();
  const Domain dom = scene("density", {19, 17, 15});
  PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, random_on_fluid(dom, 2));
  const std::string message = input_error([&] { DistributedMultigrid(GridGeometry::of(sys), {}); });
  EXPECT_NE(message.find("weighted"), std::string::npos) << message;
  EXPECT_NE(message.find("gamg"), std::string::npos) << message;
  attach_geometry(sys);
  KSP ksp = system_ksp(sys, sys.shell(), PCDCDMMG);
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  const PetscErrorCode code = KSPSetUp(ksp);
  PetscPopErrorHandler();
  EXPECT_EQ(global_sum(code != 0), global_sum(1)) << "KSPSetUp with dcdm_mg on a weighted system";
  KSPDestroy(&ksp);
  Domain unit = dom;
  unit.coefficients.reset();
  PressureSystem unit_sys = PressureSystem::from_domain(PETSC_COMM_WORLD, unit, {});
  EXPECT_FALSE(unit_sys.weighted());
  EXPECT_EQ(input_error([&] { DistributedMultigrid(GridGeometry::of(unit_sys), {}); }), "");
}

}  // namespace
}  // namespace dcdm::petsc::test
