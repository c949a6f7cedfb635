// What every peer solver shares: the active-row compression, "key=value:..." settings, the
// true residual, and the opening and closing of a report, so that every library is judged by
// the same stopping rule and the same named reasons.
#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/peers.hpp"

namespace dcdm {

CompressedSystem compress_active_rows(const CsrMatrix& a, const std::string& who) {
  if (a.rows != a.cols)
    throw InputError(fmt::format("{}: matrix is {}x{}, not square", who, a.rows, a.cols));
  CompressedSystem out;
  out.row_of.assign(static_cast<std::size_t>(a.rows), -1);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    double diag = 0.0;
    bool off = false;
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      if (!std::isfinite(a.values[k]))
        throw InputError(fmt::format("{}: matrix entry ({}, {}) is not finite", who, r, a.col_idx[k]));
      if (a.col_idx[k] == r) diag = a.values[k];
      else if (a.values[k] != 0.0) off = true;
    }
    if (diag > 0.0) {
      out.row_of[r] = static_cast<std::int64_t>(out.full_index.size());
      out.full_index.push_back(r);
    } else if (diag < 0.0 || off) {
      throw InputError(fmt::format(
          "{}: row {} has diagonal {} and off-diagonal entries: matrix is not SPD", who, r, diag));
    }
  }
  const auto n = static_cast<std::int64_t>(out.full_index.size());
  CsrMatrix& c = out.matrix;
  c.rows = c.cols = n;
  c.row_ptr.assign(static_cast<std::size_t>(n) + 1, 0);
  c.col_idx.reserve(static_cast<std::size_t>(a.row_ptr[a.rows]));  // at most A's entries
  c.values.reserve(static_cast<std::size_t>(a.row_ptr[a.rows]));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = out.full_index[i];
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      const std::int64_t col = out.row_of[a.col_idx[k]];
      if (a.values[k] == 0.0) continue;
      if (col < 0)
        throw InputError(fmt::format("{}: row {} couples to inactive row {}: matrix is not symmetric",
                                     who, r, a.col_idx[k]));
      c.col_idx.push_back(static_cast<std::int32_t>(col));
      c.values.push_back(a.values[k]);
    }
    c.row_ptr[i + 1] = static_cast<std::int64_t>(c.values.size());
  }
  return out;
}

void CompressedSystem::gather(dcdm::span<const double> full, dcdm::span<double> out) const {
  for (std::size_t i = 0; i < full_index.size(); ++i) out[i] = full[full_index[i]];
  for (const std::int64_t p : pinned) out[p] = 0.0;
}

void CompressedSystem::scatter(dcdm::span<const double> in, dcdm::span<double> full) const {
  for (std::size_t i = 0; i < full_index.size(); ++i) full[full_index[i]] = in[i];
}

double CompressedSystem::gather_rhs(const LinearSystemView& system, dcdm::span<const double> b,
                                    dcdm::span<double> out) const {
  Vector rhs(b.begin(), b.end());
  if (system.project_range) system.project_range(rhs);
  gather(rhs, out);
  return norm2(out);
}

void CompressedSystem::scatter_solution(const LinearSystemView& system, dcdm::span<const double> in,
                                        dcdm::span<double> x) const {
  scatter(in, x);
  if (system.project_range) system.project_range(x);
}

void pin_singular_components(CompressedSystem& c) {
  CsrMatrix& a = c.matrix;
  c.pinned.clear();
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(a.rows), 0);
  std::vector<std::int64_t> stack;
  for (std::int64_t start = 0; start < a.rows; ++start) {
    if (seen[start]) continue;
    seen[start] = 1;
    stack.assign(1, start);
    bool dirichlet = false;
    std::int64_t first = start;
    while (!stack.empty()) {
      const std::int64_t r = stack.back();
      stack.pop_back();
      first = std::min(first, r);
      double sum = 0.0, diag = 0.0;
      for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
        const std::int64_t col = a.col_idx[k];
        sum += a.values[k];
        if (col == r) diag = a.values[k];
        else if (a.values[k] != 0.0 && !seen[col]) {
          seen[col] = 1;
          stack.push_back(col);
        }
      }
      if (sum > 1e-12 * diag) dirichlet = true;
    }
    if (dirichlet) continue;
    for (std::int64_t k = a.row_ptr[first]; k < a.row_ptr[first + 1]; ++k) {
      const std::int64_t col = a.col_idx[k];
      if (col == first) continue;
      a.values[k] = 0.0;
      for (std::int64_t m = a.row_ptr[col]; m < a.row_ptr[col + 1]; ++m)
        if (a.col_idx[m] == first) a.values[m] = 0.0;
    }
    c.pinned.push_back(first);
  }
}

