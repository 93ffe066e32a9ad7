// Linked into every test program: its BLAS calls and CHOLMOD's OpenMP loops run on the calling
// thread, as in xbar itself (core::ThreadSetup), so that no thread pool starts beside oneTBB's.
#include "core/threading.hpp"

namespace {
const bool libraries_pinned = (xbar::core::pin_libraries_to_one_thread(), true);
}  // namespace
