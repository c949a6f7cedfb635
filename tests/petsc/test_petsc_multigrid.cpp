// The distributed V-cycle (dcdm_mg) against the serial one: the same z = cycle(r) on every
// cell for the mgpcg cycle (double), a tuned float cycle and the shipped learned cycle, on
// odd-sized grids whose obstacles, closed regions and coarse levels cross rank boundaries;
// then KSPCG / KSPDCDM with the PC against the serial mgpcg / dcdm-relax iterations and
// solutions. Run under mpiexec with 1..4 ranks (ctest petsc_tests_np*).
#include <gtest/gtest.h>

#include <memory>
#include <random>

#include <omp.h>

#include "dcdm/krylov.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/models.hpp"
#include "dcdm/petsc.hpp"
#include "dcdm/petsc_multigrid.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/scenes.hpp"
#include "petsc_test_util.hpp"

namespace dcdm::petsc::test {
namespace {

MultigridOptions relaxnet_cycle() { return learn::RelaxNet::load(learn::find_model("relaxnet")).cycle_options(); }

struct Case {
  std::string name;
  Domain domain;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"obstacles 37x29x33", scene("obstacles", {37, 29, 33})});
  Domain open = scene("obstacles", {33, 40, 27}, 7);
  open.faces[5] = FaceBoundary::Open;
  open.faces[0] = FaceBoundary::Open;
  out.push_back({"obstacles 33x40x27, two open faces", std::move(open)});
  out.push_back({"bunny 40^3", scene("bunny", {40, 40, 40})});
  out.push_back({"closed speckled 35x30x31 (singular)", speckled({35, 30, 31}, 0.25, {}, 4)});
  return out;
}

struct CycleCase {
  std::string name;
  MultigridOptions options;
  // max |z_distributed - z_serial| / max |z_serial|. Every cell is evaluated with the serial
  // kernel's expression in the same order; the serial kernels' vectorised loops may contract
  // a different set of multiply-adds (last bits: 9e-16 of max |z| measured in double).
  double tolerance;
};

std::vector<CycleCase> cycles() {
  std::vector<CycleCase> out;
  out.push_back({"mgpcg", MultigridOptions{}, 1e-14});
  out.push_back({"mgpcg:omega=1.3:band-omega=1.5:precision=float:coarsest=64",
                 parse_multigrid_settings("omega=1.3:band-omega=1.5:precision=float:coarsest=64", "test"), 1e-6});
  out.push_back({"relaxnet", relaxnet_cycle(), 1e-6});
  MultigridOptions deep = relaxnet_cycle();
  deep.coarsest_cells = 8;
  out.push_back({"relaxnet, coarsest 8 cells", deep, 1e-6});
  return out;
}

// z = cycle(r) on every cell, split across the ranks (every level that can be split, or the
// default gathering) against the serial cycle on the whole grid.
TEST(PetscMultigrid, CycleMatchesSerialCellForCell) {
  int ranks = 1;
  MPI_Comm_size(PETSC_COMM_WORLD, &ranks);
  for (const Case& c : cases()) {
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, {});
    const GridGeometry grid = GridGeometry::of(sys);
    const std::vector<double> r = random_on_fluid(c.domain, 11);
    Vec rv = nullptr, zv = nullptr;
    VecDuplicate(sys.rhs(), &rv);
    VecDuplicate(sys.rhs(), &zv);
    fill_owned(sys, r, rv);
    for (const CycleCase& cc : cycles()) {
      MultigridPreconditioner serial(cc.options);
      LinearSystemView view;
      view.domain = &c.domain;
      serial.setup(view);
      std::vector<double> z(r.size());
      serial.apply(r, z);
      for (const std::int64_t gather : {std::int64_t(0), std::int64_t(32768)}) {
        DistributedMultigridOptions o;
        o.cycle = cc.options;
        o.gather_cells = gather;
        DistributedMultigrid mg(grid, o);
        EXPECT_EQ(mg.levels(), serial.levels()) << c.name << ", " << cc.name;
        for (int li = 0; li < std::min(mg.levels(), serial.levels()); ++li) {
          EXPECT_EQ(mg.level_dims(li).size(), serial.level_dims(li).size()) << c.name << ", level " << li;
        }
        if (gather == 0 && serial.levels() > 2) {
          EXPECT_GE(mg.distributed_levels(), 2) << c.name << ", " << cc.name;
        }
        mg.apply(rv, zv);
        const double diff = max_difference(sys, zv, z);
        EXPECT_LE(diff, cc.tolerance * max_abs(z))
            << c.name << ", " << cc.name << ", gather " << gather << ", " << ranks << " ranks, "
            << mg.distributed_levels() << " of " << mg.levels() << " levels split";
      }
    }
    VecDestroy(&rv);
    VecDestroy(&zv);
  }
}

