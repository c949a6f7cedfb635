// `dcdm render`: volume-rendered pictures of smoke density. Input is an exported frame folder
// (frame_NNNN/ with density.npy and flags.npy, as `dcdm simulate` writes them), a run folder
// (every frame_NNNN/ in it, one PNG each, optionally an MP4 and a GIF) or a density .npy
// (shape (nz, ny, nx); --flags adds the cell types).
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/render.hpp"
#include "dcdm/scenes.hpp"
#include "movie.hpp"
#include "vdb_backend.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;

struct RenderArgs {
  std::string input;
  std::string flags;
  std::string out;
  std::string size = "640";
  bool movie = false;
  double fps = 12.0;
  bool label = true;
  render::VolumeRenderOptions options;
  bool no_light = false, no_floor = false, no_solids = false;
  std::string grid = "density";  // the float grid of a .vdb input
  std::string level_set;         // a liquid's level set (.npy) to draw as a surface
  std::string scene;             // render a built-in scene (the liquid scene's surface)
  int n = 64;
  std::string dims;
  std::uint64_t seed = 0;
  std::vector<std::string> params;
};

Dims dims_of(const io::NpyArray& a, const fs::path& path) {
  if (a.shape.size() != 3)
    throw InputError(fmt::format("{}: shape with {} axes; a grid field has 3, (nz, ny, nx)", path.string(), a.shape.size()));
  const Dims d{int(a.shape[2]), int(a.shape[1]), int(a.shape[0])};
  check_grid_dims(d, path.string());
  return d;
}

Field<float> read_density(const fs::path& path) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file", path.string()));
  const io::NpyArray a = io::read_npy(path);
  const Dims d = dims_of(a, path);
  Field<float> f(d);
  if (a.dtype == io::DType::Float32) {  // the usual case: no conversion
    std::memcpy(f.data(), a.bytes.data(), std::size_t(d.size()) * sizeof(float));
  } else {
    const std::vector<double> v = a.to_double();
    for (std::int64_t c = 0; c < d.size(); ++c) f[c] = float(v[c]);
  }
  return f;
}

Field<CellType> read_flags(const fs::path& path) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file", path.string()));
  const io::NpyArray a = io::read_npy(path);
  const Dims d = dims_of(a, path);
  Field<CellType> f(d);
  std::vector<double> v;
  if (a.dtype != io::DType::UInt8) v = a.to_double();
  for (std::int64_t c = 0; c < d.size(); ++c) {
    const double x = a.dtype == io::DType::UInt8 ? double(a.bytes[c]) : v[c];
    if (!(x == 0 || x == 1 || x == 2))
      throw InputError(fmt::format("{}: value {} at index {} is not a cell type (0 solid, 1 fluid, 2 air)",
                                   path.string(), x, c));
    f[c] = static_cast<CellType>(int(x));
  }
  return f;
}

// Frame number of a folder named frame_NNNN, else -1.
int frame_number(const fs::path& dir) {
  static const std::regex re("frame_([0-9]{1,9})");
  std::smatch m;
  const std::string name = dir.filename().string();
  return std::regex_match(name, m, re) ? std::stoi(m[1].str()) : -1;
}

void render_field(const RenderArgs& a, const Field<float>& density, const fs::path& density_path,
                  const fs::path& flags_path, int frame, const fs::path& out,
                  std::chrono::steady_clock::time_point t0, const Field<CellType>* given_cells = nullptr,
                  const Field<float>* given_liquid = nullptr) {
  std::unique_ptr<Field<CellType>> cells;
  if (!flags_path.empty()) {
    cells = std::make_unique<Field<CellType>>(read_flags(flags_path));
    if (cells->dims() != density.dims())
      throw InputError(fmt::format("{}: {} cells, but {} has {}", flags_path.string(), cells->dims().str(),
                                   density_path.string(), density.dims().str()));
  }
  std::unique_ptr<Field<float>> liquid;
  if (!a.level_set.empty()) {
    liquid = std::make_unique<Field<float>>(read_density(a.level_set));  // any float .npy of the grid's shape
    if (liquid->dims() != density.dims())
      throw InputError(fmt::format("--level-set {}: {} cells, but {} has {}", a.level_set, liquid->dims().str(),
                                   density_path.string(), density.dims().str()));
  }
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  const double render_s = write_rendered_png(out, density, given_cells ? given_cells : cells.get(), a.options,
                                             a.label ? frame : -1, density_path.string(),
                                             given_liquid ? given_liquid : liquid.get());
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("render: {} ({}x{}, {} cells: {:.2f} s rendering, {:.2f} s in all)\n", out.string(), a.options.width,
             a.options.height, density.dims().str(), render_s, total_s);
  std::fflush(stdout);
}

