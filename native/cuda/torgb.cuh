// facegan CUDA backend: the per-pixel arithmetic of ToRGB, shared by torgb.cu (its own pass) and
// modconv.cu (toRGB fused into a conv's epilogue, ConvArgs::rgb), so both make the same values.
#pragma once

#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {

// One input channel i of a pixel: acc[c] += (x_i * s_i) * W[c][i] for every image channel c.
// `w` is the [Cimg][Cin] weight (global or a shared copy), `x` the stored activation as float.
__device__ __forceinline__ void torgb_accum(const ToRgbArgs& a, const float* w, float x, float s, int i,
                                            float acc[kMaxImgChannels]) {
  const float v = x * s;
#pragma unroll
  for (int c = 0; c < kMaxImgChannels; ++c)
    if (c < a.Cimg) acc[c] = fmaf(v, w[c * a.Cin + i], acc[c]);
}

// The rest of ToRGB for image pixel (Y, X) of sample b, from the sums acc: + bias, clamp, + the x2
// upsampled image of the previous block (indexing.cuh: up2_taps), stored as the NCHW float image,
// counted when non-finite, and mapped to the uint8 HWC image when requested.
__device__ __forceinline__ void torgb_store(const ToRgbArgs& a, int b, int Y, int X, const float acc[kMaxImgChannels]) {
  const int64_t plane = (int64_t)a.R * a.R;
  const int rem = Y * a.R + X;
  const int Rl = a.R / 2;
  const Up2Taps ty = up2_taps(Y, Rl), tx = up2_taps(X, Rl);
#pragma unroll
  for (int c = 0; c < kMaxImgChannels; ++c) {
    if (c >= a.Cimg) break;
    float v = act_clamp(acc[c] + a.bias[c], false, 0.0f, 1.0f, a.clamp);
    if (a.img_prev) {
      const float* P = a.img_prev + ((int64_t)b * a.Cimg + c) * Rl * Rl;
      const float up = ty.w0 * (tx.w0 * P[ty.i0 * Rl + tx.i0] + tx.w1 * P[ty.i0 * Rl + tx.i1]) +
                       ty.w1 * (tx.w0 * P[ty.i1 * Rl + tx.i0] + tx.w1 * P[ty.i1 * Rl + tx.i1]);
      v = up + v;
    }
    a.img[((int64_t)b * a.Cimg + c) * plane + rem] = v;
    if (a.nonfinite && !isfinite(v)) atomicAdd(a.nonfinite, 1ull);
    if (a.u8) {
      uint8_t* u = a.u8 + ((int64_t)b * plane + rem) * a.Cimg + c;
      *u = a.u8_round ? float_to_u8_round(v, a.u8_scale, a.u8_offset)
                      : float_to_u8_scaled(v, (float)a.u8_scale, (float)a.u8_offset);
    }
  }
}

}  // namespace cuda
}  // namespace facegan
