#pragma once
// Vectors, sparse matrices and the linear-operator abstraction every solver sees.
//
// Reductions (dot, norms) sum fixed-size blocks in parallel and then add the block sums in
// order, so a result is bit-identical for any thread count.
#include <cstdint>
#include "dcdm/span.hpp"
#include <vector>

namespace dcdm {

using Vector = std::vector<double>;

double dot(dcdm::span<const double> a, dcdm::span<const double> b);
double norm2(dcdm::span<const double> a);
double norm_inf(dcdm::span<const double> a);
double sum(dcdm::span<const double> a);
void axpy(double alpha, dcdm::span<const double> x, dcdm::span<double> y);   // y += alpha x
void xpay(dcdm::span<const double> x, double beta, dcdm::span<double> y);    // y = x + beta y
void scale(double alpha, dcdm::span<double> x);                             // x *= alpha
void copy(dcdm::span<const double> x, dcdm::span<double> y);                 // y = x
void scaled_copy(double alpha, dcdm::span<const double> x, dcdm::span<double> y);  // y = alpha x
void fill(dcdm::span<double> x, double value);
// Counts entries that are NaN or +-Inf.
std::int64_t count_non_finite(dcdm::span<const double> a);

// Anything that maps a vector to a vector of the same size: matrices, stencils,
// preconditioners, direction generators (which may be nonlinear, e.g. a network).
class LinearOperator {
 public:
  virtual ~LinearOperator() = default;
  virtual std::int64_t size() const = 0;
  // y = Op(x); x and y do not alias.
  virtual void apply(dcdm::span<const double> x, dcdm::span<double> y) const = 0;
  // y = Op(x) and the dot products a Krylov step needs next: dots[0] = x . y and
  // dots[1 + j] = x . with[j] (each with[j] points at size() values; dots has with.size() + 1
  // entries). Sums of fixed row blocks added in block order, so bit-identical for any thread
  // count and any implementation. The default applies, then reduces; an operator that streams
  // x and y block by block (the Poisson stencil) saves reading them back from memory.
  virtual void apply_dot(dcdm::span<const double> x, dcdm::span<double> y, dcdm::span<const double* const> with,
                         dcdm::span<double> dots) const;
  // The same for single-precision Krylov vectors: y = Op(x) computed in double from a float x and
  // rounded to float once, with dots[0] = x . Op(x) (before the rounding), dots[1] = x . r and
  // dots[2] = x . x, all summed in double in fixed row blocks. The default converts x to double,
  // applies and rounds (an extra vector for the call); the Poisson stencil streams x and y in
  // float, which is what halves the traffic of a Krylov step.
  virtual void apply_dot_single(dcdm::span<const float> x, dcdm::span<float> y, dcdm::span<const double> r,
                                dcdm::span<double> dots) const;
  // y = Op(x) rounded to float. The default applies into a double temporary and rounds (an
  // extra vector for the call); an operator whose result is single precision anyway (the float
  // V-cycle) overrides it, writes y directly and says so in native_single_output(), and a caller
  // with float vectors then reads half the bytes back.
  virtual void apply_to_single(dcdm::span<const double> x, dcdm::span<float> y) const;
  // r = b - Op(x), returning r . r (summed in fixed row blocks). The default applies, subtracts
  // and dots in three passes; the Poisson stencil does it in one (a solver's true residual).
  virtual double residual_dot(dcdm::span<const double> x, dcdm::span<const double> b, dcdm::span<double> r) const;
  virtual bool native_single_output() const { return false; }
  // False for maps that only share this interface without being linear (a network direction
  // generator): DCDM hands those the unit-norm residual they were trained on, and a linear
  // map the residual itself (the line search makes the scale irrelevant; no extra vector).
  virtual bool is_linear() const { return true; }
};

struct Triplet {
  std::int64_t row, col;
  double value;
};

// Compressed sparse rows, column indices sorted within each row, no duplicates.
struct CsrMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int64_t> row_ptr{0};  // rows + 1 entries
  std::vector<std::int32_t> col_idx;
  std::vector<double> values;

  std::int64_t nnz() const { return static_cast<std::int64_t>(values.size()); }
  // y = A x, OpenMP over rows.
  void multiply(dcdm::span<const double> x, dcdm::span<double> y) const;
  std::vector<double> diagonal() const;
  // Exactly symmetric in pattern and values up to `tol` (absolute).
  bool is_symmetric(double tol = 0.0) const;
  // Throws Error if the structure is inconsistent (sizes, order, range).
  void check_structure() const;

  // Sums duplicates; drops explicit zeros only if drop_zeros.
  static CsrMatrix from_triplets(std::int64_t rows, std::int64_t cols, std::vector<Triplet> t,
                                 bool drop_zeros = false);
  friend bool operator==(const CsrMatrix& a, const CsrMatrix& b) {
    return a.rows == b.rows && a.cols == b.cols && a.row_ptr == b.row_ptr && a.col_idx == b.col_idx &&
           a.values == b.values;
  }
  friend bool operator!=(const CsrMatrix& a, const CsrMatrix& b) { return !(a == b); }
};

class CsrOperator final : public LinearOperator {
 public:
  explicit CsrOperator(const CsrMatrix& a) : a_(a) {}
  std::int64_t size() const override { return a_.rows; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override { a_.multiply(x, y); }
  const CsrMatrix& matrix() const { return a_; }

 private:
  const CsrMatrix& a_;
};

}  // namespace dcdm
