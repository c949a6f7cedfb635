// libFuzzer target: the NumPy .npy parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const dcdm::io::NpyArray a = dcdm::io::parse_npy(bytes, "fuzz.npy");
    const auto count = static_cast<std::size_t>(a.count());
    if (a.bytes.size() != count * dcdm::io::item_size(a.dtype)) __builtin_trap();
    if (a.to_double().size() != count) __builtin_trap();
  } catch (const dcdm::InputError&) {
  }
  return 0;
}
