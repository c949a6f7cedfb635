// Round trips and cross-format agreement for every file format in dcdm/io.hpp.
#include <stb_image.h>

#include <cmath>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "test_io_util.hpp"

using namespace dcdm;
using namespace dcdm::io;
using dcdm::test::put;
using dcdm::test::same_bits;

namespace {

class IoFormats : public dcdm::test::IoTempDir {};

void expect_identical(const CsrMatrix& a, const CsrMatrix& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.row_ptr, b.row_ptr);
  EXPECT_EQ(a.col_idx, b.col_idx);
  EXPECT_TRUE(same_bits(a.values, b.values));
}

CsrMatrix general_matrix() {
  // Non-symmetric, rectangular, with an empty row and a negative zero.
  return CsrMatrix::from_triplets(4, 5, {{0, 0, 1.5}, {0, 4, -0.0}, {2, 1, 1e-310}, {2, 3, 3.141592653589793},
                                         {3, 0, -7e22}, {3, 4, 0.1}});
}

}  // namespace

TEST_F(IoFormats, MatrixMarketGeneralRoundTripIsBitIdentical) {
  const CsrMatrix a = general_matrix();
  write_matrix_market(path("a.mtx"), a, /*symmetric=*/false, "two\nline comment");
  MatrixMarketInfo info;
  const CsrMatrix b = read_matrix_market(path("a.mtx"), &info);
  expect_identical(a, b);
  EXPECT_EQ(info.format, "coordinate");
  EXPECT_EQ(info.field, "real");
  EXPECT_EQ(info.symmetry, "general");
  EXPECT_EQ(info.entries, 6);
  EXPECT_EQ(info.duplicates, 0);
  EXPECT_EQ(slurp(path("a.mtx")).rfind("%%MatrixMarket matrix coordinate real general\n% two\n% line comment\n4 5 6\n", 0), 0u);
}

TEST_F(IoFormats, MatrixMarketSymmetricRoundTripStoresLowerTriangle) {
  const CsrMatrix a = dcdm::test::random_symmetric_grid_matrix(5, 1);
  ASSERT_TRUE(a.is_symmetric());
  write_matrix_market(path("s.mtx"), a);
  MatrixMarketInfo info;
  const CsrMatrix b = read_matrix_market(path("s.mtx"), &info);
  expect_identical(a, b);
  EXPECT_EQ(info.symmetry, "symmetric");
  EXPECT_EQ(info.entries, (a.nnz() + a.rows) / 2);  // lower triangle incl. diagonal
  const MatrixMarketInfo header = read_matrix_market_header(path("s.mtx"));
  EXPECT_EQ(header.rows, a.rows);
  EXPECT_EQ(header.entries, info.entries);
  // A non-symmetric matrix cannot be written as symmetric.
  EXPECT_THROW(write_matrix_market(path("x.mtx"), general_matrix(), true), Error);
  EXPECT_FALSE(fs::exists(path("x.mtx")));
}

TEST_F(IoFormats, MatrixMarketSymmetricFileIsExpanded) {
  write("s.mtx",
        "%%MatrixMarket matrix coordinate real symmetric\n"
        "% comment\n"
        "\n"
        "3 3 4\n"
        "1 1 4.0\n"
        "2 1 -1\n"
        "3 2 -2.5e0\n"
        "3 3 2\n");
  const CsrMatrix a = read_matrix_market(path("s.mtx"));
  const CsrMatrix expected =
      CsrMatrix::from_triplets(3, 3, {{0, 0, 4}, {1, 0, -1}, {0, 1, -1}, {2, 1, -2.5}, {1, 2, -2.5}, {2, 2, 2}});
  expect_identical(a, expected);
}

TEST_F(IoFormats, MatrixMarketPatternIntegerCrlfAndDuplicates) {
  write("p.mtx",
        "%%matrixmarket MATRIX Coordinate Pattern General\r\n"
        "2 3 3\r\n"
        "1 3\r\n"
        "2 1\r\n"
        "1 1\r\n");
  expect_identical(read_matrix_market(path("p.mtx")),
                   CsrMatrix::from_triplets(2, 3, {{0, 0, 1}, {0, 2, 1}, {1, 0, 1}}));
  write("i.mtx",
        "%%MatrixMarket matrix coordinate integer general\n"
        "2 2 4\n"
        "1 1 3\n"
        "2 2 -4\n"
        "1 1 +2\n"  // duplicate: summed
        "2 1 7\n");
  MatrixMarketInfo info;
  expect_identical(read_matrix_market(path("i.mtx"), &info),
                   CsrMatrix::from_triplets(2, 2, {{0, 0, 5}, {1, 1, -4}, {1, 0, 7}}));
  EXPECT_EQ(info.field, "integer");
  EXPECT_EQ(info.duplicates, 1);
}

