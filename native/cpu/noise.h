// The random-noise source shared by the CPU engines (and usable by any backend that wants
// identical noise): a counter-based generator, so any slice of a noise map can be produced
// independently and in parallel. Map (seed, image index in the call, layer index) → N(0,1)
// values by splitmix64 + Box–Muller. Same seed → same noise.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace facegan {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t noise_stream_key(uint64_t seed, int image, int layer) {
  return splitmix64(splitmix64(seed ^ 0x6661636567616e00ull) + (uint64_t(uint32_t(image)) << 20) +
                    uint64_t(uint32_t(layer)));
}

// Fills out[begin, end) of the stream `key` (element i of a map is always the same value).
inline void noise_fill(uint64_t key, size_t begin, size_t end, float* out) {
  const double two_pi = 6.283185307179586476925286766559;
  size_t i = begin;
  while (i < end) {
    size_t pair = i >> 1;
    uint64_t r = splitmix64(key + 0x2545F4914F6CDD1Dull * uint64_t(pair + 1));
    double u1 = (double((r >> 32) & 0xFFFFFFFFu) + 1.0) * (1.0 / 4294967296.0);  // (0, 1]
    double u2 = double(r & 0xFFFFFFFFu) * (1.0 / 4294967296.0);                  // [0, 1)
    double rad = std::sqrt(-2.0 * std::log(u1));
    double th = two_pi * u2;
    float z0 = float(rad * std::cos(th)), z1 = float(rad * std::sin(th));
    if ((i & 1) == 0) {
      out[i - begin] = z0;
      if (i + 1 < end) out[i + 1 - begin] = z1;
      i += 2;
    } else {
      out[i - begin] = z1;
      i += 1;
    }
  }
}

}  // namespace facegan
