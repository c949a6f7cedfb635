// Runs one method on one system in a forked child (see bench_runner.hpp).
#include "bench_runner.hpp"

#include <fcntl.h>
#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/models.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds of the whole process (every thread). With --threads 1 this is the load-robust
// twin of the wall-clock time: on a busy machine a time slice lost to another job inflates
// wall time but not CPU time.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

PoissonSystem build_system(const BenchSystem& s) {
  if (!s.folder.empty()) {
    // The folder was verified in full before the runs (cmd_bench); here only what solves need.
    PoissonSystem sys = load_system(s.folder, SystemMatrix::Skip);
    if (sys.rhs.empty()) throw InputError(fmt::format("{}: the system has no right-hand side", s.folder.string()));
    return sys;
  }
  SceneSpec spec;
  spec.name = s.scene;
  spec.dims = s.dims;
  spec.seed = s.seed;
  return make_scene_system(spec, parse_rhs_kind(s.rhs), s.seed, {}, SystemMatrix::Skip);
}

// The child's whole job; returns the JSON it sends to the parent.
nlohmann::json measure(const BenchSystem& s, const std::string& method, const BenchSettings& settings) {
  nlohmann::json out;
  if (settings.threads > 0) omp_set_num_threads(settings.threads);
  // MPI's start-up is the process's, not the method's: done and timed before any set-up.
  const bool mpi_peer = is_mpi_peer(method);
  if (mpi_peer) out["startup_seconds"] = peer_mpi_max(initialize_peer_libraries());
  const int ranks = mpi_peer ? peer_mpi_size() : 1;
  const PoissonSystem sys = build_system(s);
  const Domain& domain = sys.domain;
  const PoissonStencil op(domain);
  const RangeProjector projector = sys.projector ? *sys.projector : RangeProjector(domain);
  LinearSystemView view;
  view.op = &op;  // matrix-free: the methods that factor a matrix assemble it in their set-up
  view.domain = &domain;
  if (projector.singular()) view.project_range = projector.as_function();
  const std::vector<double>& b = sys.rhs;
  const double b_norm = norm2(b);
  out["dims"] = {domain.dims().nx, domain.dims().ny, domain.dims().nz};
  out["cells"] = domain.dims().size();
  out["fluid_cells"] = domain.count(CellType::Fluid);
  out["threads"] = mpi_peer ? 1 : omp_get_max_threads();
  out["ranks"] = ranks;
  out["singular"] = projector.singular();

  // The whole process's peak so far (building the system), then the method's own from here.
  const std::int64_t system_peak = peak_resident_bytes();
  const bool peak_reset = reset_peak_resident();
  const double rss0 = resident_bytes() / 1024.0;
  nlohmann::json rows = nlohmann::json::array();
  for (double rtol : settings.rtols) {
    nlohmann::json row;
    row["rtol"] = rtol;
    std::vector<double> setup_runs, solve_runs, total_runs, cpu_runs, setup_cpu_runs;
    SolveReport report;
    std::vector<double> x(b.size(), 0.0);
    std::vector<std::pair<int, double>> monitor;  // iteration, seconds since solve start
    double setup_s = 0;
    for (int run = 0; run < std::max(1, settings.repeat); ++run) {
      monitor.clear();
      // On several ranks every phase starts together and ends when the last rank is done
      // (barriers: no-ops on one rank); CPU seconds are summed over the ranks.
      peer_mpi_barrier();
      const double cpu0 = process_cpu_seconds();
      const auto t0 = Clock::now();
      auto solver = make_solver(method, settings.params);
      solver->setup(view);
      peer_mpi_barrier();
      const auto t1 = Clock::now();
      setup_cpu_runs.push_back(peer_mpi_sum(process_cpu_seconds() - cpu0));
      std::fill(x.begin(), x.end(), 0.0);
      SolveOptions options;
      options.rtol = rtol;
      options.max_iterations = settings.max_iterations;
      options.stagnation_window = settings.stagnation_window;
      options.monitor = [&monitor, t1](const IterationInfo& info) {
        monitor.emplace_back(info.iteration, seconds(t1, Clock::now()));
      };
      report = solver->solve(b, x, options);
      peer_mpi_barrier();
      const auto t2 = Clock::now();
      cpu_runs.push_back(peer_mpi_sum(process_cpu_seconds() - cpu0));
      setup_s = seconds(t0, t1);
      setup_runs.push_back(setup_s);
      solve_runs.push_back(seconds(t1, t2));
      total_runs.push_back(seconds(t0, t2));
    }
    const double true_res = true_residual_norm(op, b, x);
    const double rel = b_norm > 0 ? true_res / b_norm : true_res;
    row["iterations"] = report.iterations;
    row["reason"] = to_string(report.reason);
    row["detail"] = report.detail;
    row["setup_runs"] = setup_runs;
    row["solve_runs"] = solve_runs;
    row["setup_seconds"] = median(setup_runs);
    row["solve_seconds"] = median(solve_runs);
    row["total_seconds"] = median(total_runs);
    row["cpu_runs"] = cpu_runs;
    row["cpu_seconds"] = median(cpu_runs);
    row["setup_cpu_seconds"] = median(setup_cpu_runs);
    row["true_relative_residual"] = rel;
    const bool finite = count_non_finite(x) == 0 && std::isfinite(rel);
    if (report.converged() && finite && rel <= rtol * (1 + 1e-9))
      row["status"] = "converged";
    else if (report.converged())
      row["status"] = "false-convergence";
    else
      row["status"] = "not-converged";
    // History: relative residual per entry; times from the live monitor when the solver
    // reports during the solve, otherwise (peers that log and report afterwards) spread
    // evenly over the solve time.
    const double solve_s = solve_runs.back();
    std::vector<double> hist, times;
    for (std::size_t k = 0; k < report.residual_history.size(); ++k)
      hist.push_back(b_norm > 0 ? report.residual_history[k] / b_norm : report.residual_history[k]);
    const bool per_iteration = hist.size() == static_cast<std::size_t>(report.iterations) + 1;
    const bool live = per_iteration && monitor.size() == hist.size() &&
                      (hist.size() < 3 || monitor.back().second - monitor.front().second >= 0.3 * solve_s);
    std::vector<int> its;
    for (std::size_t k = 0; k < hist.size(); ++k) {
      its.push_back(per_iteration ? static_cast<int>(k) : (k == 0 ? 0 : report.iterations));
      double t;
      if (live) t = monitor[k].second;
      else if (per_iteration && report.iterations > 0) t = solve_s * double(k) / report.iterations;
      else t = k == 0 ? 0.0 : solve_s;
      times.push_back(setup_s + t);
    }
    row["history"] = hist;
    row["history_seconds"] = times;
    row["history_iterations"] = its;
    row["history_times_interpolated"] = !live;
    rows.push_back(row);
  }
  const double hwm = peak_resident_bytes() / 1024.0;
  // On several ranks: the sums over the ranks (each holds the system).
  const double peak_mb = peer_mpi_sum(std::max(0.0, (hwm - rss0) / 1024.0));
  out["peak_mb"] = peak_reset ? nlohmann::json(peak_mb) : nlohmann::json();
  // The whole process (forked from the bench, so its code and libraries included), per cell.
  const double process_peak = peer_mpi_sum(std::max<double>(double(system_peak), hwm * 1024.0));
  out["process_peak_mb"] = process_peak / 1048576.0;
  out["process_bytes_per_cell"] = process_peak / double(domain.dims().size());
  out["rows"] = rows;
  return out;
}

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    done += static_cast<std::size_t>(n);
  }
}