TEST_F(IoFormats, MatrixMarketVectorRoundTripAndCoordinateColumn) {
  const std::vector<double> v{1.0, -0.0, 1e-320, 0.1, 2.0 / 3.0, -1.7976931348623157e308};
  write_matrix_market_vector(path("v.mtx"), v);
  EXPECT_TRUE(same_bits(read_matrix_market_vector(path("v.mtx")), v));
  EXPECT_TRUE(same_bits(read_vector(path("v.mtx")), v));
  write("c.mtx", "%%MatrixMarket matrix coordinate real general\n4 1 2\n2 1 5\n4 1 -1\n");
  EXPECT_EQ(read_matrix_market_vector(path("c.mtx")), (std::vector<double>{0, 5, 0, -1}));
  write("row.mtx", "%%MatrixMarket matrix array integer general\n1 3\n1 2\n3\n");
  EXPECT_EQ(read_matrix_market_vector(path("row.mtx")), (std::vector<double>{1, 2, 3}));
}

TEST_F(IoFormats, NpyRoundTripEveryDtypeAndShape) {
  const std::vector<double> d{1.0, -2.5, 1e-310, 0.1, 5, 6, 7, 8, 9, 10, 11, 12};
  write_npy(path("d.npy"), d, {2, 3, 2});
  NpyArray a = read_npy(path("d.npy"));
  EXPECT_EQ(a.dtype, DType::Float64);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3, 2}));
  EXPECT_TRUE(same_bits(a.to_double(), d));

  const std::vector<float> f{1.5f, -0.25f, 3.0e38f, 1e-40f};
  write_npy(path("f.npy"), f, {4});
  a = read_npy(path("f.npy"));
  EXPECT_EQ(a.dtype, DType::Float32);
  ASSERT_EQ(a.bytes.size(), 16u);
  EXPECT_EQ(std::memcmp(a.bytes.data(), f.data(), 16), 0);
  EXPECT_EQ(a.to_double()[1], -0.25);

  const std::vector<std::int32_t> i{-2147483647 - 1, 0, 7, 2147483647, 1, 2, 3, 4};
  write_npy(path("i.npy"), i, {2, 2, 2});
  a = read_npy(path("i.npy"));
  EXPECT_EQ(a.dtype, DType::Int32);
  EXPECT_EQ(a.to_double(), (std::vector<double>{-2147483648.0, 0, 7, 2147483647.0, 1, 2, 3, 4}));

  const std::vector<std::uint8_t> u{0, 1, 2, 255};
  write_npy(path("u.npy"), u, {1, 2, 2});
  a = read_npy(path("u.npy"));
  EXPECT_EQ(a.dtype, DType::UInt8);
  EXPECT_EQ(a.bytes, u);
  EXPECT_EQ(read_vector(path("u.npy")), (std::vector<double>{0, 1, 2, 255}));

  const std::vector<double> empty;
  write_npy(path("e.npy"), empty, {0});
  EXPECT_EQ(read_npy(path("e.npy")).count(), 0);
  EXPECT_TRUE(read_npy(path("e.npy")).to_double().empty());  // found by fuzz_npy (memcpy from null)
  EXPECT_THROW(write_npy(path("bad.npy"), d, {5}), Error);
}

TEST_F(IoFormats, NpyHeaderIsWhatNumpyWrites) {
  write_npy(path("v.npy"), std::vector<double>{1.0, 2.0, 3.0}, {3});
  const std::string bytes = slurp(path("v.npy"));
  // numpy.save(np.array([1., 2., 3.])): version 1.0, header padded to 64 bytes.
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  dict += std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  std::string expected = std::string("\x93NUMPY\x01\x00", 8) + '\x76' + '\x00' + dict;
  ASSERT_EQ(bytes.size(), 128u + 24u);
  EXPECT_EQ(bytes.substr(0, 128), expected);
}

