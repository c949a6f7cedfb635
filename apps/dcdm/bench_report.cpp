// `dcdm bench` output: Markdown table, machine facts, gnuplot residual plots.
#include "bench_report.hpp"

#include <omp.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "torch_backend.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

std::string thousands(std::int64_t v) {
  std::string s = std::to_string(v), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string status_text(const BenchRow& r) {
  if (r.status == "converged") return "converged";
  std::string text = r.status;
  if (!r.reason.empty() && r.status == "not-converged") text += " (" + r.reason + ")";
  if (!r.detail.empty()) text += ": " + r.detail;
  for (char& c : text)
    if (c == '|' || c == '\n') c = ' ';
  return text;
}

std::string gnuplot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

nlohmann::json machine_facts() {
  utsname u{};
  uname(&u);
  nlohmann::json f;
  f["cpu_model"] = cpu_model();
  f["logical_cores"] = std::thread::hardware_concurrency();
  f["memory_gib"] = std::round(double(physical_memory_bytes()) / (1024.0 * 1024 * 1024) * 10) / 10;
  f["kernel"] = fmt::format("{} {}", u.sysname, u.release);
#if defined(__clang__)
  f["compiler"] = fmt::format("clang {}", __clang_version__);
#elif defined(__GNUC__)
  f["compiler"] = fmt::format("GCC {}", __VERSION__);
#else
  f["compiler"] = "unknown";
#endif
  f["openmp"] = fmt::format("OpenMP {} ({} threads by default)", _OPENMP, omp_get_max_threads());
  f["hypre"] = hypre_version();
  f["eigen"] = eigen_version();
  f["amgcl"] = amgcl_version();
  // Only where a method of the run loaded it: reporting it must not load LibTorch.
  const TorchBackend* torch = torch_backend_if_loaded();
  f["libtorch"] = torch ? torch->backend_info() : std::string("not loaded (no method of this run needs it)");
  f["peer_settings"] = {{"hypre-amg", to_string(HypreAmgSettings{})},
                        {"hypre-pfmg", to_string(HyprePfmgSettings{})},
                        {"eigen-iccg", to_string(EigenIccgSettings{})},
                        {"amgcl", to_string(AmgclSettings{})}};
  return f;
}

std::string machine_facts_markdown(const nlohmann::json& f) {
  std::string s;
  s += fmt::format("- CPU: {} ({} logical cores)\n", f["cpu_model"].get<std::string>(),
                   f["logical_cores"].get<unsigned>());
  s += fmt::format("- Memory: {} GiB; {}\n", f["memory_gib"].get<double>(), f["kernel"].get<std::string>());
  s += fmt::format("- Compiler: {}; {}\n", f["compiler"].get<std::string>(), f["openmp"].get<std::string>());
  s += fmt::format("- Libraries: {}; {}; {}; {}\n", f["hypre"].get<std::string>(), f["eigen"].get<std::string>(),
                   f.value("amgcl", std::string("AMGCL: not recorded")), f["libtorch"].get<std::string>());
  if (f.contains("peer_settings")) {
    const auto& p = f["peer_settings"];
    s += fmt::format("- Peer settings (defaults; `METHOD:key=value:...` overrides them): hypre-amg `{}`; "
                     "hypre-pfmg `{}`; eigen-iccg `{}`{}\n",
                     p["hypre-amg"].get<std::string>(), p["hypre-pfmg"].get<std::string>(),
                     p["eigen-iccg"].get<std::string>(),
                     p.contains("amgcl") ? fmt::format("; amgcl `{}`", p["amgcl"].get<std::string>()) : "");
  }
  return s;
}

std::string markdown_table(const std::vector<BenchRow>& rows, const std::string& baseline) {
  // Baseline total time per (system, rtol), for the speed-up column.
  std::map<std::pair<std::string, double>, double> base;
  for (const auto& r : rows)
    if (r.method == baseline && r.converged()) base[{r.system, r.rtol}] = r.total_seconds;
  std::string s = fmt::format(
      "| system | cells (fluid) | method | rtol | iterations | setup s | solve s | total s | CPU s | "
      "speed-up vs {} | true rel. residual | peak MB | process bytes/cell | status |\n",
      baseline);
  s += "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& r : rows) {
    const bool measured = r.status == "converged" || r.status == "not-converged" || r.status == "false-convergence";
    std::string speedup = "-";
    if (r.converged()) {
      const auto it = base.find({r.system, r.rtol});
      if (it != base.end() && r.total_seconds > 0) speedup = fmt::format("{:.2f}x", it->second / r.total_seconds);
    }
    s += fmt::format("| {} | {} ({}) | {} | {:.0e} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.system,
                     r.dims.str(), thousands(r.fluid_cells),
                     r.ranks > 1 ? fmt::format("{} ({} MPI ranks)", r.method.substr(0, r.method.rfind('@')), r.ranks)
                                 : r.method,
                     r.rtol,
                     measured ? std::to_string(r.iterations) : "-",
                     measured ? fmt::format("{:.3f}", r.setup_seconds) : "-",
                     measured ? fmt::format("{:.3f}", r.solve_seconds) : "-",
                     measured ? fmt::format("{:.3f}", r.total_seconds) : "-",
                     measured && !r.cpu_runs.empty() ? fmt::format("{:.3f}", r.cpu_seconds) : "-", speedup,
                     measured ? fmt::format("{:.2e}", r.true_relative_residual) : "-",
                     measured && r.peak_mb >= 0 ? fmt::format("{:.0f}", r.peak_mb) : "-",
                     measured && r.process_bytes_per_cell > 0 ? fmt::format("{:.0f}", r.process_bytes_per_cell) : "-",
                     status_text(r));
  }
  return s;
}

