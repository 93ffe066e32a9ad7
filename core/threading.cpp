#include "core/threading.hpp"

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <algorithm>

extern "C" void openblas_set_num_threads(int num_threads);

namespace xbar::core {

void pin_blas_to_one_thread() { openblas_set_num_threads(1); }

ThreadSetup::ThreadSetup(int threads)
    : threads_(threads > 0 ? threads : std::max(1, tbb::info::default_concurrency())) {
  pin_blas_to_one_thread();
  control_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                   static_cast<std::size_t>(threads_));
}

ThreadSetup::~ThreadSetup() = default;

}  // namespace xbar::core