TEST_F(IoFormats, NpyVersion2HeaderIsRead) {
  std::string dict = "{'shape': (2, 1, 2), 'fortran_order': False, 'descr': '<f4'}";
  dict += std::string(128 - 12 - dict.size() - 1, ' ') + "\n";
  std::string bytes = std::string("\x93NUMPY\x02\x00", 8);
  put<std::uint32_t>(bytes, static_cast<std::uint32_t>(dict.size()));
  bytes += dict;
  for (float x : {1.0f, 2.0f, 3.0f, -4.0f}) put(bytes, x);
  write("v2.npy", bytes);
  const NpyArray a = read_npy(path("v2.npy"));
  EXPECT_EQ(a.dtype, DType::Float32);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 1, 2}));
  EXPECT_EQ(a.to_double(), (std::vector<double>{1, 2, 3, -4}));
}

TEST_F(IoFormats, ReferenceMatrixRoundTripBothPrecisions) {
  const CsrMatrix a = dcdm::test::random_symmetric_grid_matrix(4, 2);
  write_reference_matrix(path("a64.bin"), a, ValuePrecision::Float64);
  ValuePrecision p = ValuePrecision::Float32;
  expect_identical(read_reference_matrix(path("a64.bin"), &p), a);
  EXPECT_EQ(p, ValuePrecision::Float64);
  EXPECT_EQ(fs::file_size(path("a64.bin")), 20 + 12 * std::uintmax_t(a.nnz()) + 4 * std::uintmax_t(a.rows));

  // float32 cannot hold 1.8e308: refused rather than written as Inf.
  EXPECT_THROW(write_reference_matrix(path("a32.bin"), a, ValuePrecision::Float32), Error);
  EXPECT_FALSE(fs::exists(path("a32.bin")));
  CsrMatrix a_small = a;
  for (double& v : a_small.values) v = std::fmod(v, 1e30);
  write_reference_matrix(path("a32.bin"), a_small, ValuePrecision::Float32);
  const CsrMatrix b = read_reference_matrix(path("a32.bin"), &p);
  EXPECT_EQ(p, ValuePrecision::Float32);
  EXPECT_EQ(b.row_ptr, a.row_ptr);
  EXPECT_EQ(b.col_idx, a.col_idx);
  for (std::int64_t k = 0; k < a.nnz(); ++k) EXPECT_EQ(b.values[k], double(float(a_small.values[k])));
  // Values that float32 holds exactly survive exactly.
  const CsrMatrix c = CsrMatrix::from_triplets(3, 3, {{0, 0, 6}, {0, 1, -1}, {1, 0, -1}, {1, 1, 5.5}});
  write_reference_matrix(path("c.bin"), c);
  expect_identical(read_matrix(path("c.bin")), c);
}

TEST_F(IoFormats, SameMatrixFromMatrixMarketAndReferenceBinary) {
  const CsrMatrix a = dcdm::test::random_symmetric_grid_matrix(6, 3);
  write_matrix_market(path("A.mtx"), a);
  write_reference_matrix(path("matrixA_1.bin"), a, ValuePrecision::Float64);
  const CsrMatrix from_mtx = read_matrix(path("A.mtx"));
  const CsrMatrix from_bin = read_matrix(path("matrixA_1.bin"));
  expect_identical(from_mtx, from_bin);
  expect_identical(from_mtx, a);
  EXPECT_EQ(detect_file_kind(path("A.mtx")), FileKind::MatrixMarketMatrix);
  EXPECT_EQ(detect_file_kind(path("matrixA_1.bin")), FileKind::ReferenceMatrix);
}

TEST_F(IoFormats, HandWrittenReferenceMatrixWithUnsortedRow) {
  // 2x2, row 0 has columns (1, 0) in that order: sorted on read.
  std::string s;
  for (std::int32_t h : {2, 2, 3, 2, 2}) put(s, h);
  for (float v : {-1.0f, 4.0f, 3.0f}) put(s, v);
  for (std::int32_t o : {0, 2}) put(s, o);
  for (std::int32_t c : {1, 0, 1}) put(s, c);
  write("m.bin", s);
  expect_identical(read_reference_matrix(path("m.bin")),
                   CsrMatrix::from_triplets(2, 2, {{0, 0, 4}, {0, 1, -1}, {1, 1, 3}}));
}

