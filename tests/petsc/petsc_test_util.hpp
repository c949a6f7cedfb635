#pragma once
// Helpers of the PETSc tests: everything here is collective and returns values reduced over
// all ranks, so that every rank reaches the same verdict.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <petscksp.h>

#include "dcdm/petsc_system.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/solve.hpp"

namespace dcdm::petsc::test {

// Sets (or clears, for an empty value) a global PETSc option for the length of a test.
class ScopedOption {
 public:
  ScopedOption(std::string name, const std::string& value) : name_(std::move(name)) {
    PetscOptionsSetValue(nullptr, name_.c_str(), value.empty() ? nullptr : value.c_str());
  }
  ~ScopedOption() { PetscOptionsClearValue(nullptr, name_.c_str()); }
  ScopedOption(const ScopedOption&) = delete;
  ScopedOption& operator=(const ScopedOption&) = delete;

 private:
  std::string name_;
};

// The ranks laid out along one axis (-da_processors_x/y/z: all of them on axis `axis`, one on
// the others), or as PETSc chooses (axis -1), for the length of a test's scope.
class RankLayout {
 public:
  explicit RankLayout(int axis) {
    if (axis < 0) return;
    int size = 1;
    MPI_Comm_size(PETSC_COMM_WORLD, &size);
    const char* names[3] = {"-da_processors_x", "-da_processors_y", "-da_processors_z"};
    for (int a = 0; a < 3; ++a) options_.push_back(std::make_unique<ScopedOption>(names[a], a == axis ? std::to_string(size) : "1"));
  }

 private:
  std::vector<std::unique_ptr<ScopedOption>> options_;
};

// Random solid cells (a fraction `solid` of them) in a box with the given faces: many small
// components, some closed (singular), some touching an open face, crossing the ranks.
inline Domain speckled(Dims d, double solid, std::array<FaceBoundary, 6> faces, std::uint64_t seed) {
  Domain dom(d, CellType::Fluid);
  dom.faces = faces;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::int64_t c = 0; c < d.size(); ++c)
    if (u(rng) < solid) dom.cells[c] = CellType::Solid;
  remove_sealed_fluid_cells(dom);
  return dom;
}

// Standard normal values on the fluid cells, 0 elsewhere (the whole grid, the same on every rank).
inline std::vector<double> random_on_fluid(const Domain& dom, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(dom.dims().size()), 0.0);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  for (std::size_t c = 0; c < v.size(); ++c)
    if (dom.cells[static_cast<std::int64_t>(c)] == CellType::Fluid) v[c] = g(rng);
  return v;
}

// A serial solve of the same system as the reference: `method`'s iterations and x (projected
// onto the range for a singular domain); the solve must converge.
struct SerialRun {
  int iterations = 0;
  std::vector<double> x;
};
inline SerialRun serial_run(const Domain& dom, const std::vector<double>& b, const std::string& method,
                            const SolveOptions& options) {
  PoissonStencil op(dom);
  RangeProjector projector(dom);
  LinearSystemView view;
  view.op = &op;
  view.domain = &dom;
  if (projector.singular()) view.project_range = projector.as_function();
  auto solver = make_solver(method);
  solver->setup(view);
  SerialRun out;
  out.x.assign(b.size(), 0.0);
  const SolveReport rep = solver->solve(b, out.x, options);
  EXPECT_TRUE(rep.converged()) << method << ": " << format_reason_line(rep);
  if (projector.singular()) projector(out.x);
  out.iterations = rep.iterations;
  return out;
}

// Standard normal values on the fluid cells, projected onto the range of A (zero mean on each
// closed component): a right-hand side every solver can solve.
inline std::vector<double> serial_random_rhs(const Domain& dom, std::uint64_t seed) {
  std::vector<double> b = random_on_fluid(dom, seed);
  RangeProjector{dom}(b);
  return b;
}

// The serial reference solution: CG to rtol 1e-13 on the same domain and (projected) b.
inline std::vector<double> serial_solve(const Domain& dom, const std::vector<double>& b) {
  SolveOptions opt;
  opt.rtol = 1e-13;
  opt.max_iterations = 20000;
  opt.stagnation_window = 0;
  return serial_run(dom, b, "cg", opt).x;
}

// A catalogue scene on the whole grid.
inline Domain scene(const std::string& name, Dims d, std::uint64_t seed = 3) {
  SceneSpec spec;
  spec.name = name;
  spec.dims = d;
  spec.seed = seed;
  return make_scene(spec);
}

// f(position in the rank's owned array, full-grid index) for every owned cell, in the
// owned array's order.
template <class F>
void for_each_owned(const PressureSystem& sys, F f) {
  const Box& b = sys.box();
  std::size_t n = 0;
  for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
    for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
      for (PetscInt i = b.xs; i < b.xs + b.xm; ++i)
        f(n++, static_cast<std::size_t>(sys.dims().index(int(i), int(j), int(k))));
}

