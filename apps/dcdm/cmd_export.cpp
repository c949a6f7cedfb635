// `dcdm export`: a built-in scene (or a user mesh) as a pressure system on disk:
// A (.mtx + reference .bin), b (.npy + .bin), flags (.npy, uint8), the coefficient arrays of a
// weighted scene (.npy) and system.json (layout: include/dcdm/system.hpp).
#include <algorithm>
#include <cstdio>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

struct ExportArgs {
  std::string scene = "bunny";
  int n = 64;
  std::string dims;
  std::string rhs = "random";
  std::uint64_t seed = 0;
  std::string mesh;
  std::vector<std::string> params;
  std::string out;
  bool list_scenes = false;
};

// Why a weighted system has no A.bin (the reference binary is float32).
std::string exact_in_float32_note(const PoissonSystem& sys) {
  const auto files = system_files(sys);
  return std::find(files.begin(), files.end(), "A.bin") == files.end()
             ? "; no A.bin (its float32 values would round A; A.mtx holds it exactly)"
             : "";
}

void print_summary(const PoissonSystem& sys, const std::string& out) {
  const auto& m = sys.meta;
  fmt::print("grid {}: {} fluid, {} air, {} solid cells; matrix {} rows, {} non-zeros\n", sys.domain.dims().str(),
             m["cells"]["fluid"].get<std::int64_t>(), m["cells"]["air"].get<std::int64_t>(),
             m["cells"]["solid"].get<std::int64_t>(), sys.matrix.rows, sys.matrix.nnz());
  std::string faces;
  for (const char* face : {"x-", "x+", "y-", "y+", "z-", "z+"})
    faces += fmt::format(" {}={}", face, m["faces"][face].get<std::string>());
  fmt::print("outer faces:{}\n", faces);
  const int singular = m["components"]["singular_count"].get<int>();
  fmt::print("fluid components: {}, singular (no Dirichlet contact): {}\n", m["components"]["count"].get<int>(), singular);
  for (const auto& s : m["components"]["singular"])
    fmt::print("  singular component {}: {} cells, first cell ({}, {}, {})\n", s["id"].get<int>(), s["size"].get<std::int64_t>(),
               s["first_cell"][0].get<int>(), s["first_cell"][1].get<int>(), s["first_cell"][2].get<int>());
  if (m.contains("rhs") && m["rhs"].value("projected", false))
    for (const auto& p : m["rhs"]["projection"])
      fmt::print("  b projected to zero mean on component {} (mean removed {:.6g})\n", p["component"].get<int>(),
                 p["mean_removed"].get<double>());
  if (m.contains("scene")) {
    const auto& sc = m["scene"];
    if (sc.contains("mesh")) {
      const auto& mesh = sc["mesh"];
      fmt::print("mesh: {} vertices, {} triangles, {} open boundary edges, {} non-manifold edges ({})\n",
                 mesh["vertices"].get<std::int64_t>(), mesh["triangles"].get<std::int64_t>(),
                 mesh["boundary_edges"].get<std::int64_t>(), mesh["non_manifold_edges"].get<std::int64_t>(),
                 mesh["watertight"].get<bool>() ? "watertight" : "not watertight");
      fmt::print("mesh voxelisation: {}\n", mesh["voxelisation"].get<std::string>());
    }
    for (const auto& w : sc["warnings"]) fmt::print(stderr, "dcdm: warning: {}\n", w.get<std::string>());
  }
  if (sys.domain.weighted())
    fmt::print("weighted operator: coefficients scale {}{}\n", sys.domain.coefficients->scale,
               exact_in_float32_note(sys));
  fmt::print("wrote {}/{{{}}}\n", out, fmt::join(system_files(sys), ", "));
}

void run_export(const ExportArgs& args) {
  if (args.list_scenes) {
    fmt::print("{}", scene_catalog_text());
    return;
  }
  if (args.out.empty()) throw InputError("--out: required (the folder to write the system to)");
  SceneSpec spec;
  spec.name = args.scene;
  scene_info(spec.name);  // unknown names fail before any work
  if (args.n < 1) throw InputError(fmt::format("--n: {} is not a positive grid size", args.n));
  spec.dims = args.dims.empty() ? Dims{args.n, args.n, args.n} : parse_dims(args.dims, "--dims");
  spec.seed = args.seed;
  if (!args.mesh.empty()) spec.mesh = args.mesh;
  spec.parameters = parse_scene_parameters(args.params);
  const RhsKind kind = parse_rhs_kind(args.rhs);
  PoissonSystem sys = make_scene_system(spec, kind, args.seed, kind == RhsKind::File ? args.rhs : std::string());
  io::remove_stale_temporaries(args.out, 0);  // fragments of a killed earlier export
  save_system(args.out, sys);
  fmt::print("scene {} seed {} rhs {}\n", spec.name, spec.seed, args.rhs);
  print_summary(sys, args.out);
}

RegisterCommand reg(10, [](CLI::App& root) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = root.add_subcommand("export", "Write a built-in scene's pressure system (A, b, flags, JSON) to a folder");
  cmd->add_option("--scene", args->scene, "Scene name (see --list-scenes)")->capture_default_str();
  cmd->add_option("--n", args->n, "Grid size N (an N^3 grid)")->capture_default_str();
  cmd->add_option("--dims", args->dims, "Grid NX,NY,NZ (overrides --n)");
  cmd->add_option("--rhs", args->rhs, "Right-hand side: random | smooth | FILE (.npy, .mtx, .bin)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the scene and of the right-hand side")->capture_default_str();
  cmd->add_option("--mesh", args->mesh, "Mesh file (OBJ, PLY, STL) for --scene mesh, or to replace the bunny");
  cmd->add_option("--param", args->params, "Scene parameter NAME=VALUE (repeatable; see --list-scenes)");
  cmd->add_option("--out", args->out, "Output folder (created)");
  cmd->add_flag("--list-scenes", args->list_scenes, "List the scenes and their parameters, then exit");
  cmd->callback([args] { run_export(*args); });
});

}  // namespace
}  // namespace dcdm::cli
