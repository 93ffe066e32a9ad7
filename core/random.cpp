#include "core/random.hpp"

#include <cmath>
#include <numbers>

namespace xbar::core {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

namespace {
std::uint64_t hash_text(std::string_view text) {  // FNV-1a, then mixed
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return mix64(h);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

RandomStream::RandomStream(std::uint64_t seed, std::string_view purpose,
                           std::initializer_list<std::uint64_t> indices) {
  std::uint64_t h = mix64(seed ^ hash_text(purpose));
  std::uint64_t n = 0;
  for (std::uint64_t index : indices) h = mix64(h ^ mix64(index + 0x632be59bd9b4e019ULL * ++n));
  std::uint64_t key[4];
  for (int k = 0; k < 4; ++k) key[k] = h = mix64(h + static_cast<std::uint64_t>(k));
  *this = RandomStream(key);
}

RandomStream::RandomStream(const std::uint64_t key[4]) {
  for (int k = 0; k < 4; ++k) key_[k] = state_[k] = key[k];
  if ((state_[0] | state_[1] | state_[2] | state_[3]) == 0) state_[0] = 1;  // xoshiro needs non-zero state
}

RandomStream RandomStream::derive(std::string_view purpose, std::initializer_list<std::uint64_t> indices) const {
  return RandomStream(mix64(key_[0] ^ rotl(key_[1], 17) ^ rotl(key_[2], 31) ^ rotl(key_[3], 47)), purpose, indices);
}

std::uint64_t RandomStream::next_u64() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double RandomStream::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double RandomStream::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double RandomStream::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_normal_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_normal_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

}  // namespace xbar::core
