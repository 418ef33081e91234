// facegan CUDA backend: the arguments and launchers of every kernel family (one .cu each). All
// pointers are device pointers; every launcher enqueues on `stream` and returns a Status.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "facegan.h"
#include "indexing.cuh"
#include "plan.h"

namespace facegan {
namespace cuda {

enum class ActType { F32, F16, BF16 };

// ---- gemv.cu: batched row dot products (mapping FC layers, all affines, all demod coefficients)
struct RowsArgs {
  int n = 0;                    // samples
  int demod = 0;                // 0: FC mode, 1: demodulation mode (see RowTile)
  const RowTile* tiles = nullptr;
  int num_tiles = 0;
  int max_K = 0;                // largest K over the tiles (sizes shared memory)
  const float* x = nullptr;
  int x_stride = 0;
  const float* M = nullptr;
  const float* bias = nullptr;  // FC mode
  float* y = nullptr;
  int y_stride = 0;
  int lrelu = 0;                // FC mode: lrelu(0.2) * sqrt(2)
  // demod mode, 16-bit convs: d is multiplied by max_i |s_i| and sinv[b*sinv_stride + aux]
  // receives 1 / max_i |s_i| (the conv scales its input by s * sinv, keeping it within +-1 * x).
  float* sinv = nullptr;
  int sinv_stride = 0;
};
Status launch_rows(const RowsArgs& a, cudaStream_t stream);

// ---- mapping.cu
// x0[b] = [z[b] * rsqrt(mean(z[b]^2) + 1e-8), e[b] * rsqrt(mean(e[b]^2) + 1e-8)] (e: the embedded
// label, e_dim = 0 when unconditional).
Status launch_normalize_concat(int n, const float* z, int z_dim, const float* e, int e_dim, float* x0,
                               cudaStream_t stream);
// ws[b, r, :] = r < cutoff ? lerp(w_avg, w[b], psi) : w[b]  (psi == 1: plain broadcast); when
// nonfinite is given, *nonfinite += the number of NaN / ±Inf values written.
Status launch_broadcast_truncate(int n, const float* w, int w_dim, int num_ws, const float* w_avg,
                                 float psi, int cutoff, float* ws, cudaStream_t stream,
                                 unsigned long long* nonfinite = nullptr);

// ---- torgb.cu: 1x1 modulated conv (no demod) + bias + clamp + the x2 skip upsample, one pass
constexpr int kMaxImgChannels = 4;
struct ToRgbArgs {
  int n = 0, R = 0, Cin = 0, Cimg = 0;  // Cimg <= kMaxImgChannels
  const void* x = nullptr;              // NHWC [n, R, R, Cin], ActType elements
  const float* styles = nullptr;
  int style_stride = 0, style_off = 0;
  const float* weight = nullptr;        // [Cimg][Cin]
  const float* bias = nullptr;          // [Cimg]
  float clamp = -1.0f;
  const float* img_prev = nullptr;      // NCHW [n, Cimg, R/2, R/2], or null (first block)
  float* img = nullptr;                 // NCHW [n, Cimg, R, R]
  uint8_t* u8 = nullptr;                // optional NHWC [n, R, R, Cimg]
  // How u8 is made from the float image (network.h OutputMap): 0: clamp(v*scale + offset, 0, 255)
  // truncated, float steps (StyleGAN2, float_to_u8_scaled); 1: round(clamp(v*scale + offset, 0,
  // 255)) in double, halves up (ProGAN, float_to_u8_round).
  int u8_round = 0;
  double u8_scale = 127.5, u8_offset = 128.0;
  unsigned long long* nonfinite = nullptr;  // optional: += the number of non-finite image values
};
Status launch_torgb(const ToRgbArgs& a, ActType t, cudaStream_t stream);

// ---- modconv.cu: modulated 3x3 conv (up 1) or up-conv (up 2: the transposed conv as four sub-pixel
// phases into t, then the FIR pass), implicit GEMM
struct ConvArgs {
  ConvGeom g;
  const void* x = nullptr;      // NHWC input, ActType elements
  int64_t x_bstride = 0;        // elements per sample (0: one input broadcast over the batch)
  const float* styles = nullptr;  // s[b*style_stride + style_off + c]
  int style_stride = 0, style_off = 0;
  const float* sinv = nullptr;  // optional per-sample input scale sinv[b*sinv_stride + sinv_off]
  int sinv_stride = 0, sinv_off = 0;
  const void* w = nullptr;      // packed B (plan.h: pack_conv_layer): F32 [Kpad][Npad]; F16/BF16 [Npad][Kpad]
  int Kpad = 0, Npad = 0;       // Kpad: conv_tile_kpad (all phases of an up-conv)
  const float* colscale = nullptr;  // optional [phases][Npad]
  const float* dcoef = nullptr;     // optional d[b*d_stride + d_off + o]
  int d_stride = 0, d_off = 0;
  const float* noise = nullptr;     // optional noise[b*noise_bstride + Y*OW + X]
  int64_t noise_bstride = 0;
  float noise_strength = 0.0f;
  const float* bias = nullptr;      // [Cout]
  int activate = 1;
  float slope = 0.2f, gain = 1.41421356237309515f, clamp = -1.0f;
  void* y = nullptr;                // NHWC output at up*H x up*W
  void* t = nullptr;                // up 2: NHWC [batch][2H+1][2W+1][Cout], ActType elements (scratch)
  // Optional toRGB fused into the epilogue (rgb.img != nullptr; conv_rgb_fits): the layer's ToRGB
  // of the output rows (rgb.x unused: the epilogue's own stored values), as launch_torgb would do.
  ToRgbArgs rgb;
};
enum class ConvTile { Ffma, MmaWide, MmaNarrow };
// The tile configuration and the padding of the packed weights for a layer.
ConvTile choose_conv_tile(ActType t, int N);
int conv_tile_bk(ConvTile tile);                       // the k-tile; packed phases are padded to it
int conv_tile_kpad(ConvTile tile, const ConvGeom& g);  // conv_packed_k of the layer
int conv_tile_npad(ConvTile tile, int N);
int conv_tile_bm(ConvTile tile);  // GEMM rows per block
// Whether the tile's epilogue can run the layer's toRGB (ConvArgs::rgb): a plain 3x3 conv (up 1,
// src_shift 0) whose Cout output channels lie in one column tile, Cimg <= kMaxImgChannels.
bool conv_rgb_fits(ConvTile tile, const ConvGeom& g, int Cimg);
Status launch_modconv(const ConvArgs& a, ActType t, ConvTile tile, cudaStream_t stream);
// The up-conv's FIR pass alone (t -> y, + noise, bias, activation, clamp), after its four phases
// (launch_modconv runs it itself; the sm_90a path, modconv_sm90.cu, calls it after its GEMM).
Status launch_upfir(const ConvArgs& a, ActType t, cudaStream_t stream);

// ---- noise.cu: N(0,1) planes [n][plane] from Philox4x32-10 (see noise_counter). The seed and
// the image base are read from device memory, so one captured graph replays with any seed and
// offset; sample b of the launch is image image_base + b of the request (SynthesisArgs::
// image_offset + the chunk start + b), as the CPU engines key it (native/cpu/noise.h).
struct NoiseParams {
  uint64_t seed;
  uint32_t image_base;
  uint32_t pad;
};
Status launch_noise(int n, int plane, int layer, const NoiseParams* params, float* out, cudaStream_t stream);

// ---- pixnorm.cu: ProGAN's pixel norm over channels, per pixel. For each of `pixels` rows of C
// channels: v = src ? act(src + bias) : x (bias optional; act = lrelu(slope)*gain when activate,
// else identity); x = normalize ? v / sqrt(mean_c v^2 + eps) : v, stored in the activation type.
// With src == nullptr, x is normalised in place.
struct PixNormArgs {
  int64_t pixels = 0;
  int C = 0;
  const float* src = nullptr;   // optional float [pixels][C]
  const float* bias = nullptr;  // optional [C], with src
  int activate = 0;             // with src
  float slope = 0.2f, gain = 1.0f;
  int normalize = 1;
  float eps = 1e-8f;
  void* x = nullptr;            // [pixels][C], ActType elements
};
Status launch_pixnorm(const PixNormArgs& a, ActType t, cudaStream_t stream);

// ---- styles.cu: every affine, then every demodulation coefficient (two row-dot launches), from
// the device copy of a StylePlan (plan.h).
struct StyleDevice {
  const float* affine_W = nullptr;
  const float* affine_b = nullptr;
  const RowTile* affine_tiles = nullptr;
  int num_affine_tiles = 0, max_K_affine = 0;
  const float* wsq = nullptr;
  const RowTile* demod_tiles = nullptr;
  int num_demod_tiles = 0, max_K_demod = 0;
  int w_dim = 0, num_ws = 0, style_dim = 0, demod_dim = 0, num_conv = 0;
};
// ws: [n][num_ws][w_dim]; styles: [n][style_dim]; dcoef: [n][demod_dim]; sinv: [n][num_conv] for the
// 16-bit paths, nullptr for FP32.
Status launch_styles(const StyleDevice& p, int n, const float* ws, float* styles, float* dcoef, float* sinv,
                     cudaStream_t stream);

}  // namespace cuda
}  // namespace facegan
