// `dcdm info FILE...`: what a matrix or vector file holds. For a grid-shaped system (rows =
// N^3, or the dims of a system.json beside the file) the cells are counted from the matrix:
// fluid = rows with a non-zero entry, non-fluid = zero rows, fluid cells with Dirichlet
// (air) faces = rows whose diagonal exceeds the sum of |off-diagonal| entries (the 7-point
// operator puts 1 on the diagonal per non-solid neighbour and -1 per fluid neighbour).
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct GridGuess {
  Dims dims;
  std::string source;  // "cube" | "system.json"
};

// dims from a system.json beside the file ([nx, ny, nz], "NXxNYxNZ" or {nx, ny, nz}), else a
// cube when `count` is N^3.
std::optional<GridGuess> guess_grid(const fs::path& file, std::int64_t count) {
  const fs::path sidecar = file.parent_path() / "system.json";
  if (fs::is_regular_file(sidecar)) {
    json meta;
    try {
      meta = json::parse(io::read_file(sidecar));
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: invalid JSON: {}", sidecar.string(), e.what()));
    }
    if (meta.contains("dims")) {
      const json& d = meta["dims"];
      Dims dims;
      try {
        if (d.is_array())
          dims = dims_from_json(d, sidecar.string() + " dims");
        else if (d.is_object())
          dims = dims_from_json(json::array({d.at("nx"), d.at("ny"), d.at("nz")}), sidecar.string() + " dims");
        else if (d.is_string())
          dims = parse_dims(d.get<std::string>(), sidecar.string() + " dims");
        else
          throw InputError(fmt::format("{}: 'dims' is not [nx, ny, nz]", sidecar.string()));
      } catch (const InputError&) {
        throw;  // names the file and the bad value
      } catch (const std::exception&) {
        throw InputError(fmt::format("{}: 'dims' is not [nx, ny, nz]", sidecar.string()));
      }
      if (dims.size() != count)
        throw InputError(fmt::format("{}: dims {} make {} cells but {} holds {}", sidecar.string(), dims.str(),
                                     dims.size(), file.string(), count));
      return GridGuess{dims, "system.json"};
    }
  }
  if (count <= 0) return std::nullopt;
  auto n = static_cast<std::int64_t>(std::llround(std::cbrt(static_cast<double>(count))));
  for (std::int64_t m = std::max<std::int64_t>(1, n - 1); m <= n + 1; ++m)
    if (m * m * m == count) return GridGuess{Dims{int(m), int(m), int(m)}, "cube"};
  return std::nullopt;
}

json grid_json(const GridGuess& g) {
  return {{"dims", {g.dims.nx, g.dims.ny, g.dims.nz}}, {"source", g.source}};
}

std::string fmt_double(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : fmt::format("{}", v); }

