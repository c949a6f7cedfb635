// Matrix Market (https://math.nist.gov/MatrixMarket/formats.html): coordinate matrices
// (real / integer / pattern, general / symmetric) and dense array vectors.
// The parser works on the file in memory, a line at a time, with std::from_chars: a 64^3
// system (1.8M entries) reads in well under a second.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "dcdm/io.hpp"

#include <omp.h>
#include "detail.hpp"

namespace dcdm::io {

namespace {

using detail::fail_at_line;

// Printable excerpt of a token or line for messages.
std::string excerpt(std::string_view s, std::size_t max = 40) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Walks the text a line at a time and splits lines into whitespace-separated tokens.
class LineReader {
 public:
  LineReader(std::string_view text, const std::string& name)
      : p_(text.data()), end_(text.data() + text.size()), name_(name) {}

  bool at_end() const { return p_ >= end_; }
  std::int64_t line() const { return line_; }
  std::size_t bytes_left() const { return static_cast<std::size_t>(end_ - p_); }
  const std::string& name() const { return name_; }

  // Moves to the next line; false at the end of the text.
  bool next_line() {
    if (p_ >= end_) return false;
    const char* nl = static_cast<const char*>(std::memchr(p_, '\n', static_cast<std::size_t>(end_ - p_)));
    cur_ = line_start_ = p_;
    cur_end_ = nl ? nl : end_;
    p_ = nl ? nl + 1 : end_;
    ++line_;
    return true;
  }
  std::string_view current() const { return {line_start_, static_cast<std::size_t>(cur_end_ - line_start_)}; }

  // Next token of the current line, empty if none is left.
  std::string_view token() {
    while (cur_ < cur_end_ && is_space(*cur_)) ++cur_;
    const char* start = cur_;
    while (cur_ < cur_end_ && !is_space(*cur_)) ++cur_;
    return {start, static_cast<std::size_t>(cur_ - start)};
  }
  bool line_blank_from_here() {
    while (cur_ < cur_end_ && is_space(*cur_)) ++cur_;
    return cur_ == cur_end_;
  }
  // Blank or a comment: skipped anywhere after the banner.
  bool line_is_skippable() {
    const char* q = cur_;
    while (q < cur_end_ && is_space(*q)) ++q;
    return q == cur_end_ || *q == '%';
  }

  std::int64_t parse_int(std::string_view what) {
    std::string_view t = token();
    if (t.empty()) fail_at_line(name_, line_, "missing {}", what);
    std::int64_t v = 0;
    const char* b = t.data();
    if (*b == '+') ++b;
    auto [ptr, ec] = std::from_chars(b, t.data() + t.size(), v);
    if (ec == std::errc::result_out_of_range)
      fail_at_line(name_, line_, "{} '{}' is out of range", what, excerpt(t));
    if (ec != std::errc() || ptr != t.data() + t.size())
      fail_at_line(name_, line_, "{}: expected an integer, found '{}'", what, excerpt(t));
    return v;
  }

  double parse_real(std::string_view what, bool allow_non_finite) {
    std::string_view t = token();
    if (t.empty()) fail_at_line(name_, line_, "missing {}", what);
    double v = 0;
    const char* b = t.data();
    if (*b == '+') ++b;
    auto [ptr, ec] = std::from_chars(b, t.data() + t.size(), v);
    if (ec == std::errc::result_out_of_range)
      fail_at_line(name_, line_, "{} '{}' is out of the range of a double", what, excerpt(t));
    if (ec != std::errc() || ptr != t.data() + t.size())
      fail_at_line(name_, line_, "{}: expected a number, found '{}'", what, excerpt(t));
    if (!allow_non_finite && !std::isfinite(v))
      fail_at_line(name_, line_, "{} is {} (values must be finite)", what, excerpt(t));
    return v;
  }

