#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm {

void CsrMatrix::multiply(dcdm::span<const double> x, dcdm::span<double> y) const {
  const std::int64_t* rp = row_ptr.data();
  const std::int32_t* ci = col_idx.data();
  const double* v = values.data();
  const double* px = x.data();
  double* py = y.data();
#pragma omp parallel for schedule(static) if (nnz() >= 65536)
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0.0;
    for (std::int64_t k = rp[r]; k < rp[r + 1]; ++k) s += v[k] * px[ci[k]];
    py[r] = s;
  }
}

std::vector<double> CsrMatrix::diagonal() const {
  std::vector<double> d(static_cast<std::size_t>(rows), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = row_ptr[r]; k < row_ptr[r + 1]; ++k)
      if (col_idx[k] == r) d[r] = values[k];
  return d;
}

namespace {
// Value at (r, c), or NaN when the entry is not stored. Rows are sorted.
double lookup(const CsrMatrix& a, std::int64_t r, std::int64_t c, bool& found) {
  auto first = a.col_idx.begin() + a.row_ptr[r];
  auto last = a.col_idx.begin() + a.row_ptr[r + 1];
  auto it = std::lower_bound(first, last, static_cast<std::int32_t>(c));
  found = it != last && *it == c;
  return found ? a.values[it - a.col_idx.begin()] : 0.0;
}
}  // namespace

bool CsrMatrix::is_symmetric(double tol) const {
  if (rows != cols) return false;
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok)
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t k = row_ptr[r]; k < row_ptr[r + 1] && ok; ++k) {
      bool found = false;
      double t = lookup(*this, col_idx[k], r, found);
      if (!found) {
        if (values[k] != 0.0) ok = false;
      } else if (std::abs(t - values[k]) > tol) {
        ok = false;
      }
    }
  }
  return ok;
}

void CsrMatrix::check_structure() const {
  if (rows < 0 || cols < 0) throw Error("CSR: negative dimensions");
  if (static_cast<std::int64_t>(row_ptr.size()) != rows + 1)
    throw Error(fmt::format("CSR: row_ptr has {} entries, expected {}", row_ptr.size(), rows + 1));
  if (row_ptr.front() != 0 || row_ptr.back() != nnz() || col_idx.size() != values.size())
    throw Error("CSR: row_ptr/col_idx/values sizes disagree");
  for (std::int64_t r = 0; r < rows; ++r) {
    if (row_ptr[r + 1] < row_ptr[r]) throw Error(fmt::format("CSR: row_ptr decreases at row {}", r));
    for (std::int64_t k = row_ptr[r]; k < row_ptr[r + 1]; ++k) {
      if (col_idx[k] < 0 || col_idx[k] >= cols)
        throw Error(fmt::format("CSR: column {} out of range in row {}", col_idx[k], r));
      if (k > row_ptr[r] && col_idx[k] <= col_idx[k - 1])
        throw Error(fmt::format("CSR: columns not strictly increasing in row {}", r));
    }
  }
}

CsrMatrix CsrMatrix::from_triplets(std::int64_t rows, std::int64_t cols, std::vector<Triplet> t,
                                   bool drop_zeros) {
  std::sort(t.begin(), t.end(), [](const Triplet& a, const Triplet& b) {
    return a.row != b.row ? a.row < b.row : a.col < b.col;
  });
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.row_ptr.assign(static_cast<std::size_t>(rows) + 1, 0);
  m.col_idx.reserve(t.size());
  m.values.reserve(t.size());
  std::int64_t last_row = -1, last_col = -1;
  for (const Triplet& e : t) {
    if (e.row < 0 || e.row >= rows || e.col < 0 || e.col >= cols)
      throw Error(fmt::format("CSR: entry ({}, {}) outside a {}x{} matrix", e.row, e.col, rows, cols));
    if (e.row == last_row && e.col == last_col) {
      m.values.back() += e.value;
      continue;
    }
    m.col_idx.push_back(static_cast<std::int32_t>(e.col));
    m.values.push_back(e.value);
    m.row_ptr[e.row + 1]++;
    last_row = e.row;
    last_col = e.col;
  }
  for (std::int64_t r = 0; r < rows; ++r) m.row_ptr[r + 1] += m.row_ptr[r];
  if (drop_zeros) {
    CsrMatrix z;
    z.rows = rows;
    z.cols = cols;
    z.row_ptr.assign(static_cast<std::size_t>(rows) + 1, 0);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = m.row_ptr[r]; k < m.row_ptr[r + 1]; ++k)
        if (m.values[k] != 0.0) {
          z.col_idx.push_back(m.col_idx[k]);
          z.values.push_back(m.values[k]);
        }
      z.row_ptr[r + 1] = static_cast<std::int64_t>(z.values.size());
    }
    return z;
  }
  return m;
}

}  // namespace dcdm
