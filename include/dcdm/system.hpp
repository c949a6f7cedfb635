#pragma once
// A pressure system as files: a scene (or an imported matrix) turned into A, b and flags.
//
// Folder layout written by save_system / `dcdm export` and read by load_system:
//   A.mtx        Matrix Market, coordinate real symmetric (lower triangle), full grid; values
//                in shortest round-trip form (exact, weighted values included)
//   A.bin        the reference binary CSR, float32 values; written only when every value of A
//                is exact in float32 (always for the unit operator: small integers). A weighted
//                system whose values float32 would round has no A.bin (A.mtx is the matrix);
//                system.json's "files" lists what was written
//   b.npy        float64, shape (nz, ny, nx), zero outside fluid cells
//   b.bin        the same values as a reference vector file (div_v_star layout); written with
//                the matrix files (the reference format's pair), not with MatrixFiles::Omit
//   flags.npy    uint8, shape (nz, ny, nx): 0 solid, 1 fluid, 2 air (CellType values)
//   face_x.npy   weighted domains only (Domain::coefficients, see grid.hpp), each file only when
//   face_y.npy   its array is not all default (weights 1, diagonal 0): float64 MAC face weights
//   face_z.npy   of shapes (nz, ny, nx+1), (nz, ny+1, nx), (nz+1, ny, nx) and the per-cell
//   diagonal.npy diagonal term, shape (nz, ny, nx). load_system accepts float32 or float64.
//   system.json  dimensions, outer faces, cell counts, components (singular ones listed),
//                the right-hand side's kind / seed / projection, the scene and mesh report;
//                for a weighted domain "coefficients": {"scale": s, "face_x": "face_x.npy",
//                ...} naming the files written (absent for the unit operator)
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"