  // Fast path for the usual entry line "i j [v]" of plain decimal numbers: parses it, moves
  // past it and returns true. On anything else (blank, comment, signs, NaN, errors) returns
  // false without moving, and the caller takes the line a token at a time.
  bool fast_entry(std::int64_t& i, std::int64_t& j, double& v, bool real, bool integer) {
    const char* q = p_;
    auto blanks = [&] {
      const char* s = q;
      while (q < end_ && (*q == ' ' || *q == '\t')) ++q;
      return q > s;
    };
    auto digits = [&](std::int64_t& out) {
      const char* s = q;
      std::int64_t x = 0;
      while (q < end_ && static_cast<unsigned>(*q - '0') < 10u) {
        if (q - s == 18) return false;  // longer numbers take the checked path (no overflow here)
        x = x * 10 + (*q++ - '0');
      }
      out = x;
      return q > s;
    };
    blanks();
    if (!digits(i) || !blanks() || !digits(j)) return false;
    if (real) {
      if (!blanks()) return false;
      auto [ptr, ec] = std::from_chars(q, end_, v);
      if (ec != std::errc() || !std::isfinite(v)) return false;
      q = ptr;
    } else if (integer) {
      if (!blanks()) return false;
      const bool negative = q < end_ && *q == '-';
      if (negative) ++q;
      std::int64_t x = 0;
      if (!digits(x)) return false;
      v = static_cast<double>(negative ? -x : x);
    } else {
      v = 1.0;
    }
    blanks();
    if (q < end_ && *q == '\r') ++q;
    if (q < end_) {
      if (*q != '\n') return false;
      ++q;
    }
    p_ = q;
    ++line_;
    return true;
  }

  void expect_line_end(std::string_view what) {
    if (!line_blank_from_here())
      fail_at_line(name_, line_, "unexpected '{}' after the {}", excerpt(token()), what);
  }

  // Skips blank and comment lines; false at the end of the text.
  bool next_content_line() {
    while (next_line())
      if (!line_is_skippable()) return true;
    return false;
  }

