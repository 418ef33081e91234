// Emulator stand-in for <cuda_fp16.h>: IEEE binary16 storage with correctly rounded conversions
// (round to nearest even, as __float2half_rn), for host and emulated device code alike.
#pragma once

#include <stdint.h>
#include <string.h>

struct __half {
  uint16_t __x;
};

inline __half __float2half_rn(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  uint16_t h;
  if (absx > 0x7f800000u) {
    h = (uint16_t)(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));  // NaN stays NaN (quiet)
  } else if (absx >= 0x477ff000u) {
    h = (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: infinity
  } else if (absx >= 0x38800000u) {  // normal half
    const uint32_t mant = absx & 0x7fffffu;
    const uint32_t exp = (absx >> 23) - 127 + 15;
    uint32_t v = (exp << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) ++v;
    h = (uint16_t)(sign | v);
  } else if (absx >= 0x33000000u) {  // subnormal half (>= 2^-25 rounds to at least the smallest)
    const uint32_t exp = absx >> 23;  // biased float exponent
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14 - (exp - 127) - 1 + 24 - 10 ... value = mant * 2^(exp-150)
    // half subnormal unit is 2^-24: v = mant * 2^(exp - 150 + 24) = mant >> (126 - exp)
    uint32_t v = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (v & 1u))) ++v;
    h = (uint16_t)(sign | v);
  } else {
    h = (uint16_t)sign;  // underflows to zero
  }
  __half r;
  r.__x = h;
  return r;
}

inline float __half2float(__half h) {
  const uint32_t sign = (uint32_t)(h.__x & 0x8000u) << 16;
  uint32_t exp = (h.__x >> 10) & 0x1fu;
  uint32_t mant = h.__x & 0x3ffu;
  uint32_t x;
  if (exp == 0x1fu) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while (!(mant & 0x400u));
      x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

inline __half __float2half(float f) { return __float2half_rn(f); }
