#pragma once
// File formats: Matrix Market, NumPy .npy, the reference DCDM binary formats, PNG.
// Every reader throws InputError naming the file and the line (text) or byte offset (binary).
// Every writer writes atomically (temporary file in the same folder + rename).
//
// Conventions shared by the readers:
// - Values must be finite: NaN or Inf is an error unless ReadOptions::allow_non_finite.
// - A header that declares more data than the file holds is rejected before anything is
//   allocated; matrices have at most kMaxMatrixDimension rows and columns, and must fit
//   the machine's memory (check_matrix_fits_memory).
// - Duplicate entries (the same (row, column) twice) are summed, as Matrix Market readers
//   such as scipy.io.mmread and Eigen do; MatrixMarketInfo::duplicates counts them.
// - In a symmetric Matrix Market file every entry must lie on or below the diagonal (the
//   standard's rule); an entry above it is an error, since mirroring it could silently
//   double a value that is also given below.
// - The parse_* functions read from memory; `name` stands for the file in messages.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::io {

// Throws MissingFileError when path does not exist and InputError when it is not a regular
// file (a folder, a pipe, a device: reading one blocks or never ends). Every reader calls it
// before opening.
void require_regular_file(const std::filesystem::path& path);


namespace fs = std::filesystem;

// Column indices are int32, so rows and columns are at most 2^31 - 1 (the largest grid,
// kMaxGridCells: 1290^3). Within that, a header is checked against the file's length and the
// CSR it declares against the machine's memory before anything is allocated.
inline constexpr std::int64_t kMaxMatrixDimension = kMaxGridCells;

// InputError naming `name` and both figures when a CSR matrix of `rows` rows and `entries`
// stored entries (and the reader's work arrays, `work_bytes_per_entry` more a stored entry)
// would take more than half of this machine's memory (the solve needs the rest).
void check_matrix_fits_memory(const std::string& name, std::int64_t rows, std::int64_t entries,
                              std::int64_t work_bytes_per_entry = 0);

struct ReadOptions {
  bool allow_non_finite = false;  // accept NaN/Inf values (dcdm info counts them)
};

// ---- Matrix Market ----
struct MatrixMarketInfo {
  std::string format;    // "coordinate" | "array"
  std::string field;     // "real" | "integer" | "pattern"
  std::string symmetry;  // "general" | "symmetric"
  std::int64_t rows = 0, cols = 0;
  std::int64_t entries = 0;     // entries stored in the file (declared count)
  std::int64_t duplicates = 0;  // entries summed into an earlier one
};
// Symmetric files are expanded to both triangles.
CsrMatrix read_matrix_market(const fs::path& path, MatrixMarketInfo* info = nullptr,
                             const ReadOptions& options = {});
CsrMatrix parse_matrix_market(std::string_view text, const std::string& name,
                              MatrixMarketInfo* info = nullptr, const ReadOptions& options = {});
// Reads only the banner and size line.
MatrixMarketInfo read_matrix_market_header(const fs::path& path);
// symmetric = true writes the lower triangle with the "symmetric" qualifier (A must be symmetric).
// Values are written in shortest round-trip form, so reading gives back identical doubles.
void write_matrix_market(const fs::path& path, const CsrMatrix& a, bool symmetric = true,
                         const std::string& comment = "");
// Dense vectors: "array real general", one column. The reader also accepts one row, and a
// coordinate matrix with one column (missing entries are zero).
std::vector<double> read_matrix_market_vector(const fs::path& path, const ReadOptions& options = {});
std::vector<double> parse_matrix_market_vector(std::string_view text, const std::string& name,
                                               const ReadOptions& options = {});
void write_matrix_market_vector(const fs::path& path, const std::vector<double>& v);

