// `dcdm simulate`: runs a smoke simulation and exports its pressure systems (the real
// workload), density slices as PNG and optionally density volumes as OpenVDB.
//
// Output folder:
//   frame_NNNN/          the pressure system of exported frame NNNN: flags.npy, b.npy and
//                        system.json (the flags, faces and coefficients define A; with
//                        --frame-matrix files also A.mtx, A.bin and b.bin, as `dcdm export`
//                        writes them), and density.npy
//                        (float32, (nz, ny, nx)): what `dcdm render` draws
//   png/density_NNNN.png mid-plane density slices (front and side), labelled, with a colour bar
//   render/render_NNNN.png volume-rendered picture (--render); render/movie.mp4, movie.gif (--movie)
//   vdb/density_NNNN.vdb density volume (--vdb)
//   frames.csv           one row per simulated frame: solve and timing figures
//   run.json             the options of the run
//   summary.json         totals at the end (seconds per frame, projection share)
//   checkpoint.bin       the full state after the last checkpointed frame (--resume)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "command.hpp"
#include "movie.hpp"
#include "vdb_backend.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/render.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/sim.hpp"
#include "dcdm/system.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct SimulateArgs {
  std::string scene = "plume";
  int n = 64;
  std::string dims;
  int frames = 100;
  int export_every = 10;
  int checkpoint_every = 0;  // 0 = at every exported frame
  std::uint64_t seed = 0;
  std::string out;
  std::string solver = "mgpcg";
  double rtol = 1e-6;
  int max_iterations = 1000;
  std::string advection = "semi-lagrangian";
  double vorticity = -1.0;  // < 0: the scene's default
  std::string mesh;
  std::vector<std::string> params_kv;  // --param: the bunny's placement
  bool vdb = false;
  bool png = true;
  int png_scale = 0;  // 0 = automatic
  bool render = false;
  bool movie = false;
  int render_every = 0;  // 0 = at the exported frames
  std::string render_size = "640";
  double fps = 12.0;
  bool resume = false;
  bool quiet = false;
  bool warm_start = false;
  bool no_matrix = false;
  std::string frame_matrix = "none";  // none | files
  SolverParams params;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const long t = std::lround(s);
  if (t >= 3600) return fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{}:{:02d}", t / 60, t % 60);
}

// Progress on stderr: a bar redrawn in place on a terminal, else one line per frame.
class Progress {
 public:
  Progress(int first, int last) : first_(first), last_(last), tty_(isatty(fileno(stderr)) != 0) {}
  bool tty() const { return tty_; }
  void clear() {
    if (tty_ && drawn_) std::fputs("\r\033[K", stderr);
  }
  void update(int frame) {
    const int done = frame - first_ + 1, total = last_ - first_ + 1;
    const double elapsed = seconds_since(start_);
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    const double eta = rate > 0 ? (last_ - frame) / rate : -1.0;
    if (tty_) {
      const int width = 30;
      const int filled = total > 0 ? done * width / total : width;
      fmt::print(stderr, "\r\033[K[{}{}] {}/{} frames  {:.2f} frames/s  ETA {}", std::string(filled, '#'),
                 std::string(width - filled, '.'), frame, last_, rate, format_duration(eta));
      drawn_ = true;
    } else {
      fmt::print(stderr, "progress: frame {}/{}  {:.2f} frames/s  ETA {}\n", frame, last_, rate,
                 format_duration(eta));
    }
    std::fflush(stderr);
  }
  void finish() {
    if (tty_ && drawn_) std::fputs("\n", stderr);
  }

 private:
  int first_, last_;
  bool tty_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
};

const char* kCsvHeader =
    "frame,time,fluid_cells,iterations,reason,final_residual,relative_residual,rhs_norm,"
    "max_div_before,max_div_after,compatibility_shift,advect_s,project_s,other_s,assemble_s,"
    "setup_s,solve_s,io_s,exported";

