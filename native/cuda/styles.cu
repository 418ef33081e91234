// Styles and demodulation for every synthesis layer of a batch, in two launches of the row-dot
// kernel (gemv.cu) described by a StylePlan (plan.h):
//   1. all affines: s[b][style_offset(L) + i] = (w[b][w_index(L)] . A_L[i] * affine_gain + b_L[i]) * style_gain
//      into one packed [n][style_dim] buffer;
//   2. all demodulation coefficients: d[b][d_off(L) + o] = 1/sqrt(sum_i s_i^2 Wsq_L[o][i] + 1e-8) with
//      Wsq precomputed at load (never per-sample weights). For the 16-bit paths d also carries
//      max_i |s_i| and sinv[b][conv(L)] = 1 / max_i |s_i| (the conv's input pre-scale).
#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {

Status launch_styles(const StyleDevice& p, int n, const float* ws, float* styles, float* dcoef, float* sinv,
                     cudaStream_t stream) {
  RowsArgs aff;
  aff.n = n;
  aff.demod = 0;
  aff.tiles = p.affine_tiles;
  aff.num_tiles = p.num_affine_tiles;
  aff.max_K = p.max_K_affine;
  aff.x = ws;
  aff.x_stride = p.num_ws * p.w_dim;
  aff.M = p.affine_W;
  aff.bias = p.affine_b;
  aff.y = styles;
  aff.y_stride = p.style_dim;
  FG_RETURN_IF_ERROR(launch_rows(aff, stream));

  RowsArgs dem;
  dem.n = n;
  dem.demod = 1;
  dem.tiles = p.demod_tiles;
  dem.num_tiles = p.num_demod_tiles;
  dem.max_K = p.max_K_demod;
  dem.x = styles;
  dem.x_stride = p.style_dim;
  dem.M = p.wsq;
  dem.y = dcoef;
  dem.y_stride = p.demod_dim;
  dem.sinv = sinv;
  dem.sinv_stride = p.num_conv;
  return launch_rows(dem, stream);
}

}  // namespace cuda
}  // namespace facegan
