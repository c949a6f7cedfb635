// libFuzzer target: the Matrix Market parser (matrices and vectors). Any exception other
// than InputError, a sanitizer report or an inconsistent CSR result is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    dcdm::io::MatrixMarketInfo info;
    const dcdm::CsrMatrix a = dcdm::io::parse_matrix_market(text, "fuzz.mtx", &info);
    a.check_structure();  // throws dcdm::Error (not InputError) if the reader built garbage
    if (a.rows != info.rows || a.cols != info.cols) __builtin_trap();
    if (info.symmetry == "symmetric" && !a.is_symmetric()) __builtin_trap();
  } catch (const dcdm::InputError&) {
  }
  try {
    dcdm::io::ReadOptions lenient;
    lenient.allow_non_finite = true;
    (void)dcdm::io::parse_matrix_market_vector(text, "fuzz.mtx", lenient);
  } catch (const dcdm::InputError&) {
  }
  return 0;
}