json matrix_info(const fs::path& file, io::FileKind kind) {
  io::ReadOptions lenient;
  lenient.allow_non_finite = true;  // counted and reported, not fatal here
  json out;
  CsrMatrix a;
  if (kind == io::FileKind::MatrixMarketMatrix) {
    io::MatrixMarketInfo mm;
    a = io::read_matrix_market(file, &mm, lenient);
    out["format"] = fmt::format("Matrix Market {} {} {}", mm.format, mm.field, mm.symmetry);
    out["file_entries"] = mm.entries;
    out["duplicates_summed"] = mm.duplicates;
  } else {
    io::ValuePrecision p;
    a = io::read_reference_matrix(file, &p, lenient);
    out["format"] = fmt::format("reference DCDM binary CSR, {} values",
                                p == io::ValuePrecision::Float32 ? "float32" : "float64");
  }
  out["rows"] = a.rows;
  out["cols"] = a.cols;
  out["nnz"] = a.nnz();
  std::int64_t non_finite = 0;
  for (double v : a.values) non_finite += !std::isfinite(v);
  out["non_finite_values"] = non_finite;
  out["symmetric"] = a.is_symmetric(0.0);

  // Per row: any non-zero value, the diagonal, the sum of |off-diagonal| entries.
  std::int64_t zero_rows = 0, nonzero_rows = 0, dirichlet = 0, missing_diagonal = 0, non_positive_diagonal = 0;
  double dmin = std::numeric_limits<double>::infinity(), dmax = -dmin;
  for (std::int64_t r = 0; r < a.rows; ++r) {
    bool nonzero = false, has_diag = false;
    double diag = 0.0, off = 0.0;
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      nonzero = nonzero || a.values[k] != 0.0;
      if (a.col_idx[k] == r) {
        has_diag = true;
        diag = a.values[k];
      } else {
        off += std::abs(a.values[k]);
      }
    }
    if (!nonzero) {
      ++zero_rows;
      continue;
    }
    ++nonzero_rows;
    if (!has_diag) ++missing_diagonal;
    if (diag <= 0.0) ++non_positive_diagonal;
    dmin = std::min(dmin, diag);
    dmax = std::max(dmax, diag);
    // Relative slack: float32 reference values are exact small integers, but scaled
    // operators (1/h^2) carry rounding.
    if (diag > off * (1.0 + 1e-6)) ++dirichlet;
  }
  out["nonzero_rows"] = nonzero_rows;
  out["zero_rows"] = zero_rows;
  out["diagonal"] = nonzero_rows > 0 ? json{{"min", dmin}, {"max", dmax}} : json(nullptr);
  out["rows_without_diagonal"] = missing_diagonal;
  out["rows_with_non_positive_diagonal"] = non_positive_diagonal;

  if (a.rows == a.cols) {
    if (auto g = guess_grid(file, a.rows)) {
      out["grid"] = grid_json(*g);
      // Entries that do not couple grid neighbours (a 7-point operator has none).
      const Dims d = g->dims;
      const std::int64_t sx = 1, sy = d.nx, sz = std::int64_t(d.nx) * d.ny;
      std::int64_t stray = 0;
      for (std::int64_t r = 0; r < a.rows; ++r) {
        const std::int64_t i = r % d.nx, j = (r / d.nx) % d.ny;
        for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
          const std::int64_t c = a.col_idx[k], delta = c > r ? c - r : r - c;
          const bool neighbour = delta == 0 || (delta == sx && (c > r ? i + 1 < d.nx : i > 0)) ||
                                 (delta == sy && sy != sx && (c > r ? j + 1 < d.ny : j > 0)) ||
                                 (delta == sz && sz != sy && sz != sx);
          stray += !neighbour;
        }
      }
      out["cells"] = {{"fluid", nonzero_rows}, {"non_fluid", zero_rows}, {"fluid_with_dirichlet_faces", dirichlet}};
      out["non_neighbour_entries"] = stray;
    }
  }
  return out;
}

json vector_info(const fs::path& file, io::FileKind kind) {
  io::ReadOptions lenient;
  lenient.allow_non_finite = true;
  json out;
  std::vector<double> v;
  if (kind == io::FileKind::Npy) {
    const io::NpyArray arr = io::read_npy(file, lenient);
    out["format"] = fmt::format("NumPy .npy, {}", io::to_string(arr.dtype));
    out["dtype"] = io::to_string(arr.dtype);
    out["shape"] = arr.shape;
    v = arr.to_double();
  } else if (kind == io::FileKind::MatrixMarketVector) {
    out["format"] = "Matrix Market array";
    v = io::read_matrix_market_vector(file, lenient);
  } else {
    out["format"] = "reference DCDM binary vector, float64 after one header value";
    v = io::read_reference_vector(file, lenient);
  }
  out["length"] = v.size();
  std::int64_t nan = 0, inf = 0, nonzeros = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  long double sum = 0, sq = 0;
  for (double x : v) {
    if (std::isnan(x)) {
      ++nan;
      continue;
    }
    if (std::isinf(x)) {
      ++inf;
      continue;
    }
    nonzeros += x != 0.0;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    sum += x;
    sq += static_cast<long double>(x) * x;
  }
  const bool any_finite = static_cast<std::int64_t>(v.size()) > nan + inf;
  out["min"] = any_finite ? json(lo) : json(nullptr);
  out["max"] = any_finite ? json(hi) : json(nullptr);
  out["norm2"] = static_cast<double>(std::sqrt(sq));  // over finite values
  out["sum"] = static_cast<double>(sum);
  out["nonzeros"] = nonzeros;
  out["nan"] = nan;
  out["inf"] = inf;
  if (auto g = guess_grid(file, static_cast<std::int64_t>(v.size()))) out["grid"] = grid_json(*g);
  return out;
}

json file_info(const fs::path& file) {
  if (!fs::exists(file)) throw InputError(fmt::format("{}: no such file", file.string()));
  const io::FileKind kind = io::detect_file_kind(file);
  const bool matrix = kind == io::FileKind::MatrixMarketMatrix || kind == io::FileKind::ReferenceMatrix;
  json out = matrix ? matrix_info(file, kind) : vector_info(file, kind);
  out["file"] = file.string();
  out["kind"] = matrix ? "matrix" : "vector";
  out["bytes"] = fs::file_size(file);
  return out;
}

