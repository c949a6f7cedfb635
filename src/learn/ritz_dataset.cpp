// Ritz-vector training data (no LibTorch here: see include/dcdm/dataset.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numbers>
#include <sstream>

#include <unistd.h>

// Eigen's AVX-512 reductions trip GCC 12's -Wmaybe-uninitialized (a known false positive in
// its intrinsics wrappers); the warning fires where the template is instantiated, so the whole
// file has to opt out.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/system.hpp"
#include "weights_archive.hpp"  // crc32

namespace dcdm::learn {
namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "dcdm-ritz-dataset";
// Version 2 records the CRC-32 of every data file (shards, cells, the Ritz cache) in the
// manifest; version 1 manifests, written before, have none and are read without.
constexpr int kVersion = 2;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A small portable generator (xoshiro256**) and Box-Muller normals, so a seed gives the same
// data with any standard library.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t st = seed ^ (0xD1B54A32D192ED03ull * (stream + 1));
    for (auto& w : s_) w = splitmix64(st);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0.0;
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

std::string read_text(const fs::path& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string crc_text(std::uint32_t crc) { return fmt::format("{:08x}", crc); }

// The CRC-32 of a whole file, read a block at a time. `on_block(offset, bytes)` sees each block
// (the shard reader scans the values as they pass).
std::uint32_t file_crc32(const fs::path& path,
                         const std::function<void(std::int64_t, std::string_view)>& on_block = {}) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  constexpr std::size_t kBlock = std::size_t(1) << 20;  // a multiple of 4: float values never straddle
  std::string block(kBlock, '\0');
  std::uint32_t crc = 0;
  std::int64_t offset = 0;
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(kBlock));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    const std::string_view view(block.data(), got);
    crc = crc32(view, crc);
    if (on_block) on_block(offset, view);
    offset += static_cast<std::int64_t>(got);
  }
  if (in.bad()) throw InputError(fmt::format("{}: byte {}: read error", path.string(), offset));
  return crc;
}

// InputError unless `path` sums to the CRC-32 text `stored` (from the manifest `manifest`).
void check_crc(const fs::path& path, const std::string& stored, std::uint32_t computed, const fs::path& manifest) {
  if (stored != crc_text(computed))
    throw InputError(fmt::format("{}: checksum mismatch (stored {} in {}, computed {}): the file is damaged; "
                                 "delete it to recompute (dcdm dataset with the same options)",
                                 path.string(), stored, manifest.filename().string(), crc_text(computed)));
}

// The CRC-32 text a version-2 manifest entry must carry for `what`; "" for version 1 entries.
std::string stored_crc(const json& entry, const char* key, int version, const fs::path& manifest,
                       const std::string& what) {
  if (entry.is_object() && entry.contains(key)) {
    if (!entry.at(key).is_string())
      throw InputError(fmt::format("{}: '{}' of {} is not a string", manifest.string(), key, what));
    return entry.at(key).get<std::string>();
  }
  if (version >= 2)
    throw InputError(fmt::format("{}: no '{}' checksum for {} (a version {} manifest has one for every file): the "
                                 "manifest is damaged",
                                 manifest.string(), key, what, version));
  return "";
}

// "KEY = FOUND, this command asks for WANT" for the first key in which two recipes differ.
std::string recipe_difference(const json& found, const json& want) {
  for (auto it = want.begin(); it != want.end(); ++it)
    if (!found.is_object() || !found.contains(it.key()) || found.at(it.key()) != it.value())
      return fmt::format("{} = {}, this command asks for {}", it.key(),
                         found.is_object() && found.contains(it.key()) ? found.at(it.key()).dump() : "(none)",
                         it.value().dump());
  return "other settings";
}

// The index of the first non-finite float32 in `bytes` (a multiple of 4), or -1.
std::int64_t first_non_finite(std::string_view bytes) {
  for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    float v;
    std::memcpy(&v, bytes.data() + i, 4);
    if (!std::isfinite(v)) return static_cast<std::int64_t>(i / 4);
  }
  return -1;
}

[[noreturn]] void refuse_non_finite_sample(const fs::path& shard, std::int64_t first, std::int64_t n,
                                           std::int64_t value_index, std::int64_t byte) {
  throw InputError(fmt::format("{}: sample {} (row {} of the shard, value {}, byte {}) is not finite: the dataset is "
                               "damaged; delete the shard and run dcdm dataset again",
                               shard.string(), first + value_index / n, value_index / n, value_index % n, byte));
}

