#pragma once
// Training data for DCDM (README "The method"): Ritz vectors of
// one matrix A, combined with random weights that favour the low end of the spectrum.
//
//   1. m steps of Lanczos with full re-orthogonalisation from A x, x ~ N(0, I) (seeded);
//      Ritz pairs from the m x m tridiagonal matrix; Ritz values below 1e-8 dropped.
//   2. Sample i: c_j ~ N(0, 1); the lowest m/2 + theta coefficients are multiplied by 9;
//      b = sum_j c_j v_j; b /= ||b||.
//
// Sample i depends only on (seed, i), so shards can be generated in any order and a dataset
// resumes by skipping the shards already on disk.
//
// On disk (one folder):
//   manifest.json      recipe, grid, domain faces, the list of complete shards, and the CRC-32
//                      of every file below (version 2; version 1 manifests have none)
//   cells.npy          uint8 cell types (nz, ny, nx) of the domain A was built from
//   ritz_values.npy    float64 Ritz values, ascending (kept ones only)
//   ritz_basis.f32     raw float32 Ritz vectors, one full grid after another (a cache that
//                      lets an interrupted run skip Lanczos; may be deleted afterwards)
//   shard-NNNNN.npy    float32 samples, shape (count, nz, ny, nx)
//
// Memory: the Ritz basis is held once in float32 (kept x N floats; 64^3 with m = 2000 is
// 2 GiB) beside the Lanczos basis, also float32 (another 2 GiB): peak about 8 m N bytes;
// one shard of samples is in memory at a time. Plain C++: no LibTorch here.
#include <cstdint>
#include <filesystem>
#include <functional>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm {
struct LanczosResult;
}

namespace dcdm::learn {

namespace fs = std::filesystem;

// Unit-norm, mutually orthogonal full-grid vectors sorted by ascending Ritz value.
struct RitzBasis {
  Dims dims;
  int lanczos_steps = 0;           // m
  std::vector<double> values;      // ascending, all >= the drop threshold
  std::vector<float> vectors;      // values.size() rows of dims.size() floats
  std::int64_t count() const { return static_cast<std::int64_t>(values.size()); }
  dcdm::span<const float> vector(std::int64_t j) const {
    return {vectors.data() + j * dims.size(), static_cast<std::size_t>(dims.size())};
  }
};

// Ritz pairs from a Lanczos run (either basis precision), dropping Ritz values below
// `drop_below`; the vectors V Y are formed a block of cells at a time, re-normalised in double.
RitzBasis ritz_basis_from_lanczos(const LanczosResult& lanczos, Dims dims, double drop_below = 1e-8);

// m steps of Lanczos with full re-orthogonalisation (dcdm::lanczos, float basis) on `a`
// started from A x, x ~ N(0, I) drawn from `seed`. `project` (range projection for singular
// systems) may be null. `progress(step, steps)` is called now and then.
RitzBasis compute_ritz_basis(const LinearOperator& a, Dims dims, int steps, std::uint64_t seed,
                             const std::function<void(dcdm::span<double>)>& project = {},
                             double drop_below = 1e-8,
                             const std::function<void(int, int)>& progress = {});

struct SampleRecipe {
  int lanczos_steps = 0;    // m (the boosted count is m/2 + theta)
  int theta = 500;
  double boost = 9.0;
  std::uint64_t seed = 0;
  // Number of lowest Ritz vectors whose coefficients are boosted (clamped to the basis).
  std::int64_t boosted(std::int64_t kept) const;
};

// Samples first .. first+count-1 into out (count x N floats), each of unit 2-norm.
// Deterministic: sample i depends only on (recipe.seed, i) and the basis.
void generate_samples(const RitzBasis& basis, const SampleRecipe& recipe, std::int64_t first,
                      std::int64_t count, dcdm::span<float> out);
// The coefficients of sample i (basis.count() values, before normalisation).
std::vector<double> sample_coefficients(const RitzBasis& basis, const SampleRecipe& recipe,
                                        std::int64_t index);

// ---- dataset folders ----
struct DatasetSpec {
  SampleRecipe recipe;
  std::int64_t samples = 0;
  std::int64_t shard_size = 256;
  std::string source;        // how A was obtained ("scene plume n=32", "system DIR")
  double drop_below = 1e-8;
};

struct DatasetProgress {
  std::function<void(const std::string&)> log;   // one line of status
  std::function<void(int, int)> lanczos;         // step, steps
};

// Creates or resumes a dataset in `out`: reuses a cached Ritz basis and every complete
// shard when manifest.json matches `spec` and cells.npy the domain (else InputError naming
// the folder and the first differing setting) and their checksums match (else InputError
// naming the damaged file). Writes every file atomically. Returns the number of shards written by this call.
// `a` is the operator of `domain` (the Ritz vectors are its); `project` its range projection
// (null when non-singular).
int write_dataset(const fs::path& out, const Domain& domain, const LinearOperator& a,
                  const std::function<void(dcdm::span<double>)>& project, const DatasetSpec& spec,
                  const DatasetProgress& progress = {});

// Read side: validates manifest.json, cells.npy and every shard's header, size, checksum and
// values (a truncated, damaged or foreign file, or a non-finite value, gives InputError naming
// the file and, for values, the sample). Reads every shard once to do so; samples are then
// read on demand.
class ShardedDataset {
 public:
  explicit ShardedDataset(const fs::path& dir);
  ~ShardedDataset();
  ShardedDataset(const ShardedDataset&) = delete;
  ShardedDataset& operator=(const ShardedDataset&) = delete;

  const fs::path& dir() const { return dir_; }
  const Domain& domain() const { return domain_; }
  const Dims& dims() const { return domain_.dims(); }
  std::int64_t size() const { return total_; }
  // Reads sample `index` (dims().size() floats).
  void read(std::int64_t index, dcdm::span<float> out) const;
  // The manifest's text (to tie checkpoints to the data they were trained on).
  const std::string& manifest_text() const { return manifest_text_; }
  std::string fingerprint() const;  // short hash of the recipe (+ Ritz vectors kept)
  // JSON object: the recipe plus the Ritz summary (for a model's metadata).
  std::string recipe_json() const { return recipe_json_; }

 private:
  struct Shard {
    fs::path path;
    std::int64_t first = 0, count = 0, data_offset = 0;
  };
  fs::path dir_;
  Domain domain_;
  std::vector<Shard> shards_;
  std::int64_t total_ = 0;
  std::string manifest_text_;
  std::string recipe_json_;
  std::string fingerprint_source_;
};

// ---- small .npy helpers (also used by the tests) ----
// Writes `bytes` to `path` via a temporary file in the same folder + rename.
void write_atomic(const fs::path& path, dcdm::span<const char> bytes);
// The .npy v1.0 header for a C-order array ("<f4", "<f8", "|u1").
std::string npy_header(const std::string& descr, const std::vector<std::int64_t>& shape);
struct NpyInfo {
  std::string descr;
  std::vector<std::int64_t> shape;
  std::int64_t data_offset = 0;
};
// Parses the header of `path` (InputError naming the file and byte offset on garbage).
NpyInfo read_npy_info(const fs::path& path);
// Cell types of a domain as uint8 (nz, ny, nx) and back.
void write_cells_npy(const fs::path& path, const Domain& domain);
Field<CellType> read_cells_npy(const fs::path& path);

}  // namespace dcdm::learn
