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

// Makes the native libraries run every call on the calling thread (idempotent): OpenBLAS, and the
// OpenMP loops inside CHOLMOD (Debian's libcholmod asks for 4 OpenMP threads in its factorisation,
// a team per calling thread, which oversubscribes a 2-core machine and spin-waits: it took 28 % of
// an STE training step). oneTBB is the one owner of threads. Called by ThreadSetup, by library
// entry points and by every test program.
void pin_libraries_to_one_thread();

}  // namespace xbar::core
