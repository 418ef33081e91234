// facegan CUDA backend: the index arithmetic of every kernel, as small inline functions that
// compile both under nvcc (as __host__ __device__) and under a plain C++ compiler, so that
// native/tools/facegan_unit.cc checks them on the CPU. No CUDA header is included here.
//
// Conventions (see README.md in this directory):
//   activations  NHWC, one sample after another: x[((b*H + y)*W + x)*C + c]
//   images       NCHW float: img[((b*C + c)*H + y)*W + x]
//   implicit GEMM of a modulated 3x3 conv: rows m = pixels of the *input* grid (b, y, x),
//   reduction k = tap*Cin + c (tap = ty*3 + tx), columns j = phase*Cout + o with
//   phase = py*up + px (up = 1: one phase). Column j of row m lands on output pixel
//   (up*y + py, up*x + px), channel o.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FG_HD __host__ __device__ __forceinline__
#else
#define FG_HD inline
#endif

namespace facegan {
namespace cuda {

FG_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }
FG_HD int round_up(int a, int b) { return ceil_div(a, b) * b; }

// ------------------------------------------------------------------------------------------
// Implicit-GEMM geometry of one modulated convolution (3x3, up 1 or 2) over a batch.

struct ConvGeom {
  int batch = 0;   // samples
  int H = 0, W = 0;  // input grid (the output grid is up*H x up*W)
  int Cin = 0, Cout = 0;
  int up = 1;      // 1: plain 3x3 conv, pad 1; 2: transposed conv + FIR, as 4 polyphase 3x3 convs
  int ks = 3;      // taps per axis of every phase (3)
  // 0: the input tensor is the H x W grid itself. 1 (up = 1 only): the input tensor is
  // (H/2) x (W/2) and the grid is its nearest-neighbour x2 upsampling, read on the fly: grid
  // pixel (y, x) is tensor pixel (y >> 1, x >> 1) (ProGAN's upsample before conv0).
  int src_shift = 0;
};

FG_HD int geom_M(const ConvGeom& g) { return g.batch * g.H * g.W; }
FG_HD int geom_K(const ConvGeom& g) { return g.ks * g.ks * g.Cin; }
FG_HD int geom_N(const ConvGeom& g) { return g.up * g.up * g.Cout; }
FG_HD int geom_OH(const ConvGeom& g) { return g.up * g.H; }
FG_HD int geom_OW(const ConvGeom& g) { return g.up * g.W; }

struct Pixel {
  int b, y, x;
};

// GEMM row m (0 <= m < M) -> input-grid pixel.
FG_HD Pixel gemm_row_pixel(const ConvGeom& g, int m) {
  Pixel p;
  const int hw = g.H * g.W;
  p.b = m / hw;
  const int r = m - p.b * hw;
  p.y = r / g.W;
  p.x = r - p.y * g.W;
  return p;
}

struct Tap {
  int c;       // input channel
  int dy, dx;  // offset of the input pixel read, in [-ks/2, ks/2]
};

// The reduction position of a loader walking k upwards in fixed steps: (tap, channel) kept
// incrementally, so the K loop does no run-time division (gemm_k_tap divides twice per call).
// The kernels' 3x3 taps: dy = tap / 3 - 1, dx = tap % 3 - 1 (constant divisors).
struct KWalk {
  int tap, c;
};
FG_HD KWalk kwalk_start(const ConvGeom& g, int k) {
  KWalk w;
  w.tap = k / g.Cin;
  w.c = k - w.tap * g.Cin;
  return w;
}
FG_HD void kwalk_advance(const ConvGeom& g, KWalk* w, int step) {
  w->c += step;
  while (w->c >= g.Cin) {  // at most once per step when Cin >= step
    w->c -= g.Cin;
    ++w->tap;
  }
}
FG_HD Tap kwalk_tap(const KWalk& w) {
  Tap t;
  t.c = w.c;
  t.dy = w.tap / 3 - 1;
  t.dx = w.tap - (w.tap / 3) * 3 - 1;
  return t;
}

// GEMM reduction index k (0 <= k < K) -> (channel, tap offset).
FG_HD Tap gemm_k_tap(const ConvGeom& g, int k) {
  Tap t;
  const int tap = k / g.Cin;
  t.c = k - tap * g.Cin;
  const int ty = tap / g.ks;
  t.dy = ty - g.ks / 2;
  t.dx = (tap - ty * g.ks) - g.ks / 2;
  return t;
}

// Offset of grid pixel (iy, ix) (inside the grid) in one sample of the NHWC input tensor, in
// pixels: the grid itself, or its nearest-x2 source (src_shift 1).
FG_HD int64_t grid_src_pixel(const ConvGeom& g, int iy, int ix) {
  return (int64_t)(iy >> g.src_shift) * (g.W >> g.src_shift) + (ix >> g.src_shift);
}

// Element offset of the input read by A[m][k] for a decoded tap of k, or -1 in the padding.
FG_HD int64_t gemm_a_offset_tap(const ConvGeom& g, const Pixel& p, const Tap& t, int64_t in_bstride) {
  const int iy = p.y + t.dy, ix = p.x + t.dx;
  if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) return -1;
  return (int64_t)p.b * in_bstride + grid_src_pixel(g, iy, ix) * g.Cin + t.c;
}