std::string peer_notes(const std::vector<BenchRow>& rows) {
  std::string ranks, startup;
  std::vector<std::string> seen;
  for (const auto& r : rows) {
    if (std::find(seen.begin(), seen.end(), r.method) != seen.end()) continue;
    if (r.ranks <= 1 && r.startup_seconds < 0) continue;
    seen.push_back(r.method);
    if (r.ranks > 1) ranks += fmt::format("{}{} on {}", ranks.empty() ? "" : ", ", r.method, r.ranks);
    if (r.startup_seconds >= 0)
      startup += fmt::format("{}{} {:.3f} s", startup.empty() ? "" : ", ", r.method, r.startup_seconds);
  }
  std::string s;
  if (!ranks.empty())
    s += fmt::format("MPI peers ran as `mpirun -np T` (T = the other methods' threads, fewer where the memory "
                     "would not hold T copies of the system; one thread a rank, every rank builds the system, "
                     "CPU s and peak MB summed over the ranks): {}.\n",
                     ranks);
  if (!startup.empty())
    s += fmt::format("Once-per-process start-up of MPI and hypre, not in setup s (median): {}.\n", startup);
  return s;
}

bool gnuplot_available(std::string* terminal) {
  FILE* p = ::popen("gnuplot -e \"set terminal\" 2>&1", "r");
  if (!p) return false;
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int status = ::pclose(p);
  if (status != 0) return false;
  std::string term;
  if (text.find("pngcairo") != std::string::npos) term = "pngcairo";
  else if (text.find(" png ") != std::string::npos) term = "png";
  if (term.empty()) return false;
  if (terminal) *terminal = term;
  return true;
}

namespace {

// A legend entry: a model given by path shows as its file's stem ("dcdm:/x/paper64.dcdm" ->
// "dcdm:paper64"), so that the legend does not crowd out the plot.
std::string short_method_label(const std::string& method) {
  const auto colon = method.find(':');
  if (colon == std::string::npos) return method;
  const std::string rest = method.substr(colon + 1);
  if (rest.find('/') == std::string::npos) return method;
  const auto next = rest.find(':');  // settings after the path
  const std::filesystem::path model = rest.substr(0, next);
  return method.substr(0, colon + 1) + model.stem().string() + (next == std::string::npos ? "" : rest.substr(next));
}

// Runs a gnuplot script that writes `tmp`, then renames it over `out` (no half-written PNG).
void run_gnuplot(const std::string& script, const std::filesystem::path& tmp, const std::filesystem::path& out) {
  FILE* p = ::popen("gnuplot", "w");
  if (!p) throw Error("bench: cannot start gnuplot");
  std::fwrite(script.data(), 1, script.size(), p);
  const int status = ::pclose(p);
  if (status != 0 || !std::filesystem::exists(tmp)) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw Error(fmt::format("bench: gnuplot failed writing {} (status {})", out.string(), status));
  }
  std::filesystem::rename(tmp, out);
}

}  // namespace

