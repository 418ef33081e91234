// facegan CUDA backend: the index arithmetic of every kernel, as small inline functions that
// compile both under nvcc (as __host__ __device__) and under a plain C++ compiler, so that
// native/tools/facegan_unit.cc checks them on the CPU. No CUDA header is included here.
//
// Conventions (see README.md in this directory):
//   activations  NHWC, one sample after another: x[((b*H + y)*W + x)*C + c]
//   images       NCHW float: img[((b*C + c)*H + y)*W + x]
//   implicit GEMM of a modulated 3x3 conv: rows m = pixels (b, y, x) of the row grid (the input
//   grid; for an up-conv phase its parity grid of t), reduction k = tap*Cin + c (tap =
//   ty*taps_x + tx), columns j = output channel o. Row m lands on pixel (up*y + py, up*x + px)
//   of the grid the GEMM writes (the output; for an up-conv t, before the FIR pass).
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
//
// up 2 (StyleGAN2's up-conv): the transposed 3x3 conv, stride 2, is split into its four output
// parities ("sub-pixel" phases). Its output t is (2H+1)^2, t[2i + ky][2j + kx] += x[i][j] w[ky][kx],
// so per axis an even output 2i reads x[i] (k = 0) and x[i - 1] (k = 2), an odd one 2i + 1 reads
// x[i] (k = 1) only: phase (py, px) is a small correlation over the input with taps
// dy = -ty (ty < 2 - py), dx = -tx (tx < 2 - px) and kernel taps ky = py ? 1 : 2 ty, kx likewise,
// on a grid of (H + 1 - py) x (W + 1 - px) rows. The four phases (4, 2, 2 and 1 taps) do exactly
// the transposed conv's 9 Cin Cout multiply-adds per input pixel (plus the taps in the zero border).
// The [1,3,3,1]^2 FIR (gain 4, pad 1) then runs as a separate pass over t (upfir below).
// A layer's geometry has phase 0; conv_phase_geom gives the geometry of each phase's launch.

struct ConvGeom {
  int batch = 0;   // samples
  int H = 0, W = 0;  // input grid (the output grid is up*H x up*W)
  int Cin = 0, Cout = 0;
  int up = 1;      // 1: plain 3x3 conv, pad 1; 2: one sub-pixel phase of the transposed conv (+ FIR pass)
  int ks = 3;      // kernel taps per axis (3)
  // 0: the input tensor is the H x W grid itself. 1 (up = 1 only): the input tensor is
  // (H/2) x (W/2) and the grid is its nearest-neighbour x2 upsampling, read on the fly: grid
  // pixel (y, x) is tensor pixel (y >> 1, x >> 1) (ProGAN's upsample before conv0).
  int src_shift = 0;
  int phase = 0;   // up 2: the output parity of this GEMM, py = phase >> 1, px = phase & 1
};

FG_HD int geom_py(const ConvGeom& g) { return g.up == 2 ? g.phase >> 1 : 0; }
FG_HD int geom_px(const ConvGeom& g) { return g.up == 2 ? g.phase & 1 : 0; }
// Taps per axis of the GEMM's reduction.
FG_HD int geom_taps_y(const ConvGeom& g) { return g.up == 2 ? 2 - geom_py(g) : g.ks; }
FG_HD int geom_taps_x(const ConvGeom& g) { return g.up == 2 ? 2 - geom_px(g) : g.ks; }
// The grid of GEMM rows: the input grid (up 1) or the phase's parity grid of t (up 2).
FG_HD int geom_RH(const ConvGeom& g) { return g.up == 2 ? g.H + 1 - geom_py(g) : g.H; }
FG_HD int geom_RW(const ConvGeom& g) { return g.up == 2 ? g.W + 1 - geom_px(g) : g.W; }
FG_HD int geom_M(const ConvGeom& g) { return g.batch * geom_RH(g) * geom_RW(g); }
FG_HD int geom_K(const ConvGeom& g) { return geom_taps_y(g) * geom_taps_x(g) * g.Cin; }
FG_HD int geom_N(const ConvGeom& g) { return g.Cout; }
// The grid the GEMM writes: the output (up 1) or t, the transposed conv's (2H+1)^2 output (up 2).
FG_HD int geom_OH(const ConvGeom& g) { return g.up == 2 ? 2 * g.H + 1 : g.H; }
FG_HD int geom_OW(const ConvGeom& g) { return g.up == 2 ? 2 * g.W + 1 : g.W; }
// The layer's output grid (after the FIR for up 2).
FG_HD int conv_out_h(const ConvGeom& g) { return g.up * g.H; }
FG_HD int conv_out_w(const ConvGeom& g) { return g.up * g.W; }