namespace dcdm {

// Grid dimensions stored in a JSON file ([nx, ny, nz]): integers within 32 bits, checked
// before conversion (a 16.7 or a 2^40 is refused, not truncated) and by check_grid_dims.
// Throws InputError naming `what`.
Dims dims_from_json(const nlohmann::json& value, const std::string& what);

// Whether a system is built with its assembled CSR matrix. No solver needs one from its
// caller: every method reads the domain's stencil, and those that factor a matrix (IC(0), the
// library peers) assemble it themselves during their set-up (system_matrix in poisson.hpp).
// Without it a system holds about 20 bytes a cell instead of 112 (the CSR is 92).
enum class SystemMatrix { Assemble, Skip };

struct PoissonSystem {
  Domain domain;
  CsrMatrix matrix;  // full grid (reference layout), assemble_full_grid(domain); rows == 0 when
                     // the system was built with SystemMatrix::Skip
  bool has_matrix() const { return matrix.rows > 0; }
  std::vector<double> rhs;
  nlohmann::json meta;
  // The fluid components of `domain`, where the builder labelled them (make_scene_system does,
  // to project b): a solve reuses them instead of labelling the grid again. Null otherwise.
  std::shared_ptr<const RangeProjector> projector;
  // Where building it went, in wall seconds (make_scene_system; zeros otherwise): the scene's
  // cells (a mesh's voxelisation included), b, the fluid components.
  struct BuildSeconds {
    double scene = 0, rhs = 0, components = 0;
  } build_seconds;
};

enum class RhsKind { Random, Smooth, File };

// The random right-hand side's value of cell `cell` (its index, x fastest) for `seed`: a
// standard normal value from a counter-based generator (SplitMix64 of the seed and the cell's
// pair; cells 2m and 2m+1 share one pair of the polar method), so that any part of the grid is drawn
// by itself: on all threads, or by an MPI rank for its own cells, with the same values.
double random_rhs_value(std::uint64_t seed, std::int64_t cell);
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
// With SystemMatrix::Skip the system has no matrix (see SystemMatrix).
PoissonSystem make_scene_system(const SceneSpec& scene, RhsKind rhs = RhsKind::Random, std::uint64_t seed = 0,
                                const std::filesystem::path& rhs_file = {},
                                SystemMatrix matrix = SystemMatrix::Assemble);

// Bytes needed to build a system of this size: the domain, b, the component labels and the
// scene's work arrays (24 bytes a cell), with SystemMatrix::Assemble also the CSR and the
// buffers of writing it (200 in all); with `weighted`, the coefficient arrays, the weighted
// operator's couplings and their .npy buffers too. An estimate that errs high.
std::int64_t estimate_system_bytes(const Dims& dims, bool weighted = false,
                                   SystemMatrix matrix = SystemMatrix::Assemble);
// Throws InputError naming `option` with both figures when the estimate does not fit.
void check_system_fits_memory(const Dims& dims, const std::string& option = "--n/--dims", bool weighted = false,
                              SystemMatrix matrix = SystemMatrix::Assemble);

// Whether save_system writes the matrix files (A.mtx, and A.bin where exact, and b.bin, the
// reference format's right-hand side) or omits them: the flags, faces and coefficients define
// the operator, and load_system assembles it from them (system.json's "files" then says
// "matrix": "omitted"). At 256^3 the matrix files are 2.1 GB and most of a folder's writing
// time; b.bin repeats b.npy's 134 MB for the reference format's readers.
enum class MatrixFiles { Write, Omit };

// Writes the folder (layout above). A weighted domain also writes its coefficient arrays. A
// system without a matrix has it assembled for the writing (and freed after).
void save_system(const std::filesystem::path& dir, const PoissonSystem& system,
                 MatrixFiles matrix_files = MatrixFiles::Write);
// The same from its parts, for a caller that holds them elsewhere (the simulator's frames: no
// copy of b and the domain into a PoissonSystem), with the fluid components when the caller
// has them (system.json's counts; computed otherwise: 0.3 s at 256^3). No matrix: assembled
// for the files when they are written.
void save_system(const std::filesystem::path& dir, const Domain& domain, const std::vector<double>& rhs,
                 const nlohmann::json& meta, MatrixFiles matrix_files, const FluidComponents* components = nullptr);
// The names of the files save_system writes for this system (A.bin only when exact in
// float32, the coefficient files of a weighted domain), system.json last.
std::vector<std::string> system_files(const PoissonSystem& system, MatrixFiles matrix_files = MatrixFiles::Write);
// Reads a folder written by save_system (or by hand in its layout): flags, faces and, when
// system.json has "coefficients", the coefficient files (float32 or float64 .npy; a missing,
// mis-shaped or non-finite file, or values Domain::set_coefficients refuses, are an InputError
// naming the file). Checks that A (A.bin when present, else A.mtx) equals the assembly of the
// domain: exactly for the unit operator; for a weighted one within a relative 1e-12 of each
// row's largest magnitude (A.mtx) or 1e-6 (a float32 A.bin). InputError naming the file and
// the first differing row otherwise.
// With SystemMatrix::Skip the matrix file is not read: the flags, the faces and the
// coefficients define the operator (the file was written from them); only its header is
// checked to have one row per cell. The arrays are read straight into their final place.
PoissonSystem load_system(const std::filesystem::path& dir, SystemMatrix matrix = SystemMatrix::Assemble);

// Reads a full-grid 7-point matrix made by any tool (.mtx or reference .bin) and infers the
// domain from it (see infer_domain); rhs (.npy, .mtx, .bin) is optional (empty path: b = 0).
// dims: the grid when it is not a cube (rows = N^3 otherwise). The system's matrix is the
// re-assembly of the inferred domain (equal to the input within the tolerance below).
PoissonSystem import_system(const std::filesystem::path& matrix, const std::filesystem::path& rhs = {},
                            std::optional<Dims> dims = std::nullopt);

// The coefficient files a folder's system.json names under "coefficients" ({"scale": s,
// "face_x": "face_x.npy", ...}): the scale and, per array (0..2 the MAC face arrays face_x,
// face_y, face_z; 3 the diagonal term), its path, empty where none is named. InputError naming
// system.json and the key for a malformed entry; MissingFileError for a named file that is not
// there. load_system reads the files whole, the PETSc layer each rank's part.
struct CoefficientFiles {
  double scale = 1.0;
  std::array<std::filesystem::path, 4> paths;
  std::string names;  // "face_x.npy, diagonal.npy" (empty: scale only)
};
CoefficientFiles coefficient_files(const std::filesystem::path& dir, const std::filesystem::path& json_path,
                                   const nlohmann::json& coefficients);

// Infers the domain (cells, outer faces and, when needed, coefficients) of a full-grid
// 7-point matrix. Every matrix is first checked to be one: square with one row per cell,
// entries only on the diagonal and the six grid neighbours, finite, off-diagonals <= 0,
// symmetric (within a relative 1e-12), a positive diagonal on every row with entries, and the
// diagonal at least the sum of the row's off-diagonal magnitudes (within a relative 1e-12).
// InputError "not a 7-point grid Poisson matrix ... row R = cell (i, j, k): why" otherwise.
// Then, in order, the first that reproduces the matrix:
// 1. the unit operator: rows with no non-zero entry are non-fluid, the others fluid; every
//    off-diagonal -1, a whole diagonal 1..6 = fluid + Dirichlet (air or open-face)
//    neighbours. Ambiguities are resolved as follows, and the result is verified exactly by
//    re-assembly:
//    - an outer face is open when some fluid cell on it needs more Dirichlet neighbours than
//      its in-grid non-fluid neighbours could give, and no fluid cell on it has none;
//      otherwise it is a wall (a face no fluid cell touches is reported as a wall);
//    - a non-fluid cell that fluid cells see is air or solid as their counts force; left
//      free, it follows the majority of its decided non-fluid neighbours (ties: solid);
//    - a non-fluid cell no fluid cell sees takes the type of the nearest seen non-fluid
//      cell (breadth-first through non-fluid cells), or solid if none is reachable.
// 2. a scaled unit operator (1/dx^2, dt/(rho dx^2)): every off-diagonal equal to one -s
//    (relative 1e-12) and every diagonal a whole multiple of s (relative 1e-12): rule 1 on
//    A / s, with Coefficients::scale = s (so the unit cells, air and open faces come back).
// 3. general weights: rows with entries are fluid, every other cell solid, every outer face a
//    wall; the weight of a face between two fluid cells is -A(c, n) (0 where they are not
//    coupled; faces next to solid cells keep weight 1, unused), the diagonal term of cell c is
//    A(c, c) minus its fluid-neighbour weights (the Dirichlet part; a value within 1e-12 of the
//    diagonal from 0 is taken as 0, so a rounding residue neither makes a singular component
//    regular nor a negative term), scale 1.
// Rules 2 and 3 are verified by re-assembly within a relative 4e-12 of each row's largest
// magnitude. `notes` (optional) receives what was guessed and which rule matched.
Domain infer_domain(const CsrMatrix& a, const Dims& dims, const std::string& name,
                    std::vector<std::string>* notes = nullptr);

// The metadata that save_system writes (dimensions, faces, counts, components), recomputed
// from a system's domain and rhs; kept in PoissonSystem::meta alongside provenance.
// `components`: the domain's fluid components when the caller has them (else computed).
nlohmann::json describe_domain(const Domain& domain, const FluidComponents* components = nullptr);

}  // namespace dcdm