BenchRow base_row(const BenchSystem& s, const std::string& method, double rtol) {
  BenchRow r;
  r.system = s.name;
  r.method = method;
  r.rtol = rtol;
  r.dims = s.dims;
  r.cells = s.dims.size();
  return r;
}

std::vector<BenchRow> failed_rows(const BenchSystem& s, const std::string& method,
                                  const BenchSettings& settings, const std::string& status,
                                  const std::string& detail) {
  std::vector<BenchRow> rows;
  for (double rtol : settings.rtols) {
    BenchRow r = base_row(s, method, rtol);
    r.status = status;
    r.detail = detail;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

BenchRow pool_rounds(const std::vector<BenchRow>& rounds) {
  if (rounds.empty()) throw Error("pool_rounds: no rounds");
  for (const BenchRow& r : rounds)
    if (!r.converged() && r.status != "not-converged" && r.status != "false-convergence") return r;
  BenchRow out = rounds.back();
  out.setup_runs.clear();
  out.solve_runs.clear();
  out.cpu_runs.clear();
  std::vector<double> totals, setup_cpu, startup;
  for (const BenchRow& r : rounds) {
    if (r.startup_seconds >= 0) startup.push_back(r.startup_seconds);
    out.setup_runs.insert(out.setup_runs.end(), r.setup_runs.begin(), r.setup_runs.end());
    out.solve_runs.insert(out.solve_runs.end(), r.solve_runs.begin(), r.solve_runs.end());
    out.cpu_runs.insert(out.cpu_runs.end(), r.cpu_runs.begin(), r.cpu_runs.end());
    for (std::size_t i = 0; i < std::min(r.setup_runs.size(), r.solve_runs.size()); ++i)
      totals.push_back(r.setup_runs[i] + r.solve_runs[i]);
    setup_cpu.push_back(r.setup_cpu_seconds);
    out.peak_mb = std::max(out.peak_mb, r.peak_mb);
    out.process_bytes_per_cell = std::max(out.process_bytes_per_cell, r.process_bytes_per_cell);
  }
  out.setup_seconds = median(out.setup_runs);
  out.solve_seconds = median(out.solve_runs);
  out.total_seconds = median(totals);
  out.cpu_seconds = median(out.cpu_runs);
  out.setup_cpu_seconds = median(setup_cpu);
  out.startup_seconds = startup.empty() ? -1.0 : median(startup);
  return out;
}

namespace {

// Forks; the child runs `child` (which must not return: it _exits or execs) with its standard
// output or the pipe's write end given as `fd`; the parent reads the pipe until it closes or
// `timeout_seconds` (0: none) runs out, then kills the child (its process group when it made
// one) and reaps it.
ChildResult fork_and_read(const std::function<void(int fd)>& child, bool own_group, double timeout_seconds) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error(fmt::format("bench: pipe failed: {}", std::strerror(errno)));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(fmt::format("bench: fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    if (own_group) ::setpgid(0, 0);
    ::close(fds[0]);
    child(fds[1]);
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildResult result;
  char buf[65536];
  const auto start = Clock::now();
  for (;;) {
    const double left = timeout_seconds - seconds(start, Clock::now());
    if (timeout_seconds > 0 && left <= 0) {
      result.timed_out = true;
      ::kill(own_group ? -pid : pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int wait_ms = timeout_seconds > 0 ? static_cast<int>(std::min(left, 1.0) * 1000) + 1 : 1000;
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

}  // namespace

ChildResult run_in_child(const std::function<std::string()>& work, double timeout_seconds) {
  return fork_and_read(
      [&](int fd) {
        std::string message;
        try {
          message = work();
        } catch (...) {
          message.clear();  // work reports its own errors in its message; nothing comes back here
        }
        write_all(fd, message);
        ::close(fd);
        // Leave without the parent's static destructors (some libraries' exit handlers wait for
        // helper threads that do not exist in a forked child); MPI is finalised explicitly.
        finalize_peer_libraries();
        std::fflush(stdout);
        std::fflush(stderr);
        ::_exit(0);
      },
      false, timeout_seconds);
}

namespace {

// The child's whole job and its answer: the measurements, or why there are none.
nlohmann::json measure_message(const BenchSystem& s, const std::string& method, const BenchSettings& settings) {
  nlohmann::json msg;
  try {
    msg = measure(s, method, settings);
    msg["ok"] = true;
  } catch (const InputError& e) {
    msg = {{"ok", false}, {"status", "unavailable"}, {"detail", e.what()}};
  } catch (const std::exception& e) {
    msg = {{"ok", false}, {"status", "error"}, {"detail", e.what()}};
  }
  return msg;
}

std::vector<BenchRow> rows_from_message(const BenchSystem& s, const std::string& method,
                                        const BenchSettings& settings, const std::string& data);

constexpr const char* kResultTag = "DCDM-BENCH-RESULT ";

}  // namespace

const std::vector<std::pair<std::string, std::string>> kMpiEnvironment = {
    {"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}, {"OMP_NUM_THREADS", "1"}};

ChildResult spawn_and_read(const std::vector<std::string>& argv,
                           const std::vector<std::pair<std::string, std::string>>& environment,
                           double timeout_seconds) {
  return fork_and_read(
      [&](int fd) {
        ::dup2(fd, STDOUT_FILENO);
        ::close(fd);
        for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
      },
      true, timeout_seconds);
}

namespace {

// `mpirun -np ranks <this program> bench --mpi-child SPEC` in its own process group (killed
// whole on --timeout), its stdout read back; rank 0's result line gives the rows.
std::vector<BenchRow> run_mpi(const BenchSystem& s, const std::string& method, const BenchSettings& settings,
                              int ranks) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return failed_rows(s, method, settings, "error", "cannot find this program (/proc/self/exe)");
  char spec_name[] = "/tmp/dcdm-bench-mpi-XXXXXX";
  const int spec_fd = ::mkstemp(spec_name);
  if (spec_fd < 0) return failed_rows(s, method, settings, "error", "cannot write the MPI child's spec in /tmp");
  const nlohmann::json spec = {
      {"system",
       {{"name", s.name}, {"scene", s.scene}, {"dims", {s.dims.nx, s.dims.ny, s.dims.nz}}, {"rhs", s.rhs},
        {"seed", s.seed}, {"folder", s.folder.string()}}},
      {"method", method},
      {"settings",
       {{"rtols", settings.rtols},
        {"repeat", settings.repeat},
        {"max_iterations", settings.max_iterations},
        {"stagnation_window", settings.stagnation_window}}}};
  write_all(spec_fd, spec.dump());
  ::close(spec_fd);
  // Open MPI refuses root without these; one thread per rank (hypre has no OpenMP, and our
  // code around it must not take the other ranks' cores).
  const ChildResult run = spawn_and_read({"mpirun", "-np", std::to_string(ranks), "--oversubscribe", self.string(),
                                          "bench", "--mpi-child", spec_name},
                                         kMpiEnvironment, settings.timeout_seconds);
  const std::string& output = run.output;
  const bool timed_out = run.timed_out;
  const int wstatus = run.wait_status;
  ::unlink(spec_name);
  if (timed_out)
    return failed_rows(s, method, settings, "timeout",
                       fmt::format("killed after {:.0f} s (--timeout)", settings.timeout_seconds));
  const auto tag = output.find(kResultTag);
  if (tag == std::string::npos) {
    const std::string why = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127
                                ? "mpirun could not be started"
                                : fmt::format("mpirun -np {} sent no result (exit status {})", ranks,
                                              WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    return failed_rows(s, method, settings, "crashed", why);
  }
  const auto start_json = tag + std::string(kResultTag).size();
  const auto end = output.find('\n', start_json);
  return rows_from_message(s, method, settings, output.substr(start_json, end - start_json));
}

// METHOD@N: the method's V-cycle split across N MPI ranks of one thread (dcdm-mpi, the PETSc
// program beside this one), on the same system: a scene is first written as a system folder
// (by a child, with the right-hand side the threaded runs use) that every rank reads its part
// of. Each run is `mpirun -np N dcdm-mpi solve --system DIR --method METHOD --rtol R --json`.
std::vector<BenchRow> run_distributed(const BenchSystem& s, const std::string& method, const BenchSettings& settings,
                                      const std::string& base, int ranks) {
  namespace fs = std::filesystem;
  const std::string family = base.substr(0, base.find(':'));
  std::vector<std::string> method_args = {"--method", base};
  if (const auto petsc = petsc_solver_options(family, s.dims)) {
    method_args = {"--method", "petsc", "--operator", "assembled"};
    method_args.insert(method_args.end(), petsc->begin(), petsc->end());
  } else if (family != "mgpcg" && family != "dcdm-relax") {
    return failed_rows(s, method, settings, "unavailable", fmt::format("{} has no distributed version", family));
  }
  const fs::path program = executable_dir() / "dcdm-mpi";
  if (executable_dir().empty() || !fs::exists(program))
    return failed_rows(s, method, settings, "unavailable", "dcdm-mpi not built (PETSc not found)");
  char dir_name[] = "/tmp/dcdm-bench-ranks-XXXXXX";
  if (!::mkdtemp(dir_name)) return failed_rows(s, method, settings, "error", "cannot make a folder in /tmp");
  const fs::path work(dir_name);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{work};
  fs::path folder = s.folder;
  if (folder.empty()) {
    folder = work / "system";
    const ChildResult made = run_in_child(
        [&] {
          save_system(folder, build_system(s), MatrixFiles::Omit);
          return std::string("ok");
        },
        settings.timeout_seconds);
    if (made.output != "ok")
      return failed_rows(s, method, settings, "error", "could not write the system folder for dcdm-mpi");
  }
  std::vector<BenchRow> rows;
  for (const double rtol : settings.rtols) {
    BenchRow r = base_row(s, method, rtol);
    r.ranks = ranks;
    r.threads = 1;
    for (int rep = 0; rep < std::max(1, settings.repeat); ++rep) {
      const fs::path report = work / "run.json";
      fs::remove(report);
      std::vector<std::string> argv = {"mpirun", "-np", std::to_string(ranks), "--oversubscribe", program.string(),
                                       "solve", "--system", folder.string(), "--rtol", fmt::format("{}", rtol),
                                       "--max-iterations", std::to_string(settings.max_iterations), "--json",
                                       report.string()};
      argv.insert(argv.end(), method_args.begin(), method_args.end());
      const ChildResult run = spawn_and_read(argv, kMpiEnvironment, settings.timeout_seconds);
      if (run.timed_out)
        return failed_rows(s, method, settings, "timeout",
                           fmt::format("killed after {:.0f} s (--timeout)", settings.timeout_seconds));
      std::ifstream in(report);
      const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      if (!in || j.is_discarded() || !j.is_object())
        return failed_rows(s, method, settings, "crashed",
                           fmt::format("mpirun -np {} dcdm-mpi wrote no report (exit status {})", ranks,
                                       WIFEXITED(run.wait_status) ? WEXITSTATUS(run.wait_status) : -1));
      r.iterations = j["iterations"].get<int>();
      r.setup_runs.push_back(j["setup_seconds"].get<double>());
      r.solve_runs.push_back(j["solve_seconds"].get<double>());
      r.true_relative_residual = j["relative_residual"].get<double>();
      r.status = j["converged"].get<bool>() ? "converged" : "not-converged";
      r.reason = j["reason"].get<std::string>();
      r.fluid_cells = j["system"]["fluid"].get<std::int64_t>();
      const double peak = j["memory"]["peak_resident_bytes"].get<double>();
      r.peak_mb = std::max(r.peak_mb, peak / 1e6);
      r.process_bytes_per_cell = std::max(r.process_bytes_per_cell, peak / double(s.dims.size()));
      // The residual history without per-iteration clocks: times spread evenly over the solve.
      const double rhs_norm = j["rhs_norm"].get<double>();
      r.history.clear();
      r.history_iterations.clear();
      r.history_seconds.clear();
      const auto& h = j["residual_history"];
      for (std::size_t i = 0; i < h.size(); ++i) {
        r.history.push_back(rhs_norm > 0 ? h[i].get<double>() / rhs_norm : h[i].get<double>());
        r.history_iterations.push_back(static_cast<int>(i));
        r.history_seconds.push_back(r.setup_runs.back() +
                                    r.solve_runs.back() * double(i) / double(std::max<std::size_t>(1, h.size() - 1)));
      }
      r.history_times_interpolated = true;
    }
    r.setup_seconds = median(r.setup_runs);
    r.solve_seconds = median(r.solve_runs);
    std::vector<double> totals;
    for (std::size_t i = 0; i < r.setup_runs.size(); ++i) totals.push_back(r.setup_runs[i] + r.solve_runs[i]);
    r.total_seconds = median(totals);
    r.cpu_seconds = -1;  // not measured across the ranks
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<BenchRow> rows_from_message(const BenchSystem& s, const std::string& method,
                                        const BenchSettings& settings, const std::string& data) {
  nlohmann::json msg = nlohmann::json::parse(data, nullptr, false);
  if (msg.is_discarded() || !msg.is_object())
    return failed_rows(s, method, settings, "crashed", "child sent no result");
  if (!msg.value("ok", false))
    return failed_rows(s, method, settings, msg.value("status", "error"), msg.value("detail", ""));

  std::vector<BenchRow> rows;
  for (const auto& j : msg["rows"]) {
    BenchRow r = base_row(s, method, j["rtol"].get<double>());
    const auto& d = msg["dims"];
    r.dims = Dims{d[0].get<int>(), d[1].get<int>(), d[2].get<int>()};
    r.cells = msg["cells"].get<std::int64_t>();
    r.fluid_cells = msg["fluid_cells"].get<std::int64_t>();
    r.threads = msg["threads"].get<int>();
    r.ranks = msg.value("ranks", 1);
    r.startup_seconds = msg.value("startup_seconds", -1.0);
    r.peak_mb = msg["peak_mb"].is_number() ? msg["peak_mb"].get<double>() : -1.0;
    r.process_bytes_per_cell = msg.value("process_bytes_per_cell", 0.0);
    r.status = j["status"].get<std::string>();
    r.reason = j["reason"].get<std::string>();
    r.detail = j["detail"].get<std::string>();
    r.iterations = j["iterations"].get<int>();
    r.setup_seconds = j["setup_seconds"].get<double>();
    r.solve_seconds = j["solve_seconds"].get<double>();
    r.total_seconds = j["total_seconds"].get<double>();
    r.cpu_seconds = j["cpu_seconds"].get<double>();
    r.cpu_runs = j["cpu_runs"].get<std::vector<double>>();
    r.setup_cpu_seconds = j["setup_cpu_seconds"].get<double>();
    r.setup_runs = j["setup_runs"].get<std::vector<double>>();
    r.solve_runs = j["solve_runs"].get<std::vector<double>>();
    r.true_relative_residual = j["true_relative_residual"].get<double>();
    r.history = j["history"].get<std::vector<double>>();
    r.history_seconds = j["history_seconds"].get<std::vector<double>>();
    r.history_iterations = j["history_iterations"].get<std::vector<int>>();
    r.history_times_interpolated = j["history_times_interpolated"].get<bool>();
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

bool is_mpi_peer(const std::string& method) { return method.rfind("hypre-", 0) == 0; }

// PETSc's own solvers for a Poisson problem, set up as PETSc's documentation suggests: CG with
// GAMG (smoothed aggregation), with hypre's BoomerAMG (HMIS, ext+i, threshold 0.5 for 3-D,
// P_max 4, one aggressive level), with hypre's PFMG, or with PCMG on the DMDA (Galerkin,
// halving to about 8 cells; all sizes even or all odd).
const std::vector<std::string>& petsc_solver_names() {
  static const std::vector<std::string> names = {"petsc-gamg", "petsc-boomeramg", "petsc-mg", "petsc-pfmg"};
  return names;
}

std::optional<std::vector<std::string>> petsc_solver_options(const std::string& name, Dims dims) {
  if (name == "petsc-gamg") return std::vector<std::string>{"-ksp_type", "cg", "-pc_type", "gamg", "-pc_gamg_agg_nsmooths", "1"};
  if (name == "petsc-boomeramg")
    return std::vector<std::string>{"-ksp_type", "cg", "-pc_type", "hypre", "-pc_hypre_type", "boomeramg",
                                    "-pc_hypre_boomeramg_coarsen_type", "HMIS", "-pc_hypre_boomeramg_interp_type",
                                    "ext+i", "-pc_hypre_boomeramg_strong_threshold", "0.5",
                                    "-pc_hypre_boomeramg_P_max", "4", "-pc_hypre_boomeramg_agg_nl", "1"};
  // hypre's PFMG through PETSc (the DMDA's matrix as a hypre Struct matrix), with hypre-pfmg's
  // settings: Galerkin coarse operators, symmetric red/black Gauss-Seidel, V(1,1).
  if (name == "petsc-pfmg")
    return std::vector<std::string>{"-dm_mat_type", "hyprestruct", "-ksp_type", "cg", "-pc_type", "pfmg",
                                    "-pc_pfmg_relax_type", "symmetric-red/black-gauss-seidel", "-pc_pfmg_rap_type",
                                    "Galerkin"};
  if (name == "petsc-mg") {
    const int smallest = std::min({dims.nx, dims.ny, dims.nz});
    int levels = 1;
    while ((smallest >> levels) >= 8) ++levels;
    return std::vector<std::string>{"-ksp_type", "cg", "-pc_type", "mg", "-pc_mg_levels", std::to_string(levels),
                                    "-pc_mg_galerkin", "pmat"};
  }
  return std::nullopt;
}

int distributed_ranks(const std::string& method, std::string* base) {
  const auto at = method.rfind('@');
  if (at == std::string::npos) return 0;
  const std::string n = method.substr(at + 1);
  if (n.empty() || n.size() > 4 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(n) < 1)
    throw InputError(fmt::format("--methods: '{}': after '@' the number of MPI ranks (1 to 9999)", method));
  if (base) *base = method.substr(0, at);
  return std::stoi(n);
}

int mpi_peer_ranks(const BenchSettings& settings) {
  int ranks = settings.threads;
  if (ranks <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    ranks = env ? std::atoi(env) : 0;  // "4" or "4,2": the outer level
    if (ranks <= 0) ranks = static_cast<int>(std::thread::hardware_concurrency());
  }
  if (ranks <= 1) return 1;
  static const bool have_mpirun = std::system("command -v mpirun > /dev/null 2>&1") == 0;
  return have_mpirun ? ranks : 1;
}

std::vector<BenchRow> run_isolated(const BenchSystem& s, const std::string& method,
                                   const BenchSettings& settings) {
  std::string base;
  if (const int ranks = distributed_ranks(method, &base); ranks > 0)
    return run_distributed(s, method, settings, base, ranks);
  // PETSc's solvers (one thread a rank, as hypre) on as many ranks as the others get threads.
  if (petsc_solver_options(method, s.dims)) return run_distributed(s, method, settings, method, mpi_peer_ranks(settings));
  if (is_mpi_peer(method) && hypre_available()) {
    int ranks = mpi_peer_ranks(settings);
    // Every rank holds the system (about 64 bytes a cell with the solve's vectors) beside its
    // share of the method's (at most about 500 bytes a cell): fewer ranks where the machine's
    // memory would not hold that (the table names the ranks used).
    const double cells = static_cast<double>(s.dims.size()), memory = 0.8 * double(physical_memory_bytes());
    while (ranks > 1 && cells > 0 && ranks * 64.0 * cells + 500.0 * cells > memory) --ranks;
    if (ranks > 1) return run_mpi(s, method, settings, ranks);
  }
  const ChildResult child =
      run_in_child([&] { return measure_message(s, method, settings).dump(); }, settings.timeout_seconds);
  const bool timed_out = child.timed_out;
  const int wstatus = child.wait_status;
  if (timed_out)
    return failed_rows(s, method, settings, "timeout",
                       fmt::format("killed after {:.0f} s (--timeout)", settings.timeout_seconds));
  if (WIFSIGNALED(wstatus))
    return failed_rows(s, method, settings, "crashed",
                       fmt::format("child died of signal {} ({})", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus))));
  return rows_from_message(s, method, settings, child.output);
}

int run_mpi_child(const std::string& spec_file) {
  std::ifstream in(spec_file);
  const nlohmann::json spec = nlohmann::json::parse(in, nullptr, false);
  if (spec.is_discarded() || !spec.is_object())
    throw InputError(fmt::format("--mpi-child: {} is not a bench spec", spec_file));
  BenchSystem s;
  const auto& js = spec["system"];
  s.name = js["name"].get<std::string>();
  s.scene = js["scene"].get<std::string>();
  s.dims = Dims{js["dims"][0].get<int>(), js["dims"][1].get<int>(), js["dims"][2].get<int>()};
  s.rhs = js["rhs"].get<std::string>();
  s.seed = js["seed"].get<std::uint64_t>();
  s.folder = js["folder"].get<std::string>();
  BenchSettings settings;
  const auto& jt = spec["settings"];
  settings.rtols = jt["rtols"].get<std::vector<double>>();
  settings.repeat = jt["repeat"].get<int>();
  settings.max_iterations = jt["max_iterations"].get<int>();
  settings.stagnation_window = jt["stagnation_window"].get<int>();
  settings.threads = 1;
  const nlohmann::json msg = measure_message(s, spec["method"].get<std::string>(), settings);
  if (peer_mpi_rank() == 0) {
    const std::string line = kResultTag + msg.dump() + "\n";
    write_all(STDOUT_FILENO, line);
  }
  return 0;
}

nlohmann::json to_json(const BenchRow& r) {
  return {{"system", r.system},
          {"method", r.method},
          {"dims", {r.dims.nx, r.dims.ny, r.dims.nz}},
          {"cells", r.cells},
          {"fluid_cells", r.fluid_cells},
          {"rtol", r.rtol},
          {"status", r.status},
          {"reason", r.reason},
          {"detail", r.detail},
          {"iterations", r.iterations},
          {"setup_seconds", r.setup_seconds},
          {"solve_seconds", r.solve_seconds},
          {"total_seconds", r.total_seconds},
          {"cpu_seconds", r.cpu_seconds},
          {"cpu_runs", r.cpu_runs},
          {"setup_cpu_seconds", r.setup_cpu_seconds},
          {"setup_runs", r.setup_runs},
          {"solve_runs", r.solve_runs},
          {"true_relative_residual", r.true_relative_residual},
          {"peak_mb", r.peak_mb},
          {"process_bytes_per_cell", r.process_bytes_per_cell},
          {"threads", r.threads},
          {"ranks", r.ranks},
          {"startup_seconds", r.startup_seconds >= 0 ? nlohmann::json(r.startup_seconds) : nlohmann::json()},
          {"history", r.history},
          {"history_iterations", r.history_iterations},
          {"history_seconds", r.history_seconds},
          {"history_times_interpolated", r.history_times_interpolated}};
}

}  // namespace dcdm::cli
