#pragma once
// A pressure system as files: a scene (or an imported matrix) turned into A, b and flags.
//
// Folder layout written by save_system / `dcdm export` and read by load_system:
//   A.mtx        Matrix Market, coordinate real symmetric (lower triangle), full grid
//   A.bin        the reference binary CSR (float32 values, exact: entries are small integers)
//   b.npy        float64, shape (nz, ny, nx), zero outside fluid cells
//   b.bin        the same values as a reference vector file (div_v_star layout)
//   flags.npy    uint8, shape (nz, ny, nx): 0 solid, 1 fluid, 2 air (CellType values)
//   system.json  dimensions, outer faces, cell counts, components (singular ones listed),
//                the right-hand side's kind / seed / projection, the scene and mesh report
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/scenes.hpp"

namespace dcdm {

// Grid dimensions stored in a JSON file ([nx, ny, nz]): integers within 32 bits, checked
// before conversion (a 16.7 or a 2^40 is refused, not truncated) and by check_grid_dims.
// Throws InputError naming `what`.
Dims dims_from_json(const nlohmann::json& value, const std::string& what);

struct PoissonSystem {
  Domain domain;
  CsrMatrix matrix;  // full grid (reference layout), assemble_full_grid(domain)
  std::vector<double> rhs;
  nlohmann::json meta;
};

enum class RhsKind { Random, Smooth, File };
const char* to_string(RhsKind k);
// "random" | "smooth" | anything else = a file path (kind File).
RhsKind parse_rhs_kind(const std::string& text);

// Builds the scene, assembles A and makes b:
// - random: independent standard normal values on fluid cells (deterministic for the seed);
// - smooth: a sum of a few low-frequency cosine modes (wavenumbers 1..3 per axis, amplitudes
//   and phases from the seed) on fluid cells;
// - file: read from rhs_file (.npy, .mtx, .bin), one value per grid cell; values on
//   non-fluid cells are set to zero (counted in meta).
// On singular components b is projected to zero mean (the means removed are in meta).
// Refuses (InputError naming --n/--dims) a grid whose estimated memory exceeds the machine's.
PoissonSystem make_scene_system(const SceneSpec& scene, RhsKind rhs = RhsKind::Random, std::uint64_t seed = 0,
                                const std::filesystem::path& rhs_file = {});

// Bytes needed to build and write a system of this size (domain, CSR, vectors, operator
// set-up and component labels), an estimate that errs high.
std::int64_t estimate_system_bytes(const Dims& dims);
// Physical memory of the machine (sysconf), 0 if unknown.
std::int64_t physical_memory_bytes();
// Throws InputError naming `option` with both figures when the estimate does not fit.
void check_system_fits_memory(const Dims& dims, const std::string& option = "--n/--dims");

void save_system(const std::filesystem::path& dir, const PoissonSystem& system);
// Reads a folder written by save_system; checks that A equals the assembly of flags + faces
// (InputError naming the file otherwise).
PoissonSystem load_system(const std::filesystem::path& dir);

// Reads a full-grid 7-point matrix made by any tool (.mtx or reference .bin) and infers the
// domain from it (see infer_domain); rhs (.npy, .mtx, .bin) is optional (empty path: rhs is
// left empty). dims: the grid when it is not a cube (rows = N^3 otherwise).
PoissonSystem import_system(const std::filesystem::path& matrix, const std::filesystem::path& rhs = {},
                            std::optional<Dims> dims = std::nullopt);

// Infers cells and outer faces from a full-grid matrix: rows with no non-zero entry are
// non-fluid, the others fluid; for a fluid cell, diagonal minus fluid neighbours = the number
// of its Dirichlet (air or open-face) neighbours. Ambiguities are resolved as follows, and the
// result is verified by re-assembly (InputError "not a 7-point grid Poisson matrix" if it
// differs anywhere):
// - an outer face is open when some fluid cell on it needs more Dirichlet neighbours than its
//   in-grid non-fluid neighbours could give, and no fluid cell on it has none; otherwise it is
//   a wall (a face no fluid cell touches is reported as a wall);
// - a non-fluid cell that fluid cells see is air or solid as their counts force; left free,
//   it follows the majority of its decided non-fluid neighbours (ties: solid);
// - a non-fluid cell no fluid cell sees takes the type of the nearest seen non-fluid cell
//   (breadth-first through non-fluid cells), or solid if none is reachable.
// `notes` (optional) receives what was guessed.
Domain infer_domain(const CsrMatrix& a, const Dims& dims, const std::string& name,
                    std::vector<std::string>* notes = nullptr);

// The metadata that save_system writes (dimensions, faces, counts, components), recomputed
// from a system's domain and rhs; kept in PoissonSystem::meta alongside provenance.
nlohmann::json describe_domain(const Domain& domain);

}  // namespace dcdm
