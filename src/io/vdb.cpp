// OpenVDB density export. The only translation unit that includes OpenVDB's headers.
#include "dcdm/vdb.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "dcdm/error.hpp"

#ifdef DCDM_HAVE_OPENVDB
#include <openvdb/io/File.h>
#include <openvdb/openvdb.h>
#endif

namespace dcdm::io {

#ifdef DCDM_HAVE_OPENVDB

namespace {

std::atomic<unsigned> vdb_temp_counter{0};

void ensure_initialised() {
  static const bool done = [] {
    openvdb::initialize();
    return true;
  }();
  (void)done;
}

}  // namespace

bool vdb_available() { return true; }

void write_vdb_density(const std::filesystem::path& path, const Field<float>& density,
                       const std::string& name) {
  ensure_initialised();
  const Dims d = density.dims();
  auto grid = openvdb::FloatGrid::create(0.0f);
  grid->setName(name);
  grid->setGridClass(openvdb::GRID_FOG_VOLUME);
  grid->setTransform(openvdb::math::Transform::createLinearTransform(1.0));
  auto acc = grid->getAccessor();
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const float v = density(i, j, k);
        if (v != 0.0f) acc.setValue(openvdb::Coord(i, j, k), v);
      }
  grid->insertMeta("dcdm_dims", openvdb::StringMetadata(d.str()));

  std::filesystem::path temp = path;
  temp += fmt::format(".tmp.{}.{}", static_cast<long>(getpid()), vdb_temp_counter.fetch_add(1));
  try {
    openvdb::io::File file(temp.string());
    openvdb::GridPtrVec grids{grid};
    file.write(grids);
    file.close();
  } catch (const openvdb::Exception& e) {
    std::remove(temp.c_str());
    throw Error(fmt::format("cannot write {}: {}", path.string(), e.what()));
  }
  // Flush to disk before the rename so that a crash leaves either the old or the new file.
  const int fd = ::open(temp.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    std::remove(temp.c_str());
    throw Error(fmt::format("cannot write {}: {}", path.string(), std::strerror(err)));
  }
  ::close(fd);
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(temp.c_str());
    throw InputError(fmt::format("cannot write {}: {}", path.string(), std::strerror(err)));
  }
}

Field<float> read_vdb_density(const std::filesystem::path& path, Dims dims, const std::string& name) {
  ensure_initialised();
  Field<float> out(dims, 0.0f);
  try {
    openvdb::io::File file(path.string());
    file.open(false);
    openvdb::GridBase::Ptr base;
    if (file.hasGrid(name)) base = file.readGrid(name);
    file.close();
    if (!base) throw InputError(fmt::format("{}: no grid named '{}'", path.string(), name));
    auto grid = openvdb::gridPtrCast<openvdb::FloatGrid>(base);
    if (!grid) throw InputError(fmt::format("{}: grid '{}' is not a float grid", path.string(), name));
    for (auto it = grid->cbeginValueOn(); it; ++it) {
      if (!it.isVoxelValue())
        throw InputError(fmt::format("{}: grid '{}' holds tile values", path.string(), name));
      const openvdb::Coord c = it.getCoord();
      if (!dims.contains(c.x(), c.y(), c.z()))
        throw InputError(fmt::format("{}: voxel ({}, {}, {}) lies outside {}", path.string(), c.x(),
                                     c.y(), c.z(), dims.str()));
      out(c.x(), c.y(), c.z()) = *it;
    }
  } catch (const openvdb::Exception& e) {
    throw InputError(fmt::format("{}: not a readable OpenVDB file: {}", path.string(), e.what()));
  }
  return out;
}

#else  // !DCDM_HAVE_OPENVDB

bool vdb_available() { return false; }

void write_vdb_density(const std::filesystem::path& path, const Field<float>&, const std::string&) {
  throw InputError(fmt::format("--vdb: this build has no OpenVDB support (cannot write {}); "
                               "install libopenvdb-dev and rebuild",
                               path.string()));
}

Field<float> read_vdb_density(const std::filesystem::path& path, Dims, const std::string&) {
  throw InputError(fmt::format("{}: this build has no OpenVDB support", path.string()));
}

#endif

}  // namespace dcdm::io