// The fused passes (both colours of a red-black sweep in one pass over the planes, or a whole
// smoother where the ranks split z only; the residual and the restriction in one) against a
// pass per step: bit for bit the same z, with the ranks laid out by PETSc and along each axis,
// odd sizes, on one thread and on the default threads (slabs of planes).
TEST(PetscMultigrid, FusedPassesEqualStepByStep) {
  int size = 1;
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  const int default_threads = omp_get_max_threads();
  for (int layout = -1; layout < 3; ++layout) {  // -1: PETSc's choice
    const RankLayout ranks_along(layout);
    // Odd sizes (rank boundaries at odd cells: the residual's ghosts exchanged) and even ones
    // (at even cells on 2 and 4 ranks: the residual on the first ghost layer, fused with the
    // restriction).
    for (const Case& c : {Case{"obstacles 37x29x33", scene("obstacles", {37, 29, 33})},
                          Case{"bunny 23x41x35", scene("bunny", {23, 41, 35})},
                          Case{"obstacles 24x40x36", scene("obstacles", {24, 40, 36}, 9)},
                          // Slabs of 22-45 planes along z on 2-4 ranks: the whole-smoother
                          // pass (z splits, one thread) runs every step on inner planes.
                          Case{"obstacles 21x18x90", scene("obstacles", {21, 18, 90}, 3)}}) {
      PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, {});
      const GridGeometry grid = GridGeometry::of(sys);
      Vec rv = nullptr, fused = nullptr, steps = nullptr;
      VecDuplicate(sys.rhs(), &rv);
      VecDuplicate(sys.rhs(), &fused);
      VecDuplicate(sys.rhs(), &steps);
      fill_owned(sys, random_on_fluid(c.domain, 5), rv);
      for (const CycleCase& cc : cycles())
        for (const int threads : {1, default_threads}) {
          omp_set_num_threads(threads);
          DistributedMultigridOptions o;
          o.cycle = cc.options;
          o.gather_cells = 0;  // every level that can be split is
          DistributedMultigrid with_fused(grid, o);
          o.fused_passes = false;
          DistributedMultigrid step_by_step(grid, o);
          with_fused.apply(rv, fused);
          step_by_step.apply(rv, steps);
          PetscReal zmax = 0, diff = 0;
          VecNorm(steps, NORM_INFINITY, &zmax);
          VecAXPY(fused, -1.0, steps);
          VecNorm(fused, NORM_INFINITY, &diff);
          EXPECT_GT(zmax, 0.0) << c.name << ", " << cc.name;
          EXPECT_EQ(diff, 0.0) << c.name << ", " << cc.name << ", layout " << layout << ", " << threads
                               << " threads, " << size << " ranks, " << with_fused.distributed_levels() << " levels split";
        }
      omp_set_num_threads(default_threads);
      VecDestroy(&rv);
      VecDestroy(&fused);
      VecDestroy(&steps);
    }
  }
}

// Projects a distributed x onto the range like the serial projector (zero mean on each
// singular component), so solutions of singular systems compare.
std::vector<double> gather_projected(const PressureSystem& sys, const Domain& dom, Vec x) {
  std::vector<double> sum = gather_full(sys, x);
  RangeProjector projector(dom);
  if (projector.singular()) projector(sum);
  for (std::size_t c = 0; c < sum.size(); ++c)
    if (dom.cells[static_cast<std::int64_t>(c)] != CellType::Fluid) sum[c] = 0.0;
  return sum;
}