TEST_F(IoFormats, ReferenceVectorRoundTrip) {
  const std::vector<double> v{0.5, -1e-300, 3.0, 1.0 / 7.0};
  write_reference_vector(path("div_v_star_1.bin"), v);
  const std::string bytes = slurp(path("div_v_star_1.bin"));
  ASSERT_EQ(bytes.size(), 40u);
  double header = 0;
  std::memcpy(&header, bytes.data(), 8);
  EXPECT_EQ(header, 4.0);
  EXPECT_TRUE(same_bits(read_reference_vector(path("div_v_star_1.bin")), v));
  EXPECT_TRUE(same_bits(read_vector(path("div_v_star_1.bin")), v));
  EXPECT_EQ(detect_file_kind(path("div_v_star_1.bin")), FileKind::ReferenceVector);
}

TEST_F(IoFormats, FileKindDetection) {
  write_matrix_market_vector(path("b.mtx"), {1, 2});
  write_npy(path("b.npy"), std::vector<double>{1, 2}, {2});
  write_reference_matrix(path("some_matrix.bin"), CsrMatrix::from_triplets(2, 2, {{0, 0, 1}, {1, 1, 1}}));
  EXPECT_EQ(detect_file_kind(path("b.mtx")), FileKind::MatrixMarketVector);
  EXPECT_EQ(detect_file_kind(path("b.npy")), FileKind::Npy);
  EXPECT_EQ(detect_file_kind(path("some_matrix.bin")), FileKind::ReferenceMatrix);
  write("x.txt", "1 2 3\n");
  EXPECT_THROW(detect_file_kind(path("x.txt")), InputError);
}

TEST_F(IoFormats, AtomicWriteReplacesAndLeavesNoTemporary) {
  write("out.txt", "old");
  write_file_atomic(path("out.txt"), "new contents");
  EXPECT_EQ(slurp(path("out.txt")), "new contents");
  {
    AtomicFile f(path("out.txt"));
    f.write("abandoned");
    // No commit: destroyed as if an exception unwound the writer.
  }
  EXPECT_EQ(slurp(path("out.txt")), "new contents");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
  try {
    write_file_atomic(path("missing/dir/out.txt"), "x");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing/dir/out.txt"), std::string::npos) << e.what();
  }
}

TEST_F(IoFormats, PngRoundTrip) {
  const int w = 5, h = 3;
  std::vector<std::uint8_t> rgb(w * h * 3);
  for (std::size_t k = 0; k < rgb.size(); ++k) rgb[k] = static_cast<std::uint8_t>(k * 37);
  write_png(path("img.png"), w, h, 3, rgb);
  const std::string bytes = slurp(path("img.png"));
  int rw = 0, rh = 0, rc = 0;
  unsigned char* data = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()),
                                              static_cast<int>(bytes.size()), &rw, &rh, &rc, 0);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(rw, w);
  EXPECT_EQ(rh, h);
  EXPECT_EQ(rc, 3);
  EXPECT_EQ(std::vector<std::uint8_t>(data, data + rgb.size()), rgb);
  stbi_image_free(data);
  EXPECT_THROW(write_png(path("bad.png"), w, h, 3, std::vector<std::uint8_t>(7)), Error);
}

TEST_F(IoFormats, SystemSizesAreChecked) {
  const CsrMatrix a = CsrMatrix::from_triplets(3, 3, {{0, 0, 1}, {1, 1, 1}, {2, 2, 1}});
  EXPECT_NO_THROW(check_system_sizes(a, {1, 2, 3}, "A.mtx", "b.npy"));
  try {
    check_system_sizes(a, {1, 2}, "A.mtx", "b.npy");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("A.mtx"), std::string::npos) << m;
    EXPECT_NE(m.find("b.npy"), std::string::npos) << m;
    EXPECT_NE(m.find("2 values"), std::string::npos) << m;
  }
  EXPECT_THROW(check_system_sizes(general_matrix(), {1, 2, 3, 4}, "A.mtx", "b.npy"), InputError);
}
