// One owner of threads: oneTBB schedules all parallel work; BLAS runs single-threaded inside it
// (OpenBLAS's own pool spin-waits, which collapses on a shared 2-core machine).
#pragma once

#include <tbb/global_control.h>

#include <memory>

namespace xbar::core {

// Limits TBB to `threads` workers (0 = all cores) for the lifetime of the object and pins
// OpenBLAS to one thread. Results never depend on the thread count.
class ThreadSetup {
 public:
  explicit ThreadSetup(int threads);
  ~ThreadSetup();
  int threads() const { return threads_; }

 private:
  int threads_;
  std::unique_ptr<tbb::global_control> control_;
};

// Pins OpenBLAS to a single thread (idempotent); called by ThreadSetup and by library entry points.
void pin_blas_to_one_thread();

}  // namespace xbar::core
