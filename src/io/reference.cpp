// The binary formats of the reference DCDM data (the public data of the DCDM paper; dcdm/io.hpp describes the
// formats): CSR matrices with float32 or float64 values, float64 vectors with a header value.
#include <cmath>
#include <limits>

#include "dcdm/io.hpp"
#include "detail.hpp"

namespace dcdm::io {

using detail::fail_at_byte;
using detail::load;

namespace {

constexpr std::size_t kMatrixHeader = 20;  // rows, cols, nnz, outer_size, inner_size (int32)

template <class T>
void read_values(std::string_view bytes, std::size_t base, std::int64_t nnz, std::vector<double>& out,
                 const std::string& name, const ReadOptions& options) {
  out.resize(static_cast<std::size_t>(nnz));
  for (std::int64_t k = 0; k < nnz; ++k) {
    const T v = load<T>(bytes.data() + base + k * sizeof(T));
    if (!options.allow_non_finite && !std::isfinite(v))
      fail_at_byte(name, base + k * sizeof(T), "value {} is {} (values must be finite)", k,
                   std::isnan(v) ? "NaN" : "Inf");
    out[static_cast<std::size_t>(k)] = static_cast<double>(v);
  }
}

}  // namespace

CsrMatrix parse_reference_matrix(std::string_view bytes, const std::string& name,
                                 ValuePrecision* precision, const ReadOptions& options) {
  if (bytes.size() < kMatrixHeader)
    fail_at_byte(name, bytes.size(),
                 "file ends inside the 20-byte header (rows, cols, nnz, outer_size, inner_size)");
  const std::int32_t h[5] = {load<std::int32_t>(bytes.data()), load<std::int32_t>(bytes.data() + 4),
                             load<std::int32_t>(bytes.data() + 8), load<std::int32_t>(bytes.data() + 12),
                             load<std::int32_t>(bytes.data() + 16)};
  static constexpr const char* kField[5] = {"rows", "cols", "nnz", "outer_size", "inner_size"};
  for (int k = 0; k < 5; ++k)
    if (h[k] < 0) fail_at_byte(name, 4 * k, "negative {} {} in the header", kField[k], h[k]);
  const std::int64_t rows = h[0], cols = h[1], nnz = h[2], outer = h[3];
  if (outer != rows)
    fail_at_byte(name, 12, "outer_size {} differs from rows {} (expected a row-major CSR matrix)", outer, rows);
  if (rows > kMaxMatrixDimension || cols > kMaxMatrixDimension)
    fail_at_byte(name, 0, "matrix size {} x {} exceeds the limit of {} rows and columns", rows, cols,
                 kMaxMatrixDimension);
  if (rows == 0 && nnz > 0) fail_at_byte(name, 8, "{} entries declared in a matrix without rows", nnz);
  check_matrix_fits_memory(name, rows, nnz);

  // The value type is told apart by the file size: exactly one of the two must match.
  const std::uint64_t size = bytes.size();
  const std::uint64_t index_bytes = kMatrixHeader + 4 * std::uint64_t(outer) + 4 * std::uint64_t(nnz);
  const std::uint64_t size32 = index_bytes + 4 * std::uint64_t(nnz);
  const std::uint64_t size64 = index_bytes + 8 * std::uint64_t(nnz);
  ValuePrecision found;
  if (size == size32) {
    found = ValuePrecision::Float32;  // also when nnz = 0 and both sizes agree
  } else if (size == size64) {
    found = ValuePrecision::Float64;
  } else {
    fail_at_byte(name, size,
                 "file size {} bytes matches neither float32 values ({} bytes) nor float64 values "
                 "({} bytes) for rows {}, cols {}, nnz {} (truncated or not a reference matrix?)",
                 size, size32, size64, rows, cols, nnz);
  }
  const std::size_t value_size = found == ValuePrecision::Float32 ? 4 : 8;
  const std::size_t offsets_base = kMatrixHeader + value_size * std::size_t(nnz);
  const std::size_t cols_base = offsets_base + 4 * std::size_t(outer);

  CsrMatrix a;
  a.rows = rows;
  a.cols = cols;
  if (found == ValuePrecision::Float32)
    read_values<float>(bytes, kMatrixHeader, nnz, a.values, name, options);
  else
    read_values<double>(bytes, kMatrixHeader, nnz, a.values, name, options);

  a.row_ptr.resize(static_cast<std::size_t>(rows) + 1);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t off = load<std::int32_t>(bytes.data() + offsets_base + 4 * r);
    const std::size_t at = offsets_base + 4 * std::size_t(r);
    if (r == 0 && off != 0) fail_at_byte(name, at, "the first row offset is {}, expected 0", off);
    if (r > 0 && off < a.row_ptr[r - 1])
      fail_at_byte(name, at, "row offset {} of row {} is less than the previous offset {} (offsets must not decrease)",
                   off, r, a.row_ptr[r - 1]);
    if (off > nnz) fail_at_byte(name, at, "row offset {} of row {} exceeds nnz {}", off, r, nnz);
    a.row_ptr[r] = off;
  }
  a.row_ptr[rows] = nnz;