const char* face_name(FaceBoundary b) { return b == FaceBoundary::Open ? "open" : "wall"; }

json dims_json(Dims d) { return json::array({d.nx, d.ny, d.nz}); }

json recipe_json(const DatasetSpec& spec, Dims dims) {
  return json{{"dims", dims_json(dims)},
              {"lanczos_steps", spec.recipe.lanczos_steps},
              {"theta", spec.recipe.theta},
              {"boost", spec.recipe.boost},
              {"seed", spec.recipe.seed},
              {"samples", spec.samples},
              {"shard_size", spec.shard_size},
              {"drop_below", spec.drop_below},
              {"source", spec.source}};
}

std::string shard_name(std::int64_t s) { return fmt::format("shard-{:05d}.npy", s); }

void append_le_shape(std::string& h, const std::vector<std::int64_t>& shape) {
  h += "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    h += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) h += ",";
    if (i + 1 < shape.size()) h += " ";
  }
  h += ")";
}

}  // namespace

// ---------------------------------------------------------------- .npy + atomic writes

void write_atomic(const fs::path& path, dcdm::span<const char> bytes) {
  const fs::path tmp = path.string() + fmt::format(".tmp{}", static_cast<long>(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(fmt::format("{}: cannot create", tmp.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw InputError(fmt::format("{}: write failed (disk full?)", tmp.string()));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw InputError(fmt::format("{}: cannot rename into place", path.string()));
  }
}

std::string npy_header(const std::string& descr, const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': ";
  append_le_shape(dict, shape);
  dict += ", }";
  // magic(6) + version(2) + len(2) + dict + padding + '\n', total a multiple of 64.
  std::size_t total = 10 + dict.size() + 1;
  const std::size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += char(1);
  h += char(0);
  const auto len = static_cast<std::uint16_t>(dict.size());
  h += char(len & 0xff);
  h += char(len >> 8);
  return h + dict;
}

NpyInfo read_npy_info(const fs::path& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  char pre[10];
  in.read(pre, 10);
  if (in.gcount() != 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0)
    throw InputError(fmt::format("{}: byte 0: not a .npy file", path.string()));
  const int major = static_cast<unsigned char>(pre[6]);
  std::int64_t header_len = 0, offset = 10;
  if (major == 1) {
    header_len = static_cast<unsigned char>(pre[8]) | (static_cast<unsigned char>(pre[9]) << 8);
  } else if (major == 2 || major == 3) {
    char more[2];
    in.read(more, 2);
    header_len = static_cast<unsigned char>(pre[8]) | (static_cast<unsigned char>(pre[9]) << 8) |
                 (static_cast<unsigned char>(more[0]) << 16) |
                 (static_cast<std::int64_t>(static_cast<unsigned char>(more[1])) << 24);
    offset = 12;
  } else {
    throw InputError(fmt::format("{}: byte 6: unsupported .npy version {}", path.string(), major));
  }
  std::string dict(static_cast<std::size_t>(header_len), '\0');
  in.read(dict.data(), header_len);
  if (in.gcount() != header_len)
    throw InputError(fmt::format("{}: byte {}: truncated .npy header", path.string(), offset));
  NpyInfo info;
  info.data_offset = offset + header_len;
  auto field = [&](const std::string& key) -> std::string {
    const auto k = dict.find("'" + key + "'");
    if (k == std::string::npos)
      throw InputError(fmt::format("{}: byte {}: .npy header lacks '{}'", path.string(), offset, key));
    auto p = dict.find(':', k);
    if (p == std::string::npos)
      throw InputError(fmt::format("{}: byte {}: malformed .npy header", path.string(), offset));
    ++p;
    while (p < dict.size() && dict[p] == ' ') ++p;
    return dict.substr(p);
  };
  std::string d = field("descr");
  if (d.empty() || d[0] != '\'' || d.find('\'', 1) == std::string::npos)
    throw InputError(fmt::format("{}: byte {}: malformed descr", path.string(), offset));
  info.descr = d.substr(1, d.find('\'', 1) - 1);
  if (field("fortran_order").rfind("False", 0) != 0)
    throw InputError(fmt::format("{}: byte {}: Fortran-order arrays are not supported",
                                 path.string(), offset));
  std::string s = field("shape");
  if (s.empty() || s[0] != '(' || s.find(')') == std::string::npos)
    throw InputError(fmt::format("{}: byte {}: malformed shape", path.string(), offset));
  s = s.substr(1, s.find(')') - 1);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    if (item.empty()) continue;
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (v < 0) throw std::invalid_argument("negative");
      info.shape.push_back(v);
    } catch (const std::exception&) {
      throw InputError(fmt::format("{}: byte {}: bad shape entry '{}'", path.string(), offset, item));
    }
  }
  return info;
}

namespace {
std::string cells_npy_bytes(const Domain& domain) {
  const Dims d = domain.dims();
  std::string bytes = npy_header("|u1", {d.nz, d.ny, d.nx});
  const auto* p = reinterpret_cast<const char*>(domain.cells.data());
  bytes.append(p, p + d.size());
  return bytes;
}
}  // namespace

void write_cells_npy(const fs::path& path, const Domain& domain) { write_atomic(path, cells_npy_bytes(domain)); }

Field<CellType> read_cells_npy(const fs::path& path) {
  const NpyInfo info = read_npy_info(path);
  if (info.descr != "|u1" && info.descr != "<u1")
    throw InputError(fmt::format("{}: expected uint8 cell types, found dtype '{}'", path.string(), info.descr));
  if (info.shape.size() != 3)
    throw InputError(fmt::format("{}: expected a 3-D (nz, ny, nx) array", path.string()));
  const Dims d{static_cast<int>(info.shape[2]), static_cast<int>(info.shape[1]),
               static_cast<int>(info.shape[0])};
  Field<CellType> cells(d);
  std::ifstream in(path, std::ios::binary);
  in.seekg(info.data_offset);
  in.read(reinterpret_cast<char*>(cells.data()), d.size());
  if (in.gcount() != d.size())
    throw InputError(fmt::format("{}: byte {}: truncated (expected {} cells)", path.string(),
                                 info.data_offset + in.gcount(), d.size()));
  for (std::int64_t c = 0; c < d.size(); ++c) {
    const auto v = static_cast<std::uint8_t>(cells[c]);
    if (v > 2)
      throw InputError(fmt::format("{}: byte {}: invalid cell type {}", path.string(),
                                   info.data_offset + c, v));
  }
  return cells;
}

// ---------------------------------------------------------------- Ritz basis

RitzBasis ritz_basis_from_lanczos(const LanczosResult& lanczos, Dims dims, double drop_below) {
  const Eigen::Index m = lanczos.steps;
  const std::int64_t n = dims.size();
  const bool in_float = lanczos.basis.empty();
  if (m < 1 || lanczos.n != n ||
      static_cast<Eigen::Index>(lanczos.tridiagonal_eigenvectors.size()) != m * m ||
      static_cast<Eigen::Index>(lanczos.ritz_values.size()) != m ||
      (in_float ? static_cast<std::int64_t>(lanczos.basis_float.size())
                : static_cast<std::int64_t>(lanczos.basis.size())) != n * m)
    throw Error("ritz_basis_from_lanczos: inconsistent Lanczos result");
  std::vector<Eigen::Index> keep;
  for (Eigen::Index j = 0; j < m; ++j)
    if (lanczos.ritz_values[static_cast<std::size_t>(j)] >= drop_below) keep.push_back(j);
  const auto k = static_cast<Eigen::Index>(keep.size());
  Eigen::Map<const Eigen::MatrixXd> y(lanczos.tridiagonal_eigenvectors.data(), m, m);
  Eigen::MatrixXd yt(k, m);  // rows: kept eigenvectors of T
  RitzBasis basis;
  basis.dims = dims;
  basis.lanczos_steps = static_cast<int>(m);
  for (Eigen::Index r = 0; r < k; ++r) {
    yt.row(r) = y.col(keep[r]).transpose();
    basis.values.push_back(lanczos.ritz_values[static_cast<std::size_t>(keep[r])]);
  }
  basis.vectors.assign(static_cast<std::size_t>(k * n), 0.0f);
  // Ritz vectors = V Y, one block of cells at a time (V block^T: m x bs).
  constexpr std::int64_t kBlock = 1024;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t c0 = blk * kBlock, bs = std::min(kBlock, n - c0);
    Eigen::MatrixXd vb(m, bs);
    for (Eigen::Index i = 0; i < m; ++i)
      for (std::int64_t c = 0; c < bs; ++c)
        vb(i, c) = in_float ? double(lanczos.basis_float[static_cast<std::size_t>(i * n + c0 + c)])
                            : lanczos.basis[static_cast<std::size_t>(i * n + c0 + c)];
    const Eigen::MatrixXd rb = yt * vb;  // k x bs
    for (Eigen::Index r = 0; r < k; ++r)
      for (std::int64_t c = 0; c < bs; ++c)
        basis.vectors[static_cast<std::size_t>(r * n + c0 + c)] = static_cast<float>(rb(r, c));
  }
  // Re-normalise in double (float rounding; V's own small loss of orthogonality).
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < k; ++r) {
    float* v = basis.vectors.data() + r * n;
    double s = 0.0;
    for (std::int64_t c = 0; c < n; ++c) s += double(v[c]) * v[c];
    const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
    for (std::int64_t c = 0; c < n; ++c) v[c] = static_cast<float>(v[c] * inv);
  }
  return basis;
}

