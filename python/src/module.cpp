// dcdm's Python bindings (the extension module dcdm._dcdm; python/dcdm/__init__.py adds the
// SciPy-facing layer). Bindings over the library, not the CLI: the same domains, operator,
// methods by name (dcdm/methods.hpp), system folders and simulator.
//
// Arrays: a grid vector is NumPy float64 of shape (nz, ny, nx) (C order, x fastest) or flat
// (nx*ny*nz,). C-contiguous float64 arrays go in and out without a copy; other real dtypes are
// converted. The GIL is released during set-up and solve (and re-taken for a callback).
// Errors: the library's InputError becomes ValueError, a missing file FileNotFoundError, a
// wrong dtype TypeError.
#include <omp.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dcdm/memory.hpp"
#include "dcdm/error.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/models.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/sim.hpp"
#include "dcdm/system.hpp"
#include "dcdm/version.hpp"
#include "modules.hpp"
#include "torch_backend.hpp"

namespace py = pybind11;
using namespace dcdm;

namespace {

using GridArray = py::array_t<double, py::array::c_style>;

const char* const kFaceNames[6] = {"xmin", "xmax", "ymin", "ymax", "zmin", "zmax"};

std::vector<py::ssize_t> grid_shape(const Dims& d) { return {d.nz, d.ny, d.nx}; }

// A float64 C-contiguous view of `obj` (no copy when it already is one) with N values: the
// grid's shape or flat. TypeError for non-real dtypes, ValueError for a wrong size.
GridArray as_grid_vector(const py::handle& obj, const Dims& dims, const char* what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) throw py::type_error(fmt::format("{}: expected a NumPy array", what));
  const char kind = arr.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(fmt::format("{}: dtype {} is not a real number type", what,
                                     std::string(py::str(arr.dtype()))));
  const py::ssize_t n = dims.size();
  const bool grid = arr.ndim() == 3 && arr.shape(0) == dims.nz && arr.shape(1) == dims.ny && arr.shape(2) == dims.nx;
  const bool flat = arr.ndim() == 1 && arr.shape(0) == n;
  if (!grid && !flat) {
    std::string shape;
    for (py::ssize_t a = 0; a < arr.ndim(); ++a) shape += fmt::format("{}{}", a ? ", " : "", arr.shape(a));
    throw py::value_error(fmt::format("{}: shape ({}) is neither the grid's (nz, ny, nx) = ({}, {}, {}) nor ({},)",
                                      what, shape, dims.nz, dims.ny, dims.nx, n));
  }
  return GridArray::ensure(arr);  // a view of a float64 C array, else a converted copy
}

GridArray new_like(const py::handle& like, const Dims& dims) {
  py::array arr = py::array::ensure(like);
  if (arr.ndim() == 3) return GridArray(grid_shape(dims));
  return GridArray(dims.size());
}

dcdm::span<const double> const_span(const GridArray& v) {
  return {v.data(), static_cast<std::size_t>(v.size())};
}
dcdm::span<double> mutable_span(GridArray& v) { return {v.mutable_data(), static_cast<std::size_t>(v.size())}; }

// ---- Domain ----