// Element offset of A[m][k] in the NHWC input (in_bstride elements per sample; 0 broadcasts one
// input over the batch), or -1 where A is zero (padding, or k >= K).
FG_HD int64_t gemm_a_offset(const ConvGeom& g, const Pixel& p, int k, int64_t in_bstride) {
  if (k >= geom_K(g)) return -1;
  return gemm_a_offset_tap(g, p, gemm_k_tap(g, k), in_bstride);
}

struct OutCol {
  int py, px;  // output phase
  int o;       // output channel
};

// GEMM column j (0 <= j < N) -> (phase, output channel).
FG_HD OutCol gemm_col_out(const ConvGeom& g, int j) {
  OutCol c;
  const int phase = j / g.Cout;
  c.o = j - phase * g.Cout;
  c.py = phase / g.up;
  c.px = phase - c.py * g.up;
  return c;
}

// Index of the output pixel of (m, j) inside one sample's output plane: Y*OW + X.
FG_HD int gemm_out_pixel(const ConvGeom& g, const Pixel& p, const OutCol& c) {
  return (g.up * p.y + c.py) * geom_OW(g) + (g.up * p.x + c.px);
}

// Element offset of C[m][j] in the NHWC output.
FG_HD int64_t gemm_out_offset(const ConvGeom& g, const Pixel& p, const OutCol& c) {
  const int64_t plane = (int64_t)geom_OH(g) * geom_OW(g);
  return ((int64_t)p.b * plane + gemm_out_pixel(g, p, c)) * g.Cout + c.o;
}

// ------------------------------------------------------------------------------------------
// Up-conv (transposed 3x3 conv, stride 2) followed by the [1,3,3,1]^2 FIR (gain 4, pad 1),
// fused polyphase. Per axis the FIR is f1 = [1,3,3,1]/4 (gain 2), and
//   out[2j + p] = sum_{t=0..2} x[j - 1 + t] * G_p[t],   G_p[t] = sum_k w[k] * f1[2t + k - p - 1]
// (f1 indexed outside [0,3] is zero), i.e. each output phase is a 3-tap correlation with
// padding 1 over the low-resolution input. In 2-D the phase (py, px) has the 3x3 kernel
// G[ty][tx] = sum_{ky,kx} w[ky][kx] * f1[2ty + ky - py - 1] * f1[2tx + kx - px - 1].

FG_HD float fir_up_tap(int a) {
  return (a == 0 || a == 3) ? 0.25f : (a == 1 || a == 2) ? 0.75f : 0.0f;
}

FG_HD int upconv_fir_index(int phase, int tap, int k) { return 2 * tap + k - phase - 1; }

