// Triangle meshes: assimp loading, topology, robust voxelisation by 3-direction parity ray
// casting with a majority vote (see include/dcdm/mesh.hpp).
#include "dcdm/mesh.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#ifdef DCDM_HAVE_ASSIMP
#include <assimp/Importer.hpp>
#include <assimp/postprocess.h>
#include <assimp/scene.h>
#endif

#include "dcdm/error.hpp"

namespace dcdm {

std::array<double, 3> TriangleMesh::min_corner() const {
  std::array<double, 3> m{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
                          std::numeric_limits<double>::infinity()};
  for (const auto& v : vertices)
    for (int a = 0; a < 3; ++a) m[a] = std::min(m[a], v[a]);
  return m;
}

std::array<double, 3> TriangleMesh::max_corner() const {
  std::array<double, 3> m{-std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity()};
  for (const auto& v : vertices)
    for (int a = 0; a < 3; ++a) m[a] = std::max(m[a], v[a]);
  return m;
}

// ---------------------------------------------------------------- loading

namespace {

struct PositionHash {
  std::size_t operator()(const std::array<double, 3>& p) const {
    std::size_t h = 1469598103934665603ull;
    for (double x : p) {
      if (x == 0.0) x = 0.0;  // -0 and +0 weld
      std::uint64_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      h = (h ^ bits) * 1099511628211ull;
    }
    return h;
  }
};

// Element counts that a PLY or binary STL header declares are checked against the bytes the
// file holds before the loader sees them: a 200-byte file that claims 10^9 vertices would
// otherwise make it allocate gigabytes first. Each PLY entry needs at least 2 bytes per
// property in ASCII ("0 ") and the properties' sizes in binary (a list at least its count);
// a binary STL is exactly 84 + 50 * triangles bytes.
void check_declared_counts(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const auto size = static_cast<std::uint64_t>(std::filesystem::file_size(path));
  std::string head(static_cast<std::size_t>(std::min<std::uint64_t>(size, 65536)), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (head.rfind("ply", 0) == 0) {
    const auto end = head.find("end_header");
    if (end == std::string::npos) return;  // the loader reports a malformed header
    const auto body_start = head.find('\n', end);
    const std::uint64_t body = body_start == std::string::npos ? 0 : size - (body_start + 1);
    const bool ascii = head.find("format ascii") != std::string::npos;
    static const std::map<std::string, int> bytes = {{"char", 1},  {"uchar", 1},  {"int8", 1},   {"uint8", 1},
                                                     {"short", 2}, {"ushort", 2}, {"int16", 2},  {"uint16", 2},
                                                     {"int", 4},   {"uint", 4},   {"int32", 4},  {"uint32", 4},
                                                     {"float", 4}, {"float32", 4}, {"double", 8}, {"float64", 8}};
    std::istringstream lines(head.substr(0, end));
    std::string line, element;
    long double need = 0, count = 0, per_entry = 0;
    const auto close_element = [&] { need += count * std::max<long double>(per_entry, 1); };
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string key;
      words >> key;
      if (key == "element") {
        close_element();
        words >> element >> count;
        if (!words || count < 0) return;  // the loader reports it
        per_entry = 0;
      } else if (key == "property") {
        std::string type;
        words >> type;
        if (type == "list") {
          std::string count_type;
          words >> count_type;
          per_entry += ascii ? 2 : (bytes.count(count_type) ? bytes.at(count_type) : 1);
        } else {
          per_entry += ascii ? 2 : (bytes.count(type) ? bytes.at(type) : 1);
        }
      }
    }
    close_element();
    if (need > static_cast<long double>(body))
      throw InputError(fmt::format("{}: the PLY header declares elements that need at least {:.0f} bytes, but the "
                                   "file holds {} after the header (truncated file or a lying header)",
                                   path.string(), static_cast<double>(need), body));
    return;
  }
  if (size >= 84 && head.rfind("solid", 0) != 0) {
    std::uint32_t triangles = 0;
    std::memcpy(&triangles, head.data() + 80, sizeof triangles);
    const std::uint64_t expected = 84 + 50ull * triangles;
    const auto ext = path.extension().string();
    if ((ext == ".stl" || ext == ".STL") && expected != size)
      throw InputError(fmt::format("{}: binary STL declares {} triangles ({} bytes) but the file has {} bytes",
                                   path.string(), triangles, expected, size));
  }
}

}  // namespace

TriangleMesh load_mesh(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(fmt::format("{}: mesh file not found (or not a regular file)", path.string()));
  check_declared_counts(path);
#ifndef DCDM_HAVE_ASSIMP
  throw InputError(fmt::format("{}: this build has no mesh loader (assimp was not found)", path.string()));
#else
  Assimp::Importer importer;
  const aiScene* scene = importer.ReadFile(
      path.string(), aiProcess_Triangulate | aiProcess_PreTransformVertices | aiProcess_SortByPType);
  if (!scene || (scene->mFlags & AI_SCENE_FLAGS_INCOMPLETE) || !scene->mRootNode)
    throw InputError(fmt::format("{}: cannot load mesh: {}", path.string(), importer.GetErrorString()));
  TriangleMesh mesh;
  std::unordered_map<std::array<double, 3>, std::int32_t, PositionHash> index;
  for (unsigned m = 0; m < scene->mNumMeshes; ++m) {
    const aiMesh* am = scene->mMeshes[m];
    if (!(am->mPrimitiveTypes & aiPrimitiveType_TRIANGLE)) continue;
    std::vector<std::int32_t> welded(am->mNumVertices);
    for (unsigned v = 0; v < am->mNumVertices; ++v) {
      std::array<double, 3> p{am->mVertices[v].x, am->mVertices[v].y, am->mVertices[v].z};
      if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2]))
        throw InputError(fmt::format("{}: mesh {} vertex {} is not finite", path.string(), m, v));
      for (double& x : p)
        if (x == 0.0) x = 0.0;
      auto [it, inserted] = index.try_emplace(p, static_cast<std::int32_t>(mesh.vertices.size()));
      if (inserted) mesh.vertices.push_back(p);
      welded[v] = it->second;
    }
    for (unsigned f = 0; f < am->mNumFaces; ++f) {
      const aiFace& face = am->mFaces[f];
      if (face.mNumIndices != 3) continue;  // points and lines sorted out by aiProcess_SortByPType
      mesh.triangles.push_back({welded[face.mIndices[0]], welded[face.mIndices[1]], welded[face.mIndices[2]]});
    }
  }
  if (mesh.triangles.empty()) throw InputError(fmt::format("{}: the file holds no triangles", path.string()));
  return mesh;