Domain domain_from_array(const py::handle& cells_obj, const py::object& faces) {
  py::array cells = py::array::ensure(cells_obj);
  if (!cells) throw py::type_error("cells: expected a NumPy array");
  const char kind = cells.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(fmt::format("cells: dtype {} is not an integer type (cell codes: SOLID=0, FLUID=1, AIR=2)",
                                     std::string(py::str(cells.dtype()))));
  if (cells.ndim() != 3) throw py::value_error(fmt::format("cells: {} dimensions, expected (nz, ny, nx)", cells.ndim()));
  for (int a = 0; a < 3; ++a)
    if (cells.shape(a) < 1 || cells.shape(a) > (1 << 20))
      throw py::value_error(fmt::format("cells: axis {} has {} cells", a, cells.shape(a)));
  const Dims dims{static_cast<int>(cells.shape(2)), static_cast<int>(cells.shape(1)), static_cast<int>(cells.shape(0))};
  check_grid_dims(dims, "cells");
  auto values = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(cells);
  Domain d(dims, CellType::Solid);
  const std::int64_t* v = values.data();
  for (std::int64_t c = 0; c < dims.size(); ++c) {
    if (v[c] < 0 || v[c] > 2)
      throw py::value_error(fmt::format("cells: value {} at flat index {} is not a cell code (SOLID=0, FLUID=1, AIR=2)",
                                        v[c], c));
    d.cells[c] = static_cast<CellType>(v[c]);
  }
  if (!faces.is_none()) {
    if (!py::isinstance<py::dict>(faces)) throw py::type_error("faces: a dict such as {'zmax': 'open'}");
    for (const auto& item : faces.cast<py::dict>()) {
      if (!py::isinstance<py::str>(item.first) || !py::isinstance<py::str>(item.second))
        throw py::type_error("faces: face names and types are strings, e.g. {'zmax': 'open'}");
      const auto key = item.first.cast<std::string>();
      const auto value = item.second.cast<std::string>();
      int f = 0;
      while (f < 6 && key != kFaceNames[f]) ++f;
      if (f == 6) throw py::value_error(fmt::format("faces: unknown face '{}' (xmin, xmax, ymin, ymax, zmin, zmax)", key));
      if (value != "wall" && value != "open")
        throw py::value_error(fmt::format("faces: {} = '{}' (expected 'wall' or 'open')", key, value));
      d.faces[f] = value == "open" ? FaceBoundary::Open : FaceBoundary::Wall;
    }
  }
  return d;
}

// ---- Coefficients (Domain::coefficients): MAC face weights, a diagonal term, a scale ----

const char* const kCoefficientNames[4] = {"face_x", "face_y", "face_z", "diagonal"};

// NumPy shape of coefficient array a (0..2 the face arrays, 3 the diagonal term).
std::vector<py::ssize_t> coefficient_shape(const Dims& d, int a) {
  switch (a) {
    case 0: return {d.nz, d.ny, py::ssize_t(d.nx) + 1};
    case 1: return {d.nz, py::ssize_t(d.ny) + 1, d.nx};
    case 2: return {py::ssize_t(d.nz) + 1, d.ny, d.nx};
    default: return {d.nz, d.ny, d.nx};
  }
}
const char* const kCoefficientShapeNames[4] = {"(nz, ny, nx+1)", "(nz, ny+1, nx)", "(nz+1, ny, nx)", "(nz, ny, nx)"};

std::vector<double>& coefficient_array(Coefficients& c, int a) {
  return a == 0 ? c.face_x : a == 1 ? c.face_y : a == 2 ? c.face_z : c.diagonal;
}
const std::vector<double>& coefficient_array(const Coefficients& c, int a) {
  return a == 0 ? c.face_x : a == 1 ? c.face_y : a == 2 ? c.face_z : c.diagonal;
}

// A float32 or float64 array of coefficient a's shape, as doubles. TypeError for another
// dtype, ValueError for another shape (both naming the argument and the shape expected).
std::vector<double> coefficient_from(const py::handle& obj, const Dims& d, int a) {
  const char* name = kCoefficientNames[a];
  const auto shape = coefficient_shape(d, a);
  const std::string expected = fmt::format("{} = ({}, {}, {})", kCoefficientShapeNames[a], shape[0], shape[1], shape[2]);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(fmt::format("{}: expected a NumPy array of float32 or float64, shape {}", name, expected));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (arr.dtype().kind() != 'f' || (arr.itemsize() != 4 && arr.itemsize() != 8))
    throw py::type_error(fmt::format("{}: dtype {}, expected float32 or float64", name, std::string(py::str(arr.dtype()))));
  bool same = arr.ndim() == 3;
  for (int i = 0; i < 3 && same; ++i) same = arr.shape(i) == shape[static_cast<std::size_t>(i)];
  if (!same) {
    std::string got;
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) got += fmt::format("{}{}", i ? ", " : "", arr.shape(i));
    throw py::value_error(fmt::format("{}: shape ({}{}), expected {}", name, got, arr.ndim() == 1 ? "," : "", expected));
  }
  auto values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
  return std::vector<double>(values.data(), values.data() + values.size());
}