// w9: one (o, c) slice of the 3x3 weight, w9[ky*3 + kx]. Evaluated separably: per kernel row
// h = sum_kx w[ky][kx] * f1x, then sum_ky f1y * h (upconv_combined_slice does the same sums).
FG_HD float upconv_combined_tap(const float* w9, int py, int px, int ty, int tx) {
  float acc = 0.0f;
  for (int ky = 0; ky < 3; ++ky) {
    float h = 0.0f;
    for (int kx = 0; kx < 3; ++kx) h += w9[ky * 3 + kx] * fir_up_tap(upconv_fir_index(px, tx, kx));
    acc += fir_up_tap(upconv_fir_index(py, ty, ky)) * h;
  }
  return acc;
}

// All 36 combined taps of one slice, out[((py*2 + px)*3 + ty)*3 + tx], bit-identical to
// upconv_combined_tap (the same products and sums in the same order, row sums shared).
FG_HD void upconv_combined_slice(const float* w9, float out[36]) {
  float h[3][2][3];  // [ky][px][tx]
  for (int ky = 0; ky < 3; ++ky)
    for (int px = 0; px < 2; ++px)
      for (int tx = 0; tx < 3; ++tx) {
        float v = 0.0f;
        for (int kx = 0; kx < 3; ++kx) v += w9[ky * 3 + kx] * fir_up_tap(upconv_fir_index(px, tx, kx));
        h[ky][px][tx] = v;
      }
  for (int py = 0; py < 2; ++py)
    for (int px = 0; px < 2; ++px)
      for (int ty = 0; ty < 3; ++ty)
        for (int tx = 0; tx < 3; ++tx) {
          float acc = 0.0f;
          for (int ky = 0; ky < 3; ++ky) acc += fir_up_tap(upconv_fir_index(py, ty, ky)) * h[ky][px][tx];
          out[((py * 2 + px) * 3 + ty) * 3 + tx] = acc;
        }
}

// B[k][j] of the implicit GEMM, from the raw weight W [Cout][Cin][3][3] (no modulation:
// the style scales A on load, the demodulation scales C in the epilogue).
FG_HD float conv_b_value(const ConvGeom& g, const float* W, int k, int j) {
  if (k >= geom_K(g) || j >= geom_N(g)) return 0.0f;
  const int tap = k / g.Cin;
  const int c = k - tap * g.Cin;
  const int ty = tap / g.ks, tx = tap - (tap / g.ks) * g.ks;
  const OutCol oc = gemm_col_out(g, j);
  const float* w9 = W + ((int64_t)oc.o * g.Cin + c) * 9;
  if (g.up == 1) return w9[ty * 3 + tx];
  return upconv_combined_tap(w9, oc.py, oc.px, ty, tx);
}

// ------------------------------------------------------------------------------------------
// ToRGB skip: x2 upsampling of the previous image (zero insertion, pad [2,1], the same FIR with
// gain 4). Per axis out[2j] = .25 x[j-1] + .75 x[j], out[2j+1] = .75 x[j] + .25 x[j+1],
// zero outside [0, n_low). A tap outside gets weight 0 (and a clamped, readable index).

struct Up2Taps {
  int i0, i1;
  float w0, w1;
};

FG_HD Up2Taps up2_taps(int Y, int n_low) {
  Up2Taps t;
  const int j = Y >> 1;
  if ((Y & 1) == 0) {
    t.i0 = j - 1; t.w0 = 0.25f;
    t.i1 = j;     t.w1 = 0.75f;
  } else {
    t.i0 = j;     t.w0 = 0.75f;
    t.i1 = j + 1; t.w1 = 0.25f;
  }
  if (t.i0 < 0 || t.i0 >= n_low) { t.i0 = 0; t.w0 = 0.0f; }
  if (t.i1 < 0 || t.i1 >= n_low) { t.i1 = 0; t.w1 = 0.0f; }
  return t;
}

// ------------------------------------------------------------------------------------------
// Tensor-core tiles: mma.sync m16n8k16 (f16 / bf16 in, f32 accumulate), fragments loaded with
// ldmatrix.x4 from shared tiles stored [rows][k] with a row pitch of BK + 8 halves (conflict-free
// ldmatrix, 16-byte aligned rows). Layouts from the PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type" (groupID = lane >> 2, tig = lane % 4).

