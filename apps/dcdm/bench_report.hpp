#pragma once
// `dcdm bench` output: the Markdown table, the JSON document, machine facts and the
// residual plots (gnuplot, PNG).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_runner.hpp"

namespace dcdm::cli {

// CPU model, cores, memory, compiler, library versions (hypre, Eigen, LibTorch, OpenMP).
nlohmann::json machine_facts();
std::string machine_facts_markdown(const nlohmann::json& facts);

// Columns: system | cells (fluid) | method | rtol | iterations | setup s | solve s | total s |
// speed-up vs `baseline` | true rel. residual | peak MB | status.
std::string markdown_table(const std::vector<BenchRow>& rows, const std::string& baseline);

// Lines under the table about the MPI peers: the ranks they ran on and the once-per-process
// start-up (MPI) kept out of their set-up times; empty when no row has either.
std::string peer_notes(const std::vector<BenchRow>& rows);

// True when `gnuplot` runs and offers a PNG terminal; `terminal` receives "pngcairo" or "png".
bool gnuplot_available(std::string* terminal = nullptr);

// Residual vs iteration and vs wall time for every method on one system (the rows of one
// system at one tolerance). Writes `stem`_iterations.png and `stem`_time.png atomically and
// returns their paths. Throws Error when gnuplot fails.
std::vector<std::filesystem::path> plot_system(const std::vector<BenchRow>& rows,
                                               const std::filesystem::path& stem,
                                               const std::string& title);

// The summary: set-up + solve time of every converged row, one cluster of bars per system, one
// bar per method (log scale; the peers from other libraries in other colours). Writes `out`
// atomically and returns it (empty when there is nothing to plot). Throws Error when gnuplot
// fails.
std::filesystem::path plot_summary(const std::vector<BenchRow>& rows, const std::filesystem::path& out,
                                   const std::string& title);

}  // namespace dcdm::cli
