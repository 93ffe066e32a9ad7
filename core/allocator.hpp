// Process-wide tuning of glibc's allocator for xbar's workloads.
#pragma once

namespace xbar::core {

// Keeps large blocks (up to glibc's 32 MiB cap) in the heap instead of mapping and unmapping each
// one, and returns freed heap to the system only above 512 MiB of free top: training allocates and
// frees the same large temporaries (im2col matrices, activations, gradients) on every batch, and by
// default every one above 128 KiB is a fresh mmap whose pages fault in again each time (about a
// fifth of an ideal LeNet epoch). Results do not change; the peak resident memory barely does (the
// same blocks are reused). Call once, early in main; no effect on other C libraries.
void keep_large_allocations_in_heap();

}  // namespace xbar::core
