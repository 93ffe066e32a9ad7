#include "core/threading.hpp"

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <algorithm>

extern "C" void openblas_set_num_threads(int num_threads);
// libgomp's (CHOLMOD's OpenMP runtime): with 0 active levels every parallel region runs on one
// thread, whatever its num_threads clause asks for. A process-wide setting, unlike the thread
// count, which libgomp keeps per calling thread.
extern "C" void omp_set_max_active_levels(int max_levels);

namespace xbar::core {

void pin_libraries_to_one_thread() {
  openblas_set_num_threads(1);
  omp_set_max_active_levels(0);
}

ThreadSetup::ThreadSetup(int threads)
    : threads_(threads > 0 ? threads : std::max(1, tbb::info::default_concurrency())) {
  pin_libraries_to_one_thread();
  control_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                   static_cast<std::size_t>(threads_));
}

ThreadSetup::~ThreadSetup() = default;

}  // namespace xbar::core