void render_one(const RenderArgs& a, const fs::path& density_path, const fs::path& flags_path, int frame,
                const fs::path& out) {
  const auto t0 = std::chrono::steady_clock::now();
  render_field(a, read_density(density_path), density_path, flags_path, frame, out, t0);
}

void run_render(RenderArgs a) {
  parse_image_size(a.size, "--size", a.options.width, a.options.height);
  if (a.no_light) a.options.lighting = false;
  if (a.no_floor) a.options.floor = false;
  if (a.no_solids) a.options.solids = false;
  if (!a.scene.empty()) {
    // A built-in scene: its obstacles and, for the liquid scene, the liquid's surface.
    if (!a.input.empty()) throw InputError("--scene: give either an input or --scene, not both");
    if (a.movie) throw InputError("--movie: needs a run folder, not a scene");
    SceneSpec spec;
    spec.name = a.scene;
    spec.dims = a.dims.empty() ? Dims{a.n, a.n, a.n} : parse_dims(a.dims, "--dims");
    spec.seed = a.seed;
    spec.parameters = parse_scene_parameters(a.params, "--param");
    const auto t0 = std::chrono::steady_clock::now();
    const Domain domain = make_scene(spec);
    std::unique_ptr<Field<float>> phi;
    if (spec.name == "liquid") phi = std::make_unique<Field<float>>(liquid_level_set(spec));
    const Field<float> density(spec.dims, 0.0f);
    const fs::path out = a.out.empty() ? fs::path(fmt::format("{}-{}.png", spec.name, spec.dims.str())) : fs::path(a.out);
    render_field(a, density, spec.name, a.flags, -1, out, t0, &domain.cells, phi.get());
    return;
  }
  if (a.input.empty()) throw InputError("give an input (a frame or run folder, a density .npy or .vdb) or --scene");
  const fs::path in = a.input;
  if (!fs::exists(in)) throw InputError(fmt::format("{}: no such file or folder", in.string()));

  if (fs::is_regular_file(in)) {
    if (in.extension() == ".vdb") {  // a float grid of any extent: its active box is the volume
      if (a.movie) throw InputError("--movie: needs a run folder (frame_NNNN/ folders), not one file");
      const auto t0 = std::chrono::steady_clock::now();
      const Field<float> density = vdb_backend().read_density(in, a.grid);
      const fs::path out = a.out.empty() ? fs::path(in).replace_extension(".png") : fs::path(a.out);
      render_field(a, density, in, a.flags, -1, out, t0);
      return;
    }
    if (in.extension() != ".npy") throw InputError(fmt::format("{}: expected a density .npy or a frame folder", in.string()));
    if (a.movie) throw InputError("--movie: needs a run folder (frame_NNNN/ folders), not one file");
    const fs::path out = a.out.empty() ? fs::path(in).replace_extension(".png") : fs::path(a.out);
    render_one(a, in, a.flags, -1, out);
    return;
  }
  if (!fs::is_directory(in))  // a pipe, a device, a socket: neither a file to read nor a folder
    throw InputError(fmt::format("{}: not a regular file nor a folder (expected a density .npy, a frame folder or a "
                                 "run folder)",
                                 in.string()));
  if (fs::exists(in / "density.npy")) {  // one frame folder
    if (a.movie) throw InputError("--movie: needs a run folder (frame_NNNN/ folders), not one frame");
    const fs::path flags = !a.flags.empty() ? fs::path(a.flags) : fs::exists(in / "flags.npy") ? in / "flags.npy" : fs::path();
    const fs::path out = a.out.empty() ? in / "render.png" : fs::path(a.out);
    render_one(a, in / "density.npy", flags, frame_number(fs::absolute(in).lexically_normal()), out);
    return;
  }
  // A run folder: every frame_NNNN/ with a density.
  std::vector<std::pair<int, fs::path>> frames;
  for (const auto& e : fs::directory_iterator(in)) {
    const int n = frame_number(e.path());
    if (e.is_directory() && n >= 0 && fs::exists(e.path() / "density.npy")) frames.emplace_back(n, e.path());
  }
  std::sort(frames.begin(), frames.end());
  if (frames.empty())
    throw InputError(fmt::format("{}: neither a frame folder (density.npy) nor a run folder with frame_NNNN/density.npy "
                                 "(dcdm simulate writes them)",
                                 in.string()));
  if (!a.flags.empty()) throw InputError("--flags: only for a single density .npy or frame folder");
  const fs::path out_dir = a.out.empty() ? in / "render" : fs::path(a.out);
  fs::create_directories(out_dir);
  for (const auto& [n, dir] : frames) {
    const fs::path out = out_dir / fmt::format("render_{:04d}.png", n);
    render_one(a, dir / "density.npy", fs::exists(dir / "flags.npy") ? dir / "flags.npy" : fs::path(), n, out);
  }
  if (a.movie) {
    std::vector<fs::path> pngs;
    for (const auto& [n, dir] : frames) pngs.push_back(out_dir / fmt::format("render_{:04d}.png", n));
    make_movie_for_command(pngs, out_dir / "movie", a.fps);
  }
}