namespace {

// The compression of a unit grid operator's system straight from its domain (no full-grid
// matrix): the fluid cells' rows. The same rows and entries as compress_active_rows of the
// full-grid assembly, unless a fluid cell has no neighbour to couple with (a zero diagonal:
// not an unknown there), which returns false.
bool compress_unit_grid(const Domain& domain, CompressedSystem& out) {
  FluidIndexing ix;
  out.matrix = assemble_compressed(domain, &ix);
  const CsrMatrix& c = out.matrix;
  for (std::int64_t r = 0; r < c.rows; ++r) {
    bool diagonal = false;
    for (std::int64_t k = c.row_ptr[r]; k < c.row_ptr[r + 1]; ++k)
      diagonal = diagonal || (c.col_idx[k] == r && c.values[k] > 0.0);
    if (!diagonal) return false;
  }
  out.row_of = std::move(ix.row_of_cell);
  out.full_index = std::move(ix.cell_of_row);
  return true;
}

}  // namespace

CompressedSystem compress_peer_system(const LinearSystemView& system, const std::string& who) {
  if (!system.op) throw InputError(fmt::format("{}: the system has no operator", who));
  const auto* stencil = dynamic_cast<const PoissonStencil*>(system.op);
  if (!system.matrix && stencil && !stencil->domain().weighted()) {
    CompressedSystem c;
    if (compress_unit_grid(stencil->domain(), c)) {
      if (system.project_range) pin_singular_components(c);
      return c;
    }
  }
  // A grid system without a matrix is assembled here, only for the compression (the peer keeps
  // its compressed copy; the full-grid one is freed on return).
  CsrMatrix assembled;
  const CsrMatrix& a = system_matrix(system, assembled, who);
  if (a.rows != system.op->size())
    throw InputError(fmt::format("{}: matrix has {} rows but the operator {}", who, a.rows, system.op->size()));
  CompressedSystem c = compress_active_rows(a, who);
  if (system.project_range) pin_singular_components(c);
  return c;
}

void parse_peer_settings(const std::string& text, const std::string& who, dcdm::span<const PeerSetting> keys) {
  std::string known;
  for (const auto& k : keys) {
    if (!known.empty()) known += ' ';
    known += k.key;
  }
  for (std::size_t start = 0; !text.empty() && start <= text.size();) {
    const std::size_t end = std::min(text.find(':', start), text.size());
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw InputError(fmt::format("{}: setting '{}' is not key=value (keys: {})", who, item, known));
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const auto k = std::find_if(keys.begin(), keys.end(), [&](const PeerSetting& s) { return key == s.key; });
    if (k == keys.end()) throw InputError(fmt::format("{}: unknown setting '{}' (keys: {})", who, key, known));
    if (auto* word = std::get_if<std::string*>(&k->target)) {
      const std::string choices = k->choices;
      bool ok = false;
      for (std::size_t b = 0; b <= choices.size();) {
        const std::size_t e = std::min(choices.find('|', b), choices.size());
        ok = ok || choices.compare(b, e - b, value) == 0;
        b = e + 1;
      }
      if (!ok) throw InputError(fmt::format("{}: {}={} is not one of {}", who, key, value, choices));
      **word = value;
      continue;
    }
    const bool integer = std::holds_alternative<int*>(k->target);
    double v = 0.0;
    std::from_chars_result r{};
    if (integer) {
      int i = 0;
      r = std::from_chars(value.data(), value.data() + value.size(), i);
      v = i;
    } else {
      r = std::from_chars(value.data(), value.data() + value.size(), v);
    }
    if (r.ec != std::errc() || r.ptr != value.data() + value.size() || !(v >= k->min && v <= k->max))
      throw InputError(fmt::format("{}: {}={} is not {} in [{}, {}]", who, key, value,
                                   integer ? "an integer" : "a number", k->min, k->max));
    if (integer) *std::get<int*>(k->target) = static_cast<int>(v);
    else *std::get<double*>(k->target) = v;
  }
}

