#pragma once
// File formats: Matrix Market, NumPy .npy, the reference DCDM binary formats, PNG.
// Every reader throws InputError naming the file and the line (text) or byte offset (binary).
// Every writer writes atomically (temporary file in the same folder + rename).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::io {

namespace fs = std::filesystem;

// ---- Matrix Market ----
struct MatrixMarketInfo {
  std::string format;    // "coordinate" | "array"
  std::string field;     // "real" | "integer" | "pattern"
  std::string symmetry;  // "general" | "symmetric"
};
// Symmetric files are expanded to both triangles.
CsrMatrix read_matrix_market(const fs::path& path, MatrixMarketInfo* info = nullptr);
// symmetric = true writes the lower triangle with the "symmetric" qualifier (A must be symmetric).
void write_matrix_market(const fs::path& path, const CsrMatrix& a, bool symmetric = true,
                         const std::string& comment = "");
// Dense vectors: "array real general", one column.
std::vector<double> read_matrix_market_vector(const fs::path& path);
void write_matrix_market_vector(const fs::path& path, const std::vector<double>& v);

// ---- NumPy .npy ----
enum class DType { Float32, Float64, Int32, UInt8 };
struct NpyArray {
  DType dtype = DType::Float64;
  std::vector<std::int64_t> shape;  // 1-D or 3-D; C order
  std::vector<std::uint8_t> bytes;  // little-endian raw data
  std::int64_t count() const;
  std::vector<double> to_double() const;  // any dtype -> double
};
NpyArray read_npy(const fs::path& path);
void write_npy(const fs::path& path, const NpyArray& a);
// Convenience: a 3-D grid field is written with shape (nz, ny, nx) so that C order = x fastest.
void write_npy(const fs::path& path, const std::vector<double>& v, const std::vector<std::int64_t>& shape);
void write_npy(const fs::path& path, const std::vector<float>& v, const std::vector<std::int64_t>& shape);
void write_npy(const fs::path& path, const std::vector<std::uint8_t>& v, const std::vector<std::int64_t>& shape);
std::vector<double> read_npy_vector(const fs::path& path);  // any dtype, flattened

// ---- Reference DCDM binaries (see shared/method/DCDM.md) ----
enum class ValuePrecision { Float32, Float64 };
// Precision is told apart by the file size; `precision` receives what was found.
CsrMatrix read_reference_matrix(const fs::path& path, ValuePrecision* precision = nullptr);
void write_reference_matrix(const fs::path& path, const CsrMatrix& a,
                            ValuePrecision precision = ValuePrecision::Float32);
// float64 values with one leading header value (skipped on read; written as the count).
std::vector<double> read_reference_vector(const fs::path& path);
void write_reference_vector(const fs::path& path, const std::vector<double>& v);

// Reads a matrix by extension: .mtx -> Matrix Market, .bin -> reference binary.
CsrMatrix read_matrix(const fs::path& path);
// Reads a vector by extension: .npy, .mtx, .bin (reference vector).
std::vector<double> read_vector(const fs::path& path);

// Atomic write helper: writes `bytes` to path via temp + rename.
void write_file_atomic(const fs::path& path, const std::string& bytes);

// 8-bit greyscale or RGB PNG (stb_image_write), atomic.
void write_png(const fs::path& path, int width, int height, int channels,
               const std::vector<std::uint8_t>& pixels);

}  // namespace dcdm::io