RitzBasis compute_ritz_basis(const LinearOperator& a, Dims dims, int steps, std::uint64_t seed,
                             const std::function<void(dcdm::span<double>)>& project,
                             double drop_below, const std::function<void(int, int)>& progress) {
  if (steps < 1) throw InputError("--ritz: need at least 1 Lanczos step");
  const std::int64_t n = dims.size();
  if (a.size() != n) throw Error("compute_ritz_basis: operator size differs from the grid");
  std::vector<double> x(static_cast<std::size_t>(n)), start(static_cast<std::size_t>(n));
  Rng rng(seed, ~std::uint64_t(0));
  for (auto& v : x) v = rng.normal();
  a.apply(x, start);
  if (project) project(start);
  bool nonzero = false;
  for (double v : start) nonzero = nonzero || v != 0.0;
  if (!nonzero) throw InputError("dataset: A x is zero (the domain has no fluid cell?)");
  LanczosOptions options;
  options.project = project;
  options.basis_in_float = true;
  if (progress) options.progress = [&](int step, double) { progress(step, steps); };
  const LanczosResult result = lanczos(a, start, steps, options);
  return ritz_basis_from_lanczos(result, dims, drop_below);
}

// ---------------------------------------------------------------- samples

std::int64_t SampleRecipe::boosted(std::int64_t kept) const {
  const std::int64_t b = std::int64_t(lanczos_steps) / 2 + theta;
  return std::clamp<std::int64_t>(b, 0, kept);
}

