// The module dcdm_vdb: the tool's OpenVDB export (vdb_backend.hpp), loaded with dlopen when a
// command writes a .vdb file.
#include "dcdm/vdb.hpp"
#include "vdb_backend.hpp"

namespace dcdm::cli {
namespace {

class Backend final : public VdbBackend {
 public:
  bool available() const override { return io::vdb_available(); }
  void write_density(const std::filesystem::path& path, const Field<float>& density,
                     const std::string& name) const override {
    io::write_vdb_density(path, density, name);
  }
  Field<float> read_density(const std::filesystem::path& path, const std::string& name) const override {
    return io::read_vdb_density_box(path, name);
  }
};

}  // namespace
}  // namespace dcdm::cli

extern "C" __attribute__((visibility("default"))) const void* dcdm_vdb_backend(int interface_version) {
  static const dcdm::cli::Backend backend;
  return interface_version == dcdm::cli::kVdbBackendInterface ? static_cast<const dcdm::cli::VdbBackend*>(&backend)
                                                               : nullptr;
}
