#pragma once
// Small test systems for the Krylov and preconditioner tests, built independently of
// src/poisson (a plain triplet assembly of the 7-point rule as README "The method" states it) and
// an independent direct solve (Eigen SimplicialLDLT on the fluid cells).
#include <Eigen/Sparse>
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <Eigen/SparseCholesky>
#include <memory>
#include <random>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm::testing {

inline bool fluid_at(const Domain& d, int i, int j, int k) {
  return d.dims().contains(i, j, k) && d.cells(i, j, k) == CellType::Fluid;
}

// Type across an outer face or inside the grid.
inline CellType type_at(const Domain& d, int i, int j, int k) {
  const Dims n = d.dims();
  if (n.contains(i, j, k)) return d.cells(i, j, k);
  Face f = i < 0 ? Face::XMin : i >= n.nx ? Face::XMax : j < 0 ? Face::YMin
         : j >= n.ny ? Face::YMax : k < 0 ? Face::ZMin : Face::ZMax;
  return d.face(f) == FaceBoundary::Open ? CellType::Air : CellType::Solid;
}

inline CsrMatrix assemble_reference(const Domain& d) {
  const Dims n = d.dims();
  std::vector<Triplet> t;
  const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int k = 0; k < n.nz; ++k)
    for (int j = 0; j < n.ny; ++j)
      for (int i = 0; i < n.nx; ++i) {
        if (d.cells(i, j, k) != CellType::Fluid) continue;
        const auto row = n.index(i, j, k);
        double diag = 0;
        for (auto& o : off) {
          const CellType c = type_at(d, i + o[0], j + o[1], k + o[2]);
          if (c == CellType::Solid) continue;
          diag += 1;
          if (c == CellType::Fluid) t.push_back({row, n.index(i + o[0], j + o[1], k + o[2]), -1.0});
        }
        t.push_back({row, row, diag});
      }
  return CsrMatrix::from_triplets(n.size(), n.size(), std::move(t));
}

// Fluid components and whether each touches air (Dirichlet).
struct Components {
  std::vector<int> label;  // -1 outside fluid
  std::vector<bool> dirichlet;
  std::vector<std::int64_t> size;
};
inline Components components(const Domain& d) {
  const Dims n = d.dims();
  Components c;
  c.label.assign(n.size(), -1);
  const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int k = 0; k < n.nz; ++k)
    for (int j = 0; j < n.ny; ++j)
      for (int i = 0; i < n.nx; ++i) {
        if (d.cells(i, j, k) != CellType::Fluid || c.label[n.index(i, j, k)] >= 0) continue;
        const int id = static_cast<int>(c.size.size());
        c.size.push_back(0);
        c.dirichlet.push_back(false);
        std::vector<std::array<int, 3>> stack{{i, j, k}};
        c.label[n.index(i, j, k)] = id;
        while (!stack.empty()) {
          auto [a, b, e] = stack.back();
          stack.pop_back();
          c.size[id]++;
          for (auto& o : off) {
            const int x = a + o[0], y = b + o[1], z = e + o[2];
            const CellType t = type_at(d, x, y, z);
            if (t == CellType::Air) c.dirichlet[id] = true;
            if (t == CellType::Fluid && c.label[n.index(x, y, z)] < 0) {
              c.label[n.index(x, y, z)] = id;
              stack.push_back({x, y, z});
            }
          }
        }
      }
  return c;
}

// Zero mean per singular component; null when none is singular.
inline std::function<void(dcdm::span<double>)> projector(const Domain& d) {
  auto c = std::make_shared<Components>(components(d));
  bool any = false;
  for (bool b : c->dirichlet) any |= !b;
  if (!any) return nullptr;
  return [c](dcdm::span<double> v) {
    std::vector<double> s(c->size.size(), 0.0);
    for (std::size_t i = 0; i < v.size(); ++i)
      if (c->label[i] >= 0) s[c->label[i]] += v[i];
    for (std::size_t i = 0; i < v.size(); ++i)
      if (c->label[i] >= 0 && !c->dirichlet[c->label[i]]) v[i] -= s[c->label[i]] / c->size[c->label[i]];
  };
}

