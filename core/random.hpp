// Seeded random streams. One card seed determines everything; a stream is derived from the seed,
// a purpose name and indices (tile, read, column ...), so adding a read or changing the thread
// count never changes another stream's numbers. There is no global generator: stochastic
// functions take their stream as an argument.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace xbar::core {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
std::uint64_t mix64(std::uint64_t x);

// xoshiro256** generator with portable uniform and normal draws (no std:: distributions, whose
// output differs between standard libraries).
class RandomStream {
 public:
  // Stream for `purpose` (e.g. "programming", "adc_noise") and indices, derived from `seed`.
  RandomStream(std::uint64_t seed, std::string_view purpose, std::initializer_list<std::uint64_t> indices = {});

  std::uint64_t next_u64();
  double uniform();                  // [0, 1), 53 random bits
  double uniform(double lo, double hi);
  double normal();                   // standard normal (Box-Muller, both values used)
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // A child stream: same derivation rule, keyed by this stream's seed material.
  RandomStream derive(std::string_view purpose, std::initializer_list<std::uint64_t> indices = {}) const;

 private:
  explicit RandomStream(const std::uint64_t key[4]);
  std::uint64_t key_[4];    // derivation material (kept for derive())
  std::uint64_t state_[4];
  double spare_normal_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace xbar::core
