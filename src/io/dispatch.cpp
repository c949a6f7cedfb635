// Reading by extension, file-kind detection and system size checks.
#include <algorithm>
#include <cctype>

#include "dcdm/io.hpp"
#include "detail.hpp"

namespace dcdm::io {

namespace {

std::string extension(const fs::path& path) {
  std::string e = path.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

[[noreturn]] void unknown_extension(const fs::path& path, const char* expected) {
  throw InputError(fmt::format("{}: unknown file type '{}' (expected {})", path.string(),
                               path.extension().string(), expected));
}

}  // namespace

const char* to_string(FileKind k) {
  switch (k) {
    case FileKind::MatrixMarketMatrix: return "Matrix Market coordinate matrix";
    case FileKind::MatrixMarketVector: return "Matrix Market array vector";
    case FileKind::Npy: return "NumPy .npy array";
    case FileKind::ReferenceMatrix: return "reference DCDM binary matrix";
    case FileKind::ReferenceVector: return "reference DCDM binary vector";
  }
  return "?";
}

FileKind detect_file_kind(const fs::path& path) {
  const std::string e = extension(path);
  if (e == ".npy") return FileKind::Npy;
  if (e == ".mtx") {
    const std::string head = read_file_prefix(path, 4096);
    std::string first = head.substr(0, head.find('\n'));
    std::transform(first.begin(), first.end(), first.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return first.find(" array ") != std::string::npos ? FileKind::MatrixMarketVector
                                                     : FileKind::MatrixMarketMatrix;
  }
  if (e == ".bin") {
    // A matrix header reads rows, cols, nnz, outer_size = rows, inner_size = cols. A vector's
    // header value (a count stored as a double) has zero low bits, so rows would read 0.
    const std::string head = read_file_prefix(path, 20);
    if (path.filename().string().rfind("matrixA", 0) == 0) return FileKind::ReferenceMatrix;
    if (head.size() == 20) {
      std::int32_t h[5];
      for (int k = 0; k < 5; ++k) h[k] = detail::load<std::int32_t>(head.data() + 4 * k);
      if (h[0] > 0 && h[1] > 0 && h[2] >= 0 && h[3] == h[0] && h[4] == h[1])
        return FileKind::ReferenceMatrix;
    }
    return FileKind::ReferenceVector;
  }
  unknown_extension(path, ".mtx, .npy or .bin");
}

CsrMatrix read_matrix(const fs::path& path, const ReadOptions& options) {
  const std::string e = extension(path);
  if (e == ".mtx") return read_matrix_market(path, nullptr, options);
  if (e == ".bin") return read_reference_matrix(path, nullptr, options);
  if (e == ".npy")
    throw InputError(fmt::format("{}: a .npy file holds a dense array, not a sparse matrix "
                                 "(expected .mtx or a reference .bin matrix)", path.string()));
  unknown_extension(path, ".mtx or a reference .bin matrix");
}

std::vector<double> read_vector(const fs::path& path, const ReadOptions& options) {
  const std::string e = extension(path);
  if (e == ".npy") return read_npy_vector(path, options);
  if (e == ".mtx") return read_matrix_market_vector(path, options);
  if (e == ".bin") return read_reference_vector(path, options);
  unknown_extension(path, ".npy, .mtx or a reference .bin vector");
}

void check_system_sizes(const CsrMatrix& a, const std::vector<double>& b, const fs::path& a_path,
                        const fs::path& b_path) {
  if (a.rows != a.cols)
    throw InputError(fmt::format("{}: the matrix is {} x {}, not square", a_path.string(), a.rows, a.cols));
  if (static_cast<std::int64_t>(b.size()) != a.rows)
    throw InputError(fmt::format("{}: the right-hand side has {} values but the matrix in {} has {} rows",
                                 b_path.string(), b.size(), a_path.string(), a.rows));
}

}  // namespace dcdm::io
