// The modulated conv's epilogue, shared by the mma.sync / FFMA kernels (modconv.cu) and the
// Hopper kernel (modconv_sm90.cu): x colscale (16-bit weight scaling), x d (demodulation), then
// for up 1 + noise * strength, + bias, lrelu * sqrt(2), clamp into y; for up 2 (a phase of the
// up-conv) the value is stored into t and the FIR pass finishes it.
#pragma once

#include <cstring>

#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {

// The epilogue's bias, activation and clamp of one element (noise added by the caller).
__device__ __forceinline__ float conv_finish(const ConvArgs& a, int o, float v) {
  return act_clamp(v + a.bias[o], a.activate != 0, a.slope, a.gain, a.clamp);
}

// The epilogue of one output element (row pixel p, column j) of the GEMM g (a phase for up 2):
// x colscale x d, then up 1: + noise, bias, activation, clamp into y; up 2: stored into t.
// Returns the stored value (rounded to T), as a later pass would read it.
template <typename T>
__device__ __forceinline__ float conv_store(const ConvArgs& a, const ConvGeom& g, const float* colscale,
                                           const Pixel& p, int j, float acc) {
  const OutCol oc = gemm_col_out(g, j);
  float v = acc;
  if (colscale) v *= colscale[j];
  if (a.dcoef) v *= a.dcoef[(int64_t)p.b * a.d_stride + a.d_off + oc.o];
  if (g.up == 1) {
    if (a.noise) v += a.noise[(int64_t)p.b * a.noise_bstride + gemm_out_pixel(g, p, oc)] * a.noise_strength;
    v = conv_finish(a, oc.o, v);
  }
  const T q = Act<T>::from_float(v);
  static_cast<T*>(g.up == 1 ? a.y : a.t)[gemm_out_offset(g, p, oc)] = q;
  return Act<T>::to_float(q);
}

// Stores a pair of adjacent channels (o even, o + 1 < C) of one pixel as one 4-byte store
// (half2 / bfloat162 layout: the lower channel in the low half), or two floats.
template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float v0, float v1) {
  T pair[2] = {Act<T>::from_float(v0), Act<T>::from_float(v1)};
  if (sizeof(T) == 2) {
    uint32_t bits;
    memcpy(&bits, pair, 4);
    *reinterpret_cast<uint32_t*>(dst) = bits;  // NHWC, o even: 4-byte aligned
  } else {
    dst[0] = pair[0];
    dst[1] = pair[1];
  }
}

// Two adjacent columns j, j + 1 (j even) of one row: when both are output channels (Cout even),
// one pair store and one column decode; otherwise two single stores. q receives the stored values
// (rounded to T; 0 for a column >= N).
template <typename T>
__device__ __forceinline__ void conv_store_pair(const ConvArgs& a, const ConvGeom& g, const float* colscale,
                                                const Pixel& p, int j, int N, float acc0, float acc1, float q[2]) {
  if (j + 1 >= N || (g.Cout & 1)) {
    q[0] = j < N ? conv_store<T>(a, g, colscale, p, j, acc0) : 0.0f;
    q[1] = j + 1 < N ? conv_store<T>(a, g, colscale, p, j + 1, acc1) : 0.0f;
    return;
  }
  const OutCol oc = gemm_col_out(g, j);  // oc.o is even, oc.o + 1 < Cout
  float v[2] = {acc0, acc1};
  const int64_t db = (int64_t)p.b * a.d_stride + a.d_off + oc.o;
  const float nz = g.up == 1 && a.noise
                       ? a.noise[(int64_t)p.b * a.noise_bstride + gemm_out_pixel(g, p, oc)] * a.noise_strength
                       : 0.0f;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    if (colscale) v[e] *= colscale[j + e];
    if (a.dcoef) v[e] *= a.dcoef[db + e];
    if (g.up == 1) v[e] = conv_finish(a, oc.o + e, v[e] + nz);
    q[e] = Act<T>::to_float(Act<T>::from_float(v[e]));
  }
  store_pair<T>(static_cast<T*>(g.up == 1 ? a.y : a.t) + gemm_out_offset(g, p, oc), v[0], v[1]);
}

}  // namespace cuda
}  // namespace facegan
