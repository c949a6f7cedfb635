// `dcdm import`: a full-grid 7-point pressure matrix made by another tool (reference .bin or
// Matrix Market) plus an optional right-hand side, with the domain inferred from the matrix
// (unit, scaled unit or general weights: see infer_domain in dcdm/system.hpp), written as a
// system folder that `dcdm solve` and friends read.
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

struct ImportArgs {
  std::string matrix;
  std::string rhs;
  std::string dims;
  std::string out;
};

void run_import(const ImportArgs& args) {
  std::optional<Dims> dims;
  if (!args.dims.empty()) dims = parse_dims(args.dims, "--dims");
  PoissonSystem sys = import_system(args.matrix, args.rhs, dims);
  save_system(args.out, sys);
  const auto& m = sys.meta;
  fmt::print("imported {}: grid {}, {} fluid, {} air, {} solid cells\n", args.matrix, sys.domain.dims().str(),
             m["cells"]["fluid"].get<std::int64_t>(), m["cells"]["air"].get<std::int64_t>(),
             m["cells"]["solid"].get<std::int64_t>());
  std::string faces;
  for (const char* face : {"x-", "x+", "y-", "y+", "z-", "z+"})
    faces += fmt::format(" {}={}", face, m["faces"][face].get<std::string>());
  fmt::print("outer faces (inferred):{}\n", faces);
  fmt::print("fluid components: {}, singular: {}\n", m["components"]["count"].get<int>(),
             m["components"]["singular_count"].get<int>());
  for (const auto& note : m["import"]["notes"]) fmt::print("note: {}\n", note.get<std::string>());
  if (sys.domain.weighted())
    fmt::print("weighted operator (coefficients scale {}): re-assembled from the inferred domain and coefficients, "
               "equal to the input matrix within a relative 4e-12 of each row\n",
               sys.domain.coefficients->scale);
  else
    fmt::print("re-assembled from the inferred domain: identical to the input matrix\n");
  fmt::print("wrote {}/{{{}}}\n", args.out, fmt::join(system_files(sys), ", "));
}

RegisterCommand reg(11, [](CLI::App& root) {
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = root.add_subcommand(
      "import", "Read a grid pressure matrix (.bin reference or .mtx), infer its cell flags (and weights) and write a system folder");
  cmd->add_option("matrix", args->matrix, "Matrix file: reference binary (.bin) or Matrix Market (.mtx)")->required();
  cmd->add_option("--rhs", args->rhs, "Right-hand side (.npy, .mtx, .bin); zero if omitted");
  cmd->add_option("--dims", args->dims, "Grid NX,NY,NZ (needed unless the row count is a cube N^3)");
  cmd->add_option("--out", args->out, "Output folder (created)")->required();
  cmd->callback([args] { run_import(*args); });
});

}  // namespace
}  // namespace dcdm::cli