// Sets the coefficients given (None: the default, weights 1 / diagonal 0) on d; the library
// checks the values (NaN, negative, a fluid cell left without an equation: ValueError).
void set_coefficients_from(Domain& d, const py::object& face_x, const py::object& face_y, const py::object& face_z,
                           const py::object& diagonal, double scale) {
  Coefficients c;
  c.scale = scale;
  const py::object* given[4] = {&face_x, &face_y, &face_z, &diagonal};
  bool any = scale != 1.0;
  for (int a = 0; a < 4; ++a)
    if (!given[a]->is_none()) {
      coefficient_array(c, a) = coefficient_from(*given[a], d.dims(), a);
      any = true;
    }
  if (any) d.set_coefficients(std::move(c));
  else d.coefficients.reset();
}

// Coefficient array a of a domain as a new float64 array (the default where it has none).
GridArray domain_coefficient(const Domain& d, int a) {
  const auto shape = coefficient_shape(d.dims(), a);
  GridArray out(shape);
  const std::vector<double>* v = d.coefficients ? &coefficient_array(*d.coefficients, a) : nullptr;
  if (v && !v->empty()) std::copy(v->begin(), v->end(), out.mutable_data());
  else std::fill(out.mutable_data(), out.mutable_data() + out.size(), a < 3 ? 1.0 : 0.0);
  return out;
}

py::array_t<std::uint8_t> domain_cells(const Domain& d) {
  py::array_t<std::uint8_t> out(grid_shape(d.dims()));
  std::memcpy(out.mutable_data(), d.cells.data(), static_cast<std::size_t>(d.dims().size()));
  return out;
}

py::dict domain_faces(const Domain& d) {
  py::dict out;
  for (int f = 0; f < 6; ++f) out[kFaceNames[f]] = d.faces[f] == FaceBoundary::Open ? "open" : "wall";
  return out;
}

Dims dims_from(const py::object& shape, int n) {
  if (shape.is_none()) return Dims{n, n, n};
  const auto s = shape.cast<std::vector<int>>();
  if (s.size() != 3) throw py::value_error("shape: expected (nz, ny, nx)");
  return Dims{s[2], s[1], s[0]};
}

// ---- The operator: the stencil on a domain it owns ----

struct Operator {
  std::shared_ptr<const Domain> domain;
  std::unique_ptr<PoissonStencil> stencil;
  explicit Operator(const Domain& d) : domain(std::make_shared<const Domain>(d)), stencil(new PoissonStencil(*domain)) {}
};

// ---- A solver set up once on a domain or a CSR matrix ----

struct SolveInfo {
  std::string method, reason, detail;
  bool converged = false;
  int iterations = 0;
  GridArray residuals;
  double setup_seconds = 0, solve_seconds = 0, relative_residual = 0, rhs_norm = 0;
};

std::unique_ptr<CsrMatrix> csr_from(const py::object& data, const py::object& indices, const py::object& indptr,
                                    std::int64_t rows, std::int64_t cols) {
  auto m = std::make_unique<CsrMatrix>();
  m->rows = rows;
  m->cols = cols;
  auto p = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(indptr);
  auto j = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(indices);
  auto v = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(data);
  if (!p || !j || !v) throw py::type_error("matrix: CSR arrays of numbers expected");
  m->row_ptr.assign(p.data(), p.data() + p.size());
  m->col_idx.assign(j.data(), j.data() + j.size());
  m->values.assign(v.data(), v.data() + v.size());
  m->check_structure();
  if (count_non_finite(m->values) > 0) throw InputError("matrix: NaN or Inf values");
  return m;
}

class Solver {
 public:
  Solver(const std::string& method, const MethodParams& params, std::optional<Domain> domain,
         std::unique_ptr<CsrMatrix> matrix)
      : method_(method), solver_((check_model_option({method}, params), make_solver(method, params))) {
    if (domain) {
      domain_ = std::make_unique<Domain>(std::move(*domain));
      op_ = std::make_unique<PoissonStencil>(*domain_);
      projector_.emplace(*domain_);
      if (projector_->singular()) view_.project_range = projector_->as_function();
      view_.domain = domain_.get();
      dims_ = domain_->dims();
      // No matrix: the methods that factor one (IC(0), the peers) assemble it from the domain
      // for their set-up; the grid methods read the stencil.
    } else if (matrix) {
      if (matrix->rows != matrix->cols) throw InputError("matrix: not square");
      matrix_ = std::move(matrix);
      op_ = std::make_unique<CsrOperator>(*matrix_);
      view_.matrix = matrix_.get();
      dims_ = Dims{static_cast<int>(matrix_->rows), 1, 1};
    } else {
      throw InputError("Solver: give a domain or a matrix");
    }
    view_.op = op_.get();
    py::gil_scoped_release release;
    solver_->setup(view_);
  }

