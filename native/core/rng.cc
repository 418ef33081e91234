// numpy.random.RandomState(seed).randn(count), bit-exact: MT19937 seeded with init_genrand,
// doubles from two 32-bit draws ((a >> 5) · 2^26 + (b >> 6)) / 2^53, Gaussians by the polar
// (Marsaglia) method returning f·x2 and caching f·x1 for the next call.
#include <cmath>
#include <cstdint>

#include "facegan.h"

namespace facegan {

namespace {

class MT19937 {
 public:
  explicit MT19937(uint32_t seed) {
    mt_[0] = seed;
    for (int i = 1; i < N; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + uint32_t(i);
    idx_ = N;
  }
  uint32_t next() {
    if (idx_ >= N) twist();
    uint32_t y = mt_[idx_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }
  double next_double() {
    uint32_t a = next() >> 5, b = next() >> 6;
    return (double(a) * 67108864.0 + double(b)) / 9007199254740992.0;
  }

 private:
  static constexpr int N = 624, M = 397;
  uint32_t mt_[N];
  int idx_;
  void twist() {
    for (int i = 0; i < N; ++i) {
      uint32_t y = (mt_[i] & 0x80000000u) | (mt_[(i + 1) % N] & 0x7fffffffu);
      uint32_t v = mt_[(i + M) % N] ^ (y >> 1);
      if (y & 1u) v ^= 0x9908b0dfu;
      mt_[i] = v;
    }
    idx_ = 0;
  }
};

}  // namespace

void numpy_randn(uint32_t seed, size_t count, double* out) {
  if (!out) return;
  MT19937 mt(seed);
  bool has_cached = false;
  double cached = 0.0;
  for (size_t i = 0; i < count; ++i) {
    if (has_cached) {
      out[i] = cached;
      has_cached = false;
      continue;
    }
    double x1, x2, r2;
    do {
      x1 = 2.0 * mt.next_double() - 1.0;
      x2 = 2.0 * mt.next_double() - 1.0;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    double f = std::sqrt(-2.0 * std::log(r2) / r2);
    cached = f * x1;
    has_cached = true;
    out[i] = f * x2;
  }
}

}  // namespace facegan
