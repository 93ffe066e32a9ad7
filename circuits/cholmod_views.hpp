// CHOLMOD's read-only views of Eigen storage, for the solvers that call CHOLMOD directly
// (effective_solver.cpp, crossbar_adjoint.cpp).
//
// A view is a CHOLMOD header struct whose arrays point into the Eigen object: nothing is copied
// and nothing is owned. So:
//  * the Eigen object must outlive the view and keep its storage (no resize, no makeCompressed,
//    no insertion) while CHOLMOD uses the view;
//  * never pass a view to cholmod_free_sparse / cholmod_free_dense (the memory is Eigen's);
//  * CHOLMOD only reads a view given as an input (cholmod_analyze, cholmod_factorize,
//    cholmod_solve's right-hand side); the const_casts below are only for CHOLMOD's signatures.
#pragma once

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <cholmod.h>

#include <cstddef>

namespace xbar::circuits {

// The symmetric matrix whose lower triangle `a` holds (stype = -1: CHOLMOD reads the entries on
// and below the diagonal and ignores any above). `a` is compressed (makeCompressed, packed = 1),
// column-major with sorted row indices in each column (sorted = 1) and int indices (CHOLMOD_INT),
// as Eigen::SparseMatrix<double> is after assembly from triplets.
inline cholmod_sparse lower_triangle_view(const Eigen::SparseMatrix<double>& a) {
  cholmod_sparse view{};
  view.nrow = static_cast<std::size_t>(a.rows());
  view.ncol = static_cast<std::size_t>(a.cols());
  view.nzmax = static_cast<std::size_t>(a.nonZeros());
  view.p = const_cast<int*>(a.outerIndexPtr());
  view.i = const_cast<int*>(a.innerIndexPtr());
  view.x = const_cast<double*>(a.valuePtr());
  view.stype = -1;
  view.itype = CHOLMOD_INT;
  view.xtype = CHOLMOD_REAL;
  view.dtype = CHOLMOD_DOUBLE;
  view.sorted = 1;
  view.packed = 1;
  return view;
}

// The dense column-major matrix `b` (leading dimension = its row count), e.g. right-hand sides.
inline cholmod_dense dense_view(Eigen::MatrixXd& b) {
  cholmod_dense view{};
  view.nrow = static_cast<std::size_t>(b.rows());
  view.ncol = static_cast<std::size_t>(b.cols());
  view.nzmax = view.nrow * view.ncol;
  view.d = view.nrow;
  view.x = b.data();
  view.xtype = CHOLMOD_REAL;
  view.dtype = CHOLMOD_DOUBLE;
  return view;
}

}  // namespace xbar::circuits
