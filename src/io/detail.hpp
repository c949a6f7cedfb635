#pragma once
// Helpers shared by the readers and writers in src/io (not a public header).
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::io::detail {

// "file:line: message" (text formats), like a compiler.
template <class... Args>
[[noreturn]] void fail_at_line(const std::string& name, std::int64_t line,
                               fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format("{}:{}: {}", name, line, fmt::format(f, std::forward<Args>(args)...)));
}

// "file: byte N: message" (binary formats).
template <class... Args>
[[noreturn]] void fail_at_byte(const std::string& name, std::uint64_t offset,
                               fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format("{}: byte {}: {}", name, offset, fmt::format(f, std::forward<Args>(args)...)));
}

// Little-endian loads from unaligned memory (x86-64 and every target we build for is
// little-endian; a static_assert in binary.cpp guards that).
template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Coordinate entries in file order, 0-based.
struct Coo {
  std::vector<std::int32_t> row, col;
  std::vector<double> value;
};

// CSR from coordinate entries in O(nnz + rows): bucket by row, sort each row's columns
// (rows are short), sum duplicates. `duplicates` receives how many were summed.
CsrMatrix csr_from_coo(std::int64_t rows, std::int64_t cols, Coo&& coo, std::int64_t* duplicates);

// Sorts the columns of every row of an otherwise valid CSR and sums duplicates in place.
void sort_rows_and_sum_duplicates(CsrMatrix& a, std::int64_t* duplicates);

// Shortest text that reads back as the same double; `out` has room for 32 characters.
inline char* format_double(char* out, double v) { return std::to_chars(out, out + 32, v).ptr; }

}  // namespace dcdm::io::detail
