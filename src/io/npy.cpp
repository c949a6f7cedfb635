// NumPy .npy (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
// magic "\x93NUMPY", version, header length (uint16 in 1.0, uint32 in 2.0/3.0), a Python
// dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (n,), } padded to a
// multiple of 64 bytes, then the raw little-endian data in C order.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "dcdm/io.hpp"
#include "detail.hpp"

namespace dcdm::io {

static_assert(std::endian::native == std::endian::little, "the binary readers assume little-endian");

using detail::fail_at_byte;

const char* to_string(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

std::size_t item_size(DType d) {
  switch (d) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
  }
  return 1;
}

namespace {

const char* descr(DType d) {
  switch (d) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::UInt8: return "|u1";
  }
  return "?";
}

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

// The subset of Python literal syntax that .npy headers use.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::size_t base, const std::string& name)
      : s_(text), base_(base), name_(name) {}

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool peek(char c) {
    skip_space();
    return i_ < s_.size() && s_[i_] == c;
  }
  void expect(char c, const char* what) {
    if (!peek(c)) fail("expected {} in the header", what);
    ++i_;
  }
  std::string string_literal() {
    skip_space();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) fail("expected a quoted string in the header");
    const char q = s_[i_++];
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) fail("unterminated string in the header");
    return std::string(s_.substr(start, i_++ - start));
  }
  bool boolean() {
    skip_space();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False in the header");
  }
  std::vector<std::int64_t> tuple() {
    expect('(', "'(' opening the shape");
    std::vector<std::int64_t> dims;
    while (!peek(')')) {
      skip_space();
      bool negative = false;
      if (i_ < s_.size() && s_[i_] == '-') {
        negative = true;
        ++i_;
      }
      if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') fail("expected an integer in the shape");
      std::int64_t v = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("shape dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 long suffix
      if (negative) fail("negative dimension -{} in the shape", v);
      dims.push_back(v);
      if (dims.size() > 32) fail("more than 32 dimensions in the shape");
      if (peek(',')) ++i_;
      else if (!peek(')')) fail("expected ',' or ')' in the shape");
    }
    ++i_;
    return dims;
  }
  // Skips any other value (for keys we do not know).
  void skip_value() {
    skip_space();
    if (peek('\'') || peek('"')) {
      string_literal();
      return;
    }
    int depth = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') {
        if (depth == 0) return;
        --depth;
      }
      if (c == ',' && depth == 0) return;
      ++i_;
    }
  }
  std::size_t offset() const { return base_ + i_; }

  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
    fail_at_byte(name_, offset(), f, std::forward<Args>(args)...);
  }

 private:
  std::string_view s_;
  std::size_t base_;
  std::size_t i_ = 0;
  const std::string& name_;
};

DType parse_descr(const std::string& d, HeaderParser& p) {
  if (d == "<f8") return DType::Float64;
  if (d == "<f4") return DType::Float32;
  if (d == "<i4") return DType::Int32;
  if (d == "|u1" || d == "<u1" || d == ">u1" || d == "=u1") return DType::UInt8;
  if (!d.empty() && d[0] == '>')
    p.fail("big-endian data ('{}') is not supported; save it little-endian (e.g. a.astype('<{}'))", d,
           d.substr(1));
  p.fail("unsupported dtype '{}' (supported: <f4 float32, <f8 float64, <i4 int32, |u1 uint8)", d);
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// n values of type T at `data` (file offset data_offset): the first non-finite one is an
// InputError naming its byte. A parallel count first (the common case is none), the scan for
// the first one only when there is one.
template <class T>
void check_finite(const void* data, std::size_t n, std::size_t data_offset, const std::string& name) {
  const auto* p = reinterpret_cast<const char*>(data);
  std::int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static)
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(n); ++k)
    bad += !std::isfinite(detail::load<T>(p + k * sizeof(T)));
  if (bad == 0) return;
  for (std::size_t k = 0; k < n; ++k) {
    const T v = detail::load<T>(p + k * sizeof(T));
    if (!std::isfinite(v))
      fail_at_byte(name, data_offset + k * sizeof(T), "element {} is {} (values must be finite)", k,
                   std::isnan(v) ? "NaN" : "Inf");
  }
}

}  // namespace

std::int64_t NpyHeader::count() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::int64_t NpyArray::count() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<double> NpyArray::to_double() const {
  const std::size_t n = bytes.size() / item_size(dtype);
  std::vector<double> out(n);
  const auto* p = reinterpret_cast<const char*>(bytes.data());
  switch (dtype) {
    case DType::Float64:
      if (n > 0) std::memcpy(out.data(), p, n * 8);  // data() may be null when empty
      break;
    case DType::Float32:
      for (std::size_t k = 0; k < n; ++k) out[k] = detail::load<float>(p + 4 * k);
      break;
    case DType::Int32:
      for (std::size_t k = 0; k < n; ++k) out[k] = detail::load<std::int32_t>(p + 4 * k);
      break;
    case DType::UInt8:
      for (std::size_t k = 0; k < n; ++k) out[k] = bytes[k];
      break;
  }
  return out;
}