std::vector<std::filesystem::path> plot_system(const std::vector<BenchRow>& rows,
                                               const std::filesystem::path& stem,
                                               const std::string& title) {
  std::string terminal;
  if (!gnuplot_available(&terminal)) throw Error("bench: gnuplot with a PNG terminal is not available");
  std::vector<std::filesystem::path> written;
  for (const bool by_time : {false, true}) {
    const std::filesystem::path out = stem.string() + (by_time ? "_time.png" : "_iterations.png");
    const std::filesystem::path tmp = out.string() + ".tmp";
    // Residual against iterations (linear axis), and against time on a log axis: the methods'
    // times differ by 100x and more, so a linear axis would squeeze the fast ones into a corner.
    std::string script = fmt::format(
        "set terminal {} size 1000,640{}\nset output {}\nset title {} noenhanced\n"
        "set xlabel {} noenhanced\nset ylabel \"relative residual ||b - Ax|| / ||b||  (log scale)\" noenhanced\n"
        "set logscale y\nset format y \"%.0e\"\nset grid xtics ytics mxtics\n"
        "set key outside right top box noenhanced title \"method\"\n{}",
        terminal, terminal == "pngcairo" ? " font \",11\"" : "", gnuplot_quote(tmp.string()), gnuplot_quote(title),
        by_time ? "\"wall-clock time since the start of setup [s]  (log scale; setup + solve)\""
                : "\"iterations\"",
        by_time ? "set logscale x\nset format x \"%g\"\nset mxtics 10\n" : "");
    std::string plot;
    int block = 0;
    for (const auto& r : rows) {
      std::string data;
      for (std::size_t k = 0; k < r.history.size(); ++k) {
        if (!(r.history[k] > 0.0) || !std::isfinite(r.history[k])) continue;
        const double x = by_time ? (k < r.history_seconds.size() ? r.history_seconds[k] : 0.0)
                                 : (k < r.history_iterations.size() ? r.history_iterations[k] : double(k));
        if (by_time && !(x > 0.0)) continue;  // a log axis has no zero
        data += fmt::format("{:.9g} {:.9g}\n", x, r.history[k]);
      }
      if (data.empty()) continue;
      script += fmt::format("$d{} << EOD\n{}EOD\n", block, data);
      const bool endpoints_only = r.history.size() != static_cast<std::size_t>(r.iterations) + 1;
      std::string label = short_method_label(r.method);
      if (endpoints_only) label += " (start and final only)";
      else if (by_time && r.history_times_interpolated) label += " (times spread evenly)";
      plot += fmt::format("{}$d{} with {} lw 2 title {}", plot.empty() ? "plot " : ", ", block,
                          endpoints_only ? "points pt 7 ps 1.5" : "lines", gnuplot_quote(label));
      ++block;
    }
    if (plot.empty()) continue;
    script += plot + "\nset output\n";
    run_gnuplot(script, tmp, out);
    written.push_back(out);
  }
  return written;
}

std::filesystem::path plot_summary(const std::vector<BenchRow>& rows, const std::filesystem::path& out,
                                   const std::string& title) {
  std::string terminal;
  if (!gnuplot_available(&terminal)) throw Error("bench: gnuplot with a PNG terminal is not available");
  // Systems and methods in the order they first appear (the table's order).
  std::vector<std::string> systems, methods;
  for (const auto& r : rows) {
    if (std::find(systems.begin(), systems.end(), r.system) == systems.end()) systems.push_back(r.system);
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  }
  if (systems.empty() || methods.empty()) return {};
  // One line per system, one column per method: set-up + solve seconds, "-" where the method did
  // not converge (gnuplot leaves a gap).
  std::string data;
  for (const auto& sys : systems) {
    data += gnuplot_quote(sys);
    for (const auto& m : methods) {
      const auto it = std::find_if(rows.begin(), rows.end(),
                                   [&](const BenchRow& r) { return r.system == sys && r.method == m; });
      data += it != rows.end() && it->converged() && it->total_seconds > 0 ? fmt::format(" {:.6g}", it->total_seconds)
                                                                           : std::string(" -");
    }
    data += "\n";
  }
  // Our methods in blues and greens, the peers (other libraries) in oranges and greys.
  static const char* ours[] = {"#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#4e79a7", "#59a14f", "#76b7b2", "#af7aa1"};
  static const char* peers[] = {"#ff7f0e", "#7f7f7f", "#d62728", "#bcbd22", "#e15759", "#bab0ac"};
  int n_ours = 0, n_peers = 0;
  std::string plot;
  for (std::size_t m = 0; m < methods.size(); ++m) {
    const std::string name = methods[m].substr(0, methods[m].find(':'));
    const bool peer = name.rfind("hypre", 0) == 0 || name == "eigen-iccg" || name == "amgcl";
    const char* colour = peer ? peers[n_peers++ % 6] : ours[n_ours++ % 8];
    plot += fmt::format("{}$d using {}:xtic(1) title {} lc rgb \"{}\"", plot.empty() ? "plot " : ", ", m + 2,
                        gnuplot_quote(short_method_label(methods[m]) + (peer ? " (peer)" : "")), colour);
  }
  const std::filesystem::path tmp = out.string() + ".tmp";
  const std::string script = fmt::format(
      "set terminal {} size 1100,640{}\nset output {}\nset title {} noenhanced\n"
      "set ylabel \"set-up + solve time [s]  (log scale)\" noenhanced\nset xlabel \"system\" noenhanced\n"
      "set logscale y\nset format y \"%g\"\nset grid ytics mytics\nset style data histograms\n"
      "set style histogram clustered gap 1\nset style fill solid 0.9 border -1\nset boxwidth 0.9\n"
      "set key outside right top box noenhanced title \"method\"\nset xtics noenhanced\n"
      "$d << EOD\n{}EOD\n{}\nset output\n",
      terminal, terminal == "pngcairo" ? " font \",11\"" : "", gnuplot_quote(tmp.string()), gnuplot_quote(title), data,
      plot);
  run_gnuplot(script, tmp, out);
  return out;
}

}  // namespace dcdm::cli
