// The CPU engine's compute kernels, one set per instruction-set variant (scalar, AVX2+FMA,
// AVX-512), chosen at run time by cpuid (ggml-style: each variant reports a score, 0 when
// the CPU lacks a feature; the best score wins). The engine (cpu_backend.cc and the cpu_*.cc
// op files) is ISA-neutral and only calls through this table.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace facegan {
namespace cpu {

// A run of B columns that maps to one row segment of one image (see pack_b).
struct ColSeg {
  int img;     // image index within the sub-batch
  int y, x0;   // source row and first column in that image (output coordinates)
  int len;     // number of columns
  int col;     // first column inside the packed block (relative to the task's first column)
};

struct PackBArgs {
  float* Bp;           // out: [ceil(ncols/nr)][kc][nr] panels
  int nr;              // panel width: NR, or NR_small for the small-N kernels
  int kc;              // rows of this K block
  int k0;              // first K row of the block
  int taps;            // 9: K row = c·9 + ky·3 + kx (3×3, padding 1); 1: K row = c
  const ColSeg* segs;
  int nsegs;
  int ncols;           // columns in the block (the panel tail up to NR is zero-filled)
  const float* in;     // activations [img][C][H][W]
  size_t in_img_stride;  // 0 when every image shares the input (the learned const)
  int H, W;
  const float* styles;   // s[img][c] at styles[img · style_stride + c]
  size_t style_stride;
};

struct EpilogueArgs {
  float d;              // demodulation coefficient for this (image, channel)
  float bias;
  float noise_strength;
  const float* noise;   // per output pixel, or nullptr
  float clamp;          // < 0: none
  bool act;             // lrelu: max(v, slope·v)·gain
  bool stream = false;  // non-temporal stores where aligned (outputs far larger than the caches)
  float slope = 0.2f;   // StyleGAN2 0.2 / √2; ProGAN the config's slope / 1
  float gain = 1.41421356237309504880f;
};

// Winograd F(2×2, 3×3) input transform of one input channel over a run of tiles of one tile
// row: V = Bᵀ·d·B of each 4×4 input patch (scaled by s), written as 16 planes ξ = 4i + j.
struct WinoInArgs {
  float* dst;            // plane ξ = 0 at the run's first tile; tiles of a run are contiguous
  size_t xi_stride;      // floats between planes
  // Input rows 2ty−1 … 2ty+2 at x = 0 (nullptr: outside the image). Reading one float before
  // x = 0 and one after x = W − 1 must be safe (the values read there are masked out).
  const float* rows[4];
  float s;               // style of this channel
  int W;                 // input width
  int tx0, len;          // first tile column and number of tiles (len ≤ 128)
};

// Winograd output transform Y = Aᵀ·m·A of one output channel over a run of tiles, epilogue
// applied, written to output rows 2ty and 2ty+1 from x = 2·tx0.
struct WinoOutArgs {
  float* out0;
  float* out1;
  const float* m;        // plane ξ = 0 of the GEMM result at the run's first tile
  size_t xi_stride;
  int len;
  EpilogueArgs e;        // e.noise unused; see noise0 / noise1
  const float* noise0;   // noise of rows 2ty / 2ty+1 from x = 2·tx0, or nullptr
  const float* noise1;
};

// Nearest ×2 upsampling + 3×3 conv (ProGAN) as four polyphase 2×2 convolutions on the low-
// resolution grid, each by Winograd F(2×2, 2×2) (9 products per 2×2 outputs instead of 16):
// wino_up_in takes the same 4×4 input patches as wino_in (WinoInArgs) and writes 36 planes
// ξ = phase·9 + 3α + β (phase = 2·py + px); the GEMMs use U[ξ] = G·k_phase·Gᵀ, G = [1 0; 1 1;
// 0 1], k_phase the 2×2 sums of the 3×3 kernel taps that fall on the same input pixel.
// wino_up_out turns a run of tiles back into output rows 4·ty … 4·ty+3 from column 4·tx0.
struct WinoUpOutArgs {
  float* out[4];         // output rows 4·ty + r at column 4·tx0
  const float* m;        // plane ξ = 0 of the GEMM result at the run's first tile
  size_t xi_stride;
  int len;               // tiles
  EpilogueArgs e;        // no noise (e.noise ignored)
};

// The sub-pixel up-conv's output transform (cpu_upconv.cc upconv_sub) for one tile row and output
// channel: from the GEMM rows the four phases read (EE: planes 0…8; EO: planes 1, 2, 4, 5, 7, 8;
// OE: planes 3 … 8; OO: planes 4, 5, 7, 8; each at the run's first tile), the four T rows
// 4·ty + r at T[r][4·tx … 4·tx + 3], tx < n.
struct SubOutArgs {
  const float* ee[9];
  const float* eo[6];
  const float* oe[6];
  const float* oo[4];
  float* T[4];
  int n;
};

// Packed GEMM weights ("A"): `panels` panels of MR rows × K, stored K-blocked: for each block of
// kcb rows of K (the last may be shorter), every panel's slice of that block in panel order,
// [block][panel][k][MR]. A GEMM step over one K block then reads its panels front to back (in a
// GEMM microbenchmark with 16 MB of weights streamed from L3, 13 % faster than [panel][K][MR],
// whose panels lie K·MR floats apart; end to end no change beyond this machine's noise,
// bench/RESULTS.md). A GEMM step must stay inside one K block.
struct PanelLayout {
  int MR, panels, K, kcb;
  // Element (row i of panel p, k): at(p, k) + i.
  size_t at(int p, int k) const {
    const int k0 = k / kcb * kcb;
    return (size_t(k0) * panels + size_t(p) * std::min(kcb, K - k0) + size_t(k - k0)) * MR;
  }
  // Floats between consecutive panels within the block that starts at k0.
  size_t stride(int k0) const { return size_t(std::min(kcb, K - k0)) * MR; }
  size_t size() const { return size_t(panels) * K * MR; }
};

struct KernelSet {
  const char* name;
  int MR, NR;  // GEMM register tile: MR rows (weights) × NR columns (pixels)

