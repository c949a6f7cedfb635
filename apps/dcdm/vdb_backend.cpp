// Loads the OpenVDB module dcdm_vdb on first use (see vdb_backend.hpp).
#include "vdb_backend.hpp"

#include <mutex>

#include "modules.hpp"

namespace dcdm::cli {

const VdbBackend& vdb_backend() {
  static const VdbBackend* backend = nullptr;
  static std::once_flag once;  // a failed load throws and is tried again by the next call
  std::call_once(once, [] {
    backend = static_cast<const VdbBackend*>(load_module("dcdm_vdb.so", "DCDM_VDB_MODULE", "dcdm_vdb_backend",
                                                         kVdbBackendInterface, "OpenVDB export (--vdb)"));
  });
  return *backend;
}

}  // namespace dcdm::cli