NpyHeader parse_npy_header(std::string_view bytes, std::uint64_t file_size, const std::string& name) {
  if (bytes.size() < kMagicSize + 2 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0)
    fail_at_byte(name, 0, "not a NumPy .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    if (bytes.size() < 10) fail_at_byte(name, bytes.size(), "file ends inside the header length");
    header_len = detail::load<std::uint16_t>(bytes.data() + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail_at_byte(name, bytes.size(), "file ends inside the header length");
    header_len = detail::load<std::uint32_t>(bytes.data() + 8);
    header_start = 12;
  } else {
    fail_at_byte(name, 6, "unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)", major, minor);
  }
  if (header_len > file_size - header_start)
    fail_at_byte(name, 8, "header length {} runs past the end of the file ({} bytes; truncated?)",
                 header_len, file_size);
  if (header_len > bytes.size() - header_start)
    throw Error(fmt::format("parse_npy_header {}: the prefix holds {} of the header's {} bytes", name,
                            bytes.size() - header_start, header_len));
  const std::size_t data_offset = header_start + header_len;
  HeaderParser p(bytes.substr(header_start, header_len), header_start, name);

  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  std::string dt;
  std::vector<std::int64_t> shape;
  p.expect('{', "'{' opening the header dict");
  while (!p.peek('}')) {
    const std::string key = p.string_literal();
    p.expect(':', "':' after a key");
    if (key == "descr") {
      if (p.peek('[')) p.fail("structured dtypes are not supported (expected a plain dtype such as '<f8')");
      dt = p.string_literal();
      have_descr = true;
    } else if (key == "fortran_order") {
      fortran = p.boolean();
      have_order = true;
    } else if (key == "shape") {
      shape = p.tuple();
      have_shape = true;
    } else {
      p.skip_value();
    }
    if (p.peek(',')) p.expect(',', "','");
    else if (!p.peek('}')) p.fail("expected ',' or '}}' in the header dict");
  }
  if (!have_descr || !have_order || !have_shape)
    p.fail("the header lacks '{}'", !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
  NpyHeader a;
  a.dtype = parse_descr(dt, p);
  a.data_offset = data_offset;
  if (fortran)
    p.fail("fortran_order True is not supported; save a C-ordered array (np.ascontiguousarray)");
  a.shape = shape;

  // The data must be exactly count * item size, checked before allocating.
  const std::uint64_t available = file_size - data_offset;
  const std::uint64_t item = item_size(a.dtype);
  std::uint64_t count = 1, need = 0;
  bool overflow = false;
  for (auto d : shape) overflow = overflow || __builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count);
  overflow = overflow || __builtin_mul_overflow(count, item, &need);
  if (overflow)
    fail_at_byte(name, data_offset, "shape {} of {} needs more than 2^64 bytes but {} follow the header",
                 shape_text(shape), to_string(a.dtype), available);
  if (need > available)
    fail_at_byte(name, data_offset, "shape {} of {} needs {} bytes but {} follow the header (truncated?)",
                 shape_text(shape), to_string(a.dtype), need, available);
  if (need < available)
    fail_at_byte(name, data_offset + need, "{} unexpected bytes after the data of shape {} of {}",
                 available - need, shape_text(shape), to_string(a.dtype));
  return a;
}

NpyArray parse_npy(std::string_view bytes, const std::string& name, const ReadOptions& options) {
  const NpyHeader h = parse_npy_header(bytes, bytes.size(), name);
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.bytes.assign(reinterpret_cast<const std::uint8_t*>(bytes.data() + h.data_offset),
                 reinterpret_cast<const std::uint8_t*>(bytes.data() + bytes.size()));
  if (!options.allow_non_finite) {
    if (a.dtype == DType::Float64) check_finite<double>(a.bytes.data(), a.bytes.size() / 8, h.data_offset, name);
    if (a.dtype == DType::Float32) check_finite<float>(a.bytes.data(), a.bytes.size() / 4, h.data_offset, name);
  }
  return a;
}

NpyHeader read_npy_header(const fs::path& path) {
  const std::uint64_t size = regular_file_size(path);
  // The header is short (NumPy pads it to 64 bytes; large shapes need a few hundred): read a
  // prefix, and more only when the declared length asks for it.
  std::string prefix = read_file_prefix(path, 4096);
  if (prefix.size() >= 12 && std::memcmp(prefix.data(), kMagic, kMagicSize) == 0) {
    const std::uint64_t need = prefix[6] == 1 ? 10 + std::uint64_t(detail::load<std::uint16_t>(prefix.data() + 8))
                                              : 12 + std::uint64_t(detail::load<std::uint32_t>(prefix.data() + 8));
    if (need > prefix.size() && need <= size) prefix = read_file_prefix(path, static_cast<std::size_t>(need));
  }
  return parse_npy_header(prefix, size, path.string());
}

NpyArray read_npy(const fs::path& path, const ReadOptions& options) {
  const NpyHeader h = read_npy_header(path);
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.bytes.resize(static_cast<std::size_t>(h.count()) * item_size(h.dtype));
  read_file_range(path, h.data_offset, a.bytes.data(), a.bytes.size());
  if (!options.allow_non_finite) {
    if (a.dtype == DType::Float64) check_finite<double>(a.bytes.data(), a.bytes.size() / 8, h.data_offset, path.string());
    if (a.dtype == DType::Float32) check_finite<float>(a.bytes.data(), a.bytes.size() / 4, h.data_offset, path.string());
  }
  return a;
}

std::vector<double> read_npy_vector(const fs::path& path, const ReadOptions& options) {
  const NpyHeader h = read_npy_header(path);
  if (h.dtype != DType::Float64) return read_npy(path, options).to_double();
  std::vector<double> v(static_cast<std::size_t>(h.count()));
  read_file_range(path, h.data_offset, v.data(), v.size() * sizeof(double));
  if (!options.allow_non_finite) check_finite<double>(v.data(), v.size(), h.data_offset, path.string());
  return v;
}

namespace {

// The header and the values, written from the caller's memory (no copy of the data: at 256^3
// a copy of b cost as much as writing it).
void write_npy_data(const fs::path& path, DType dtype, const std::vector<std::int64_t>& shape, const void* data,
                    std::size_t bytes) {
  for (auto d : shape)
    if (d < 0) throw Error(fmt::format("write_npy {}: negative dimension in shape", path.string()));
  std::uint64_t count = 1;
  for (auto d : shape) count *= static_cast<std::uint64_t>(d);
  if (count * item_size(dtype) != bytes)
    throw Error(fmt::format("write_npy {}: shape {} of {} needs {} bytes, got {}", path.string(), shape_text(shape),
                            to_string(dtype), count * item_size(dtype), bytes));
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr(dtype),
                                 shape_text(shape));
  // Version 1.0 unless the header length does not fit its uint16; pad with spaces and a
  // final newline so that the data starts at a multiple of 64 bytes, as numpy does.
  const bool v2 = dict.size() + 1 + 10 + 64 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  if (v2) {
    const auto len = static_cast<std::uint32_t>(dict.size());
    out.append(reinterpret_cast<const char*>(&len), 4);
  } else {
    const auto len = static_cast<std::uint16_t>(dict.size());
    out.append(reinterpret_cast<const char*>(&len), 2);
  }
  out += dict;
  AtomicFile f(path, out.size() + bytes);
  f.write(out);
  f.write(data, bytes);
  f.commit();
}

template <class T>
void write_typed(const fs::path& path, const std::vector<T>& v, const std::vector<std::int64_t>& shape,
                 DType dtype) {
  const std::vector<std::int64_t> s = shape.empty() ? std::vector<std::int64_t>{static_cast<std::int64_t>(v.size())} : shape;
  std::int64_t count = 1;
  for (auto d : s) count *= d;
  if (count != static_cast<std::int64_t>(v.size()))
    throw Error(fmt::format("write_npy {}: shape {} does not hold {} values", path.string(), shape_text(s), v.size()));
  write_npy_data(path, dtype, s, v.data(), v.size() * sizeof(T));
}

}  // namespace

void write_npy(const fs::path& path, const NpyArray& a) {
  write_npy_data(path, a.dtype, a.shape, a.bytes.data(), a.bytes.size());
}

void write_npy(const fs::path& path, const std::vector<double>& v, const std::vector<std::int64_t>& shape) {
  write_typed(path, v, shape, DType::Float64);
}
void write_npy(const fs::path& path, const std::vector<float>& v, const std::vector<std::int64_t>& shape) {
  write_typed(path, v, shape, DType::Float32);
}
void write_npy(const fs::path& path, const std::vector<std::int32_t>& v, const std::vector<std::int64_t>& shape) {
  write_typed(path, v, shape, DType::Int32);
}
void write_npy(const fs::path& path, const std::vector<std::uint8_t>& v, const std::vector<std::int64_t>& shape) {
  write_typed(path, v, shape, DType::UInt8);
}

}  // namespace dcdm::io