std::string csv_row(const sim::FrameStats& st, double io_seconds, bool exported) {
  return fmt::format("{},{},{},{},{},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.3e},{:.6f},{:.6f},{:.6f},{:.6f},"
                     "{:.6f},{:.6f},{:.6f},{}",
                     st.frame, st.time, st.fluid_cells, st.solve.iterations, to_string(st.solve.reason),
                     st.solve.final_residual, st.solve.relative_residual(), st.rhs_norm, st.max_div_before,
                     st.max_div_after, st.compatibility_shift, st.advect_seconds, st.project_seconds,
                     st.other_seconds, st.assemble_seconds, st.setup_seconds, st.solve_seconds, io_seconds,
                     exported ? 1 : 0);
}

// The summary of a whole run from its frames.csv rows (csv_row's columns), for a resumed run
// that has nothing left to simulate but lost its summary.json to a kill.
nlohmann::json summary_from_csv(const std::vector<std::string>& rows, int last_frame) {
  double advect = 0, project = 0, other = 0, io_seconds = 0, worst_div = 0;
  long iterations = 0;
  int frames = 0, unconverged = 0, first = 0;
  for (const std::string& row : rows) {
    std::vector<std::string> f;
    std::stringstream ss(row);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    if (f.size() < 19) continue;
    try {
      if (frames == 0) first = std::stoi(f[0]);
      iterations += std::stol(f[3]);
      if (f[4].rfind("converged", 0) != 0) ++unconverged;
      worst_div = std::max(worst_div, std::stod(f[9]));
      advect += std::stod(f[11]);
      project += std::stod(f[12]);
      other += std::stod(f[13]);
      io_seconds += std::stod(f[17]);
      ++frames;
    } catch (const std::exception&) {
      continue;  // a damaged row: left out of the totals
    }
  }
  const double step = advect + project + other;
  return {{"frames_simulated", frames},
          {"first_frame", first},
          {"last_frame", last_frame},
          {"recovered_from", "frames.csv"},
          {"step_seconds_per_frame", frames ? step / frames : 0.0},
          {"advect_seconds", advect},
          {"project_seconds", project},
          {"other_seconds", other},
          {"io_seconds", io_seconds},
          {"projection_share", step > 0 ? project / step : 0.0},
          {"mean_iterations", frames ? double(iterations) / frames : 0.0},
          {"unconverged_frames", unconverged},
          {"max_div_after", worst_div}};
}

// Rows of an earlier frames.csv up to and including `last_frame` (for --resume).
std::vector<std::string> read_csv_rows(const fs::path& path, int last_frame) {
  std::vector<std::string> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 || line.empty()) continue;
    int frame = 0;
    try {
      frame = std::stoi(line.substr(0, line.find(',')));
    } catch (const std::exception&) {
      throw InputError(fmt::format("{}:{}: not a frame row", path.string(), line_no));
    }
    if (frame <= last_frame) rows.push_back(line);
  }
  return rows;
}

std::string join_csv(const std::vector<std::string>& rows) {
  std::string s = std::string(kCsvHeader) + "\n";
  for (const auto& r : rows) s += r + "\n";
  return s;
}

// Whether a resume-tag key matters for this solver's pressure solutions: the network and DCDM
// settings only for the dcdm methods, the deflation count for dpcg, the MIC safety for mic0.
bool solver_uses(const std::string& solver, const std::string& key) {
  if (key == "model" || key == "dcdm_k" || key == "dcdm_fallback" || key == "dcdm_vectors" ||
      key == "network_input_scale" || key == "network_precision")
    return solver.rfind("dcdm", 0) == 0;
  if (key == "dpcg_k") return solver == "dpcg";
  if (key == "mic_safety") return solver == "mic0";
  return true;
}

// Keys added to the tag after checkpoints existed, with the value that older runs had.
const nlohmann::json& later_key_defaults() {
  static const nlohmann::json d = {
      {"dcdm_fallback", "best"}, {"dcdm_vectors", "double"}, {"network_input_scale", 0.0}, {"network_precision", "float32"},
      {"param", nlohmann::json::array()}};
  return d;
}