// A (16x16, row-major): element i (0..7) of a lane; register r holds elements 2r, 2r+1.
FG_HD void mma_a_elem(int lane, int i, int* row, int* col) {
  const int g = lane >> 2, t = lane & 3;
  *row = g + (((i >> 1) & 1) ? 8 : 0);
  *col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
}
// B (16x8, "col"): element i (0..3); register r holds elements 2r, 2r+1. Returns (k, n).
FG_HD void mma_b_elem(int lane, int i, int* k, int* n) {
  const int g = lane >> 2, t = lane & 3;
  *k = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);
  *n = g;
}
// C/D (16x8, f32): element i (0..3).
FG_HD void mma_c_elem(int lane, int i, int* row, int* col) {
  const int g = lane >> 2, t = lane & 3;
  *row = g + (i >= 2 ? 8 : 0);
  *col = t * 2 + (i & 1);
}

// ldmatrix .m8n8 .x4 .b16 semantics (for the host emulation): lane l supplies the address of
// row (l % 8) of matrix (l / 8); afterwards register q of lane l holds row (l / 4), columns
// 2*(l % 4) and 2*(l % 4) + 1 of matrix q.
FG_HD void ldsm_dst_elem(int lane, int e, int* row, int* col) {
  *row = lane >> 2;
  *col = (lane & 3) * 2 + e;
}

// The address a lane supplies to load one 16x16 A tile: matrices (rows 0-7, k 0-7),
// (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) = registers a0..a3.
FG_HD void ldsm_a_addr(int lane, int* row, int* col) {
  *row = lane & 15;
  *col = (lane >> 4) * 8;
}
// The address a lane supplies to load B for two n8 tiles from a [n][k] tile: matrices
// (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0, b1 of the first
// n8 tile, b0, b1 of the second.
FG_HD void ldsm_b_addr(int lane, int* n, int* k) {
  *n = (lane & 7) + ((lane >> 4) * 8);
  *k = ((lane >> 3) & 1) * 8;
}

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_>
struct MmaTileCfg {
  static constexpr int BM = BM_, BN = BN_, BK = 32;
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int WARPS = WARPS_M * WARPS_N, THREADS = WARPS * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr int LDS = BK + 8;                 // shared row pitch, in 16-bit elements
  static constexpr int VEC = 8;                      // 16-bit elements per 16-byte load
  static constexpr int A_VECS = BM * BK / VEC / THREADS;  // 16-byte loads per thread per k-tile
  static constexpr int B_VECS = BN * BK / VEC / THREADS;
  // Blocks per SM the register budget is sized for (__launch_bounds__): two 256-thread blocks
  // (at most 128 registers per thread) so one block's loads overlap the other's MMAs.
  static constexpr int MIN_BLOCKS = THREADS >= 256 ? 2 : 4;
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must hold whole m16 / n16 tiles");
  static_assert(BM * BK % (VEC * THREADS) == 0 && BN * BK % (VEC * THREADS) == 0, "loader");
};
using MmaCfgWide = MmaTileCfg<128, 128, 2, 4>;   // 256 threads, warp tile 64x32
using MmaCfgNarrow = MmaTileCfg<128, 32, 4, 1>;  // 128 threads, warp tile 32x32 (N <= 64)

// The v-th 16-byte vector of a [rows][32] k-tile: row v / 4, k offset (v % 4) * 8.
FG_HD void tile_vec_coord(int v, int* row, int* kc) {
  *row = v >> 2;
  *kc = (v & 3) * 8;
}

FG_HD void warp_tile_origin(int warp, int warps_n, int wm, int wn, int* row0, int* col0) {
  *row0 = (warp / warps_n) * wm;
  *col0 = (warp % warps_n) * wn;
}

// ------------------------------------------------------------------------------------------
// FP32 FFMA tiles: 64x64 block tile, BK 16, 256 threads, 4x4 outputs per thread.