  std::pair<GridArray, SolveInfo> solve(const py::object& b_obj, double rtol, double atol, const py::object& x0,
                                     int maxiter, const py::object& callback) {
    const GridArray b = as_grid_vector(b_obj, dims_, "b");
    if (const auto bad = count_non_finite(const_span(b)); bad > 0)
      throw InputError(fmt::format("b: {} NaN or Inf values", bad));
    if (!(rtol >= 0) || !(atol >= 0)) throw InputError("rtol, atol: must be >= 0");
    if (maxiter < 0) throw InputError("maxiter: must be >= 0");
    GridArray x = new_like(b_obj, dims_);
    SolveOptions options;
    options.rtol = rtol;
    options.atol = atol;
    options.max_iterations = maxiter;
    if (domain_) {
      // The system has no equation for a cell outside the fluid: a value there is a mistake in
      // b (the solve could only stagnate), not something to drop silently.
      if (const auto outside = count_nonzero_off_fluid(*domain_, const_span(b)); outside > 0)
        throw InputError(fmt::format("b: {} non-zero values on cells that are not FLUID (b must be 0 there)", outside));
    }
    if (!x0.is_none()) {
      const GridArray x0v = as_grid_vector(x0, dims_, "x0");
      if (const auto bad = count_non_finite(const_span(x0v)); bad > 0)
        throw InputError(fmt::format("x0: {} NaN or Inf values", bad));
      std::copy(x0v.data(), x0v.data() + x0v.size(), x.mutable_data());
      options.use_initial_guess = true;
    }
    std::optional<py::error_already_set> callback_error;
    if (!callback.is_none()) {
      options.monitor = [&callback, &callback_error](const IterationInfo& info) {
        py::gil_scoped_acquire acquire;
        if (callback_error) return;
        try {
          callback(info.iteration, info.residual_norm);
        } catch (py::error_already_set& e) {
          callback_error = std::move(e);
        }
      };
    }
    SolveReport report;
    {
      py::gil_scoped_release release;
      // A solver keeps work buffers: solves of one Solver from several Python threads run one
      // after another (different Solvers run in parallel).
      std::lock_guard lock(mutex_);
      report = solver_->solve(const_span(b), mutable_span(x), options);
    }
    if (callback_error) throw std::move(*callback_error);
    SolveInfo info;
    info.method = report.method;
    info.reason = petsc_name(report.reason);
    info.detail = report.detail;
    info.converged = report.converged();
    info.iterations = report.iterations;
    info.residuals = GridArray(static_cast<py::ssize_t>(report.residual_history.size()));
    std::copy(report.residual_history.begin(), report.residual_history.end(), info.residuals.mutable_data());
    info.setup_seconds = report.setup_seconds;
    info.solve_seconds = report.solve_seconds;
    info.relative_residual = report.relative_residual();
    info.rhs_norm = report.rhs_norm;
    return {std::move(x), std::move(info)};
  }

  const std::string& method() const { return method_; }
  std::int64_t size() const { return op_->size(); }

 private:
  std::string method_;
  std::unique_ptr<IterativeSolver> solver_;
  std::unique_ptr<Domain> domain_;
  std::unique_ptr<CsrMatrix> matrix_;
  std::unique_ptr<LinearOperator> op_;
  std::optional<RangeProjector> projector_;
  LinearSystemView view_;
  Dims dims_;
  std::mutex mutex_;
};

// ---- A preconditioner / direction generator as an operator r -> z ----

class PreconditionerOp {
 public:
  PreconditionerOp(const std::string& spec, const Domain& domain)
      : domain_(std::make_unique<Domain>(domain)), stencil_(std::make_unique<PoissonStencil>(*domain_)) {
    const auto colon = spec.find(':');
    const std::string name = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
    LinearSystemView view{stencil_.get(), nullptr, domain_.get(), nullptr};
    if (name == "mgpcg") {
      auto mg = std::make_unique<MultigridPreconditioner>(parse_multigrid_settings(arg, "mgpcg:" + arg));
      py::gil_scoped_release release;
      mg->setup(view);
      op_ = std::move(mg);
    } else if (name == "dcdm-relax") {
      const auto net = learn::RelaxNet::load(learn::find_model(arg.empty() ? "relaxnet" : arg));
      py::gil_scoped_release release;
      op_ = net.make_generator(view);
    } else if (name == "jacobi" || name == "ic0" || name == "mic0") {
      std::unique_ptr<Preconditioner> p;
      if (name == "jacobi") p = std::make_unique<JacobiPreconditioner>();
      else p = std::make_unique<IncompleteCholeskyPreconditioner>(name == "mic0" ? 0.97 : 0.0);
      py::gil_scoped_release release;
      p->setup(view);
      op_ = std::move(p);
    } else {
      throw InputError(fmt::format("Preconditioner: unknown method '{}' (mgpcg, dcdm-relax, jacobi, ic0, mic0)", name));
    }
  }