// What a checkpoint must agree with to be resumed: everything that changes the physics or
// the pressure solutions (not the frame count, export cadence or outputs).
nlohmann::json resume_tag(const SimulateArgs& a, const Dims& dims, const sim::SimConfig& c) {
  nlohmann::json j = {{"scene", a.scene},
                      {"dims", dims.str()},
                      {"seed", a.seed},
                      {"solver", a.solver},
                      {"rtol", a.rtol},
                      {"max_iterations", a.max_iterations},
                      {"advection", sim::to_string(c.advection)},
                      {"vorticity", c.vorticity},
                      {"warm_start", a.warm_start},
                      {"mesh", a.mesh},
                      {"param", a.params_kv},
                      {"model", a.params.model},
                      {"dcdm_k", a.params.dcdm_k},
                      {"dcdm_fallback", a.params.dcdm_fallback},
                      {"dcdm_vectors", a.params.dcdm_vectors},
                      {"network_input_scale", a.params.network_input_scale},
                      {"network_precision", a.params.network_precision},
                      {"dpcg_k", a.params.deflation_vectors},
                      {"mic_safety", a.params.mic_safety}};
  for (auto it = j.begin(); it != j.end();) {
    if (solver_uses(a.solver, it.key())) ++it;
    else it = j.erase(it);
  }
  return j;
}

// The first setting in which a stored tag differs from this command's ("" when it matches):
// every key this solver uses must agree; keys the solver ignores are skipped and keys newer
// than the checkpoint count at the value older versions used, so a checkpoint stays
// resumable across versions that only added options.
std::string resume_tag_difference(const std::string& stored_text, const nlohmann::json& current) {
  const auto stored = nlohmann::json::parse(stored_text, nullptr, false);
  if (stored.is_discarded() || !stored.is_object()) return fmt::format("options '{}' (not a JSON object)", stored_text);
  const std::string solver = current.value("solver", std::string());
  for (const auto& [key, value] : current.items()) {
    const nlohmann::json* was = stored.contains(key) ? &stored.at(key)
                                : later_key_defaults().contains(key) ? &later_key_defaults().at(key)
                                                                     : nullptr;
    if (!was) return fmt::format("{} not recorded, this command has {}", key, value.dump());
    if (*was != value) return fmt::format("{} = {}, this command has {}", key, was->dump(), value.dump());
  }
  for (const auto& [key, value] : stored.items())
    if (!current.contains(key) && solver_uses(solver, key))
      return fmt::format("{} = {}, not set by this command", key, value.dump());
  return "";
}

// InputError naming the folder, the file that records the earlier run and the setting.
[[noreturn]] void refuse_other_run(const fs::path& out, const fs::path& record, const std::string& difference) {
  throw InputError(fmt::format("{}: holds a different run ({}: {}); resume with that run's options or "
                               "write to another --out",
                               out.string(), record.filename().string(), difference));
}

void export_frame(const fs::path& dir, sim::SmokeSimulation& simulation, const sim::FrameStats& st,
                  const SimulateArgs& a) {
  fs::create_directories(dir);
  // The simulation's own domain, b and components go to the files (no copies; with matrix
  // files, save_system assembles A for them and frees it).
  const nlohmann::json meta = {{"source", "dcdm simulate"},
                 {"rhs",
                  {{"kind", "simulation"},
                   {"definition", "b = -div u* (unit spacing, solid faces at the solid's velocity), A p = b"}}},
                 {"simulation",
                  {{"scene", a.scene},
                   {"frame", st.frame},
                   {"time", st.time},
                   {"seed", a.seed},
                   {"advection", sim::to_string(simulation.config().advection)},
                   {"vorticity", simulation.config().vorticity},
                   {"solver", a.solver},
                   {"rtol", a.rtol},
                   {"iterations", st.solve.iterations},
                   {"reason", to_string(st.solve.reason)},
                   {"final_residual", st.solve.final_residual},
                   {"max_div_before", st.max_div_before},
                   {"max_div_after", st.max_div_after},
                   {"compatibility_shift", st.compatibility_shift}}}};
  save_system(dir, simulation.domain(), simulation.rhs(), meta,
              a.frame_matrix == "none" ? MatrixFiles::Omit : MatrixFiles::Write, &simulation.components());
  const auto& rho = simulation.density();
  std::vector<float> f(rho.vector().begin(), rho.vector().end());
  io::write_npy(dir / "density.npy", f, {rho.dims().nz, rho.dims().ny, rho.dims().nx});
}