void print_text(const json& j) {
  auto line = [](const char* key, const std::string& value) { fmt::print("  {:<11} {}\n", key, value); };
  fmt::print("{}\n", j["file"].get<std::string>());
  line("format:", j["format"].get<std::string>());
  if (j["kind"] == "matrix") {
    line("size:", fmt::format("{} x {}", j["rows"].get<std::int64_t>(), j["cols"].get<std::int64_t>()));
    std::string nnz = fmt::format("{} stored", j["nnz"].get<std::int64_t>());
    if (j.contains("file_entries"))
      nnz += fmt::format(" ({} entries in the file, {} duplicates summed)", j["file_entries"].get<std::int64_t>(),
                         j["duplicates_summed"].get<std::int64_t>());
    line("nnz:", nnz);
    line("symmetric:", j["symmetric"].get<bool>() ? "yes" : "no");
    if (!j["diagonal"].is_null())
      line("diagonal:", fmt::format("min {}, max {} over {} non-zero rows", fmt_double(j["diagonal"]["min"].get<double>()),
                                    fmt_double(j["diagonal"]["max"].get<double>()), j["nonzero_rows"].get<std::int64_t>()));
    line("zero rows:", fmt::format("{}", j["zero_rows"].get<std::int64_t>()));
    if (j["rows_without_diagonal"].get<std::int64_t>() > 0)
      line("warning:", fmt::format("{} non-zero rows have no diagonal entry", j["rows_without_diagonal"].get<std::int64_t>()));
    if (j["non_finite_values"].get<std::int64_t>() > 0)
      line("warning:", fmt::format("{} values are NaN or Inf", j["non_finite_values"].get<std::int64_t>()));
  } else {
    std::string length = fmt::format("{}", j["length"].get<std::int64_t>());
    if (j.contains("shape")) {
      std::string s;
      for (const auto& d : j["shape"]) s += (s.empty() ? "" : ", ") + std::to_string(d.get<std::int64_t>());
      length += fmt::format(" (shape ({}{}))", s, j["shape"].size() == 1 ? "," : "");
    }
    line("length:", length);
    if (!j["min"].is_null())
      line("range:", fmt::format("min {}, max {}", fmt_double(j["min"].get<double>()), fmt_double(j["max"].get<double>())));
    line("norm2:", fmt_double(j["norm2"].get<double>()));
    line("sum:", fmt_double(j["sum"].get<double>()));
    line("nonzeros:", fmt::format("{}", j["nonzeros"].get<std::int64_t>()));
    line("NaN/Inf:", fmt::format("{} NaN, {} Inf", j["nan"].get<std::int64_t>(), j["inf"].get<std::int64_t>()));
  }
  if (j.contains("grid")) {
    const auto& g = j["grid"];
    line("grid:", fmt::format("{}x{}x{} ({})", g["dims"][0].get<int>(), g["dims"][1].get<int>(),
                              g["dims"][2].get<int>(),
                              g["source"] == "cube" ? "rows = N^3" : "dims from system.json"));
  }
  if (j.contains("cells")) {
    const auto& c = j["cells"];
    line("cells:", fmt::format("{} fluid (non-zero rows), {} non-fluid (zero rows), {} fluid with Dirichlet faces",
                               c["fluid"].get<std::int64_t>(), c["non_fluid"].get<std::int64_t>(),
                               c["fluid_with_dirichlet_faces"].get<std::int64_t>()));
    if (j["non_neighbour_entries"].get<std::int64_t>() > 0)
      line("stencil:", fmt::format("{} entries couple cells that are not grid neighbours",
                                   j["non_neighbour_entries"].get<std::int64_t>()));
    else
      line("stencil:", "grid neighbours only (7-point)");
  }
}

struct InfoArgs {
  std::vector<std::string> files;
  bool json_output = false;
};

void run_info(const InfoArgs& args) {
  json all = json::array();
  for (std::size_t k = 0; k < args.files.size(); ++k) {
    json j = file_info(args.files[k]);
    if (args.json_output) {
      all.push_back(std::move(j));
    } else {
      if (k > 0) fmt::print("\n");
      print_text(j);
    }
  }
  if (args.json_output) fmt::print("{}\n", (all.size() == 1 ? all[0] : all).dump(2));
}

RegisterCommand reg(20, [](CLI::App& root) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = root.add_subcommand(
      "info", "What a matrix or vector file holds (.mtx, .npy, reference .bin): sizes, symmetry, "
              "diagonal, zero rows, grid cell counts; vector ranges and NaN/Inf");
  cmd->add_option("files", args->files, "Matrix or vector files")->required();
  cmd->add_flag("--json", args->json_output, "Machine-readable output (one object, or an array for several files)");
  cmd->callback([args] { run_info(*args); });
});

}  // namespace
}  // namespace dcdm::cli