RegisterCommand reg(45, [](CLI::App& root) {
  auto args = std::make_shared<RenderArgs>();
  auto* cmd = root.add_subcommand(
      "render", "Volume-render smoke density (a frame folder, a run folder, a .npy or a .vdb) to PNG; --movie: MP4 and GIF");
  cmd->add_option("input", args->input,
                  "A frame folder (density.npy + flags.npy, written by dcdm simulate), a run folder (all its "
                  "frame_NNNN/), a density .npy of shape (nz, ny, nx), or an OpenVDB file (.vdb: dcdm simulate "
                  "--vdb, Houdini, Blender); or --scene");
  cmd->add_option("--scene", args->scene,
                  "Render a built-in scene instead: its obstacles and, for the liquid scene, the liquid's surface "
                  "from its level set (with --n/--dims, --seed, --param as dcdm export)");
  cmd->add_option("--n", args->n, "Grid N^3 for --scene")->check(CLI::Range(4, 1024))->capture_default_str();
  cmd->add_option("--dims", args->dims, "Grid NX,NY,NZ for --scene");
  cmd->add_option("--seed", args->seed, "Seed of --scene");
  cmd->add_option("--param", args->params, "Parameter NAME=VALUE of --scene (repeatable)");
  cmd->add_option("--level-set", args->level_set,
                  "A liquid's level set (.npy, (nz, ny, nx), liquid where < 0, in cells) drawn as a surface with the "
                  "density");
  cmd->add_option("--out", args->out,
                  "Output PNG (one frame; default FRAME/render.png) or folder (a run; default RUN/render/)");
  cmd->add_option("--flags", args->flags, "Cell types .npy (uint8, 0 solid) for a density .npy or .vdb");
  cmd->add_option("--grid", args->grid,
                  "The float grid of a .vdb input (its active voxels' box is rendered; empty: the first float grid)")
      ->capture_default_str();
  cmd->add_option("--size", args->size, "Image size N or WxH in pixels")->capture_default_str();
  cmd->add_flag("--movie", args->movie, "Also assemble the frames of a run folder into movie.mp4 and movie.gif (ffmpeg)");
  cmd->add_option("--fps", args->fps, "Frames per second of the movie")->check(CLI::Range(1.0, 120.0))->capture_default_str();
  cmd->add_option("--azimuth", args->options.azimuth_deg, "Camera azimuth in degrees (0: looking along +y)")
      ->check(CLI::Range(-360.0, 360.0))
      ->capture_default_str();
  cmd->add_option("--elevation", args->options.elevation_deg, "Camera elevation in degrees")
      ->check(CLI::Range(-89.0, 89.0))
      ->capture_default_str();
  cmd->add_option("--extinction", args->options.extinction,
                  "Optical depth of density 1 across the longest side of the box")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  cmd->add_flag("--no-light", args->no_light, "Absorption only: no light, no scattering (transmittance x background)");
  cmd->add_flag("--no-floor", args->no_floor, "Do not draw the floor");
  cmd->add_flag("--no-solids", args->no_solids, "Do not draw the obstacles (Solid cells)");
  cmd->add_flag("--label,!--no-label", args->label, "Stamp the frame number on the picture (default: on)");
  cmd->callback([args] { run_render(*args); });
});

}  // namespace
}  // namespace dcdm::cli