// The whole grid's values of a distributed vector, on every rank (collective).
inline std::vector<double> gather_full(const PressureSystem& sys, Vec v) {
  std::vector<double> mine(static_cast<std::size_t>(sys.dims().size()), 0.0), all(mine.size(), 0.0);
  const PetscScalar* a = nullptr;
  VecGetArrayRead(v, &a);
  for_each_owned(sys, [&](std::size_t n, std::size_t cell) { mine[cell] = a[n]; });
  VecRestoreArrayRead(v, &a);
  MPI_Allreduce(mine.data(), all.data(), static_cast<int>(mine.size()), MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD);
  return all;
}

// A full-grid vector's owned box into a PETSc Vec of the system's layout.
inline void fill_owned(const PressureSystem& sys, const std::vector<double>& full, Vec v) {
  PetscScalar* a = nullptr;
  VecGetArray(v, &a);
  for_each_owned(sys, [&](std::size_t n, std::size_t cell) { a[n] = full[cell]; });
  VecRestoreArray(v, &a);
}

inline double allreduce_max(double v) {
  double out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, PETSC_COMM_WORLD);
  return out;
}

// max |x_petsc(i,j,k) - serial[index(i,j,k)]| over the grid (x over the system's owned box).
inline double max_difference(const PressureSystem& sys, Vec x, const std::vector<double>& serial) {
  const PetscScalar* v = nullptr;
  VecGetArrayRead(x, &v);
  const Box& b = sys.box();
  double worst = 0;
  std::size_t n = 0;
  for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
    for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
      for (PetscInt i = b.xs; i < b.xs + b.xm; ++i, ++n) {
        const double s = serial[static_cast<std::size_t>(
            sys.dims().index(static_cast<int>(i), static_cast<int>(j), static_cast<int>(k)))];
        worst = std::max(worst, std::abs(v[n] - s));
        if (!std::isfinite(v[n])) worst = INFINITY;
      }
  VecRestoreArrayRead(x, &v);
  return allreduce_max(worst);
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::abs(a));
  return m;
}

// The serial operator applied to a full-grid x with the PETSc layer's identity rows off the
// fluid: what both distributed operators must give.
inline std::vector<double> serial_apply(const Domain& dom, const std::vector<double>& x) {
  std::vector<double> ax(x.size());
  PoissonStencil(dom).apply(x, ax);
  for (std::size_t c = 0; c < x.size(); ++c)
    if (dom.cells[static_cast<std::int64_t>(c)] != CellType::Fluid) ax[c] = x[c];
  return ax;
}

// A KSP on the system's DM (for PCMG's hierarchy; the operators are ours, not the DM's) with
// operator a and PC type pc.
inline KSP system_ksp(PressureSystem& sys, Mat a, const char* pc_type) {
  KSP ksp = nullptr;
  KSPCreate(PETSC_COMM_WORLD, &ksp);
  KSPSetDM(ksp, sys.dm());
  KSPSetDMActive(ksp, PETSC_FALSE);
  KSPSetOperators(ksp, a, a);
  PC pc = nullptr;
  KSPGetPC(ksp, &pc);
  PCSetType(pc, pc_type);
  return ksp;
}

struct KspRun {
  KSPConvergedReason reason = KSP_CONVERGED_ITERATING;
  PetscInt iterations = 0;
  KSPDCDMStats stats{};
  std::vector<PetscReal> history;  // ||r|| per iteration, the initial one first
};

// Solves A x = b (x zeroed first) with a KSP configured by `configure` then the options
// database, on the system's DM (for PCMG's hierarchy).
template <class Configure>
KspRun run_ksp(PressureSystem& sys, Mat a, Vec x, Configure&& configure) {
  KspRun out;
  KSP ksp = nullptr;
  KSPCreate(PETSC_COMM_WORLD, &ksp);
  KSPSetDM(ksp, sys.dm());
  KSPSetDMActive(ksp, PETSC_FALSE);
  KSPSetOperators(ksp, a, a);
  configure(ksp);
  KSPSetFromOptions(ksp);
  VecSet(x, 0.0);
  KSPSetResidualHistory(ksp, nullptr, PETSC_DECIDE, PETSC_TRUE);
  KSPSolve(ksp, sys.rhs(), x);
  const PetscReal* h = nullptr;
  PetscInt nh = 0;
  KSPGetResidualHistory(ksp, &h, &nh);
  out.history.assign(h, h + nh);
  KSPGetConvergedReason(ksp, &out.reason);
  KSPGetIterationNumber(ksp, &out.iterations);
  PetscBool is_dcdm = PETSC_FALSE;
  PetscObjectTypeCompare((PetscObject)ksp, KSPDCDM, &is_dcdm);
  if (is_dcdm) KSPDCDMGetStats(ksp, &out.stats);
  KSPDestroy(&ksp);
  return out;
}

}  // namespace dcdm::petsc::test
