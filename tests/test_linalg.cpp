#include <gtest/gtest.h>
#include <omp.h>

#include <random>

#include "dcdm/linalg.hpp"

using namespace dcdm;

TEST(VectorOps, DotIsIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> g;
  Vector a(100003), b(100003);
  for (auto& v : a) v = g(rng);
  for (auto& v : b) v = g(rng);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double d1 = dot(a, b);
  omp_set_num_threads(2);
  const double d2 = dot(a, b);
  omp_set_num_threads(3);
  const double d3 = dot(a, b);
  omp_set_num_threads(saved);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(d1, d3);
  long double ref = 0;
  for (size_t i = 0; i < a.size(); ++i) ref += (long double)a[i] * b[i];
  EXPECT_NEAR(d1, (double)ref, 1e-9 * std::abs((double)ref) + 1e-9);
}

TEST(VectorOps, AxpyXpayScale) {
  Vector x{1, 2, 3}, y{4, 5, 6};
  axpy(2.0, x, y);
  EXPECT_EQ(y, (Vector{6, 9, 12}));
  xpay(x, 0.5, y);
  EXPECT_EQ(y, (Vector{4, 6.5, 9}));
  scale(2.0, y);
  EXPECT_EQ(y, (Vector{8, 13, 18}));
  EXPECT_DOUBLE_EQ(norm2(Vector{3, 4}), 5.0);
  EXPECT_EQ(norm_inf(Vector{-7, 3}), 7.0);
  EXPECT_EQ(count_non_finite(Vector{1, std::nan(""), INFINITY}), 2);
}

TEST(Csr, FromTripletsSumsDuplicatesAndMultiplies) {
  auto m = CsrMatrix::from_triplets(3, 3, {{0, 0, 2}, {0, 1, -1}, {1, 0, -1}, {1, 1, 2}, {2, 2, 1}, {2, 2, 1}});
  m.check_structure();
  EXPECT_EQ(m.nnz(), 5);
  EXPECT_TRUE(m.is_symmetric());
  Vector x{1, 1, 1}, y(3);
  m.multiply(x, y);
  EXPECT_EQ(y, (Vector{1, 1, 2}));
  EXPECT_EQ(m.diagonal(), (Vector{2, 2, 2}));
  auto n = CsrMatrix::from_triplets(2, 2, {{0, 1, 1.0}});
  EXPECT_FALSE(n.is_symmetric());
}

TEST(Csr, RejectsOutOfRangeTriplets) {
  EXPECT_THROW(CsrMatrix::from_triplets(2, 2, {{2, 0, 1.0}}), std::exception);
}