 private:
  const char* p_;
  const char* end_;
  const char* line_start_ = nullptr;
  const char* cur_ = nullptr;
  const char* cur_end_ = nullptr;
  std::int64_t line_ = 0;
  std::string name_;
};

constexpr const char* kBannerExample = "%%MatrixMarket matrix coordinate real general";

// Banner and size line. Leaves the reader on the size line.
MatrixMarketInfo parse_header(LineReader& in) {
  const std::string& name = in.name();
  if (!in.next_line()) fail_at_line(name, 1, "empty file (expected the banner '{}')", kBannerExample);
  std::string_view head = in.token();
  if (lower(head) != "%%matrixmarket")
    fail_at_line(name, 1, "not a Matrix Market file: expected the banner '{}', found '{}'",
                 kBannerExample, excerpt(in.current()));
  MatrixMarketInfo info;
  const std::string object = lower(in.token());
  info.format = lower(in.token());
  info.field = lower(in.token());
  info.symmetry = lower(in.token());
  if (object != "matrix")
    fail_at_line(name, 1, "unsupported object '{}' in the banner (expected 'matrix')", excerpt(object));
  if (info.format != "coordinate" && info.format != "array")
    fail_at_line(name, 1, "unsupported format '{}' in the banner (expected coordinate or array)",
                 excerpt(info.format));
  if (info.field == "double") info.field = "real";
  if (info.field != "real" && info.field != "integer" && info.field != "pattern")
    fail_at_line(name, 1, "unsupported field '{}' in the banner (expected real, integer or pattern)",
                 excerpt(info.field));
  if (info.format == "array" && info.field == "pattern")
    fail_at_line(name, 1, "'array pattern' is not a valid Matrix Market type");
  if (info.symmetry != "general" && info.symmetry != "symmetric")
    fail_at_line(name, 1, "unsupported symmetry '{}' in the banner (expected general or symmetric)",
                 excerpt(info.symmetry));
  in.expect_line_end("banner");

  if (!in.next_content_line()) fail_at_line(name, in.line(), "file ends before the size line");
  info.rows = in.parse_int("row count");
  info.cols = in.parse_int("column count");
  if (info.format == "coordinate") info.entries = in.parse_int("entry count");
  in.expect_line_end("size line");
  if (info.rows < 0 || info.cols < 0 || info.entries < 0)
    fail_at_line(name, in.line(), "negative size {} x {}{}", info.rows, info.cols,
                 info.format == "coordinate" ? fmt::format(", {} entries", info.entries) : "");
  if (info.symmetry == "symmetric" && info.rows != info.cols)
    fail_at_line(name, in.line(), "a symmetric matrix must be square, not {} x {}", info.rows, info.cols);
  return info;
}

// Rejects a declared size the file cannot hold, before anything is allocated.
void check_declared_size(const LineReader& in, const MatrixMarketInfo& info) {
  const std::string& name = in.name();
  if (info.format == "coordinate") {
    if (info.rows > kMaxMatrixDimension || info.cols > kMaxMatrixDimension)
      fail_at_line(name, in.line(), "matrix size {} x {} exceeds the limit of {} rows and columns",
                   info.rows, info.cols, kMaxMatrixDimension);
    const std::int64_t capacity = info.symmetry == "symmetric"
                                      ? info.rows * (info.rows + 1) / 2
                                      : info.rows * info.cols;
    if (info.entries > capacity)
      fail_at_line(name, in.line(), "{} entries declared, more than a {} x {} {} matrix can hold",
                   info.entries, info.rows, info.cols, info.symmetry);
    // Shortest entry line: "1 1\n" (pattern) or "1 1 1\n"; the last one may lack '\n'.
    const std::uint64_t min_bytes = info.field == "pattern" ? 4 : 6;
    const std::uint64_t fits = (in.bytes_left() + 1) / min_bytes;
    if (static_cast<std::uint64_t>(info.entries) > fits)
      fail_at_line(name, in.line(),
                   "{} entries declared but the remaining {} bytes hold at most {} (truncated file?)",
                   info.entries, in.bytes_left(), fits);
    // A symmetric file's entries are mirrored; the reader holds them as coordinates (4 + 4 + 8
    // bytes) before building the CSR.
    check_matrix_fits_memory(fmt::format("{}:{}", name, in.line()), info.rows,
                             info.entries * (info.symmetry == "symmetric" ? 2 : 1), 16);
  } else {
    // "1\n" per value.
    const std::uint64_t fits = (in.bytes_left() + 1) / 2;
    const std::uint64_t values =
        info.symmetry == "symmetric" ? std::uint64_t(info.rows) * std::uint64_t(info.rows + 1) / 2
                                     : std::uint64_t(info.rows) * std::uint64_t(info.cols);
    if ((info.rows > 0 && std::uint64_t(info.cols) > fits) || values > fits)
      fail_at_line(name, in.line(),
                   "{} x {} values declared but the remaining {} bytes hold at most {} (truncated file?)",
                   info.rows, info.cols, in.bytes_left(), fits);
  }
}

CsrMatrix parse_coordinate(LineReader& in, MatrixMarketInfo& info, const ReadOptions& options) {
  const std::string& name = in.name();
  const bool symmetric = info.symmetry == "symmetric";
  const bool pattern = info.field == "pattern";
  const bool integer = info.field == "integer";
  detail::Coo coo;
  const std::size_t reserve = static_cast<std::size_t>(info.entries) * (symmetric ? 2 : 1);
  coo.row.reserve(reserve);
  coo.col.reserve(reserve);
  coo.value.reserve(reserve);
  std::int64_t read = 0;
  const bool real = !pattern && !integer;
  while (true) {
    std::int64_t i = 0, j = 0;
    double v = 1.0;
    if (!(read < info.entries && in.fast_entry(i, j, v, real, integer))) {
      if (!in.next_line()) break;
      if (in.line_is_skippable()) continue;
      if (read == info.entries)
        fail_at_line(name, in.line(), "more entries than the {} declared in the size line", info.entries);
      i = in.parse_int("row index");
      j = in.parse_int("column index");
      if (integer)
        v = static_cast<double>(in.parse_int("value"));
      else if (!pattern)
        v = in.parse_real("value", options.allow_non_finite);
      in.expect_line_end("entry");
    }
    if (i < 1 || i > info.rows)
      fail_at_line(name, in.line(), "row index {} out of range 1..{}", i, info.rows);
    if (j < 1 || j > info.cols)
      fail_at_line(name, in.line(), "column index {} out of range 1..{}", j, info.cols);
    if (symmetric && j > i)
      fail_at_line(name, in.line(),
                   "entry ({}, {}) lies above the diagonal in a symmetric file (only the lower "
                   "triangle may be given)", i, j);
    coo.row.push_back(static_cast<std::int32_t>(i - 1));
    coo.col.push_back(static_cast<std::int32_t>(j - 1));
    coo.value.push_back(v);
    if (symmetric && i != j) {
      coo.row.push_back(static_cast<std::int32_t>(j - 1));
      coo.col.push_back(static_cast<std::int32_t>(i - 1));
      coo.value.push_back(v);
    }
    ++read;
  }
  if (read < info.entries)
    fail_at_line(name, std::max<std::int64_t>(in.line(), 1),
                 "file ends after {} of the {} entries declared (truncated file?)", read, info.entries);
  std::int64_t duplicates = 0;
  CsrMatrix a = detail::csr_from_coo(info.rows, info.cols, std::move(coo), &duplicates);
  info.duplicates = duplicates;
  if (symmetric) {
    // Both mirrored copies of a duplicated off-diagonal entry were summed: count in file
    // terms instead, entries given minus distinct lower-triangle entries.
    std::int64_t distinct_lower = 0;
    for (std::int64_t r = 0; r < a.rows; ++r)
      for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k)
        if (a.col_idx[k] <= r) ++distinct_lower;
    info.duplicates = info.entries - distinct_lower;
  }
  return a;
}

std::vector<double> parse_array(LineReader& in, const MatrixMarketInfo& info, const ReadOptions& options) {
  const std::string& name = in.name();
  if (info.symmetry != "general")
    fail_at_line(name, 1, "a vector must be 'array ... general', not '{}'", info.symmetry);
  const std::int64_t n = info.rows * info.cols;
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(n));
  const bool integer = info.field == "integer";
  while (in.next_line()) {
    if (in.line_is_skippable()) continue;
    while (!in.line_blank_from_here()) {
      if (static_cast<std::int64_t>(v.size()) == n)
        fail_at_line(name, in.line(), "more values than the {} x {} declared in the size line",
                     info.rows, info.cols);
      v.push_back(integer ? static_cast<double>(in.parse_int("value"))
                          : in.parse_real("value", options.allow_non_finite));
    }
  }
  if (static_cast<std::int64_t>(v.size()) < n)
    fail_at_line(name, std::max<std::int64_t>(in.line(), 1),
                 "file ends after {} of the {} values declared (truncated file?)", v.size(), n);
  return v;
}

