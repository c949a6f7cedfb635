// libFuzzer target: the reference DCDM binary matrix parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    dcdm::io::ValuePrecision precision;
    const dcdm::CsrMatrix a = dcdm::io::parse_reference_matrix(bytes, "fuzz.bin", &precision);
    a.check_structure();  // throws dcdm::Error (not InputError) if the reader built garbage
  } catch (const dcdm::InputError&) {
  }
  return 0;
}