// KSPDCDM (k = 1) + the learned cycle takes serial dcdm-relax's iterations, KSPCG + the
// mgpcg cycle serial mgpcg's (+-1, the reductions sum in another order); at rtol 1e-10 the
// solutions agree with the serial ones to 1e-8.
TEST(PetscMultigrid, KrylovMatchesSerialIterationsAndSolutions) {
  register_multigrid_pc();
  for (const Case& c : cases()) {
    const std::vector<double> b = [&] {
      std::vector<double> v = random_on_fluid(c.domain, 5);
      RangeProjector{c.domain}(v);
      return v;
    }();
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    attach_geometry(sys);
    struct Method {
      std::string serial, ksp, pc_option, pc_value;
    };
    const std::vector<Method> methods = {{"dcdm-relax", KSPDCDM, "-pc_dcdm_mg_model", "relaxnet"},
                                         {"mgpcg", KSPCG, "-pc_dcdm_mg_settings", ""}};
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    for (const Method& m : methods) {
      for (const double rtol : {1e-6, 1e-10}) {
        SolveOptions opt;
        opt.rtol = rtol;
        opt.max_iterations = 500;
        const SerialRun serial = serial_run(c.domain, b, m.serial, opt);
        ScopedOption gather("-pc_dcdm_mg_gather_cells", "0");
        ScopedOption pc_option(m.pc_option, m.pc_value);
        const KspRun run = run_ksp(sys, sys.assembled(), x, [&](KSP ksp) {
          KSPSetType(ksp, m.ksp.c_str());
          if (m.ksp == KSPDCDM) KSPDCDMSetK(ksp, 1);
          KSPSetNormType(ksp, KSP_NORM_UNPRECONDITIONED);
          KSPSetTolerances(ksp, rtol, 0.0, PETSC_DEFAULT, 500);
          PC pc = nullptr;
          KSPGetPC(ksp, &pc);
          PCSetType(pc, PCDCDMMG);
        });
        EXPECT_GT(run.reason, 0) << c.name << ", " << m.serial << ": " << KSPConvergedReasons[run.reason];
        EXPECT_LE(std::abs(int(run.iterations) - serial.iterations), 1)
            << c.name << ", " << m.serial << ", rtol " << rtol << ": " << run.iterations << " vs serial "
            << serial.iterations;
        if (rtol < 1e-8) {
          const std::vector<double> xs = gather_projected(sys, c.domain, x);
          double worst = 0;
          for (std::size_t q = 0; q < xs.size(); ++q) worst = std::max(worst, std::abs(xs[q] - serial.x[q]));
          EXPECT_LE(worst, 1e-8 * max_abs(serial.x)) << c.name << ", " << m.serial;
        }
        if (m.ksp == KSPDCDM) {
          EXPECT_EQ(run.stats.fallback_directions, 0) << c.name;
        }
      }
    }
    VecDestroy(&x);
  }
}

// The cycle's float output (KSPDCDM's float direction) is its double output rounded, bit for
// bit, whether the finest residual borrows the output's storage (capacity of the workspace)
// or lives in an array of the cycle's own (capacity of the owned cells only).
TEST(PetscMultigrid, FloatOutputIsTheDoubleOutputRounded) {
  for (const Case& c : cases()) {
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, {});
    const GridGeometry grid = GridGeometry::of(sys);
    Vec rv = nullptr, zv = nullptr;
    VecDuplicate(sys.rhs(), &rv);
    VecDuplicate(sys.rhs(), &zv);
    fill_owned(sys, random_on_fluid(c.domain, 13), rv);
    PetscInt n = 0;
    VecGetLocalSize(rv, &n);
    for (const CycleCase& cc : cycles())
      for (const std::int64_t gather : {std::int64_t(0), std::int64_t(32768)}) {
        DistributedMultigridOptions o;
        o.cycle = cc.options;
        o.gather_cells = gather;
        DistributedMultigrid mg(grid, o);
        mg.apply(rv, zv);
        const PetscScalar* z = nullptr;
        VecGetArrayRead(zv, &z);
        const std::size_t workspace = mg.single_workspace();
        if (cc.options.single_precision && mg.distributed_levels() > 1) {
          EXPECT_GE(workspace, static_cast<std::size_t>(n)) << c.name << ", " << cc.name;
        }
        for (const std::size_t capacity : {static_cast<std::size_t>(n), std::max<std::size_t>(n, workspace)}) {
          std::vector<float> zf(capacity, -1.0f);
          mg.apply_single(rv, zf.data(), capacity);
          std::int64_t differ = 0, nonzero = 0;
          for (PetscInt i = 0; i < n; ++i) {
            differ += zf[static_cast<std::size_t>(i)] != static_cast<float>(z[i]);
            nonzero += z[i] != 0.0;
          }
          std::int64_t all[2] = {differ, nonzero}, sums[2] = {0, 0};
          MPI_Allreduce(all, sums, 2, MPI_INT64_T, MPI_SUM, PETSC_COMM_WORLD);
          EXPECT_EQ(sums[0], 0) << c.name << ", " << cc.name << ", gather " << gather << ", capacity " << capacity;
          EXPECT_GT(sums[1], 0) << c.name << ", " << cc.name;
        }
        VecRestoreArrayRead(zv, &z);
      }
    VecDestroy(&rv);
    VecDestroy(&zv);
  }
}

// ||b - A x|| / ||b|| recomputed from the gathered x with the serial stencil.
double true_relative_residual(const PressureSystem& sys, const Domain& dom, const std::vector<double>& b, Vec x) {
  const std::vector<double> ax = serial_apply(dom, gather_full(sys, x));
  double rr = 0, bb = 0;
  for (std::size_t c = 0; c < b.size(); ++c)
    if (dom.cells[static_cast<std::int64_t>(c)] == CellType::Fluid) {
      rr += (b[c] - ax[c]) * (b[c] - ax[c]);
      bb += b[c] * b[c];
    }
  return std::sqrt(rr / bb);
}