std::vector<double> sample_coefficients(const RitzBasis& basis, const SampleRecipe& recipe,
                                        std::int64_t index) {
  Rng rng(recipe.seed, static_cast<std::uint64_t>(index));
  const std::int64_t k = basis.count(), nb = recipe.boosted(k);
  std::vector<double> c(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < k; ++j) c[j] = rng.normal() * (j < nb ? recipe.boost : 1.0);
  return c;
}

void generate_samples(const RitzBasis& basis, const SampleRecipe& recipe, std::int64_t first,
                      std::int64_t count, dcdm::span<float> out) {
  const std::int64_t n = basis.dims.size(), k = basis.count();
  if (static_cast<std::int64_t>(out.size()) != count * n)
    throw Error("generate_samples: output size mismatch");
  if (k == 0) throw InputError("dataset: no Ritz vector above the drop threshold (is A zero?)");
  using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajorF coeff(count, k);
  for (std::int64_t s = 0; s < count; ++s) {
    const auto c = sample_coefficients(basis, recipe, first + s);
    for (std::int64_t j = 0; j < k; ++j) coeff(s, j) = static_cast<float>(c[j]);
  }
  Eigen::Map<const RowMajorF> ritz(basis.vectors.data(), k, n);
  Eigen::Map<RowMajorF> samples(out.data(), count, n);
  samples.noalias() = coeff * ritz;
  for (std::int64_t s = 0; s < count; ++s) {
    float* v = out.data() + s * n;
    double sq = 0.0;
    for (std::int64_t c = 0; c < n; ++c) sq += double(v[c]) * v[c];
    if (!(sq > 0.0) || !std::isfinite(sq))
      throw Error(fmt::format("generate_samples: sample {} has norm {}", first + s, std::sqrt(sq)));
    const double inv = 1.0 / std::sqrt(sq);
    for (std::int64_t c = 0; c < n; ++c) v[c] = static_cast<float>(v[c] * inv);
  }
}

