// Coordinate entries -> CSR without a global sort: files are mostly row-ordered already, and
// rows of a Poisson matrix are short.
#include <algorithm>
#include <utility>

#include "detail.hpp"

namespace dcdm::io::detail {

namespace {

// Sorts row segments by column (stable, so duplicates are summed in file order) and sums
// duplicates, compacting col/val and rewriting row_ptr.
void sort_and_compact(std::vector<std::int64_t>& row_ptr, std::vector<std::int32_t>& col,
                      std::vector<double>& val, std::int64_t* duplicates) {
  const std::int64_t rows = static_cast<std::int64_t>(row_ptr.size()) - 1;
  std::vector<std::pair<std::int32_t, double>> scratch;
  std::int64_t write = 0, summed = 0;
  std::int64_t begin = row_ptr[0];
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t end = row_ptr[r + 1];
    bool sorted = true;
    for (std::int64_t k = begin + 1; k < end && sorted; ++k) sorted = col[k - 1] < col[k];
    if (!sorted) {
      scratch.clear();
      for (std::int64_t k = begin; k < end; ++k) scratch.emplace_back(col[k], val[k]);
      std::stable_sort(scratch.begin(), scratch.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (std::int64_t k = begin; k < end; ++k) {
        col[k] = scratch[k - begin].first;
        val[k] = scratch[k - begin].second;
      }
    }
    const std::int64_t row_start = write;
    for (std::int64_t k = begin; k < end; ++k) {
      if (write > row_start && col[write - 1] == col[k]) {
        val[write - 1] += val[k];
        ++summed;
      } else {
        col[write] = col[k];
        val[write] = val[k];
        ++write;
      }
    }
    row_ptr[r] = row_start;
    begin = end;
  }
  row_ptr[rows] = write;
  col.resize(static_cast<std::size_t>(write));
  val.resize(static_cast<std::size_t>(write));
  if (duplicates) *duplicates = summed;
}

}  // namespace

CsrMatrix csr_from_coo(std::int64_t rows, std::int64_t cols, Coo&& coo, std::int64_t* duplicates) {
  const std::size_t n = coo.value.size();
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.row_ptr.assign(static_cast<std::size_t>(rows) + 1, 0);
  bool ordered = true;  // strictly increasing (row, col): already CSR
  for (std::size_t k = 0; k < n; ++k) {
    m.row_ptr[coo.row[k] + 1]++;
    if (k > 0 && (coo.row[k] < coo.row[k - 1] ||
                  (coo.row[k] == coo.row[k - 1] && coo.col[k] <= coo.col[k - 1])))
      ordered = false;
  }
  for (std::int64_t r = 0; r < rows; ++r) m.row_ptr[r + 1] += m.row_ptr[r];
  if (ordered) {
    m.col_idx = std::move(coo.col);
    m.values = std::move(coo.value);
    if (duplicates) *duplicates = 0;
    return m;
  }
  m.col_idx.resize(n);
  m.values.resize(n);
  // row_ptr[r] serves as row r's insertion cursor, ending at row r + 1's start; shifting
  // it back afterwards avoids a second rows-sized array.
  for (std::size_t k = 0; k < n; ++k) {
    const std::int64_t at = m.row_ptr[coo.row[k]]++;
    m.col_idx[at] = coo.col[k];
    m.values[at] = coo.value[k];
  }
  for (std::int64_t r = rows; r > 0; --r) m.row_ptr[r] = m.row_ptr[r - 1];
  m.row_ptr[0] = 0;
  coo = Coo{};
  sort_and_compact(m.row_ptr, m.col_idx, m.values, duplicates);
  return m;
}

void sort_rows_and_sum_duplicates(CsrMatrix& a, std::int64_t* duplicates) {
  sort_and_compact(a.row_ptr, a.col_idx, a.values, duplicates);
}

}  // namespace dcdm::io::detail
