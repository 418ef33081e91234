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

// ---- Float arithmetic with the same bits on the host and the device. Each fx_* is exactly one
// IEEE-754 binary32 operation rounded to nearest, never fused into an FMA: the device uses the
// _rn intrinsics (which nvcc never contracts), the host forces the rounded product / sum into a
// volatile (which no compiler may contract across, whatever -ffp-contract or -mfma say).
// Division and square root are never contracted; both are correctly rounded on both sides.

FG_HD float fx_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  volatile float r = a * b;
  return r;
#endif
}
FG_HD float fx_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  volatile float r = a + b;
  return r;
#endif
}
FG_HD float fx_div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
FG_HD float fx_sqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// ln(k / 2^24) for an integer k in [1, 2^24], from +, *, / only (so host and device agree to the
// bit). k = m * 2^e with m in [sqrt(1/2), sqrt(2)) (frexp, exact), ln m = 2 atanh(s), s = (m-1)/(m+1),
// |s| <= 0.1716, by its series to s^9 (truncation < 2e-9 relative); e ln 2 with ln 2 split in a
// 16-bit head (e * head exact) and a tail. Accurate to a few float ulps.
FG_HD float bm_log_k24(uint32_t k) {
  int e = 0;
#if defined(__CUDA_ARCH__)
  float m = frexpf((float)k, &e);  // k = m * 2^e, m in [1/2, 1): exact (k <= 2^24 is a float)
#else
  float m = std::frexp((float)k, &e);
#endif
  if (m < 0.707106781f) {
    m = fx_add(m, m);  // exact
    --e;
  }
  const float s = fx_div(fx_add(m, -1.0f), fx_add(m, 1.0f));
  const float z = fx_mul(s, s);
  float p = fx_add(fx_mul(z, 0.11111111f), 0.14285715f);
  p = fx_add(fx_mul(z, p), 0.2f);
  p = fx_add(fx_mul(z, p), 0.33333334f);
  p = fx_add(fx_mul(z, p), 1.0f);
  const float ln_m = fx_mul(fx_add(s, s), p);
  const float t = (float)(e - 24);  // exact
  const float ln2_hi = 0.693145751953125f, ln2_lo = 1.4286068203e-06f;  // head: 16 bits
  return fx_add(fx_mul(t, ln2_hi), fx_add(fx_mul(t, ln2_lo), ln_m));
}

// sin and cos of 2*pi * j / 2^24 for j in [0, 2^24), from +, * only. The quadrant and the
// remainder come from j's bits (exact); the remainder is folded to |phi| <= pi/4, where
// Taylor polynomials to phi^9 (sin) and phi^10 (cos) are accurate to ~2e-9. (The coefficients
// are written as the float literals nearest to 1/n!, so no compiler evaluates them differently.)
FG_HD void bm_sincos_2pi_j24(uint32_t j, float* sn, float* cs) {
  uint32_t q = j >> 22;
  float f = fx_mul((float)(j & 0x3FFFFFu), 1.0f / 4194304.0f);  // [0, 1), exact
  if (f >= 0.5f) {
    f = fx_add(f, -1.0f);  // [-0.5, 0), exact
    q = (q + 1u) & 3u;
  }
  const float phi = fx_mul(f, 1.57079637f);
  const float z = fx_mul(phi, phi);
  float ps = fx_add(fx_mul(z, 2.7557319e-06f), -1.9841270e-04f);
  ps = fx_add(fx_mul(z, ps), 8.3333338e-03f);
  ps = fx_add(fx_mul(z, ps), -0.16666667f);
  const float s = fx_add(phi, fx_mul(fx_mul(phi, z), ps));
  float pc = fx_add(fx_mul(z, -2.7557320e-07f), 2.4801588e-05f);
  pc = fx_add(fx_mul(z, pc), -1.3888889e-03f);
  pc = fx_add(fx_mul(z, pc), 0.041666668f);
  pc = fx_add(fx_mul(z, pc), -0.5f);
  const float c = fx_add(1.0f, fx_mul(z, pc));
  switch (q) {
    case 0: *sn = s; *cs = c; break;
    case 1: *sn = c; *cs = -s; break;
    case 2: *sn = -s; *cs = -c; break;
    default: *sn = -c; *cs = s; break;
  }
}

// Box-Muller on two 32-bit words: u1 = (a>>8 + 1) / 2^24 in (0, 1], u2 = (b>>8) / 2^24 in
// [0, 1), r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2). Built from fx_* only, so
// the host (the CPU engines include this header) and the device give the same bits.
FG_HD void box_muller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float r = fx_sqrt(fx_mul(-2.0f, bm_log_k24((a >> 8) + 1u)));
  float sn, cs;
  bm_sincos_2pi_j24(b >> 8, &sn, &cs);
  *z0 = fx_mul(r, cs);
  *z1 = fx_mul(r, sn);
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