// Direct solve of A x = b on the rows of the cells labelled >= 0 (SimplicialLDLT), one cell
// pinned in each component whose `dirichlet` entry is false; empty when the factorisation
// fails. The caller projects the answer on the singular components (b must be compatible).
inline Vector direct_solve_pinned(const CsrMatrix& a, const std::vector<int>& label, const std::vector<bool>& dirichlet,
                                  const Vector& b) {
  std::vector<std::int64_t> row_of(a.rows, -1), cell_of;
  for (std::int64_t i = 0; i < a.rows; ++i)
    if (label[i] >= 0) {
      row_of[i] = static_cast<std::int64_t>(cell_of.size());
      cell_of.push_back(i);
    }
  std::vector<bool> pinned_done(dirichlet.size(), false);
  std::vector<bool> pinned(a.rows, false);
  for (std::int64_t i : cell_of)
    if (!dirichlet[label[i]] && !pinned_done[label[i]]) {
      pinned_done[label[i]] = true;
      pinned[i] = true;
    }
  std::vector<Eigen::Triplet<double>> t;
  for (std::int64_t i : cell_of)
    for (std::int64_t p = a.row_ptr[i]; p < a.row_ptr[i + 1]; ++p) {
      const std::int64_t j = a.col_idx[p];
      if (pinned[i] || pinned[j]) {
        if (i == j) t.emplace_back(row_of[i], row_of[j], 1.0);
        continue;
      }
      if (row_of[j] >= 0) t.emplace_back(row_of[i], row_of[j], a.values[p]);
    }
  const auto m = static_cast<Eigen::Index>(cell_of.size());
  Eigen::SparseMatrix<double> s(m, m);
  s.setFromTriplets(t.begin(), t.end());
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt(s);
  if (ldlt.info() != Eigen::Success) return {};
  Eigen::VectorXd rhs(m);
  for (Eigen::Index r = 0; r < m; ++r) rhs[r] = pinned[cell_of[r]] ? 0.0 : b[cell_of[r]];
  Eigen::VectorXd sol = ldlt.solve(rhs);
  Vector x(a.rows, 0.0);
  for (Eigen::Index r = 0; r < m; ++r) x[cell_of[r]] = sol[r];
  return x;
}

// Direct solve on the fluid cells with this file's own components, then the answer shifted to
// zero mean on each singular component.
inline Vector direct_solve(const Domain& d, const CsrMatrix& a, const Vector& b) {
  const Components c = components(d);
  Vector x = direct_solve_pinned(a, c.label, c.dirichlet, b);
  if (auto p = projector(d)) p(x);
  return x;
}

// A right-hand side: random on fluid cells, projected when singular.
inline Vector random_rhs(const Domain& d, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  Vector b(d.dims().size(), 0.0);
  for (std::int64_t i = 0; i < d.dims().size(); ++i)
    if (d.cells[i] == CellType::Fluid) b[i] = g(rng);
  if (auto p = projector(d)) p(b);
  return b;
}

// Domains used across the tests.
// Box with an open top, a solid sphere-ish obstacle and a few air cells: non-singular.
inline Domain obstacle_domain(Dims n) {
  Domain d(n, CellType::Fluid);
  d.set_face(Face::ZMax, FaceBoundary::Open);
  const double cx = n.nx / 2.0, cy = n.ny / 2.0, cz = n.nz / 3.0;
  const double rad = std::min({n.nx, n.ny, n.nz}) / 4.0;
  for (int k = 0; k < n.nz; ++k)
    for (int j = 0; j < n.ny; ++j)
      for (int i = 0; i < n.nx; ++i) {
        const double dx = i + 0.5 - cx, dy = j + 0.5 - cy, dz = k + 0.5 - cz;
        if (dx * dx + dy * dy + dz * dz < rad * rad) d.cells(i, j, k) = CellType::Solid;
        if (k == n.nz - 1 && (i + j) % 5 == 0) d.cells(i, j, k) = CellType::Air;
      }
  return d;
}
// Closed box with a solid slab splitting it into two sealed (singular) chambers, plus an
// air pocket inside the second chamber: one singular, one non-singular component.
inline Domain mixed_singular_domain(Dims n) {
  Domain d(n, CellType::Fluid);
  for (int k = 0; k < n.nz; ++k)
    for (int j = 0; j < n.ny; ++j) d.cells(n.nx / 2, j, k) = CellType::Solid;
  d.cells(n.nx - 2, n.ny / 2, n.nz / 2) = CellType::Air;
  return d;
}
// Closed box, all walls: singular (all-Neumann).
inline Domain closed_box(Dims n) { return Domain(n, CellType::Fluid); }

struct TestSystem {
  Domain domain;
  CsrMatrix a;
  std::unique_ptr<CsrOperator> op;
  std::function<void(dcdm::span<double>)> project;
  LinearSystemView view(bool with_domain = true, bool with_matrix = true) const {
    LinearSystemView v;
    v.op = op.get();
    v.matrix = with_matrix ? &a : nullptr;
    v.domain = with_domain ? &domain : nullptr;
    v.project_range = project;
    return v;
  }
};
inline std::unique_ptr<TestSystem> make_system(Domain d) {
  auto s = std::make_unique<TestSystem>();
  s->domain = std::move(d);
  s->a = assemble_reference(s->domain);
  s->op = std::make_unique<CsrOperator>(s->a);
  s->project = projector(s->domain);
  return s;
}

inline double relative_error(const Vector& x, const Vector& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

}  // namespace dcdm::testing