// Writes text in large chunks through an AtomicFile.
class ChunkWriter {
 public:
  explicit ChunkWriter(AtomicFile& f) : f_(f) { buf_.resize(1 << 20); }
  void put(std::string_view s) {
    room(s.size());
    std::memcpy(buf_.data() + n_, s.data(), s.size());
    n_ += s.size();
  }
  void put_int(std::int64_t v) {
    room(24);
    n_ = static_cast<std::size_t>(std::to_chars(buf_.data() + n_, buf_.data() + buf_.size(), v).ptr - buf_.data());
  }
  void put_double(double v) {
    room(32);
    n_ = static_cast<std::size_t>(detail::format_double(buf_.data() + n_, v) - buf_.data());
  }
  void put_char(char c) {
    room(1);
    buf_[n_++] = c;
  }
  void flush() {
    f_.write(buf_.data(), n_);
    n_ = 0;
  }

 private:
  void room(std::size_t k) {
    if (n_ + k > buf_.size()) flush();
    if (k > buf_.size()) buf_.resize(k);
  }
  AtomicFile& f_;
  std::string buf_;
  std::size_t n_ = 0;
};

void put_comment(ChunkWriter& w, const std::string& comment) {
  if (comment.empty()) return;
  std::size_t start = 0;
  while (start <= comment.size()) {
    std::size_t nl = comment.find('\n', start);
    if (nl == std::string::npos) nl = comment.size();
    w.put("% ");
    w.put(std::string_view(comment).substr(start, nl - start));
    w.put_char('\n');
    start = nl + 1;
  }
}

}  // namespace

CsrMatrix parse_matrix_market(std::string_view text, const std::string& name, MatrixMarketInfo* info,
                              const ReadOptions& options) {
  LineReader in(text, name);
  MatrixMarketInfo header = parse_header(in);
  if (header.format != "coordinate")
    fail_at_line(name, 1, "a dense 'array' file holds a vector, not a sparse matrix (expected '{}')",
                 kBannerExample);
  check_declared_size(in, header);
  CsrMatrix a = parse_coordinate(in, header, options);
  if (info) *info = header;
  return a;
}

CsrMatrix read_matrix_market(const fs::path& path, MatrixMarketInfo* info, const ReadOptions& options) {
  const MappedFile file(path);
  return parse_matrix_market(file.view(), path.string(), info, options);
}