void write_png_frame(const fs::path& path, const sim::SmokeSimulation& simulation, int frame, int scale) {
  int w = 0, h = 0;
  const auto rgb = render::density_slice_figure(simulation.density(), simulation.domain(), frame, w, h, scale);
  io::write_png(path, w, h, 3, rgb);
}

void write_render_frame(const fs::path& path, const sim::SmokeSimulation& simulation, int frame,
                        const render::VolumeRenderOptions& options) {
  const auto& rho = simulation.density();
  Field<float> f(rho.dims());
  for (std::int64_t c = 0; c < rho.size(); ++c) f[c] = static_cast<float>(std::max(rho[c], 0.0));
  write_rendered_png(path, f, &simulation.domain().cells, options, frame, "density");
}

void write_vdb_frame(const fs::path& path, const sim::SmokeSimulation& simulation) {
  const auto& rho = simulation.density();
  Field<float> f(rho.dims());
  for (std::int64_t c = 0; c < rho.size(); ++c) f[c] = static_cast<float>(rho[c]);
  vdb_backend().write_density(path, f, "density");
}

void run_simulate(const SimulateArgs& a) {
  const Dims dims = a.dims.empty() ? Dims{a.n, a.n, a.n} : parse_dims(a.dims, "--dims");
  if (a.out.empty()) throw InputError("--out: an output folder is required");
  render::VolumeRenderOptions render_options;
  parse_image_size(a.render_size, "--render-size", render_options.width, render_options.height);
  const bool render = a.render || a.movie || a.render_every > 0;
  if (a.vdb && !vdb_backend().available())
    throw InputError("--vdb: this build has no OpenVDB support (install libopenvdb-dev and rebuild)");
  check_system_fits_memory(dims, a.dims.empty() ? "--n" : "--dims");

  const fs::path mesh_path = a.mesh;
  const std::map<std::string, double> placement = parse_scene_parameters(a.params_kv, "--param");
  sim::SimConfig config =
      sim::make_scene(a.scene, dims, a.seed, nullptr, a.mesh.empty() ? nullptr : &mesh_path, &placement);
  config.advection = sim::parse_advection(a.advection);
  if (a.vorticity >= 0) config.vorticity = a.vorticity;
  config.solve.rtol = a.rtol;
  config.solve.max_iterations = a.max_iterations;
  config.warm_start = a.warm_start;
  config.assemble_matrix = false;  // matrix-free; --no-matrix is the default

  check_model_option({a.solver}, a.params);
  auto solver = make_solver(a.solver, a.params);
  sim::SmokeSimulation simulation(config, *solver);

  const fs::path out = a.out;
  fs::create_directories(out);
  // Fragments of a killed earlier run (the frame folders one level down).
  io::remove_stale_temporaries(out, 2);
  const fs::path ckpt = out / "checkpoint.bin";
  const nlohmann::json tag_json = resume_tag(a, dims, config);
  const std::string tag = tag_json.dump();
  // Without exported frames (--export-every 0) and --checkpoint-every: at the end only.
  const int checkpoint_every =
      a.checkpoint_every > 0 ? a.checkpoint_every : a.export_every > 0 ? a.export_every : a.frames;

  std::vector<std::string> rows;
  // run.json tells a different earlier run apart even where its checkpoint is gone: resuming
  // into it would mix its frames with this command's.
  if (a.resume && fs::exists(out / "run.json")) {
    const auto run = nlohmann::json::parse(io::read_file(out / "run.json"), nullptr, false);
    if (run.is_discarded() || !run.is_object() || !run.contains("options"))
      throw InputError(fmt::format("{}: not the run.json of a dcdm simulate run (malformed JSON or no 'options')",
                                   (out / "run.json").string()));
    const std::string difference = resume_tag_difference(run.at("options").dump(), tag_json);
    if (!difference.empty()) refuse_other_run(out, out / "run.json", difference);
  }
  if (a.resume && fs::exists(ckpt)) {
    simulation.load_checkpoint(ckpt, tag, [&](const std::string& stored) {
      const std::string difference = resume_tag_difference(stored, tag_json);
      if (!difference.empty()) refuse_other_run(out, ckpt, difference);
      return true;
    });
    rows = read_csv_rows(out / "frames.csv", simulation.frame());
    if (!a.quiet)
      fmt::print("resuming {} from frame {} ({})\n", out.string(), simulation.frame(), ckpt.string());
  } else if (a.resume && !a.quiet) {
    fmt::print("no checkpoint in {}: starting from frame 0\n", out.string());
  }
  // The movie covers every rendered frame of the run (earlier ones too, after --resume).
  auto make_run_movie = [&] {
    if (!a.movie) return;
    make_movie_for_command(numbered_pngs(out / "render", "render_"), out / "render" / "movie", a.fps);
  };
  const int first = simulation.frame() + 1;
  if (first > a.frames) {
    if (!a.quiet)
      fmt::print("{}: already at frame {} (--frames {}): nothing to do\n", out.string(), simulation.frame(),
                 a.frames);
    // A run killed after its last checkpoint but before summary.json: finish it from frames.csv.
    if (!fs::exists(out / "summary.json")) {
      io::write_file_atomic(out / "summary.json", summary_from_csv(rows, a.frames).dump(2) + "\n");
      if (!a.quiet) fmt::print("{}: wrote the missing summary.json from frames.csv\n", out.string());
    }
    make_run_movie();
    return;
  }

  nlohmann::json run = {{"command", "dcdm simulate"}, {"options", nlohmann::json::parse(tag)},
                        {"frames", a.frames},         {"export_every", a.export_every},
                        {"png", a.png},               {"vdb", a.vdb},
                        {"render", render},           {"movie", a.movie},
                        {"threads", omp_get_max_threads()}};
  io::write_file_atomic(out / "run.json", run.dump(2) + "\n");

  if (!a.quiet)
    fmt::print("simulate: scene {} {} frames {}..{} solver {} rtol {:g} advection {} seed {} -> {}\n", a.scene,
               dims.str(), first, a.frames, a.solver, a.rtol, sim::to_string(config.advection), a.seed,
               out.string());
  Progress progress(first, a.frames);
  const int png_scale = a.png_scale;  // 0: the figure's own
  double sum_advect = 0, sum_project = 0, sum_other = 0, sum_io = 0;
  long sum_iterations = 0;
  int simulated = 0, unconverged = 0;
  double worst_div = 0.0;
  const auto t_run = Clock::now();

  for (int frame = first; frame <= a.frames; ++frame) {
    const sim::FrameStats st = simulation.step();
    const bool exported = a.export_every > 0 && frame % a.export_every == 0;
    const auto t_io = Clock::now();
    {
    // The frame's files go to the page cache without a sync each (renamed whole, so a kill
    // leaves no fragment); the sync before the next checkpoint puts them on disk, ahead of it.
    const io::DeferredSync deferred;
    if (exported) {
      export_frame(out / fmt::format("frame_{:04d}", frame), simulation, st, a);
      if (a.png) {
        fs::create_directories(out / "png");
        write_png_frame(out / "png" / fmt::format("density_{:04d}.png", frame), simulation, frame, png_scale);
      }
      if (a.vdb) {
        fs::create_directories(out / "vdb");
        write_vdb_frame(out / "vdb" / fmt::format("density_{:04d}.vdb", frame), simulation);
      }
    }
    const bool rendered = render && (a.render_every > 0 ? frame % a.render_every == 0 : exported);
    if (rendered) {
      fs::create_directories(out / "render");
      write_render_frame(out / "render" / fmt::format("render_{:04d}.png", frame), simulation, frame,
                         render_options);
    }
    }
    const double io_seconds = seconds_since(t_io);
    rows.push_back(csv_row(st, io_seconds, exported));
    io::write_file_atomic(out / "frames.csv", join_csv(rows));
    // The checkpoint comes last: a frame is complete once its checkpoint exists, and the
    // frames written since the previous one reach the disk before it does.
    if (frame % checkpoint_every == 0 || frame == a.frames) {
      io::sync_filesystem(out);
      simulation.save_checkpoint(ckpt, tag);
    }

    sum_advect += st.advect_seconds;
    sum_project += st.project_seconds;
    sum_other += st.other_seconds;
    sum_io += io_seconds;
    sum_iterations += st.solve.iterations;
    worst_div = std::max(worst_div, st.max_div_after);
    ++simulated;
    if (!st.solve.converged()) ++unconverged;

    progress.clear();
    if (!a.quiet) {
      fmt::print("frame {:4d}  it {:4d} {}  |r| {:.3e} (rel {:.2e})  max|div u| {:.3e}  adv {:.3f} s  proj {:.3f} s  "
                 "other {:.3f} s  io {:.3f} s{}\n",
                 frame, st.solve.iterations, to_string(st.solve.reason), st.solve.final_residual,
                 st.solve.relative_residual(), st.max_div_after, st.advect_seconds, st.project_seconds,
                 st.other_seconds, io_seconds, exported ? "  exported" : "");
      std::fflush(stdout);
    }
    if (!st.solve.converged())
      fmt::print(stderr, "warning: frame {}: {}\n", frame, format_reason_line(st.solve));
    progress.update(frame);
  }
  progress.finish();

  const double wall = seconds_since(t_run);
  const double step_total = sum_advect + sum_project + sum_other;
  nlohmann::json summary = {
      {"frames_simulated", simulated},
      {"first_frame", first},
      {"last_frame", a.frames},
      {"wall_seconds", wall},
      {"seconds_per_frame", simulated ? wall / simulated : 0.0},
      {"step_seconds_per_frame", simulated ? step_total / simulated : 0.0},
      {"advect_seconds", sum_advect},
      {"project_seconds", sum_project},
      {"other_seconds", sum_other},
      {"io_seconds", sum_io},
      {"projection_share", step_total > 0 ? sum_project / step_total : 0.0},
      {"mean_iterations", simulated ? double(sum_iterations) / simulated : 0.0},
      {"unconverged_frames", unconverged},
      {"max_div_after", worst_div}};
  io::write_file_atomic(out / "summary.json", summary.dump(2) + "\n");
  if (!a.quiet && simulated > 0)
    fmt::print("done: {} frames in {:.2f} s ({:.3f} s/frame; advection {:.1f}%, projection {:.1f}%, other {:.1f}%, "
               "io {:.2f} s), mean {:.1f} iterations, max |div u| {:.3e}\n",
               simulated, wall, wall / simulated, 100 * sum_advect / step_total, 100 * sum_project / step_total,
               100 * sum_other / step_total, sum_io, double(sum_iterations) / simulated, worst_div);
  if (unconverged > 0)
    fmt::print(stderr, "warning: {} of {} frames did not reach --rtol {:g} (see frames.csv)\n", unconverged,
               simulated, a.rtol);
  make_run_movie();
}

