#pragma once
// OpenVDB export of density volumes (for rendering a smoke run in Houdini/Blender).
// OpenVDB's headers are heavy, so they stay inside src/io/vdb.cpp.
#include <cstdint>
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

// Reads a float grid of any extent (a .vdb from this tool or another, e.g. Houdini's smoke):
// this tool's files carry their grid's dims (metadata dcdm_dims) and come back whole;
// otherwise the field covers the active voxels' bounding box, index (i, j, k) of the grid at
// cell (i - min.x, j - min.y, k - min.z). Active tiles are filled. `name` empty: the file's first float grid. Throws
// InputError naming the file when it is missing, malformed, holds no such grid, no active
// value, or a box of more than max_cells cells.
Field<float> read_vdb_density_box(const std::filesystem::path& path, const std::string& name = "density",
                                  std::int64_t max_cells = std::int64_t(1) << 31);

}  // namespace dcdm::io
