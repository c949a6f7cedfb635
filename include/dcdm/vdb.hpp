#pragma once
// OpenVDB export of density volumes (for rendering a smoke run in Houdini/Blender).
// OpenVDB's headers are heavy, so they stay inside src/io/vdb.cpp.
#include <filesystem>
#include <string>

#include "dcdm/grid.hpp"

namespace dcdm::io {

// True when this build links OpenVDB (CMake found it: DCDM_HAVE_OPENVDB).
bool vdb_available();

// Writes `density` as a FloatGrid named `name` (voxel size 1, cell (i,j,k) at index (i,j,k),
// fog-volume class, values below `background` tolerance 0 stay inactive) to `path`,
// atomically (temporary file in the same folder + rename). Throws InputError when OpenVDB
// is not available in this build, dcdm::Error when writing fails.
void write_vdb_density(const std::filesystem::path& path, const Field<float>& density,
                       const std::string& name = "density");

// Reads a FloatGrid named `name` back into a field of the given dimensions (for tests and
// round trips). Throws InputError naming the file when it is missing or malformed.
Field<float> read_vdb_density(const std::filesystem::path& path, Dims dims,
                              const std::string& name = "density");

}  // namespace dcdm::io