// ---------------------------------------------------------------- writer

int write_dataset(const fs::path& out, const Domain& domain, const LinearOperator& a,
                  const std::function<void(dcdm::span<double>)>& project, const DatasetSpec& spec,
                  const DatasetProgress& progress) {
  const Dims dims = domain.dims();
  auto log = [&](const std::string& s) {
    if (progress.log) progress.log(s);
  };
  if (spec.recipe.lanczos_steps < 1) throw InputError("--ritz: need at least 1 Lanczos step");
  if (spec.samples < 1) throw InputError("--samples: need at least 1 sample");
  if (spec.shard_size < 1) throw InputError("--shard-size: need at least 1 sample per shard");
  if (spec.recipe.theta < 0) throw InputError("--theta: must be >= 0");
  if (a.size() != dims.size()) throw Error("write_dataset: operator size differs from the grid");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw InputError(fmt::format("{}: cannot create folder ({})", out.string(), ec.message()));

  const fs::path manifest_path = out / "manifest.json";
  const json recipe = recipe_json(spec, dims);
  json manifest;
  std::vector<bool> done;
  const std::int64_t nshards = (spec.samples + spec.shard_size - 1) / spec.shard_size;
  done.assign(static_cast<std::size_t>(nshards), false);
  std::vector<std::string> shard_crc(static_cast<std::size_t>(nshards));  // "" for version-1 entries
  int version = kVersion;
  if (fs::exists(manifest_path)) {
    try {
      manifest = json::parse(read_text(manifest_path));
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: not valid JSON ({})", manifest_path.string(), e.what()));
    }
    // Field types are the file's to get wrong: a json exception is the manifest's fault.
    try {
      if (!manifest.is_object() || !manifest.contains("recipe") || manifest["recipe"] != recipe)
        throw InputError(fmt::format(
            "{}: holds a different dataset ({}: {}); use a new --out folder",
            out.string(), manifest_path.filename().string(),
            recipe_difference(manifest.is_object() ? manifest.value("recipe", json()) : json(), recipe)));
      version = manifest.value("version", 0);
      if (manifest.value("format", std::string()) != kFormat || version < 1 || version > kVersion)
        throw InputError(fmt::format("{}: not a {} manifest of version 1 to {}", manifest_path.string(), kFormat,
                                     kVersion));
      // The cells: a folder made from another domain of the same size (a changed --system
      // folder) would get new shards of other Ritz vectors beside the old ones.
      const fs::path cells_path = out / "cells.npy";
      if (fs::exists(cells_path)) {
        const std::string want = cells_npy_bytes(domain);
        const std::string crc = manifest.value("cells_crc32", std::string());
        if (!crc.empty()) check_crc(cells_path, crc, file_crc32(cells_path), manifest_path);
        if (read_text(cells_path) != want)
          throw InputError(fmt::format("{}: holds a dataset of another domain ({} differs from this command's cells); "
                                       "use a new --out folder",
                                       out.string(), cells_path.filename().string()));
      }
      log(fmt::format("resuming dataset in {}", out.string()));
      for (const auto& s : manifest.value("shards", json::array())) {
        const std::int64_t index = s.value("index", std::int64_t(-1));
        if (index < 0 || index >= nshards) continue;
        const fs::path p = out / s.value("file", std::string());
        const std::int64_t count = std::min(spec.shard_size, spec.samples - index * spec.shard_size);
        const auto expect = static_cast<std::uintmax_t>(
            npy_header("<f4", {count, dims.nz, dims.ny, dims.nx}).size() + count * dims.size() * 4);
        if (!fs::exists(p) || fs::file_size(p) != expect) continue;  // regenerated below
        // A complete shard is reused only when it is the one the manifest summed.
        const std::string crc = stored_crc(s, "crc32", version, manifest_path, p.filename().string());
        if (!crc.empty()) check_crc(p, crc, file_crc32(p), manifest_path);
        done[static_cast<std::size_t>(index)] = true;
        shard_crc[static_cast<std::size_t>(index)] = crc;
      }
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: malformed manifest ({})", manifest_path.string(), e.what()));
    }
  } else {
    manifest = json{{"format", kFormat},
                    {"version", kVersion},
                    {"recipe", recipe},
                    {"cells", "cells.npy"},
                    {"dtype", "float32"},
                    {"complete", false},
                    {"shards", json::array()}};
    json faces = json::array();
    for (auto f : domain.faces) faces.push_back(face_name(f));
    manifest["faces"] = faces;
  }
  const std::string cells_bytes = cells_npy_bytes(domain);
  write_atomic(out / "cells.npy", cells_bytes);
  manifest["cells_crc32"] = crc_text(crc32(cells_bytes));

  // The Ritz basis: cached next to the shards so that a resumed run skips Lanczos.
  const fs::path basis_path = out / "ritz_basis.f32", values_path = out / "ritz_values.npy";
  RitzBasis basis;
  const bool need_any = std::find(done.begin(), done.end(), false) != done.end();
  if (need_any) {
    bool loaded = false;
    if (fs::exists(basis_path) && fs::exists(values_path) && manifest.contains("ritz")) {
      // A damaged cache would give every new shard other samples: checked, not trusted.
      const json& ritz = manifest["ritz"];
      const std::string values_crc = stored_crc(ritz, "values_crc32", version, manifest_path, "ritz_values.npy");
      const std::string basis_crc = stored_crc(ritz, "basis_crc32", version, manifest_path, "ritz_basis.f32");
      if (!values_crc.empty()) check_crc(values_path, values_crc, file_crc32(values_path), manifest_path);
      if (!basis_crc.empty()) check_crc(basis_path, basis_crc, file_crc32(basis_path), manifest_path);
      const NpyInfo vi = read_npy_info(values_path);
      if (vi.descr == "<f8" && vi.shape.size() == 1) {
        const std::int64_t k = vi.shape[0];
        if (fs::file_size(basis_path) == static_cast<std::uintmax_t>(k * dims.size() * 4)) {
          basis.dims = dims;
          basis.lanczos_steps = manifest["ritz"].value("lanczos_steps_run", spec.recipe.lanczos_steps);
          basis.values.resize(static_cast<std::size_t>(k));
          std::ifstream vin(values_path, std::ios::binary);
          vin.seekg(vi.data_offset);
          vin.read(reinterpret_cast<char*>(basis.values.data()), k * 8);
          basis.vectors.resize(static_cast<std::size_t>(k * dims.size()));
          std::ifstream bin(basis_path, std::ios::binary);
          bin.read(reinterpret_cast<char*>(basis.vectors.data()), k * dims.size() * 4);
          loaded = vin.good() && bin.good();
          if (loaded) log(fmt::format("reusing the cached Ritz basis ({} vectors)", k));
        }
      }
    }
    if (!loaded) {
      log(fmt::format("Lanczos: {} steps with full re-orthogonalisation on {} ({} cells)",
                      spec.recipe.lanczos_steps, dims.str(), dims.size()));
      basis = compute_ritz_basis(a, dims, spec.recipe.lanczos_steps, spec.recipe.seed, project,
                                 spec.drop_below, progress.lanczos);
      if (basis.count() == 0)
        throw InputError("dataset: every Ritz value is below the drop threshold (no fluid cell?)");
      std::string vb = npy_header("<f8", {basis.count()});
      vb.append(reinterpret_cast<const char*>(basis.values.data()), basis.values.size() * 8);
      write_atomic(values_path, vb);
      const std::string_view basis_bytes(reinterpret_cast<const char*>(basis.vectors.data()),
                                         basis.vectors.size() * 4);
      write_atomic(basis_path, dcdm::span<const char>(basis_bytes.data(), basis_bytes.size()));
      manifest["ritz"] = json{{"kept", basis.count()},
                              {"lanczos_steps_run", basis.lanczos_steps},
                              {"boosted", spec.recipe.boosted(basis.count())},
                              {"lambda_min", basis.values.front()},
                              {"lambda_max", basis.values.back()},
                              {"values", "ritz_values.npy"},
                              {"basis", "ritz_basis.f32"},
                              {"values_crc32", crc_text(crc32(vb))},
                              {"basis_crc32", crc_text(crc32(basis_bytes))}};
      write_atomic(manifest_path, manifest.dump(2) + "\n");
      log(fmt::format("Ritz basis: {} vectors kept, lambda in [{:.4g}, {:.4g}], lowest {} boosted x{}",
                      basis.count(), basis.values.front(), basis.values.back(),
                      spec.recipe.boosted(basis.count()), spec.recipe.boost));
    }
  }

  int written = 0;
  std::vector<float> buffer;
  for (std::int64_t s = 0; s < nshards; ++s) {
    if (done[static_cast<std::size_t>(s)]) continue;
    const std::int64_t first = s * spec.shard_size;
    const std::int64_t count = std::min(spec.shard_size, spec.samples - first);
    buffer.assign(static_cast<std::size_t>(count * dims.size()), 0.0f);
    SampleRecipe recipe = spec.recipe;
    generate_samples(basis, recipe, first, count, buffer);
    std::string bytes = npy_header("<f4", {count, dims.nz, dims.ny, dims.nx});
    bytes.append(reinterpret_cast<const char*>(buffer.data()), buffer.size() * 4);
    write_atomic(out / shard_name(s), bytes);
    done[static_cast<std::size_t>(s)] = true;
    shard_crc[static_cast<std::size_t>(s)] = crc_text(crc32(bytes));
    json shards = json::array();
    for (std::int64_t t = 0; t < nshards; ++t)
      if (done[static_cast<std::size_t>(t)]) {
        json entry{{"index", t},
                   {"file", shard_name(t)},
                   {"first", t * spec.shard_size},
                   {"count", std::min(spec.shard_size, spec.samples - t * spec.shard_size)}};
        if (!shard_crc[static_cast<std::size_t>(t)].empty()) entry["crc32"] = shard_crc[static_cast<std::size_t>(t)];
        shards.push_back(entry);
      }
    manifest["shards"] = shards;
    manifest["complete"] = std::find(done.begin(), done.end(), false) == done.end();
    write_atomic(manifest_path, manifest.dump(2) + "\n");
    ++written;
    log(fmt::format("shard {}/{}: samples {}..{}", s + 1, nshards, first, first + count - 1));
  }
  if (!manifest.value("complete", false)) {
    manifest["complete"] = true;
    write_atomic(manifest_path, manifest.dump(2) + "\n");
  }
  return written;
}

