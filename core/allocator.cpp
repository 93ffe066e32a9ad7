#include "core/allocator.hpp"

#include <malloc.h>

namespace xbar::core {

void keep_large_allocations_in_heap() {
#if defined(__GLIBC__)
  constexpr int kMmapThreshold = 32 * 1024 * 1024;   // glibc's largest allowed value on 64-bit
  constexpr int kTrimThreshold = 512 * 1024 * 1024;  // free top kept before returning it
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

}  // namespace xbar::core