// KSPDCDM + the learned cycle with float vectors (matrix-free operator, the cycle writing the
// float direction, or a double one on the singular system) takes the iterations of double
// vectors and of the serial dcdm-relax (+-1) and meets rtol on the recomputed b - A x; at a
// tight target float vectors still meet it on b - A x (the updated residual is not trusted).
// All without the DMDA's ghost scatter (PressureSystem::release_ghost_scatter).
TEST(PetscMultigrid, FloatVectorsTakeTheDoubleAndSerialIterations) {
  register_multigrid_pc();
  for (const Case& c : cases()) {
    const std::vector<double> b = serial_random_rhs(c.domain, 5);
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    attach_geometry(sys);
    sys.release_ghost_scatter();  // as dcdm-mpi does with dcdm_mg: nothing here may need it
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    ScopedOption gather("-pc_dcdm_mg_gather_cells", "0");
    ScopedOption model("-pc_dcdm_mg_model", "relaxnet");
    const auto run = [&](const char* vectors, double rtol) {
      ScopedOption v("-ksp_dcdm_vectors", vectors);
      return run_ksp(sys, sys.shell(), x, [&](KSP ksp) {
        KSPSetType(ksp, KSPDCDM);
        KSPDCDMSetK(ksp, 1);
        KSPSetTolerances(ksp, rtol, 0.0, PETSC_DEFAULT, 500);
        PC pc = nullptr;
        KSPGetPC(ksp, &pc);
        PCSetType(pc, PCDCDMMG);
      });
    };
    SolveOptions opt;
    opt.rtol = 1e-6;
    opt.max_iterations = 500;
    const SerialRun serial = serial_run(c.domain, b, "dcdm-relax", opt);
    const KspRun dbl = run("double", 1e-6);
    const double dbl_residual = true_relative_residual(sys, c.domain, b, x);
    const KspRun flt = run("float", 1e-6);
    const double flt_residual = true_relative_residual(sys, c.domain, b, x);
    EXPECT_GT(flt.reason, 0) << c.name << ": " << KSPConvergedReasons[flt.reason];
    EXPECT_TRUE(flt.stats.single_precision_vectors) << c.name;
    EXPECT_FALSE(dbl.stats.single_precision_vectors) << c.name;
    EXPECT_LE(std::abs(int(flt.iterations) - int(dbl.iterations)), 1) << c.name << ": float " << flt.iterations
                                                                       << ", double " << dbl.iterations;
    EXPECT_LE(std::abs(int(flt.iterations) - serial.iterations), 1) << c.name << ": float " << flt.iterations
                                                                     << ", serial " << serial.iterations;
    EXPECT_LE(flt_residual, 1e-6) << c.name;
    EXPECT_LE(dbl_residual, 1e-6) << c.name;
    EXPECT_EQ(flt.stats.fallback_directions, 0) << c.name;
    const KspRun tight = run("float", 1e-9);
    EXPECT_GT(tight.reason, 0) << c.name << ": " << KSPConvergedReasons[tight.reason];
    EXPECT_TRUE(tight.stats.single_precision_vectors) << c.name;
    EXPECT_LE(true_relative_residual(sys, c.domain, b, x), 1e-9) << c.name << ", " << tight.iterations
                                                                  << " iterations, "
                                                                  << tight.stats.residual_replacements
                                                                  << " replacements";
    VecDestroy(&x);
  }
}

// Bad settings and a model of another architecture fail set-up on every rank with the serial
// messages (a PETSc error carrying them), not a crash or a hang.
TEST(PetscMultigrid, BadSettingsAndModelsAreErrors) {
  register_multigrid_pc();
  Domain dom = scene("obstacles", {20, 18, 16});
  PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, random_on_fluid(dom, 2));
  attach_geometry(sys);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"-pc_dcdm_mg_settings", "omega=2.5"},
      {"-pc_dcdm_mg_settings", "nonsense=1"},
      {"-pc_dcdm_mg_model", "paper64"},            // a reference network, not a relaxnet
      {"-pc_dcdm_mg_model", "/nonexistent/model.dcdm"},
  };
  for (const auto& [option, value] : bad) {
    ScopedOption o(option, value);
    KSP ksp = system_ksp(sys, sys.assembled(), PCDCDMMG);
    KSPSetFromOptions(ksp);
    PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
    const PetscErrorCode code = KSPSetUp(ksp);
    PetscPopErrorHandler();
    int failed = code != 0, all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, PETSC_COMM_WORLD);
    EXPECT_EQ(all, 1) << option << " " << value << " was accepted";
    KSPDestroy(&ksp);
  }
}

}  // namespace
}  // namespace dcdm::petsc::test
