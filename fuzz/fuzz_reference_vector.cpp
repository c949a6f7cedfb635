// libFuzzer target: the reference DCDM binary vector parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto v = dcdm::io::parse_reference_vector(bytes, "fuzz.bin");
    if (v.size() != size / 8 - 1) __builtin_trap();
  } catch (const dcdm::InputError&) {
  }
  return 0;
}