  GridArray apply(const py::object& r_obj) const {
    const GridArray r = as_grid_vector(r_obj, domain_->dims(), "r");
    GridArray z = new_like(r_obj, domain_->dims());
    py::gil_scoped_release release;
    std::lock_guard lock(mutex_);  // the cycle's work buffers: one application at a time
    op_->apply(const_span(r), mutable_span(z));
    return z;
  }
  std::int64_t size() const { return domain_->dims().size(); }

 private:
  std::unique_ptr<Domain> domain_;
  std::unique_ptr<PoissonStencil> stencil_;
  std::unique_ptr<LinearOperator> op_;
  mutable std::mutex mutex_;
};

// ---- The smoke simulator ----

class Simulation {
 public:
  Simulation(const std::string& scene, const Dims& dims, std::uint64_t seed, const std::string& method, double rtol)
      : solver_(make_solver(method)) {
    sim::SimConfig config = sim::make_scene(scene, dims, seed, nullptr, nullptr);
    config.solve.rtol = rtol;
    config.assemble_matrix = false;
    sim_ = std::make_unique<sim::SmokeSimulation>(config, *solver_);
  }
  py::dict step() {
    sim::FrameStats s;
    {
      py::gil_scoped_release release;
      s = sim_->step();
    }
    py::dict out;
    out["frame"] = s.frame;
    out["time"] = s.time;
    out["fluid_cells"] = s.fluid_cells;
    out["iterations"] = s.solve.iterations;
    out["reason"] = petsc_name(s.solve.reason);
    out["max_div_before"] = s.max_div_before;
    out["max_div_after"] = s.max_div_after;
    out["setup_seconds"] = s.setup_seconds;
    out["solve_seconds"] = s.solve_seconds;
    out["project_seconds"] = s.project_seconds;
    return out;
  }
  // Copies: the simulator swaps its field buffers every step, so a view would show another
  // frame's values after the next step.
  static py::array field_copy(const Field<double>& f) {
    GridArray out(grid_shape(f.dims()));
    std::copy(f.data(), f.data() + f.size(), out.mutable_data());
    return out;
  }
  const sim::SmokeSimulation& sim() const { return *sim_; }
  sim::SmokeSimulation& sim() { return *sim_; }

 private:
  std::unique_ptr<IterativeSolver> solver_;
  std::unique_ptr<sim::SmokeSimulation> sim_;
};

// The reference network (method "dcdm" with a paper64/paper128 file) runs on LibTorch, which
// the package does not link: like the tool, it loads the module dcdm_torch.so on first use,
// here from the package's folder (the build tree's package has it when the build has
// LibTorch; pip install builds without it).
std::filesystem::path g_package_dir;

void register_network_generator() {
  set_network_generator([](const std::string& path, const MethodParams& p) -> std::pair<GeneratorFactory, std::string> {
    const auto* backend = static_cast<const cli::TorchBackend*>(cli::load_module(
        "dcdm_torch.so", "DCDM_TORCH_MODULE", "dcdm_torch_backend", cli::kTorchBackendInterface,
        "the reference network (method dcdm with a paper64/paper128 model; LibTorch)", {g_package_dir}));
    return cli::network_generator(*backend, path, p);
  });
}

}  // namespace