struct FfmaCfg {
  static constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4, THREADS = 256, MIN_BLOCKS = 4;
  static constexpr int APAD = 4;  // As is [BK][BM + APAD]
};
// A k-tile (64 rows x 16 k) is loaded as one 4-wide k vector per thread.
FG_HD void ffma_a_coord(int tid, int* row, int* kq) {
  *row = tid >> 2;
  *kq = (tid & 3) * 4;
}
// B k-tile (16 k x 64 columns): one 4-wide column vector per thread.
FG_HD void ffma_b_coord(int tid, int* k, int* nq) {
  *k = tid >> 4;
  *nq = (tid & 15) * 4;
}
// Outputs of a thread: rows row0 + i, columns col0 + j (i, j < 4).
FG_HD void ffma_thread_origin(int tid, int* row0, int* col0) {
  *row0 = (tid >> 4) * 4;
  *col0 = (tid & 15) * 4;
}

// ------------------------------------------------------------------------------------------
// Random noise: normal number p of the plane (layer, sample b) is Box-Muller output (p % 4) of
// Philox4x32-10 with counter {p / 4, layer, b, 0} and key {seed low, seed high} (philox.cuh).

FG_HD void noise_counter(int layer, int b, int p, uint32_t ctr[4], int* which) {
  ctr[0] = (uint32_t)(p >> 2);
  ctr[1] = (uint32_t)layer;
  ctr[2] = (uint32_t)b;
  ctr[3] = 0u;
  *which = p & 3;
}

// ------------------------------------------------------------------------------------------
// ProGAN's dense 4x4 start (network.h, LayerDesc::Dense): a[o][y][x] = sum_c W[o*16 + y*4 + x][c] z[c]
// + b[o]. The backend runs it as a row-dot product per output row and stores the rows in NHWC
// order, row r = (y*4 + x)*C + o, so the activation [4][4][C] comes out directly: packed row r is
// the stored row dense_src_row(r, C).
FG_HD int dense_src_row(int r, int C) {
  const int pix = r / C, o = r - pix * C;
  return o * 16 + pix;
}

// ------------------------------------------------------------------------------------------
// Output and mapping scalars.

// clamp(v * scale + offset, 0, 255) truncated toward zero (NaN -> 0), each step rounded in
// float (network.h OutputMap::TruncF32; StyleGAN2's generate.py: scale 127.5, offset 128).
FG_HD uint8_t float_to_u8_scaled(float v, float scale, float offset) {
#if defined(__CUDA_ARCH__)
  float t = __fadd_rn(__fmul_rn(v, scale), offset);
#else
  volatile float prod = v * scale;  // no contraction into an FMA
  float t = prod + offset;
#endif
  if (!(t > 0.0f)) t = 0.0f;
  if (t > 255.0f) t = 255.0f;
  return (uint8_t)t;
}
FG_HD uint8_t float_to_u8(float v) { return float_to_u8_scaled(v, 127.5f, 128.0f); }

// ProGAN's pixels, as test/helpers/progan-reference.ts (proganToUint8) computes them:
// Math.round(min(255, max(0, v * scale + offset))) in double arithmetic (the product of a float and
// a double rounded once, then the sum rounded once, never fused), halves rounded up, NaN -> 0.
FG_HD uint8_t float_to_u8_round(float v, double scale, double offset) {
#if defined(__CUDA_ARCH__)
  const double t = __dadd_rn(__dmul_rn((double)v, scale), offset);
#else
  volatile double prod = (double)v * scale;  // no contraction into an FMA
  const double t = prod + offset;
#endif
  if (!(t > 0.0)) return 0;  // also NaN
  if (t >= 255.0) return 255;
  const int r = (int)t;  // floor (t > 0); t - r is exact
  return (uint8_t)(t - (double)r >= 0.5 ? r + 1 : r);
}

// torch.lerp(start, end, weight) as ATen computes it (truncation: w_avg.lerp(w, psi)).
FG_HD float lerp_torch(float start, float end, float weight) {
  const float aw = weight < 0.0f ? -weight : weight;
  return aw < 0.5f ? start + weight * (end - start) : end - (end - start) * (1.0f - weight);
}

}  // namespace cuda
}  // namespace facegan