// ---- NumPy .npy ----
// Reads format versions 1.0, 2.0 and 3.0; writes 1.0 unless the header needs 2.0.
// Little-endian, C order only.
enum class DType { Float32, Float64, Int32, UInt8 };
const char* to_string(DType d);  // "float32", ...
std::size_t item_size(DType d);
struct NpyArray {
  DType dtype = DType::Float64;
  std::vector<std::int64_t> shape;  // 1-D or 3-D; C order
  std::vector<std::uint8_t> bytes;  // little-endian raw data
  std::int64_t count() const;
  std::vector<double> to_double() const;  // any dtype -> double
};
NpyArray read_npy(const fs::path& path, const ReadOptions& options = {});
NpyArray parse_npy(std::string_view bytes, const std::string& name, const ReadOptions& options = {});
// The header of a .npy file: dtype, shape and where the data starts, checked against the
// file's size (`prefix` holds at least the header; file_size is the whole file's length).
struct NpyHeader {
  DType dtype = DType::Float64;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0;
  std::int64_t count() const;
};
NpyHeader parse_npy_header(std::string_view prefix, std::uint64_t file_size, const std::string& name);
NpyHeader read_npy_header(const fs::path& path);
void write_npy(const fs::path& path, const NpyArray& a);
// Convenience: a 3-D grid field is written with shape (nz, ny, nx) so that C order = x fastest.
void write_npy(const fs::path& path, const std::vector<double>& v, const std::vector<std::int64_t>& shape);
void write_npy(const fs::path& path, const std::vector<float>& v, const std::vector<std::int64_t>& shape);
void write_npy(const fs::path& path, const std::vector<std::int32_t>& v, const std::vector<std::int64_t>& shape);
void write_npy(const fs::path& path, const std::vector<std::uint8_t>& v, const std::vector<std::int64_t>& shape);
// Any dtype, flattened; float64 data is read straight into the result (one copy of the data in
// memory, not three).
std::vector<double> read_npy_vector(const fs::path& path, const ReadOptions& options = {});

// ---- Reference DCDM binaries (the DCDM paper's public data; the formats are described below) ----
// Matrix: int32 rows, cols, nnz, outer_size (= rows), inner_size; nnz values; outer_size
// int32 row offsets (nnz implicit at the end); nnz int32 column indices; little-endian.
enum class ValuePrecision { Float32, Float64 };
// Precision is told apart by the file size; `precision` receives what was found.
CsrMatrix read_reference_matrix(const fs::path& path, ValuePrecision* precision = nullptr,
                                const ReadOptions& options = {});
CsrMatrix parse_reference_matrix(std::string_view bytes, const std::string& name,
                                 ValuePrecision* precision = nullptr, const ReadOptions& options = {});
void write_reference_matrix(const fs::path& path, const CsrMatrix& a,
                            ValuePrecision precision = ValuePrecision::Float32);
// float64 values with one leading header value (skipped on read; written as the count).
std::vector<double> read_reference_vector(const fs::path& path, const ReadOptions& options = {});
std::vector<double> parse_reference_vector(std::string_view bytes, const std::string& name,
                                           const ReadOptions& options = {});
void write_reference_vector(const fs::path& path, const std::vector<double>& v);

// ---- By extension / by content ----
enum class FileKind {
  MatrixMarketMatrix,  // .mtx, coordinate
  MatrixMarketVector,  // .mtx, array
  Npy,                 // .npy
  ReferenceMatrix,     // .bin whose first 20 bytes form a consistent matrix header
  ReferenceVector,     // other .bin
};
const char* to_string(FileKind k);
// Looks at the extension and, for .mtx and .bin, the first bytes. Throws InputError for an
// unknown extension or an unreadable file.
FileKind detect_file_kind(const fs::path& path);

// Reads a matrix by extension: .mtx -> Matrix Market, .bin -> reference binary.
CsrMatrix read_matrix(const fs::path& path, const ReadOptions& options = {});
// Reads a vector by extension: .npy, .mtx, .bin (reference vector).
std::vector<double> read_vector(const fs::path& path, const ReadOptions& options = {});