// Launches per layer (grid z) and the geometry of launch z.
FG_HD int conv_phases(const ConvGeom& g) { return g.up == 2 ? 4 : 1; }
FG_HD ConvGeom conv_phase_geom(const ConvGeom& g, int phase) {
  ConvGeom p = g;
  p.phase = g.up == 2 ? phase : 0;
  return p;
}
// The packed weights of a layer: the phases' B matrices one after another, each padded to a
// multiple of bk in k and to npad columns; conv_packed_k is their total k extent.
FG_HD int conv_packed_k(const ConvGeom& g, int bk) {
  int k = 0;
  for (int ph = 0; ph < conv_phases(g); ++ph) k += round_up(geom_K(conv_phase_geom(g, ph)), bk);
  return k;
}
// Where phase `phase`'s B starts, in elements (k rows of npad columns, or npad rows of its k).
FG_HD int64_t conv_phase_w_offset(const ConvGeom& g, int phase, int bk, int npad) {
  int k = 0;
  for (int ph = 0; ph < phase; ++ph) k += round_up(geom_K(conv_phase_geom(g, ph)), bk);
  return (int64_t)k * npad;
}

struct Pixel {
  int b, y, x;
};

// GEMM row m (0 <= m < M) -> row-grid pixel.
FG_HD Pixel gemm_row_pixel(const ConvGeom& g, int m) {
  Pixel p;
  const int rw = geom_RW(g), hw = geom_RH(g) * rw;
  p.b = m / hw;
  const int r = m - p.b * hw;
  p.y = r / rw;
  p.x = r - p.y * rw;
  return p;
}

struct Tap {
  int c;       // input channel
  int dy, dx;  // offset of the input pixel read
};

// Kernel tap (ty, tx) of the reduction -> input offset and the weight's [ky][kx] index.
FG_HD int tap_offset(const ConvGeom& g, int t) { return g.up == 2 ? -t : t - g.ks / 2; }
FG_HD int tap_kernel_index(const ConvGeom& g, int t, int parity) {
  return g.up == 2 ? (parity ? 1 : 2 * t) : t;
}

// The reduction position of a loader walking k upwards in fixed steps: (tap, channel) kept
// incrementally, so the K loop does no run-time division. The kernels' taps (launch_modconv
// checks ks == 3): up 1, ty = tap / 3 (a constant divisor); up 2, taps_x is 1 or 2 (a shift).
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
FG_HD Tap kwalk_tap(const ConvGeom& g, const KWalk& w) {
  int ty, tx;
  if (g.up == 2) {
    const int sx = 1 - geom_px(g);  // log2(taps_x)
    ty = w.tap >> sx;
    tx = w.tap - (ty << sx);
  } else {
    ty = w.tap / 3;
    tx = w.tap - ty * 3;
  }
  Tap t;
  t.c = w.c;
  t.dy = tap_offset(g, ty);
  t.dx = tap_offset(g, tx);
  return t;
}

// GEMM reduction index k (0 <= k < K) -> (channel, tap offset).
FG_HD Tap gemm_k_tap(const ConvGeom& g, int k) {
  return kwalk_tap(g, kwalk_start(g, k));
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
  int py, px;  // output parity (up 2)
  int o;       // output channel
};

// GEMM column j (0 <= j < N) -> (parity, output channel).
FG_HD OutCol gemm_col_out(const ConvGeom& g, int j) {
  OutCol c;
  c.o = j;
  c.py = geom_py(g);
  c.px = geom_px(g);
  return c;
}

// Index of the pixel of (m, j) inside one sample's plane of the grid the GEMM writes: Y*OW + X.
FG_HD int gemm_out_pixel(const ConvGeom& g, const Pixel& p, const OutCol& c) {
  return (g.up * p.y + c.py) * geom_OW(g) + (g.up * p.x + c.px);
}

// Element offset of C[m][j] in the NHWC output (up 2: in t).
FG_HD int64_t gemm_out_offset(const ConvGeom& g, const Pixel& p, const OutCol& c) {
  const int64_t plane = (int64_t)geom_OH(g) * geom_OW(g);
  return ((int64_t)p.b * plane + gemm_out_pixel(g, p, c)) * g.Cout + c.o;
}

// B[k][j] of the implicit GEMM (of one phase for up 2), from the raw weight W [Cout][Cin][3][3]
// (no modulation: the style scales A on load, the demodulation scales C in the epilogue).
FG_HD float conv_b_value(const ConvGeom& g, const float* W, int k, int j) {
  if (k >= geom_K(g) || j >= geom_N(g)) return 0.0f;
  const int tap = k / g.Cin, nx = geom_taps_x(g);
  const int c = k - tap * g.Cin;
  const int ty = tap / nx, tx = tap - ty * nx;
  const int ky = tap_kernel_index(g, ty, geom_py(g)), kx = tap_kernel_index(g, tx, geom_px(g));
  return W[(((int64_t)j * g.Cin + c) * 3 + ky) * 3 + kx];
}

// ------------------------------------------------------------------------------------------
// The up-conv's FIR pass: out[Y][X] = sum_{a,e<4} t[Y-1+a][X-1+e] f[a] f[e] over t (2H+1)^2,
// f = [1,3,3,1]/4 per axis (gain 4 in 2-D), taps outside t are zero; out is (2H)^2.
FG_HD float upfir_tap(int a) { return (a == 0 || a == 3) ? 0.25f : 0.75f; }

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
