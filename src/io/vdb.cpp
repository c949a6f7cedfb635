// OpenVDB density export. The only translation unit that includes OpenVDB's headers.
#include "dcdm/vdb.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"

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
  if (fd < 0 || (!io::sync_deferred() && ::fsync(fd) != 0)) {
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

Field<float> read_vdb_density_box(const std::filesystem::path& path, const std::string& name,
                                  std::int64_t max_cells) {
  ensure_initialised();
  try {
    openvdb::io::File file(path.string());
    file.open(false);
    openvdb::GridBase::Ptr base;
    std::string chosen = name;
    if (name.empty()) {
      for (auto it = file.beginName(); it != file.endName() && !base; ++it) {
        openvdb::GridBase::Ptr g = file.readGrid(it.gridName());
        if (openvdb::gridPtrCast<openvdb::FloatGrid>(g)) {
          base = g;
          chosen = it.gridName();
        }
      }
      if (!base) throw InputError(fmt::format("{}: no float grid in the file", path.string()));
    } else {
      if (file.hasGrid(name)) base = file.readGrid(name);
      if (!base) {
        std::string names;
        for (auto it = file.beginName(); it != file.endName(); ++it) names += (names.empty() ? "" : ", ") + it.gridName();
        throw InputError(fmt::format("{}: no grid named '{}' (the file has: {})", path.string(), name,
                                     names.empty() ? "none" : names));
      }
    }
    file.close();
    auto grid = openvdb::gridPtrCast<openvdb::FloatGrid>(base);
    if (!grid) throw InputError(fmt::format("{}: grid '{}' is not a float grid", path.string(), chosen));
    // This tool's files say their grid (metadata dcdm_dims, "NXxNYxNZ", cells from index 0):
    // the whole box, empty corners included; other files: the active voxels' box.
    openvdb::Coord lo(0, 0, 0);
    Dims dims;
    if (const auto meta = grid->getMetadata<openvdb::StringMetadata>("dcdm_dims")) {
      int nx = 0, ny = 0, nz = 0;
      char x1 = 0, x2 = 0;
      std::istringstream in(meta->value());
      if (!(in >> nx >> x1 >> ny >> x2 >> nz) || x1 != 'x' || x2 != 'x' || nx < 1 || ny < 1 || nz < 1)
        throw InputError(fmt::format("{}: grid '{}' has a malformed dcdm_dims '{}'", path.string(), chosen, meta->value()));
      dims = {nx, ny, nz};
      const openvdb::CoordBBox active = grid->evalActiveVoxelBoundingBox();
      if (!active.empty() && (active.min().x() < 0 || active.min().y() < 0 || active.min().z() < 0 ||
                              active.max().x() >= nx || active.max().y() >= ny || active.max().z() >= nz))
        throw InputError(fmt::format("{}: grid '{}' has active voxels outside its dcdm_dims {}", path.string(), chosen,
                                     dims.str()));
    } else {
      const openvdb::CoordBBox box = grid->evalActiveVoxelBoundingBox();
      if (box.empty()) throw InputError(fmt::format("{}: grid '{}' has no active value", path.string(), chosen));
      lo = box.min();
      const openvdb::Coord extent = box.dim();
      dims = {extent.x(), extent.y(), extent.z()};
    }
    if (dims.size() > max_cells)
      throw InputError(fmt::format("{}: grid '{}' spans {} voxels ({} cells), more than {}", path.string(), chosen,
                                   dims.str(), dims.size(), max_cells));
    Field<float> out(dims, 0.0f);
    for (auto it = grid->cbeginValueOn(); it; ++it) {
      openvdb::CoordBBox b;
      it.getBoundingBox(b);  // one voxel, or a tile's box
      const float v = *it;
      for (int k = b.min().z(); k <= b.max().z(); ++k)
        for (int j = b.min().y(); j <= b.max().y(); ++j)
          for (int i = b.min().x(); i <= b.max().x(); ++i) out(i - lo.x(), j - lo.y(), k - lo.z()) = v;
    }
    return out;
  } catch (const openvdb::Exception& e) {
    throw InputError(fmt::format("{}: not a readable OpenVDB file: {}", path.string(), e.what()));
  }
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

Field<float> read_vdb_density_box(const std::filesystem::path& path, const std::string&, std::int64_t) {
  throw InputError(fmt::format("{}: this build has no OpenVDB support", path.string()));
}

#endif

}  // namespace dcdm::io