PYBIND11_MODULE(_dcdm, m) {
  // Loading the module loaded SuperLU_dist, which turns off the interpreter's mmap for large
  // blocks: freed NumPy arrays and solver temporaries would stay resident (memory.hpp).
  dcdm::restore_allocator_defaults();
  m.doc() = "dcdm: pressure Poisson solvers for voxel grids (MGPCG, DCDM with learned generators, peers)";
  m.attr("__version__") = kVersion;
  m.attr("SOLID") = static_cast<int>(CellType::Solid);
  m.attr("FLUID") = static_cast<int>(CellType::Fluid);
  m.attr("AIR") = static_cast<int>(CellType::Air);

  // Errors: a missing file is FileNotFoundError, other bad input ValueError, anything else the
  // library reports RuntimeError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::cast_error& e) {
      // A Python argument of the wrong type deep inside (a dict value, a list item).
      PyErr_SetString(PyExc_TypeError, fmt::format("an argument of the wrong type: {}", e.what()).c_str());
    } catch (const MissingFileError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  py::class_<Domain>(m, "Domain", "Cell types on an nx x ny x nz grid plus the six outer faces")
      .def(py::init([](const py::handle& cells, const py::object& faces, const py::object& face_x,
                       const py::object& face_y, const py::object& face_z, const py::object& diagonal, double scale) {
             Domain d = domain_from_array(cells, faces);
             set_coefficients_from(d, face_x, face_y, face_z, diagonal, scale);
             return d;
           }),
           py::arg("cells"), py::arg("faces") = py::none(), py::kw_only(), py::arg("face_x") = py::none(),
           py::arg("face_y") = py::none(), py::arg("face_z") = py::none(), py::arg("diagonal") = py::none(),
           py::arg("scale") = 1.0,
           "cells: integer array (nz, ny, nx) of SOLID=0 / FLUID=1 / AIR=2; faces: dict such as {'zmax': 'open'}; "
           "face_x (nz, ny, nx+1), face_y (nz, ny+1, nx), face_z (nz+1, ny, nx): MAC face weights (float32 or "
           "float64, >= 0; None = 1); diagonal (nz, ny, nx): a term >= 0 added to fluid rows (None = 0); scale: a "
           "positive factor of the whole operator")
      .def(
          "with_coefficients",
          [](const Domain& d, const py::object& face_x, const py::object& face_y, const py::object& face_z,
             const py::object& diagonal, double scale) {
            Domain out = d;
            set_coefficients_from(out, face_x, face_y, face_z, diagonal, scale);
            return out;
          },
          py::kw_only(), py::arg("face_x") = py::none(), py::arg("face_y") = py::none(), py::arg("face_z") = py::none(),
          py::arg("diagonal") = py::none(), py::arg("scale") = 1.0,
          "A copy of this domain (same cells and faces) with these coefficients instead of its own")
      .def_property_readonly("weighted", &Domain::weighted, "Whether the operator has coefficients (else the unit one)")
      .def_property_readonly("scale", [](const Domain& d) { return d.coefficients ? d.coefficients->scale : 1.0; })
      .def_property_readonly("face_x", [](const Domain& d) { return domain_coefficient(d, 0); },
                             "Weights of the x faces, float64 (nz, ny, nx+1): a copy (ones when unweighted)")
      .def_property_readonly("face_y", [](const Domain& d) { return domain_coefficient(d, 1); },
                             "Weights of the y faces, float64 (nz, ny+1, nx): a copy")
      .def_property_readonly("face_z", [](const Domain& d) { return domain_coefficient(d, 2); },
                             "Weights of the z faces, float64 (nz+1, ny, nx): a copy")
      .def_property_readonly("diagonal", [](const Domain& d) { return domain_coefficient(d, 3); },
                             "The diagonal term, float64 (nz, ny, nx): a copy (zeros when unweighted)")
      .def_property_readonly("shape", [](const Domain& d) { return py::make_tuple(d.dims().nz, d.dims().ny, d.dims().nx); })
      .def_property_readonly("size", [](const Domain& d) { return d.dims().size(); })
      .def_property_readonly("cells", &domain_cells, "A copy of the cell codes, shape (nz, ny, nx), uint8")
      .def_property_readonly("faces", &domain_faces)
      .def("count", [](const Domain& d, int type) {
        if (type < 0 || type > 2) throw py::value_error("count: a cell code SOLID=0, FLUID=1, AIR=2");
        return d.count(static_cast<CellType>(type));
      })
      .def("__repr__", [](const Domain& d) {
        return fmt::format("<dcdm.Domain {} ({} fluid, {} air, {} solid{})>", d.dims().str(), d.count(CellType::Fluid),
                           d.count(CellType::Air), d.count(CellType::Solid),
                           d.weighted() ? fmt::format("; weighted, scale {}", d.coefficients->scale) : "");
      });

  m.def(
      "scene",
      [](const std::string& name, const py::object& shape, int n, std::uint64_t seed, const py::object& mesh,
         const py::kwargs& params) {
        SceneSpec spec;
        spec.name = name;
        spec.dims = dims_from(shape, n);
        spec.seed = seed;
        if (!mesh.is_none()) {
          const auto path = mesh.cast<std::filesystem::path>();
          if (!std::filesystem::exists(path)) throw MissingFileError(fmt::format("{}: no such mesh file", path.string()));
          spec.mesh = path;
        }
        for (const auto& item : params) spec.parameters[item.first.cast<std::string>()] = item.second.cast<double>();
        py::gil_scoped_release release;
        return make_scene(spec);
      },
      py::arg("name"), py::arg("shape") = py::none(), py::arg("n") = 64, py::arg("seed") = 0,
      py::arg("mesh") = py::none(), "A built-in scene (the CLI's --scene), at shape (nz, ny, nx) or n^3");
  m.def("scene_names", [] {
    std::vector<std::string> names;
    for (const auto& s : scene_catalog()) names.push_back(s.name);
    return names;
  });

  py::class_<Operator>(m, "_Operator")
      .def(py::init<const Domain&>())
      .def_property_readonly("size", [](const Operator& o) { return o.stencil->size(); })
      .def_property_readonly("domain", [](const Operator& o) { return *o.domain; })
      .def("apply",
           [](const Operator& o, const py::object& x_obj) {
             const GridArray x = as_grid_vector(x_obj, o.domain->dims(), "x");
             GridArray y = new_like(x_obj, o.domain->dims());
             py::gil_scoped_release release;
             o.stencil->apply(const_span(x), mutable_span(y));
             return y;
           })
      .def("csr_arrays", [](const Operator& o) {
        CsrMatrix a;
        {
          py::gil_scoped_release release;
          a = assemble_full_grid(*o.domain);
        }
        py::array_t<double> data(static_cast<py::ssize_t>(a.values.size()), a.values.data());
        py::array_t<std::int32_t> indices(static_cast<py::ssize_t>(a.col_idx.size()), a.col_idx.data());
        py::array_t<std::int64_t> indptr(static_cast<py::ssize_t>(a.row_ptr.size()), a.row_ptr.data());
        return py::make_tuple(data, indices, indptr);
      });

  py::class_<MethodParams>(m, "_MethodParams")
      .def(py::init<>())
      .def_readwrite("model", &MethodParams::model)
      .def_readwrite("dcdm_k", &MethodParams::dcdm_k)
      .def_readwrite("dcdm_fallback", &MethodParams::dcdm_fallback)
      .def_readwrite("dcdm_vectors", &MethodParams::dcdm_vectors)
      .def_readwrite("network_precision", &MethodParams::network_precision)
      .def_readwrite("network_input_scale", &MethodParams::network_input_scale)
      .def_readwrite("deflation_vectors", &MethodParams::deflation_vectors)
      .def_readwrite("mic_safety", &MethodParams::mic_safety);

  py::class_<SolveInfo>(m, "SolveInfo", "What a solve did")
      .def_readonly("method", &SolveInfo::method)
      .def_readonly("reason", &SolveInfo::reason)
      .def_readonly("detail", &SolveInfo::detail)
      .def_readonly("converged", &SolveInfo::converged)
      .def_readonly("iterations", &SolveInfo::iterations)
      .def_readonly("residuals", &SolveInfo::residuals)
      .def_readonly("setup_seconds", &SolveInfo::setup_seconds)
      .def_readonly("solve_seconds", &SolveInfo::solve_seconds)
      .def_readonly("relative_residual", &SolveInfo::relative_residual)
      .def_readonly("rhs_norm", &SolveInfo::rhs_norm)
      .def("__repr__", [](const SolveInfo& i) {
        return fmt::format("<dcdm.SolveInfo {}: {} after {} iterations, relative residual {:.3e}>", i.method, i.reason,
                           i.iterations, i.relative_residual);
      });

  py::class_<Solver>(m, "_Solver")
      .def(py::init([](const std::string& method, const MethodParams& params, const py::object& domain,
                       const py::object& data, const py::object& indices, const py::object& indptr, std::int64_t rows,
                       std::int64_t cols) {
        std::optional<Domain> d;
        std::unique_ptr<CsrMatrix> a;
        if (!domain.is_none()) d = domain.cast<Domain>();
        if (!data.is_none()) a = csr_from(data, indices, indptr, rows, cols);
        return std::make_unique<Solver>(method, params, std::move(d), std::move(a));
      }))
      .def("solve", &Solver::solve, py::arg("b"), py::arg("rtol"), py::arg("atol"), py::arg("x0"), py::arg("maxiter"),
           py::arg("callback"))
      .def_property_readonly("method", &Solver::method)
      .def_property_readonly("size", &Solver::size);

  py::class_<PreconditionerOp>(m, "_Preconditioner")
      .def(py::init<const std::string&, const Domain&>())
      .def("apply", &PreconditionerOp::apply)
      .def_property_readonly("size", &PreconditionerOp::size);

  py::class_<Simulation>(m, "_Simulation")
      .def(py::init([](const std::string& scene, const py::object& shape, int n, std::uint64_t seed,
                       const std::string& method, double rtol) {
        return std::make_unique<Simulation>(scene, dims_from(shape, n), seed, method, rtol);
      }))
      .def("step", &Simulation::step)
      .def_property_readonly("frame", [](const Simulation& s) { return s.sim().frame(); })
      .def_property_readonly("density", [](const Simulation& s) { return Simulation::field_copy(s.sim().density()); })
      .def_property_readonly("pressure", [](const Simulation& s) { return Simulation::field_copy(s.sim().pressure()); })
      .def_property_readonly("velocity", [](const Simulation& s) {
        const auto& v = s.sim().velocity();
        return py::make_tuple(Simulation::field_copy(v.u), Simulation::field_copy(v.v), Simulation::field_copy(v.w));
      })
      .def_property_readonly("domain", [](const Simulation& s) { return s.sim().domain(); });

  m.def(
      "_read_system",
      [](const std::filesystem::path& dir) {
        PoissonSystem s = load_system(dir);
        GridArray b(grid_shape(s.domain.dims()));
        std::copy(s.rhs.begin(), s.rhs.end(), b.mutable_data());
        return py::make_tuple(s.domain, b);
      },
      py::arg("folder"));
  m.def(
      "_write_system",
      [](const std::filesystem::path& dir, const Domain& domain, const py::object& b_obj) {
        const GridArray b = as_grid_vector(b_obj, domain.dims(), "b");
        if (const auto bad = count_non_finite(const_span(b)); bad > 0)
          throw InputError(fmt::format("b: {} NaN or Inf values", bad));
        PoissonSystem s;
        s.domain = domain;
        s.matrix = assemble_full_grid(domain);
        s.rhs.assign(b.data(), b.data() + b.size());
        s.meta = {{"source", "python"}};
        save_system(dir, s);
      },
      py::arg("folder"), py::arg("domain"), py::arg("b"));
  m.def("find_model", [](const std::string& name) { return learn::find_model(name).string(); });
  m.def(
      "model_info",
      [](const std::string& name) {
        // The container and its metadata (every architecture: no LibTorch needed to read them).
        const auto path = learn::find_model(name);
        const learn::ModelMetadata meta = learn::parse_model_metadata(learn::read_model_file(path), path);
        py::dict out;
        out["path"] = path.string();
        out["architecture"] = meta.architecture;
        out["variant"] = meta.variant;
        out["parameter_count"] = meta.parameter_count;
        out["trained_grid"] = py::make_tuple(meta.trained_grid.nz, meta.trained_grid.ny, meta.trained_grid.nx);
        out["data_recipe"] = meta.data_recipe_json;
        out["training_summary"] = meta.training_summary_json;
        out["created_by"] = meta.created_by;
        return out;
      },
      py::arg("model"), "A model file's metadata (a path or a shipped model's name); validates the container");
  m.def("_set_package_dir", [](const std::filesystem::path& dir) {
    // The shipped models and the LibTorch module travel with the package.
    g_package_dir = dir;
    learn::add_model_folder(dir / "models");
    register_network_generator();
  });
  m.def("methods", [] { return solver_methods(); });
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1");
    omp_set_num_threads(n);
  });
  m.def("get_num_threads", [] { return omp_get_max_threads(); });
}
