#pragma once
// OpenVDB export and import for the tool (dcdm/vdb.hpp), in the module dcdm_vdb.so that the
// tool loads when a command writes or reads a .vdb file (modules.hpp): OpenVDB takes longer to load than most
// commands take to run.
#include <filesystem>
#include <string>

#include "dcdm/grid.hpp"

namespace dcdm::cli {

inline constexpr int kVdbBackendInterface = 2;

class VdbBackend {
 public:
  virtual ~VdbBackend() = default;
  virtual bool available() const = 0;  // false: a build without OpenVDB
  virtual void write_density(const std::filesystem::path& path, const Field<float>& density,
                             const std::string& name) const = 0;
  // io::read_vdb_density_box: a float grid of any extent (name empty: the first float grid).
  virtual Field<float> read_density(const std::filesystem::path& path, const std::string& name) const = 0;
};

// Loaded on first use ($DCDM_VDB_MODULE, next to the tool, <prefix>/lib/dcdm); InputError saying
// where it looked when none loads.
const VdbBackend& vdb_backend();

}  // namespace dcdm::cli

extern "C" const void* dcdm_vdb_backend(int interface_version);