MatrixMarketInfo read_matrix_market_header(const fs::path& path) {
  // The header is at the top: parse a prefix (cut at a line end) unless comments run longer.
  constexpr std::size_t kPrefix = 1 << 20;
  std::string prefix = read_file_prefix(path, kPrefix);
  if (prefix.size() == kPrefix) {
    const std::size_t nl = prefix.rfind('\n');
    prefix.resize(nl == std::string::npos ? 0 : nl + 1);
    try {
      LineReader in(prefix, path.string());
      return parse_header(in);
    } catch (const InputError&) {
      // Fall through: the whole file decides.
    }
    prefix = read_file(path);
  }
  LineReader in(prefix, path.string());
  return parse_header(in);
}

std::vector<double> parse_matrix_market_vector(std::string_view text, const std::string& name,
                                               const ReadOptions& options) {
  LineReader in(text, name);
  MatrixMarketInfo header = parse_header(in);
  if (header.rows != 1 && header.cols != 1)
    fail_at_line(name, in.line(), "a vector needs one column (or one row), not {} x {}", header.rows,
                 header.cols);
  check_declared_size(in, header);
  if (header.format == "array") return parse_array(in, header, options);
  CsrMatrix a = parse_coordinate(in, header, options);
  std::vector<double> v(static_cast<std::size_t>(std::max(a.rows, a.cols)), 0.0);
  for (std::int64_t r = 0; r < a.rows; ++r)
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k)
      v[static_cast<std::size_t>(a.cols == 1 ? r : a.col_idx[k])] = a.values[k];
  return v;
}

std::vector<double> read_matrix_market_vector(const fs::path& path, const ReadOptions& options) {
  const MappedFile file(path);
  return parse_matrix_market_vector(file.view(), path.string(), options);
}

void write_matrix_market(const fs::path& path, const CsrMatrix& a, bool symmetric,
                         const std::string& comment) {
  if (symmetric && !a.is_symmetric(0.0))
    throw Error(fmt::format("write_matrix_market {}: the matrix is not symmetric; write it with "
                            "symmetric = false", path.string()));
  std::int64_t count = 0;
  if (symmetric) {
    for (std::int64_t r = 0; r < a.rows; ++r)
      for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) count += a.col_idx[k] <= r;
  } else {
    count = a.nnz();
  }
  AtomicFile f(path);
  ChunkWriter w(f);
  w.put(symmetric ? "%%MatrixMarket matrix coordinate real symmetric\n"
                  : "%%MatrixMarket matrix coordinate real general\n");
  put_comment(w, comment);
  w.put_int(a.rows);
  w.put_char(' ');
  w.put_int(a.cols);
  w.put_char(' ');
  w.put_int(count);
  w.put_char('\n');
  // The entries as text, formatted by all threads: batches of rows, each split into one piece
  // per thread, written in order (formatting, not the disk, is what a large system waits for).
  const int threads = omp_get_max_threads();
  constexpr std::int64_t kBatchRows = std::int64_t(1) << 18;
  std::vector<std::string> pieces(static_cast<std::size_t>(threads));
  for (std::int64_t lo = 0; lo < a.rows; lo += kBatchRows) {
    const std::int64_t hi = std::min(a.rows, lo + kBatchRows);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const std::int64_t r0 = lo + (hi - lo) * t / nt, r1 = lo + (hi - lo) * (t + 1) / nt;
      std::string& out = pieces[static_cast<std::size_t>(t)];
      out.clear();
      char line[80];
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
          if (symmetric && a.col_idx[k] > r) continue;
          char* p = std::to_chars(line, line + 24, r + 1).ptr;
          *p++ = ' ';
          p = std::to_chars(p, p + 24, std::int64_t(a.col_idx[k]) + 1).ptr;
          *p++ = ' ';
          p = detail::format_double(p, a.values[k]);
          *p++ = '\n';
          out.append(line, static_cast<std::size_t>(p - line));
        }
    }
    for (const std::string& piece : pieces) w.put(piece);
  }
  w.flush();
  f.commit();
}

void write_matrix_market_vector(const fs::path& path, const std::vector<double>& v) {
  AtomicFile f(path);
  ChunkWriter w(f);
  w.put("%%MatrixMarket matrix array real general\n");
  w.put_int(static_cast<std::int64_t>(v.size()));
  w.put(" 1\n");
  for (double x : v) {
    w.put_double(x);
    w.put_char('\n');
  }
  w.flush();
  f.commit();
}

}  // namespace dcdm::io
