// Linked into every test program: its BLAS calls run on one thread, as in xbar itself
// (core::ThreadSetup), so that OpenBLAS starts no pool of its own beside oneTBB's workers.
#include "core/threading.hpp"

namespace {
const bool blas_pinned = (xbar::core::pin_blas_to_one_thread(), true);
}  // namespace
