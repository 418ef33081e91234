// Emulator stand-in for <cuda_bf16.h>: bfloat16 storage with round-to-nearest-even conversion.
#pragma once

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
  uint16_t __x;
};

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  __nv_bfloat16 r;
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    r.__x = (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
    return r;
  }
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  r.__x = (uint16_t)((x + rounding) >> 16);
  return r;
}

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t x = (uint32_t)h.__x << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