double true_residual_norm(const LinearOperator& op, dcdm::span<const double> b,
                          dcdm::span<const double> x) {
  Vector ax(b.size());
  op.apply(x, ax);
  Vector r(b.begin(), b.end());
  axpy(-1.0, ax, r);
  return norm2(r);
}

void start_peer_report(SolveReport& report, const std::string& method, double setup_seconds,
                       const LinearSystemView& system, dcdm::span<const double> b,
                       dcdm::span<double> x, const SolveOptions& options) {
  report.method = method;
  report.setup_seconds = setup_seconds;
  if (!options.use_initial_guess) fill(x, 0.0);
  report.rhs_norm = norm2(b);
  report.initial_residual = true_residual_norm(*system.op, b, x);
}

bool peer_settled_without_solving(SolveReport& report, const LinearSystemView& system,
                                  dcdm::span<const double> b, dcdm::span<double> x, bool empty_system) {
  if (count_non_finite(b) > 0) {
    report.reason = SolveReason::NaN;
    report.detail = "right-hand side has NaN/Inf";
    report.final_residual = report.initial_residual;
    report.residual_history = {report.initial_residual};
    return true;
  }
  if (!empty_system && report.rhs_norm != 0.0) return false;
  fill(x, 0.0);
  report.final_residual = true_residual_norm(*system.op, b, x);
  report.residual_history = {report.final_residual};
  report.reason = SolveReason::ConvergedAtol;
  return true;
}

double gathered_rtol(double rtol, double rhs_norm, double gathered_rhs_norm) {
  return gathered_rhs_norm > 0.0 ? rtol * rhs_norm / gathered_rhs_norm : rtol;
}

void finish_peer_report(SolveReport& report, const LinearSystemView& system, dcdm::span<const double> b,
                        dcdm::span<const double> x, const SolveOptions& options,
                        const std::string& library, SolveReason early_stop) {
  report.final_residual = true_residual_norm(*system.op, b, x);
  if (report.residual_history.empty()) report.residual_history = {report.initial_residual};
  if (report.iterations > 0) {
    if (report.residual_history.size() < 2) report.residual_history.push_back(report.final_residual);
    else report.residual_history.back() = report.final_residual;
  }
  if (!std::isfinite(report.final_residual)) {
    report.reason = SolveReason::NaN;
    report.detail = library + " produced NaN/Inf";
  } else if (options.atol > 0.0 && report.final_residual <= options.atol) {
    report.reason = SolveReason::ConvergedAtol;
  } else if (report.final_residual <= options.rtol * report.rhs_norm) {
    report.reason = SolveReason::ConvergedRtol;
  } else if (report.iterations >= options.max_iterations) {
    report.reason = SolveReason::MaxIterations;
  } else {
    report.reason = early_stop;
    if (report.detail.empty())
      report.detail = fmt::format("{} stopped at true relative residual {:.3e}", library,
                                  report.relative_residual());
  }
  // The library's own history is known only after it returns: replay it to the monitor.
  if (options.monitor) {
    const bool per_iteration = report.residual_history.size() == static_cast<std::size_t>(report.iterations) + 1;
    for (std::size_t k = 0; k < report.residual_history.size(); ++k)
      options.monitor({per_iteration || k == 0 ? static_cast<int>(k) : report.iterations,
                       report.residual_history[k],
                       report.rhs_norm > 0 ? report.residual_history[k] / report.rhs_norm : 0.0});
  }
}

}  // namespace dcdm