// ---------------------------------------------------------------- reader

ShardedDataset::ShardedDataset(const fs::path& dir) : dir_(dir) {
  const fs::path mp = dir / "manifest.json";
  if (!fs::exists(mp))
    throw InputError(fmt::format("{}: missing (not a dataset folder; create one with `dcdm dataset`)",
                                 mp.string()));
  manifest_text_ = read_text(mp);
  json m;
  try {
    m = json::parse(manifest_text_);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON ({})", mp.string(), e.what()));
  }
  try {
    if (m.value("format", std::string()) != kFormat)
      throw InputError(fmt::format("{}: format is not '{}'", mp.string(), kFormat));
    const int version = m.value("version", 0);
    if (version < 1 || version > kVersion)
      throw InputError(fmt::format("{}: unsupported version {} (this build reads 1 to {})", mp.string(), version,
                                   kVersion));
    if (!m.value("complete", false))
      throw InputError(fmt::format("{}: the dataset is incomplete; resume `dcdm dataset` with the same options",
                                   mp.string()));
    const auto& r = m.at("recipe");
    json summary = r;
    if (m.contains("ritz")) summary["ritz"] = m["ritz"];
    recipe_json_ = summary.dump();
    // The fingerprint ties a checkpoint to a recipe, not to the manifest's bytes, so a dataset
    // regenerated from the same command (another session, another machine) still matches.
    fingerprint_source_ = r.dump() + "|" + std::to_string(m.value("ritz", json::object()).value("kept", 0));
    const Dims dims = dims_from_json(r.at("dims"), mp.string() + " dims");
    const fs::path cp = dir / m.value("cells", std::string("cells.npy"));
    const std::string cells_crc = stored_crc(m, "cells_crc32", version, mp, cp.filename().string());
    if (!cells_crc.empty()) check_crc(cp, cells_crc, file_crc32(cp), mp);
    domain_.cells = read_cells_npy(cp);
    if (!(domain_.dims() == dims))
      throw InputError(fmt::format("{}: grid {} differs from the manifest's {}", cp.string(),
                                   domain_.dims().str(), dims.str()));
    const auto& faces = m.at("faces");
    if (faces.size() != 6) throw InputError(fmt::format("{}: 'faces' needs 6 entries", mp.string()));
    for (int f = 0; f < 6; ++f) {
      const auto s = faces.at(f).get<std::string>();
      if (s != "open" && s != "wall")
        throw InputError(fmt::format("{}: face {} is '{}' (open|wall)", mp.string(), f, s));
      domain_.faces[f] = s == "open" ? FaceBoundary::Open : FaceBoundary::Wall;
    }
    for (const auto& s : m.at("shards")) {
      Shard sh;
      sh.path = dir / s.at("file").get<std::string>();
      sh.first = s.at("first").get<std::int64_t>();
      sh.count = s.at("count").get<std::int64_t>();
      if (!fs::exists(sh.path)) throw InputError(fmt::format("{}: missing shard (listed in {})", sh.path.string(), mp.string()));
      const NpyInfo info = read_npy_info(sh.path);
      const std::vector<std::int64_t> want{sh.count, dims.nz, dims.ny, dims.nx};
      if (info.descr != "<f4" || info.shape != want)
        throw InputError(fmt::format("{}: expected float32 samples of shape ({}, {}, {}, {}) for grid {}",
                                     sh.path.string(), sh.count, dims.nz, dims.ny, dims.nx, dims.str()));
      const auto size = fs::file_size(sh.path);
      const auto expect = static_cast<std::uintmax_t>(info.data_offset + sh.count * dims.size() * 4);
      if (size != expect)
        throw InputError(fmt::format("{}: byte {}: truncated shard (expected {} bytes)", sh.path.string(),
                                     size, expect));
      sh.data_offset = info.data_offset;
      // The whole shard is read once here: its checksum, and every value finite (a NaN would
      // surface epochs later as a non-finite loss).
      const std::string crc = stored_crc(s, "crc32", version, mp, sh.path.filename().string());
      std::int64_t bad_value = -1;
      const std::uint32_t computed = file_crc32(sh.path, [&](std::int64_t offset, std::string_view block) {
        if (bad_value >= 0) return;
        const std::int64_t skip = std::max<std::int64_t>(0, sh.data_offset - offset);
        if (skip >= static_cast<std::int64_t>(block.size())) return;
        const std::int64_t i = first_non_finite(block.substr(static_cast<std::size_t>(skip)));
        if (i >= 0) bad_value = (offset + skip - sh.data_offset) / 4 + i;
      });
      if (!crc.empty()) check_crc(sh.path, crc, computed, mp);
      if (bad_value >= 0)
        refuse_non_finite_sample(sh.path, sh.first, dims.size(), bad_value, sh.data_offset + 4 * bad_value);
      if (sh.first != total_)
        throw InputError(fmt::format("{}: shards out of order at {}", mp.string(), sh.path.string()));
      total_ += sh.count;
      shards_.push_back(sh);
    }
    if (total_ != r.at("samples").get<std::int64_t>())
      throw InputError(fmt::format("{}: shards hold {} samples, the recipe says {}", mp.string(), total_,
                                   r.at("samples").get<std::int64_t>()));
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: malformed manifest ({})", mp.string(), e.what()));
  }
}