  // C[MR×NR] (+)= Σ_k A[k][0..MR) ⊗ B[k][0..NR); A, B packed panels, C row-major (ldc).
  void (*gemm)(int kc, const float* A, const float* B, float* C, size_t ldc, int accumulate);
  // Small-N variant (few pixels, e.g. the 4² and 8² layers): p ≤ small_panels consecutive A
  // panels (stride `astride` floats) at once against an NR_small-wide B panel:
  // C[p·MR × NR_small] (+)= …; gemm_small[p] for p = 1 … small_panels.
  int NR_small, small_panels;
  void (*gemm_small[4])(int kc, const float* A, size_t astride, const float* B, float* C, size_t ldc, int accumulate);
  // im2col / 1×1 packing of the scaled input (x · s[c]) into NR-wide panels.
  void (*pack_b)(const PackBArgs& a);
  // dst[i] = act(src[i]·d + noise[i]·strength + bias), clamped.
  void (*epilogue)(float* dst, const float* src, int n, const EpilogueArgs& e);
  // Up-conv, horizontal pass: from the three kernel-column rows Y0, Y1, Y2 (one input row, one
  // kernel row ky) to the two output-column phases Z0 (even x) and Z1 (odd x).
  void (*upconv_h)(const float* Y0, const float* Y1, const float* Y2, float* Z0, float* Z1, int W);
  // Up-conv, vertical pass + interleave + epilogue: one output row (2W wide) of one channel.
  // zm, zc, zp: [3 ky][2 phase][W] blocks of input rows m−1, m, m+1 (zeros outside).
  void (*upconv_v)(float* dst, const float* zm, const float* zc, const float* zp, int W, int phase,
                   const EpilogueArgs& e);
  // ToRGB on one row: out[k][x] (+)= clamp(Σ_c w[k][c]·act[c][x] + bias[k]) (added to what is
  // there when accumulate), k < nk, x < W; act rows at act + c·cstride; out rows at out + k·ostride.
  void (*torgb_row)(float* out, size_t ostride, const float* act, size_t cstride, int C, int W,
                    const float* w, const float* bias, int nk, float clamp, int accumulate);
  float (*dot)(const float* a, const float* b, int n);
  void (*wino_in)(const WinoInArgs& a);
  void (*wino_out)(const WinoOutArgs& a);
  // Orders this thread's non-temporal stores before later stores (call at the end of a task).
  void (*store_fence)();
  // Pixel norm (ProGAN) of n consecutive pixels: x[c·cstride + p] ← x[c·cstride + p] · r[p],
  // r[p] = 1 / sqrt(Σ_c x[c·cstride + p]² / C + eps), for p < n (the sum in channel order).
  void (*pixel_norm)(float* x, size_t cstride, int C, int n, float eps);
  void (*wino_up_in)(const WinoInArgs& a);
  void (*wino_up_out)(const WinoUpOutArgs& a);
  // StyleGAN2's up-conv as sub-pixel phases (cpu_upconv.cc): the 3×3 input patch of each tile
  // (input rows 2ty−1 … 2ty+1 = a.rows[0..2], columns 2t−1 … 2t+1, zero outside [0, W)) scaled
  // by s and transformed by Bᵀ = [1 −1 0; 0 1 0; 0 −1 1] on both sides, 9 planes ξ = 3α + β.
  // Tiles may reach one past the image (t = W/2: columns W−1 … W+1).
  void (*sub_in)(const WinoInArgs& a);
  // The [1,3,3,1]/4 FIR of a row: out[q] = .25·(t[q−1] + t[q+2]) + .75·(t[q] + t[q+1]), q < n
  // (t readable at [−1, n + 2)).
  void (*fir_h)(float* out, const float* t, int n);
  void (*sub_out)(const SubOutArgs& a);
  // The same FIR across four rows, then the epilogue: dst[q] = epi(.25·(r0 + r3) + .75·(r1 + r2)).
  void (*fir_v)(float* dst, const float* r0, const float* r1, const float* r2, const float* r3, int n,
                const EpilogueArgs& e);
};

// Available variants, best first (always ends with the scalar one).
int kernel_sets(const KernelSet** out, int max);
// The best variant for this CPU; FACEGAN_CPU_ISA=scalar|avx2|avx512 forces one (when usable).
const KernelSet& best_kernel_set();
// Looks up a variant by name among those usable here; nullptr when not.
const KernelSet* find_kernel_set(const char* name);

// The opt-in bf16 GEMM on AMX tiles (gemm_amx.cc; x86-64 only). amx_bf16_unusable(): nullptr when
// this CPU and OS can run it (cpuid AMX-BF16, AMX-TILE, AVX512-BF16, the tile state granted by
// arch_prctl, asked once), else the reason.
const char* amx_bf16_unusable();
// bf16 of a float, round to nearest even (the conversion the engine applies to both operands).
uint16_t float_to_bf16(float f);
// MR-row fp32 panels (laid out as `lay`) to bf16 rows out[row][kpad]
// (kpad ≥ K, a multiple of 32), zero past K and in 16 extra rows after panels·MR (a tile may read them).
void amx_pack_a(const float* A, const PanelLayout& lay, int kpad, uint16_t* out);
// C[rows × npan·nr] (+)= A[rows][0..kc) (bf16 rows of stride kpad, at the K block's first column)
// × B (fp32 panels [npan][kc][nr] as pack_b writes them, nr a multiple of 16), accumulated in fp32.
// bbuf: npan · nr · round_up(kc, 32) bf16 of scratch. Only where amx_bf16_unusable() is nullptr.
void amx_gemm(const uint16_t* A, int kpad, int rows, const float* Bp, int nr, int npan, int kc, float* C, size_t ldc,
              int accumulate, uint16_t* bbuf);

// Per-variant tables (defined in kernels_*.cc); the x86 ones are compiled on x86-64 only.
const KernelSet* kernels_scalar();
#if defined(__x86_64__) || defined(_M_X64)
const KernelSet* kernels_avx2();
const KernelSet* kernels_avx512();
#endif

}  // namespace cpu
}  // namespace facegan