// A system A x = b read from two files: A square and b of matching length, else InputError
// naming both files.
void check_system_sizes(const CsrMatrix& a, const std::vector<double>& b, const fs::path& a_path,
                        const fs::path& b_path);

// The whole file in memory (for parsers). InputError if it cannot be read.
std::string read_file(const fs::path& path);
// At most the first `max_bytes` of a file.
std::string read_file_prefix(const fs::path& path, std::size_t max_bytes);
// A regular file mapped read-only into memory: the parsers read it in place, so a large
// matrix is not held twice (a heap copy of the file and the arrays parsed from it); the
// mapped pages belong to the page cache and are dropped first under memory pressure.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path);  // InputError / MissingFileError naming it
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  std::string_view view() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Size of a regular file in bytes (require_regular_file first).
std::uint64_t regular_file_size(const fs::path& path);
// Reads bytes [offset, offset + size) of a regular file straight into `out`, so that the
// streaming readers load data into their final arrays without a whole-file copy. InputError
// naming the file on a short or failed read.
void read_file_range(const fs::path& path, std::uint64_t offset, void* out, std::size_t size);

// Removes the temporary files of AtomicFile ("<name>.tmp.<pid>.<n>") that a killed process left
// in `dir` and in its sub-folders down to `depth` levels: those whose process no longer runs.
// Returns how many it removed. A command that writes into a folder calls it first, so that a
// run after a kill leaves no fragments behind.
int remove_stale_temporaries(const fs::path& dir, int depth = 1);

// Writes a file atomically: data goes to "<path>.tmp.<pid>.<n>" in the same folder, which is
// flushed and renamed over `path` by commit(). Without commit() (an exception, say) the
// temporary file is removed and `path` is untouched. InputError if the folder is not writable.
//
// `expected_bytes` (the file's size, when the writer knows it): a file of 8 MiB or more is
// written with O_DIRECT through an aligned buffer, past the page cache, where the filesystem
// allows it (else as usual). Measured on this project's 2-core VM: 134 MB into a new file took
// 0.46-0.54 s through the page cache and 0.09-0.10 s direct.
class AtomicFile {
 public:
  explicit AtomicFile(const fs::path& path, std::uint64_t expected_bytes = 0);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  void write(const void* data, std::size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();
  const fs::path& path() const { return path_; }
  bool direct() const { return fd_ >= 0; }

 private:
  void flush_direct(bool last);
  fs::path path_, temp_;
  std::FILE* file_ = nullptr;
  int fd_ = -1;                 // the O_DIRECT descriptor (direct mode)
  unsigned char* buffer_ = nullptr;  // aligned staging buffer (direct mode)
  std::size_t buffered_ = 0;
  std::uint64_t written_ = 0;   // bytes written so far (direct mode)
};

// For the life of a DeferredSync, AtomicFile::commit (and the other atomic writers of this
// thread) rename without first syncing the file to disk: a process kill still leaves either the
// old or the whole new file (the data is in the page cache), and a caller that writes many
// files orders them before one later sync_filesystem (the simulator: an exported frame's files,
// made durable by the sync before the next checkpoint). Nests; per thread.
class DeferredSync {
 public:
  DeferredSync();
  ~DeferredSync();
  DeferredSync(const DeferredSync&) = delete;
  DeferredSync& operator=(const DeferredSync&) = delete;
};
// Whether this thread is inside a DeferredSync.
bool sync_deferred();
// Writes everything written so far on the filesystem that holds `path` to disk (syncfs).
// InputError naming the path when that fails.
void sync_filesystem(const fs::path& path);

// Atomic write helper: writes `bytes` to path via temp + rename.
void write_file_atomic(const fs::path& path, const std::string& bytes);

// 8-bit greyscale or RGB PNG (stb_image_write), atomic.
void write_png(const fs::path& path, int width, int height, int channels,
               const std::vector<std::uint8_t>& pixels);

}  // namespace dcdm::io