ShardedDataset::~ShardedDataset() = default;

void ShardedDataset::read(std::int64_t index, dcdm::span<float> out) const {
  if (index < 0 || index >= total_) throw Error("ShardedDataset::read: index out of range");
  const std::int64_t n = dims().size();
  if (static_cast<std::int64_t>(out.size()) != n) throw Error("ShardedDataset::read: size mismatch");
  auto it = std::upper_bound(shards_.begin(), shards_.end(), index,
                             [](std::int64_t i, const Shard& s) { return i < s.first; });
  const Shard& s = *(it - 1);
  std::FILE* f = std::fopen(s.path.c_str(), "rb");
  if (!f) throw InputError(fmt::format("{}: cannot open", s.path.string()));
  const std::int64_t off = s.data_offset + (index - s.first) * n * 4;
  const bool ok = std::fseek(f, static_cast<long>(off), SEEK_SET) == 0 &&
                  std::fread(out.data(), 4, static_cast<std::size_t>(n), f) == static_cast<std::size_t>(n);
  std::fclose(f);
  if (!ok) throw InputError(fmt::format("{}: byte {}: read failed (file changed?)", s.path.string(), off));
  // Checked when the dataset was opened; checked again in case the file changed since.
  const std::int64_t bad = first_non_finite(std::string_view(reinterpret_cast<const char*>(out.data()), out.size() * 4));
  if (bad >= 0) refuse_non_finite_sample(s.path, s.first, n, (index - s.first) * n + bad, off + 4 * bad);
}

std::string ShardedDataset::fingerprint() const {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : fingerprint_source_) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

}  // namespace dcdm::learn
