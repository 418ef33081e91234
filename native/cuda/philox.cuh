// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11) and Box-Muller normals, host and device. Checked against the Random123 known-answer
// vectors by native/tools/facegan_unit.cc.
#pragma once

#include <cmath>
#include <cstdint>

#include "indexing.cuh"  // FG_HD

namespace facegan {
namespace cuda {

struct Philox4 {
  uint32_t v[4];
};

FG_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

// One block: 10 rounds; the key is bumped by the Weyl constants between rounds.
FG_HD Philox4 philox4x32_10(const uint32_t ctr[4], uint32_t key0, uint32_t key1) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, &hi0, &lo0);
    philox_mulhilo(0xCD9E8D57u, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  Philox4 r;
  r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
  return r;
}

// Box-Muller on two 32-bit words: u1 = (a>>8 + 1) / 2^24 in (0, 1], u2 = (b>>8) / 2^24 in
// [0, 1) (both exact in float), r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2).
FG_HD void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float u1 = (float)((a >> 8) + 1u) * (1.0f / 16777216.0f);
  const float u2 = (float)(b >> 8) * (1.0f / 16777216.0f);
  const float r = sqrtf(-2.0f * logf(u1));
  const float theta = 6.283185307179586f * u2;
  *z0 = r * cosf(theta);
  *z1 = r * sinf(theta);
}

// The four normals of one Philox block: (v0, v1) -> z0, z1 and (v2, v3) -> z2, z3.
FG_HD void philox_normals4(const uint32_t ctr[4], uint64_t seed, float z[4]) {
  const Philox4 r = philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
  box_muller(r.v[0], r.v[1], &z[0], &z[1]);
  box_muller(r.v[2], r.v[3], &z[2], &z[3]);
}

// Normal number p of the noise plane (layer, sample b) for a seed (see noise_counter).
FG_HD float noise_normal(uint64_t seed, int layer, int b, int p) {
  uint32_t ctr[4];
  int which;
  noise_counter(layer, b, p, ctr, &which);
  float z[4];
  philox_normals4(ctr, seed, z);
  return z[which];
}

}  // namespace cuda
}  // namespace facegan