#endif
}

// ---------------------------------------------------------------- topology

MeshTopology analyse_topology(const TriangleMesh& mesh) {
  MeshTopology t;
  t.vertices = static_cast<std::int64_t>(mesh.vertices.size());
  t.triangles = static_cast<std::int64_t>(mesh.triangles.size());
  std::vector<std::uint64_t> edges;
  edges.reserve(mesh.triangles.size() * 3);
  for (const auto& tri : mesh.triangles) {
    if (tri[0] == tri[1] || tri[1] == tri[2] || tri[0] == tri[2]) {
      ++t.degenerate_triangles;
      continue;
    }
    for (int e = 0; e < 3; ++e) {
      auto a = static_cast<std::uint32_t>(tri[e]), b = static_cast<std::uint32_t>(tri[(e + 1) % 3]);
      if (a > b) std::swap(a, b);
      edges.push_back((std::uint64_t(a) << 32) | b);
    }
  }
  std::sort(edges.begin(), edges.end());
  for (std::size_t i = 0; i < edges.size();) {
    std::size_t j = i;
    while (j < edges.size() && edges[j] == edges[i]) ++j;
    ++t.edges;
    if (j - i == 1) ++t.boundary_edges;
    if (j - i > 2) ++t.non_manifold_edges;
    i = j;
  }
  return t;
}

// ---------------------------------------------------------------- placement

TriangleMesh place_mesh(const TriangleMesh& mesh, const MeshPlacement& pl) {
  if (mesh.vertices.empty() || mesh.triangles.empty()) throw InputError("mesh has no triangles to place");
  if (pl.up_axis < 0 || pl.up_axis > 2) throw InputError(fmt::format("mesh up axis {} is not 0, 1 or 2", pl.up_axis));
  // Cyclic permutation (a rotation) that takes the mesh's up axis to z.
  const int from[3] = {(pl.up_axis + 1) % 3, (pl.up_axis + 2) % 3, pl.up_axis};
  TriangleMesh out;
  out.triangles = mesh.triangles;
  out.vertices.reserve(mesh.vertices.size());
  for (const auto& v : mesh.vertices) out.vertices.push_back({v[from[0]], v[from[1]], v[from[2]]});
  const auto lo = out.min_corner(), hi = out.max_corner();
  double scale = std::numeric_limits<double>::infinity();
  for (int a = 0; a < 3; ++a) {
    const double extent = hi[a] - lo[a];
    const double room = pl.box_max[a] - pl.box_min[a];
    if (room <= 0) throw InputError("mesh placement box is empty");
    if (extent > 0) scale = std::min(scale, room / extent);
  }
  if (!std::isfinite(scale)) throw InputError("mesh is a single point: nothing to voxelise");
  std::array<double, 3> shift;
  for (int a = 0; a < 3; ++a) {
    const double centre_box = 0.5 * (pl.box_min[a] + pl.box_max[a]);
    const double centre_mesh = 0.5 * (lo[a] + hi[a]) * scale;
    shift[a] = centre_box - centre_mesh;
  }
  if (pl.rest_on_floor) shift[2] = pl.box_min[2] - lo[2] * scale;
  for (auto& v : out.vertices)
    for (int a = 0; a < 3; ++a) v[a] = v[a] * scale + shift[a];
  return out;
}