RegisterCommand reg(40, [](CLI::App& root) {
  auto args = std::make_shared<SimulateArgs>();
  auto* cmd = root.add_subcommand(
      "simulate", "Run a smoke simulation and export its pressure systems (A, b, flags), PNG slices, VDB volumes, "
      "rendered pictures and a movie");
  cmd->add_option("--scene", args->scene, "Scene: plume, bunny or sphere (moving obstacle)")
      ->check(CLI::IsMember(sim::scene_names()))
      ->capture_default_str();
  cmd->add_option("--n", args->n, "Grid size N (N^3 cells)")->check(CLI::Range(8, 1024))->capture_default_str();
  cmd->add_option("--dims", args->dims, "Grid NX,NY,NZ (overrides --n)");
  cmd->add_option("--frames", args->frames, "Frames to simulate (one step per frame)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--export-every", args->export_every, "Export the system (and PNG/VDB) every K frames (0: never)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", args->checkpoint_every,
                  "Write checkpoint.bin every K frames (default: at every exported frame; always at the end)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--seed", args->seed, "Seed of the inflow's noise and jitter")->capture_default_str();
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->add_option("--solver", args->solver, "Pressure solver method (a registered name, e.g. cg, ic0, mgpcg, dcdm:MODEL)")
      ->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "Relative tolerance of the pressure solve")
      ->check(CLI::Range(1e-14, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-iterations,--max-iters", args->max_iterations, "Iteration limit of the pressure solve")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  cmd->add_option("--advection", args->advection, "Advection: semi-lagrangian, maccormack or bfecc")
      ->check(CLI::IsMember({"semi-lagrangian", "maccormack", "bfecc"}))
      ->capture_default_str();
  cmd->add_option("--vorticity", args->vorticity, "Vorticity confinement epsilon (default: the scene's, 0)")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--mesh", args->mesh, "Mesh file replacing the bunny (--scene bunny)")->check(CLI::ExistingFile);
  cmd->add_option("--param", args->params_kv,
                  "The bunny's placement NAME=VALUE (repeatable; the bunny scene's parameters of dcdm export "
                  "--list-scenes; here scale=0.5 and floor=0.3 unless given, so that the smoke rises under it)");
  cmd->add_flag("--vdb", args->vdb, "Also write the density volume as OpenVDB (vdb/density_NNNN.vdb)");
  cmd->add_flag("--png,!--no-png", args->png, "Write mid-plane density slices (png/density_NNNN.png)")
      ->capture_default_str();
  cmd->add_option("--png-scale", args->png_scale, "Pixels per cell in the PNG slices (default: automatic)")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--render", args->render,
                "Also volume-render each exported frame (render/render_NNNN.png; see dcdm render)");
  cmd->add_option("--render-every", args->render_every,
                  "Render every K frames (implies --render; default: the exported frames), e.g. for a movie with --export-every 0")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--render-size", args->render_size, "Size of the rendered pictures, N or WxH pixels")
      ->capture_default_str();
  cmd->add_flag("--movie", args->movie,
                "After the run, assemble the rendered frames into render/movie.mp4 and movie.gif with ffmpeg "
                "(implies --render; skipped with a message when ffmpeg is not installed)");
  cmd->add_option("--fps", args->fps, "Frames per second of the movie")->check(CLI::Range(1.0, 120.0))->capture_default_str();
  cmd->add_flag("--resume", args->resume, "Continue from the checkpoint in --out (same options required)");
  cmd->add_flag("--warm-start", args->warm_start, "Start each pressure solve from the previous pressure");
  cmd->add_option("--frame-matrix", args->frame_matrix,
                  "Matrix files of the exported frames: none (the flags, faces and coefficients define the "
                  "operator; dcdm, Python and load_system assemble it; a 256^3 frame is 0.2 GB) or files (also "
                  "A.mtx, A.bin where exact and b.bin, for readers of the reference format: 2.4 GB at 256^3)")
      ->check(CLI::IsMember({"files", "none"}))
      ->capture_default_str();
  cmd->add_flag("--no-matrix", args->no_matrix,
                "Accepted for scripts of earlier versions: the solver gets no CSR matrix in any case (the methods "
                "that factor one assemble it themselves)");
  cmd->add_flag("--quiet", args->quiet, "No per-frame report lines on stdout");
  add_solver_params(cmd, args->params);
  cmd->callback([args] { run_simulate(*args); });
});

}  // namespace
}  // namespace dcdm::cli
