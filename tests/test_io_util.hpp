#pragma once
// Shared by the io tests: a per-test temporary folder and file helpers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "dcdm/linalg.hpp"

namespace dcdm::test {

namespace fs = std::filesystem;

class IoTempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("dcdm_") + info->test_suite_name() + "_" + info->name() + "_" +
            std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }
  fs::path write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  fs::path dir_;
};

// Appends the raw bytes of a value.
template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Bit-identical doubles (operator== would let -0.0 equal 0.0).
inline bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), 8 * a.size()) == 0);
}

// A random sparse symmetric matrix: a 7-point-like pattern on an n^3 grid with random
// values, some of them hard to print (tiny, huge, subnormal, many digits).
inline CsrMatrix random_symmetric_grid_matrix(int n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<Triplet> t;
  auto id = [n](int i, int j, int k) { return std::int64_t(i) + n * (std::int64_t(j) + n * k); };
  const double odd[] = {1e-300, 4.9406564584124654e-324, 1.7976931348623157e308, 0.1, 1.0 / 3.0, -2.5e-17};
  int o = 0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const std::int64_t r = id(i, j, k);
        t.push_back({r, r, 6.0 + u(rng)});
        const int nb[3][3] = {{i + 1, j, k}, {i, j + 1, k}, {i, j, k + 1}};
        for (const auto& q : nb) {
          if (q[0] >= n || q[1] >= n || q[2] >= n) continue;
          const double v = (o % 17 == 0) ? odd[(o / 17) % 6] : u(rng);
          ++o;
          const std::int64_t c = id(q[0], q[1], q[2]);
          t.push_back({r, c, v});
          t.push_back({c, r, v});
        }
      }
  return CsrMatrix::from_triplets(std::int64_t(n) * n * n, std::int64_t(n) * n * n, t);
}

}  // namespace dcdm::test