// ---------------------------------------------------------------- voxelisation

namespace {

struct P2 {
  double u, v;
};

// Sign-consistent edge function: (b - a) x (p - a), always evaluated from the lexicographically
// smaller endpoint, so the two triangles sharing an edge get exactly opposite values.
inline double edge_raw(P2 a, P2 b, P2 p) { return (b.u - a.u) * (p.v - a.v) - (b.v - a.v) * (p.u - a.u); }
inline double edge_function(P2 a, P2 b, P2 p) {
  const bool swap = b.u < a.u || (b.u == a.u && b.v < a.v);
  return swap ? -edge_raw(b, a, p) : edge_raw(a, b, p);
}
// Tie-break for a point exactly on an edge: the edge owns it when its direction points to
// +v (or along -u when horizontal). An edge and its reverse never both own a point, and the
// rule equals perturbing the point by (-eps, -eps^2), so a point on a shared vertex of a
// covering fan lies in exactly one triangle.
inline bool owns(P2 a, P2 b) { return (b.v - a.v) > 0 || ((b.v - a.v) == 0 && (b.u - a.u) < 0); }

// Parity of crossings along one axis for the cells of `box`: each ray (one per column of cell
// centres through the box) records the depths at which it crosses the surface along its whole
// line, so a cell's parity is that of the whole grid's ray through it.
void cast_rays(const TriangleMesh& m, const CellBox& box, int axis, std::vector<std::uint8_t>& inside_votes,
               std::vector<std::uint8_t>& voters, std::int64_t& abstaining) {
  const Dims& s = box.size;
  const int n[3] = {s.nx, s.ny, s.nz};
  const int au = (axis + 1) % 3, av = (axis + 2) % 3;
  const int nu = n[au], nv = n[av], nt = n[axis];
  const int lu = box.lo[au], lv = box.lo[av], lt = box.lo[axis];  // the box's first column and depth
  std::vector<std::vector<double>> hits(static_cast<std::size_t>(nu) * nv);
  for (const auto& tri : m.triangles) {
    const auto& A = m.vertices[tri[0]];
    const auto& B = m.vertices[tri[1]];
    const auto& C = m.vertices[tri[2]];
    P2 a{A[au], A[av]}, b{B[au], B[av]}, c{C[au], C[av]};
    double da = A[axis], db = B[axis], dc = C[axis];
    double area = edge_function(a, b, c);
    if (area == 0.0 || !std::isfinite(area)) continue;  // edge-on to the rays: no crossing
    if (area < 0) {
      std::swap(b, c);
      std::swap(db, dc);
      area = -area;
    }
    // Ray columns of the box whose centre (iu + 0.5, iv + 0.5) can fall in the triangle.
    const double umin = std::min({a.u, b.u, c.u}), umax = std::max({a.u, b.u, c.u});
    const double vmin = std::min({a.v, b.v, c.v}), vmax = std::max({a.v, b.v, c.v});
    const int iu0 = std::max(lu, static_cast<int>(std::ceil(umin - 0.5)));
    const int iu1 = std::min(lu + nu - 1, static_cast<int>(std::floor(umax - 0.5)));
    const int iv0 = std::max(lv, static_cast<int>(std::ceil(vmin - 0.5)));
    const int iv1 = std::min(lv + nv - 1, static_cast<int>(std::floor(vmax - 0.5)));
    const bool own_ab = owns(a, b), own_bc = owns(b, c), own_ca = owns(c, a);
    for (int iv = iv0; iv <= iv1; ++iv)
      for (int iu = iu0; iu <= iu1; ++iu) {
        const P2 p{iu + 0.5, iv + 0.5};
        const double wc = edge_function(a, b, p);  // weight of c
        const double wa = edge_function(b, c, p);  // weight of a
        const double wb = edge_function(c, a, p);  // weight of b
        const bool in = (wc > 0 || (wc == 0 && own_ab)) && (wa > 0 || (wa == 0 && own_bc)) &&
                        (wb > 0 || (wb == 0 && own_ca));
        if (!in) continue;
        const double depth = (wa * da + wb * db + wc * dc) / (wa + wb + wc);
        hits[static_cast<std::size_t>(iv - lv) * nu + (iu - lu)].push_back(depth);
      }
  }
  // Each cell's vote from its ray: every cell of a ray that does not abstain is counted, and
  // the cells between a pair of crossings (sorted depths d0 <= d1: d0 < centre and not
  // d1 < centre, the same comparisons as counting the crossings below each centre) vote
  // inside. The counts go row by row over runs of consecutive cells (the rays of a row are
  // consecutive in x where they run along y or z), the inside votes only over inside cells.
  const std::int64_t stride[3] = {1, s.nx, std::int64_t(s.nx) * s.ny};
  std::uint8_t* const votes = inside_votes.data();
  std::uint8_t* const counted = voters.data();
  std::int64_t odd = 0;
  // Rays (iu, iv) as (w, o): w runs along x when the rays do not (width nw), o over the rest.
  const bool x_in_u = au == 0;
  const int nw = axis == 0 ? 1 : s.nx, no = axis == 0 ? nu * nv : (x_in_u ? nv : nu);
  // The first depth index t whose centre lt + t + 0.5 the predicate holds for, in [0, nt].
  const auto first_t = [&](auto holds) {
    int lo = 0, hi = nt;  // holds is monotone in t: false ... false true ... true
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (holds(lt + mid + 0.5)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
#pragma omp parallel reduction(+ : odd)
  {
    std::vector<std::uint8_t> active(static_cast<std::size_t>(nw));
#pragma omp for schedule(dynamic, 4)
    for (int o = 0; o < no; ++o) {
      std::int64_t base = 0;  // the row's first cell at depth 0
      for (int w = 0; w < nw; ++w) {
        // Ray index r = iv * nu + iu of the w-th ray of row o.
        const int iu = axis == 0 ? o % nu : (x_in_u ? w : o), iv = axis == 0 ? o / nu : (x_in_u ? o : w);
        auto& h = hits[static_cast<std::size_t>(iv) * nu + iu];
        if (w == 0) base = iu * stride[au] + iv * stride[av];
        active[static_cast<std::size_t>(w)] = h.size() % 2 == 0;
        if (h.size() % 2 == 1) {
          ++odd;  // went through a hole: this ray abstains
          continue;
        }
        std::sort(h.begin(), h.end());
        for (std::size_t c = 0; c + 1 < h.size(); c += 2) {
          const double d0 = h[c], d1 = h[c + 1];
          const int t0 = first_t([d0](double centre) { return d0 < centre; });
          const int t1 = first_t([d1](double centre) { return d1 < centre; });
          for (int t = t0; t < t1; ++t) votes[base + std::int64_t(t) * stride[axis] + w] += 1;
        }
      }
      for (int t = 0; t < nt; ++t) {
        std::uint8_t* const row = counted + base + std::int64_t(t) * stride[axis];
        for (int w = 0; w < nw; ++w) row[w] += active[static_cast<std::size_t>(w)];
      }
    }
  }
  abstaining += odd;
}

}  // namespace

Field<std::uint8_t> voxelise_mesh_part(const TriangleMesh& mesh, const Dims& dims, const CellBox& box,
                                       const MeshPlacement& placement, VoxelisationReport* report) {
  if (!box.inside(dims))
    throw InputError(fmt::format("voxelise_mesh: box {} at ({}, {}, {}) is not inside the {} grid", box.size.str(),
                                 box.lo[0], box.lo[1], box.lo[2], dims.str()));
  const TriangleMesh placed = place_mesh(mesh, placement);
  for (const auto& t : placed.triangles)
    for (auto v : t)
      if (v < 0 || v >= static_cast<std::int32_t>(placed.vertices.size()))
        throw InputError(fmt::format("mesh triangle refers to vertex {} of {}", v, placed.vertices.size()));
  const auto n = static_cast<std::size_t>(box.cells());
  std::vector<std::uint8_t> inside_votes(n, 0), voters(n, 0);
  std::int64_t abstaining = 0;
  for (int axis = 0; axis < 3; ++axis) cast_rays(placed, box, axis, inside_votes, voters, abstaining);
  Field<std::uint8_t> inside(box.size, 0);
  std::int64_t count = 0, disagree = 0;
  const std::int64_t cells = box.cells();
#pragma omp parallel for schedule(static) reduction(+ : count, disagree)
  for (std::int64_t c = 0; c < cells; ++c) {
    const std::uint8_t votes = inside_votes[static_cast<std::size_t>(c)], of = voters[static_cast<std::size_t>(c)];
    inside[c] = 2 * votes > of ? 1 : 0;
    count += inside[c];
    disagree += votes > 0 && votes < of;
  }
  if (report) {
    report->topology = analyse_topology(mesh);
    report->inside_cells = count;
    report->abstaining_rays = abstaining;
    report->disagreeing_cells = disagree;
    report->method =
        "parity ray casting along x, y and z through cell centres, majority vote; rays with an odd "
        "crossing count abstain";
  }
  return inside;
}

Field<std::uint8_t> voxelise_mesh(const TriangleMesh& mesh, const Dims& dims, const MeshPlacement& placement,
                                  VoxelisationReport* report) {
  return voxelise_mesh_part(mesh, dims, CellBox{{0, 0, 0}, dims}, placement, report);
}

// ---------------------------------------------------------------- simple meshes

TriangleMesh make_box_mesh(std::array<double, 3> lo, std::array<double, 3> hi) {
  TriangleMesh m;
  for (int c = 0; c < 8; ++c)
    m.vertices.push_back({(c & 1) ? hi[0] : lo[0], (c & 2) ? hi[1] : lo[1], (c & 4) ? hi[2] : lo[2]});
  // Outward-facing quads (counter-clockwise seen from outside), two triangles each.
  const int quads[6][4] = {{0, 4, 6, 2}, {1, 3, 7, 5}, {0, 1, 5, 4}, {2, 6, 7, 3}, {0, 2, 3, 1}, {4, 5, 7, 6}};
  for (const auto& q : quads) {
    m.triangles.push_back({q[0], q[1], q[2]});
    m.triangles.push_back({q[0], q[2], q[3]});
  }
  return m;
}

TriangleMesh make_sphere_mesh(std::array<double, 3> centre, double radius, int subdivisions) {
  const double t = (1.0 + std::sqrt(5.0)) / 2.0;
  std::vector<std::array<double, 3>> v = {{-1, t, 0}, {1, t, 0}, {-1, -t, 0}, {1, -t, 0}, {0, -1, t}, {0, 1, t},
                                          {0, -1, -t}, {0, 1, -t}, {t, 0, -1}, {t, 0, 1}, {-t, 0, -1}, {-t, 0, 1}};
  std::vector<std::array<std::int32_t, 3>> f = {{0, 11, 5}, {0, 5, 1},  {0, 1, 7},   {0, 7, 10}, {0, 10, 11},
                                                {1, 5, 9},  {5, 11, 4}, {11, 10, 2}, {10, 7, 6}, {7, 1, 8},
                                                {3, 9, 4},  {3, 4, 2},  {3, 2, 6},   {3, 6, 8},  {3, 8, 9},
                                                {4, 9, 5},  {2, 4, 11}, {6, 2, 10},  {8, 6, 7},  {9, 8, 1}};
  auto normalise = [](std::array<double, 3> p) {
    const double l = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
    return std::array<double, 3>{p[0] / l, p[1] / l, p[2] / l};
  };
  for (auto& p : v) p = normalise(p);
  for (int s = 0; s < subdivisions; ++s) {
    std::unordered_map<std::uint64_t, std::int32_t> mid;
    auto midpoint = [&](std::int32_t a, std::int32_t b) {
      const std::uint64_t key = (std::uint64_t(std::min(a, b)) << 32) | std::uint32_t(std::max(a, b));
      auto it = mid.find(key);
      if (it != mid.end()) return it->second;
      const auto& pa = v[a];
      const auto& pb = v[b];
      v.push_back(normalise({pa[0] + pb[0], pa[1] + pb[1], pa[2] + pb[2]}));
      const auto id = static_cast<std::int32_t>(v.size() - 1);
      mid.emplace(key, id);
      return id;
    };
    std::vector<std::array<std::int32_t, 3>> g;
    for (const auto& tri : f) {
      const auto ab = midpoint(tri[0], tri[1]), bc = midpoint(tri[1], tri[2]), ca = midpoint(tri[2], tri[0]);
      g.push_back({tri[0], ab, ca});
      g.push_back({tri[1], bc, ab});
      g.push_back({tri[2], ca, bc});
      g.push_back({ab, bc, ca});
    }
    f = std::move(g);
  }
  TriangleMesh m;
  for (const auto& p : v)
    m.vertices.push_back({centre[0] + radius * p[0], centre[1] + radius * p[1], centre[2] + radius * p[2]});
  m.triangles = std::move(f);
  return m;
}

}  // namespace dcdm
