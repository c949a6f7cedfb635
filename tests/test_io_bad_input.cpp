// Every kind of bad input gets an InputError naming the file and the line (text formats) or
// byte offset (binary formats). Nothing crashes, nothing is silently misread.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <initializer_list>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/memory.hpp"
#include "test_io_util.hpp"

using namespace dcdm;
using namespace dcdm::io;
using dcdm::test::put;

namespace {

class IoBadInput : public dcdm::test::IoTempDir {
 protected:
  // Reads `name` with `reader` and expects an InputError whose message contains the file's
  // path and every fragment.
  template <class Reader>
  ::testing::AssertionResult rejects(const std::string& name, Reader reader,
                                     std::initializer_list<std::string> fragments) {
    const fs::path p = path(name);
    try {
      reader(p);
    } catch (const InputError& e) {
      const std::string m = e.what();
      if (m.find(p.string()) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks the file name: " << m;
      for (const auto& f : fragments)
        if (m.find(f) == std::string::npos)
          return ::testing::AssertionFailure() << "message lacks '" << f << "': " << m;
      return ::testing::AssertionSuccess();
    } catch (const std::exception& e) {
      return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
    }
    return ::testing::AssertionFailure() << "no exception for " << name;
  }

  ::testing::AssertionResult mtx_rejects(const std::string& text, std::initializer_list<std::string> fragments) {
    write("m.mtx", text);
    return rejects("m.mtx", [](const fs::path& p) { read_matrix_market(p); }, fragments);
  }
  ::testing::AssertionResult vec_rejects(const std::string& text, std::initializer_list<std::string> fragments) {
    write("v.mtx", text);
    return rejects("v.mtx", [](const fs::path& p) { read_matrix_market_vector(p); }, fragments);
  }
  ::testing::AssertionResult npy_rejects(const std::string& bytes, std::initializer_list<std::string> fragments) {
    write("a.npy", bytes);
    return rejects("a.npy", [](const fs::path& p) { read_npy(p); }, fragments);
  }
  ::testing::AssertionResult bin_rejects(const std::string& bytes, std::initializer_list<std::string> fragments) {
    write("A.bin", bytes);
    return rejects("A.bin", [](const fs::path& p) { read_reference_matrix(p); }, fragments);
  }
  ::testing::AssertionResult binvec_rejects(const std::string& bytes, std::initializer_list<std::string> fragments) {
    write("b.bin", bytes);
    return rejects("b.bin", [](const fs::path& p) { read_reference_vector(p); }, fragments);
  }
};

const std::string kGeneral = "%%MatrixMarket matrix coordinate real general\n";
const std::string kSymmetric = "%%MatrixMarket matrix coordinate real symmetric\n";

// A .npy file with the given header dict and raw data (version 1.0, padded to 64).
std::string npy(std::string dict, const std::string& data) {
  const std::size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict += std::string(total - 10 - dict.size() - 1, ' ') + "\n";
  std::string s("\x93NUMPY\x01\x00", 8);
  put<std::uint16_t>(s, static_cast<std::uint16_t>(dict.size()));
  return s + dict + data;
}

std::string doubles(std::initializer_list<double> v) {
  std::string s;
  for (double x : v) put(s, x);
  return s;
}

// A reference matrix file from its parts.
std::string refmat(std::initializer_list<std::int32_t> header, std::initializer_list<float> values,
                   std::initializer_list<std::int32_t> offsets, std::initializer_list<std::int32_t> cols) {
  std::string s;
  for (auto h : header) put(s, h);
  for (auto v : values) put(s, v);
  for (auto o : offsets) put(s, o);
  for (auto c : cols) put(s, c);
  return s;
}

}  // namespace

TEST_F(IoBadInput, MatrixMarketHeader) {
  EXPECT_TRUE(mtx_rejects("", {":1:", "empty file"}));
  EXPECT_TRUE(mtx_rejects("hello world\n1 1 1\n", {":1:", "not a Matrix Market file", "hello world"}));
  EXPECT_TRUE(mtx_rejects("%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n", {":1:", "complex"}));
  EXPECT_TRUE(mtx_rejects("%%MatrixMarket matrix coordinate real skew-symmetric\n", {":1:", "skew-symmetric"}));
  EXPECT_TRUE(mtx_rejects("%%MatrixMarket tensor coordinate real general\n", {":1:", "tensor"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "% only comments\n\n", {":3:", "before the size line"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3\n", {":2:", "missing entry count"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 three 1\n", {":2:", "expected an integer, found 'three'"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "-3 3 1\n1 1 1\n", {":2:", "negative size"}));
  EXPECT_TRUE(mtx_rejects(kSymmetric + "3 4 1\n1 1 1\n", {":2:", "must be square"}));
  EXPECT_TRUE(mtx_rejects("%%MatrixMarket matrix array real general\n2 1\n1\n2\n", {":1:", "array"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 1 7\n1 1 1\n", {":2:", "unexpected '7'"}));
}

TEST_F(IoBadInput, MatrixMarketEntries) {
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 x 2.0\n2 2 1\n", {":3:", "column index", "found 'x'"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 2.0\n2 2 abc\n", {":4:", "expected a number, found 'abc'"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 2.0\n2 2 1e400\n", {":4:", "out of the range"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 2.0\n4 1 1.0\n", {":4:", "row index 4 out of range 1..3"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 0 2.0\n2 1 1.0\n", {":3:", "column index 0 out of range 1..3"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 2.0 9\n2 1 1.0\n", {":3:", "unexpected '9'"}));
  // Found by fuzz_matrix_market: a 22-digit index overflowed the fast path's accumulator.
  EXPECT_TRUE(mtx_rejects(kGeneral + "6 3 3\n1 3333333333333333333331 4.5\n2 1 -1\n3 3 1\n",
                          {":3:", "column index '3333333333333333333331' is out of range"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "6 3 1\n1 333333333333333333 4.5\n", {":3:", "column index 333333333333333333 out of range"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 2.0\n2 1\n", {":4:", "missing value"}));
  EXPECT_TRUE(mtx_rejects("%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 1.5\n",
                          {":3:", "expected an integer, found '1.5'"}));
  EXPECT_TRUE(mtx_rejects(kSymmetric + "3 3 2\n1 1 2.0\n1 2 -1\n", {":4:", "(1, 2)", "above the diagonal"}));
}

TEST_F(IoBadInput, MatrixMarketNonFinite) {
  EXPECT_TRUE(mtx_rejects(kGeneral + "2 2 2\n1 1 nan\n2 2 1\n", {":3:", "nan", "finite"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "2 2 2\n1 1 1\n2 2 -inf\n", {":4:", "-inf", "finite"}));
  // Allowed on request (dcdm info counts them).
  write("n.mtx", kGeneral + "2 2 2\n1 1 nan\n2 2 inf\n");
  ReadOptions lenient;
  lenient.allow_non_finite = true;
  const CsrMatrix a = read_matrix_market(path("n.mtx"), nullptr, lenient);
  EXPECT_TRUE(std::isnan(a.values[0]));
  EXPECT_TRUE(std::isinf(a.values[1]));
}

TEST_F(IoBadInput, MatrixMarketEntryCountMismatch) {
  // Fewer entries than declared (lines long enough that the size check lets them through).
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 3\n1 1 1.000000000000\n2 2 2.000000000000\n",
                          {":4:", "file ends after 2 of the 3 entries"}));
  // More entries than declared.
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 2\n1 1 1\n2 2 2\n3 3 3\n", {":5:", "more entries than the 2 declared"}));
  // Blank lines and comments between entries are fine.
  write("ok.mtx", kGeneral + "3 3 2\n1 1 1\n\n% note\n3 3 3\n\n");
  EXPECT_EQ(read_matrix_market(path("ok.mtx")).nnz(), 2);
}

TEST_F(IoBadInput, MatrixMarketAbsurdSizesAreCaughtBeforeAllocating) {
  EXPECT_TRUE(mtx_rejects(kGeneral + "100000 100000 4000000000\n1 1 1\n",
                          {":2:", "4000000000 entries declared", "hold at most 1", "truncated"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "3 3 10\n1 1 1\n", {":2:", "10 entries declared, more than a 3 x 3"}));
  // 2e9 rows need 15 GiB of row offsets: refused for memory on a machine of less than 32 GiB
  // (on a larger one the reader would allocate them, so the case is not run there).
  if (physical_memory_bytes() < (std::int64_t(32) << 30)) {
    EXPECT_TRUE(mtx_rejects(kGeneral + "2000000000 2000000000 1\n1 1 1\n", {":2:", "GiB to read"}));
  }
  EXPECT_TRUE(mtx_rejects(kGeneral + "2147483648 2147483648 1\n1 1 1\n", {":2:", "exceeds the limit"}));
  EXPECT_TRUE(mtx_rejects(kGeneral + "99999999999999999999 1 1\n1 1 1\n", {":2:", "out of range"}));
}

TEST_F(IoBadInput, MatrixMarketVectors) {
  const std::string array = "%%MatrixMarket matrix array real general\n";
  EXPECT_TRUE(vec_rejects(array + "3 1\n1.0\n2.0\n", {":4:", "file ends after 2 of the 3 values"}));
  EXPECT_TRUE(vec_rejects(array + "2 1\n1.0\n2.0\n3.0\n", {":5:", "more values"}));
  EXPECT_TRUE(vec_rejects(array + "2 2\n1\n2\n3\n4\n", {":2:", "one column"}));
  EXPECT_TRUE(vec_rejects(array + "2 1\n1\nNaN\n", {":4:", "finite"}));
  EXPECT_TRUE(vec_rejects(array + "1000000 1\n1\n", {":2:", "truncated"}));
  EXPECT_TRUE(vec_rejects(array + "2 1\n1\n2x\n", {":4:", "found '2x'"}));
}

TEST_F(IoBadInput, NpyHeader) {
  EXPECT_TRUE(npy_rejects("PK\x03\x04 not numpy at all", {"byte 0", "magic"}));
  EXPECT_TRUE(npy_rejects(std::string("\x93NUMPY\x09\x00", 8) + "xx", {"byte 6", "version 9.0"}));
  std::string cut = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", doubles({1, 2}));
  EXPECT_TRUE(npy_rejects(cut.substr(0, 40), {"byte 8", "runs past the end"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }", doubles({1, 2})),
                          {"fortran_order True"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", doubles({1, 2})),
                          {"big-endian", "'>f8'"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", doubles({1, 2})),
                          {"unsupported dtype '<c16'"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': False, }", doubles({1, 2})), {"lacks 'shape'"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", doubles({1, 2})),
                          {"negative dimension"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2 3), }", doubles({1, 2})),
                          {"expected ',' or ')'"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", doubles({1})),
                          {"structured"}));
}

TEST_F(IoBadInput, NpyData) {
  const std::string head3 = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  // The header takes 128 bytes: data starts at byte 128.
  EXPECT_TRUE(npy_rejects(npy(head3, doubles({1, 2})), {"byte 128", "needs 24 bytes but 16"}));
  EXPECT_TRUE(npy_rejects(npy(head3, doubles({1, 2, 3, 4})), {"byte 152", "8 unexpected bytes"}));
  EXPECT_TRUE(npy_rejects(npy(head3, doubles({1, std::numeric_limits<double>::quiet_NaN(), 3})),
                          {"byte 136", "element 1 is NaN"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                              std::string("\0\0\x80\x3f\0\0\x80\x7f", 8)),
                          {"byte 132", "element 1 is Inf"}));
  // A shape whose data would be terabytes: rejected from the header alone.
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",
                              doubles({1})),
                          {"needs 8000000000000000 bytes but 8", "truncated"}));
  EXPECT_TRUE(npy_rejects(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                              doubles({1})),
                          {"needs more than 2^64 bytes"}));
}

TEST_F(IoBadInput, ReferenceMatrix) {
  EXPECT_TRUE(bin_rejects(std::string(7, '\0'), {"byte 7", "20-byte header"}));
  // Valid 2x2 layout with float32 values: 20 + 3*4 + 2*4 + 3*4 = 52 bytes.
  const std::string good = refmat({2, 2, 3, 2, 2}, {4, -1, 3}, {0, 2}, {0, 1, 1});
  ASSERT_NO_THROW(parse_reference_matrix(good, "good"));
  // One byte short: neither size matches; the message gives both expected sizes and the actual.
  EXPECT_TRUE(bin_rejects(good.substr(0, 51), {"file size 51", "float32 values (52 bytes)", "float64 values (64 bytes)"}));
  EXPECT_TRUE(bin_rejects(refmat({2, 2, -3, 2, 2}, {}, {}, {}), {"byte 8", "negative nnz -3"}));
  EXPECT_TRUE(bin_rejects(refmat({2, 2, 3, 3, 2}, {4, -1, 3}, {0, 2, 3}, {0, 1, 1}), {"byte 12", "outer_size 3"}));
  // Offsets 0, 2 then... a 3x3 whose offsets decrease at row 2 (byte 20 + 12 + 8).
  EXPECT_TRUE(bin_rejects(refmat({3, 3, 3, 3, 3}, {1, 2, 3}, {0, 2, 1}, {0, 1, 2}),
                          {"byte 40", "less than the previous offset 2", "must not decrease"}));
  EXPECT_TRUE(bin_rejects(refmat({2, 2, 3, 2, 2}, {4, -1, 3}, {1, 2}, {0, 1, 1}), {"byte 32", "first row offset is 1"}));
  EXPECT_TRUE(bin_rejects(refmat({2, 2, 3, 2, 2}, {4, -1, 3}, {0, 4}, {0, 1, 1}), {"byte 36", "exceeds nnz 3"}));
  // Column index 5 at entry 1: byte 20 + 12 + 8 + 4.
  EXPECT_TRUE(bin_rejects(refmat({2, 2, 3, 2, 2}, {4, -1, 3}, {0, 2}, {0, 5, 1}), {"byte 44", "column index 5 out of range 0..1"}));
  EXPECT_TRUE(bin_rejects(refmat({2, 2, 3, 2, 2}, {4, std::numeric_limits<float>::quiet_NaN(), 3}, {0, 2}, {0, 1, 1}),
                          {"byte 24", "value 1 is NaN"}));
  // Absurd headers: sizes checked against the file before anything is allocated.
  EXPECT_TRUE(bin_rejects(refmat({1 << 30, 1 << 30, 0, 1 << 30, 1 << 30}, {}, {}, {}), {"matches neither"}));
  if (physical_memory_bytes() < (std::int64_t(32) << 30)) {  // as above: 15 and 24 GiB declared
    EXPECT_TRUE(bin_rejects(refmat({2000000000, 2000000000, 0, 2000000000, 2000000000}, {}, {}, {}), {"GiB to read"}));
    EXPECT_TRUE(bin_rejects(refmat({1000, 1000, 2147483647, 1000, 1000}, {1}, {0}, {0}), {"GiB to read"}));
  }
}

TEST_F(IoBadInput, ReferenceVector) {
  EXPECT_TRUE(binvec_rejects("abc", {"byte 3", "8-byte header"}));
  EXPECT_TRUE(binvec_rejects(doubles({2, 1, 2}) + "xyz", {"byte 24", "3 trailing bytes", "not a multiple of 8"}));
  EXPECT_TRUE(binvec_rejects(doubles({2, 1, std::numeric_limits<double>::infinity()}), {"byte 16", "value 1 is Inf"}));
}

TEST_F(IoBadInput, FilesAndExtensions) {
  EXPECT_TRUE(rejects("missing.mtx", [](const fs::path& p) { read_matrix(p); }, {"cannot open", "No such file"}));
  fs::create_directories(path("folder.npy"));
  EXPECT_TRUE(rejects("folder.npy", [](const fs::path& p) { read_vector(p); }, {"not a regular file"}));
  write("x.csv", "1,2\n");
  EXPECT_TRUE(rejects("x.csv", [](const fs::path& p) { read_matrix(p); }, {"unknown file type '.csv'"}));
  EXPECT_TRUE(rejects("x.csv", [](const fs::path& p) { read_vector(p); }, {"unknown file type '.csv'"}));
  write_npy(path("b.npy"), std::vector<double>{1, 2}, {2});
  EXPECT_TRUE(rejects("b.npy", [](const fs::path& p) { read_matrix(p); }, {"not a sparse matrix"}));
}

// A pipe blocks whoever opens it for reading until a writer appears, and /dev/zero never ends:
// both are refused from their file type, before anything opens them.
TEST_F(IoBadInput, SpecialFilesAreRefusedBeforeOpening) {
  ASSERT_EQ(::mkfifo(path("pipe.mtx").c_str(), 0600), 0);
  EXPECT_TRUE(rejects("pipe.mtx", [](const fs::path& p) { read_matrix(p); }, {"not a regular file (a pipe)"}));
  EXPECT_TRUE(rejects("pipe.mtx", [](const fs::path& p) { read_vector(p); }, {"not a regular file (a pipe)"}));
  try {
    read_npy("/dev/zero");
    ADD_FAILURE() << "/dev/zero read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a character device"), std::string::npos) << e.what();
  }
}

namespace {

// What a killed writer leaves ("<name>.tmp.<pid>.<n>" of a process that no longer runs) is
// removed; a live writer's file, this process's own and other names are kept.
TEST(StaleTemporaries, OnlyThoseOfEndedProcessesAreRemoved) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("dcdm_stale_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "frame_0001" / "deeper");
  // A pid that runs no process: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const auto touch = [](const fs::path& p) { std::ofstream(p) << "fragment"; };
  const fs::path dead = dir / fmt::format("A.mtx.tmp.{}.0", child);
  const fs::path dead_nested = dir / "frame_0001" / fmt::format("b.npy.tmp.{}.3", child);
  const fs::path too_deep = dir / "frame_0001" / "deeper" / fmt::format("x.tmp.{}.1", child);
  const fs::path mine = dir / fmt::format("A.bin.tmp.{}.7", ::getpid());
  const fs::path other = dir / "notes.tmp.txt";
  for (const auto& p : {dead, dead_nested, too_deep, mine, other}) touch(p);
  EXPECT_EQ(io::remove_stale_temporaries(dir, 1), 2);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(dead_nested));
  EXPECT_TRUE(fs::exists(too_deep));
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(other));
  fs::remove_all(dir);
}

}  // namespace
