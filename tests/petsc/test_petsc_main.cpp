// main() of the PETSc tests: every rank runs every test (they are collective); only rank 0
// prints GoogleTest's report. A test's verdict is the same on every rank because each checks
// values reduced over all ranks (so no rank leaves a collective call early).
#include <gtest/gtest.h>
#include <petscsys.h>

#include "dcdm/petsc.hpp"
#include "dcdm/petsc_system.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  dcdm::petsc::use_huge_page_allocator();  // as dcdm-mpi: every test runs PETSc on it
  if (PetscInitialize(&argc, &argv, nullptr, nullptr) != 0) return 1;
  if (DCDMKSPRegister() != 0) return 1;
  int rank = 0;
  MPI_Comm_rank(PETSC_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, PETSC_COMM_WORLD);
  PetscFinalize();
  return any ? 1 : 0;
}