  a.col_idx.resize(static_cast<std::size_t>(nnz));
  bool ordered = true;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      const std::int32_t c = load<std::int32_t>(bytes.data() + cols_base + 4 * k);
      if (c < 0 || c >= cols)
        fail_at_byte(name, cols_base + 4 * std::size_t(k), "column index {} out of range 0..{} in row {}", c,
                     cols - 1, r);
      if (k > a.row_ptr[r] && c <= a.col_idx[k - 1]) ordered = false;
      a.col_idx[k] = c;
    }
  }
  // Unsorted rows are sorted and duplicate entries summed, as for Matrix Market.
  if (!ordered) detail::sort_rows_and_sum_duplicates(a, nullptr);
  if (precision) *precision = found;
  return a;
}

CsrMatrix read_reference_matrix(const fs::path& path, ValuePrecision* precision, const ReadOptions& options) {
  const MappedFile file(path);
  return parse_reference_matrix(file.view(), path.string(), precision, options);
}

void write_reference_matrix(const fs::path& path, const CsrMatrix& a, ValuePrecision precision) {
  constexpr auto kMax = std::numeric_limits<std::int32_t>::max();
  if (a.rows > kMax || a.cols > kMax || a.nnz() > kMax)
    throw InputError(fmt::format("{}: the reference binary format stores sizes as int32: {} x {} with {} entries "
                                 "does not fit (write Matrix Market instead)",
                                 path.string(), a.rows, a.cols, a.nnz()));
  // Streamed through a buffer of 1 MiB: the file is as large as the matrix, and a copy of it
  // in memory would double the export's peak.
  AtomicFile f(path);
  std::vector<char> buf;
  buf.reserve(std::size_t(1) << 20);
  const auto flush = [&] {
    f.write(buf.data(), buf.size());
    buf.clear();
  };
  const auto put = [&](const void* data, std::size_t size) {
    if (buf.size() + size > buf.capacity()) flush();
    const auto* p = static_cast<const char*>(data);
    buf.insert(buf.end(), p, p + size);
  };
  const auto put32 = [&](std::int32_t v) { put(&v, 4); };
  put32(static_cast<std::int32_t>(a.rows));
  put32(static_cast<std::int32_t>(a.cols));
  put32(static_cast<std::int32_t>(a.nnz()));
  put32(static_cast<std::int32_t>(a.rows));
  put32(static_cast<std::int32_t>(a.cols));
  for (double v : a.values) {
    if (precision == ValuePrecision::Float32) {
      const float x = static_cast<float>(v);
      if (std::isfinite(v) && !std::isfinite(x))
        throw Error(fmt::format("write_reference_matrix {}: value {} does not fit float32; write "
                                "float64 values", path.string(), v));
      put(&x, 4);
    } else {
      put(&v, 8);
    }
  }
  for (std::int64_t r = 0; r < a.rows; ++r) put32(static_cast<std::int32_t>(a.row_ptr[r]));
  flush();
  f.write(a.col_idx.data(), 4 * a.col_idx.size());
  f.commit();
}

std::vector<double> parse_reference_vector(std::string_view bytes, const std::string& name,
                                           const ReadOptions& options) {
  if (bytes.size() < 8) fail_at_byte(name, bytes.size(), "file ends inside the 8-byte header value");
  const std::size_t rest = bytes.size() % 8;
  if (rest != 0)
    fail_at_byte(name, bytes.size() - rest,
                 "{} trailing bytes do not form a float64 (file size {} is not a multiple of 8; truncated?)",
                 rest, bytes.size());
  std::vector<double> v;
  read_values<double>(bytes, 8, static_cast<std::int64_t>(bytes.size() / 8 - 1), v, name, options);
  return v;
}

std::vector<double> read_reference_vector(const fs::path& path, const ReadOptions& options) {
  const MappedFile file(path);
  return parse_reference_vector(file.view(), path.string(), options);
}

void write_reference_vector(const fs::path& path, const std::vector<double>& v) {
  AtomicFile f(path);
  const double header = static_cast<double>(v.size());
  f.write(&header, 8);
  f.write(v.data(), 8 * v.size());
  f.commit();
}

}  // namespace dcdm::io
