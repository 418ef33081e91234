// Modulated 3x3 convolution as an implicit GEMM, for both conv kinds of a synthesis block:
//   up = 1: C[m][o] = sum_k A[m][k] B[k][o], A = im2col(x * s) of the output grid, B = W (fixed,
//           packed once at load and shared by the whole batch);
//   up = 2: the transposed conv, stride 2, as its four sub-pixel phases (grid z of one launch;
//           4, 2, 2 and 1 taps: only the real multiply-adds, indexing.cuh: conv_phase_geom) into
//           t, (2H+1)^2, then the [1,3,3,1]^2 FIR as a separate memory-bound pass (upfir_kernel).
// The input channels are scaled by the sample's style while A is loaded; the epilogue applies
// x colscale (16-bit weight scaling), x d[b, o] (demodulation), then (up 1; for up 2 after the
// FIR) + noise * strength, + bias, lrelu * sqrt(2), clamp, and stores NHWC. Optionally (ConvArgs::rgb,
// conv_rgb_fits: up 1, every output channel in the block's column tile) the epilogue also runs the
// layer's toRGB on the values it stores (torgb.cuh), so the separate ToRGB pass and its re-read of
// the activation are skipped.
//
// Paths: FP32 FFMA (64x64 tiles, 4x4 per thread) and FP16 / BF16 tensor cores (mma.sync
// m16n8k16 with fp32 accumulation, ldmatrix from padded shared tiles; two tile shapes: 128x128
// and 128x32 for narrow layers). For the 16-bit paths the backend pre-scales as the official
// code does: the stored weights are divided by their column's max |w| (colscale), the styles by
// their max |s| per sample and layer (sinv; d carries the factor back), so no fp16 operand can
// overflow.
#include "conv_epilogue.cuh"
#include "torgb.cuh"

namespace facegan {
namespace cuda {

ConvTile choose_conv_tile(ActType t, int N) {
  if (t == ActType::F32) return ConvTile::Ffma;
  return N <= 64 ? ConvTile::MmaNarrow : ConvTile::MmaWide;
}

int conv_tile_bk(ConvTile tile) { return tile == ConvTile::Ffma ? FfmaCfg::BK : MmaCfgWide::BK; }

int conv_tile_kpad(ConvTile tile, const ConvGeom& g) { return conv_packed_k(g, conv_tile_bk(tile)); }

int conv_tile_npad(ConvTile tile, int N) {
  switch (tile) {
    case ConvTile::Ffma: return round_up(N, FfmaCfg::BN);
    case ConvTile::MmaWide: return round_up(N, MmaCfgWide::BN);
    case ConvTile::MmaNarrow: return round_up(N, MmaCfgNarrow::BN);
  }
  return N;
}

int conv_tile_bm(ConvTile tile) {
  return tile == ConvTile::Ffma ? FfmaCfg::BM : tile == ConvTile::MmaWide ? MmaCfgWide::BM : MmaCfgNarrow::BM;
}

static int conv_tile_bn(ConvTile tile) {
  return tile == ConvTile::Ffma ? FfmaCfg::BN : tile == ConvTile::MmaWide ? MmaCfgWide::BN : MmaCfgNarrow::BN;
}

bool conv_rgb_fits(ConvTile tile, const ConvGeom& g, int Cimg) {
  return g.up == 1 && g.src_shift == 0 && g.Cout <= conv_tile_bn(tile) && Cimg >= 1 && Cimg <= kMaxImgChannels;
}

namespace {

// The fused toRGB's styles of sample b (ConvArgs::rgb).
__device__ __forceinline__ const float* rgb_styles(const ConvArgs& a, int b) {
  return a.rgb.styles + (int64_t)b * a.rgb.style_stride + a.rgb.style_off;
}

// The launch's phase (blockIdx.z; 0 for up 1): its packed weights and its column scales.
__device__ __forceinline__ int64_t phase_w_offset(const ConvArgs& a, int BK) {
  return conv_phase_w_offset(a.g, blockIdx.z, BK, a.Npad);
}
__device__ __forceinline__ const float* phase_colscale(const ConvArgs& a) {
  return a.colscale ? a.colscale + (int64_t)blockIdx.z * a.Npad : nullptr;
}

// ---------------------------------------------------------------------------------------------
// FP32 FFMA path.

__global__ void __launch_bounds__(FfmaCfg::THREADS, FfmaCfg::MIN_BLOCKS) modconv_ffma_kernel(const ConvArgs a) {
  constexpr int BM = FfmaCfg::BM, BN = FfmaCfg::BN, BK = FfmaCfg::BK;
  constexpr int TM = FfmaCfg::TM, TN = FfmaCfg::TN;
  __shared__ __align__(16) float As[2][BK][BM + FfmaCfg::APAD];
  __shared__ __align__(16) float Bs[2][BK][BN];

  const ConvGeom g = conv_phase_geom(a.g, blockIdx.z);
  const int tid = threadIdx.x;
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  if (m0 >= M) return;  // the grid covers the largest phase (whole block: no barrier is skipped)
  const float* __restrict__ x = static_cast<const float*>(a.x);
  const float* __restrict__ wp = static_cast<const float*>(a.w) + phase_w_offset(a, BK);
  const bool vec4 = (g.Cin & 3) == 0;

  int arow, akq;
  ffma_a_coord(tid, &arow, &akq);
  const bool aok = m0 + arow < M;
  const Pixel ap = gemm_row_pixel(g, aok ? m0 + arow : 0);
  const float* srow = a.styles + (int64_t)ap.b * a.style_stride + a.style_off;
  int bk, bnq;
  ffma_b_coord(tid, &bk, &bnq);

  float areg[4];
  float4 breg;
  KWalk aw = kwalk_start(g, akq);  // this thread's k = k0 + akq, walked by BK per k-tile
  auto load = [&](int k0) {
    const int k = k0 + akq;
#pragma unroll
    for (int e = 0; e < 4; ++e) areg[e] = 0.0f;
    if (aok) {
      if (vec4) {
        if (k < K) {
          const Tap t = kwalk_tap(g, aw);
          const int64_t off = gemm_a_offset_tap(g, ap, t, a.x_bstride);
          if (off >= 0) {
            const float4 v = *reinterpret_cast<const float4*>(x + off);
            areg[0] = v.x * __ldg(srow + t.c);
            areg[1] = v.y * __ldg(srow + t.c + 1);
            areg[2] = v.z * __ldg(srow + t.c + 2);
            areg[3] = v.w * __ldg(srow + t.c + 3);
          }
        }
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (k + e < K) {
            const Tap t = gemm_k_tap(g, k + e);
            const int64_t off = gemm_a_offset_tap(g, ap, t, a.x_bstride);
            if (off >= 0) areg[e] = x[off] * __ldg(srow + t.c);
          }
        }
      }
    }
    breg = *reinterpret_cast<const float4*>(wp + (int64_t)(k0 + bk) * a.Npad + n0 + bnq);
    if (vec4) kwalk_advance(g, &aw, BK);
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int e = 0; e < 4; ++e) As[buf][akq + e][arow] = areg[e];
    *reinterpret_cast<float4*>(&Bs[buf][bk][bnq]) = breg;
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  int r0, c0;
  ffma_thread_origin(tid, &r0, &c0);

  const int nk = ceil_div(K, BK);
  load(0);
  store(0);
  __syncthreads();
  for (int kt = 0; kt < nk; ++kt) {
    const int cur = kt & 1;
    if (kt + 1 < nk) load((kt + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&As[cur][kk][r0]);
      const float4 bv = *reinterpret_cast<const float4*>(&Bs[cur][kk][c0]);
      const float ar[4] = {av.x, av.y, av.z, av.w};
      const float br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    if (kt + 1 < nk) store(cur ^ 1);
    __syncthreads();
  }

  // Fused toRGB (n0 == 0, N <= BN): a row's columns lie in the 16 threads tid & 15 of one half
  // warp; each sums its 4 columns, then a butterfly over the half warp gives every thread the row's sums.
  const bool rgb = a.rgb.img != nullptr;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + r0 + i;
    const bool ok = m < M;
    const Pixel p = gemm_row_pixel(g, ok ? m : m0);
    float part[kMaxImgChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + c0 + j;
      if (ok && col < N) {
        const float q = conv_store<float>(a, g, nullptr, p, col, acc[i][j]);
        if (rgb) torgb_accum(a.rgb, a.rgb.weight, q, __ldg(rgb_styles(a, p.b) + col), col, part);
      }
    }
    if (rgb) {
#pragma unroll
      for (int c = 0; c < kMaxImgChannels; ++c)
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) part[c] += __shfl_xor_sync(0xffffffffu, part[c], o);
      if (ok && (tid & 15) == 0) torgb_store(a.rgb, p.b, p.y, p.x, part);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// FP16 / BF16 tensor-core path.

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void* smem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#else
  (void)smem;
  r[0] = r[1] = r[2] = r[3] = 0u;
#endif
}

// D = A * B + D for one m16n8k16 tile (f32 accumulators).
template <typename T>
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);

template <>
__device__ __forceinline__ void mma_16816<__half>(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  // Turing: two m16n8k8 (k 0-7: a0, a1, b0; k 8-15: a2, a3, b1).
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[2]), "r"(a[3]), "r"(b[1]));
#else
  (void)d; (void)a; (void)b;
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDA_ARCH__)
  // bf16 tensor cores need sm_80; the backend never launches this path on older GPUs.
  (void)d; (void)a; (void)b;
  __trap();
#else
  (void)d; (void)a; (void)b;
#endif
}

template <typename T, class Cfg>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS) modconv_mma_kernel(const ConvArgs a) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, LDS = Cfg::LDS;
  constexpr int MI = Cfg::MI, NI = Cfg::NI, AV = Cfg::A_VECS, BV = Cfg::B_VECS;
  // Shared k-tiles: double-buffered, except on sm_75 when two buffers would not let two blocks share
  // Turing's 64 KB (the 128x128 tile: 2 x 40 KB); there one buffer (20 KB), refilled after a barrier.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  constexpr int STAGES = 2 * (BM + BN) * LDS * (int)sizeof(T) > 32 * 1024 ? 1 : 2;
#else
  constexpr int STAGES = 2;
#endif
  __shared__ __align__(16) T As[STAGES][BM][LDS];
  __shared__ __align__(16) T Bs[STAGES][BN][LDS];

  const ConvGeom g = conv_phase_geom(a.g, blockIdx.z);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  if (m0 >= M) return;  // the grid covers the largest phase (whole block: no barrier is skipped)
  const T* __restrict__ x = static_cast<const T*>(a.x);
  const int Kpad = round_up(K, BK);  // this phase's packed k extent
  const T* __restrict__ wp = static_cast<const T*>(a.w) + phase_w_offset(a, BK) + (int64_t)n0 * Kpad;
  const bool vec8 = (g.Cin & 7) == 0;

  // Per loader vector: its tile row and k offset are fixed for the whole K loop.
  int arow[AV], akc[AV];
  Pixel ap[AV];
  bool aok[AV];
  const float* srow[AV];
  float ascale[AV];
#pragma unroll
  for (int i = 0; i < AV; ++i) {
    tile_vec_coord(tid + i * Cfg::THREADS, &arow[i], &akc[i]);
    aok[i] = m0 + arow[i] < M;
    ap[i] = gemm_row_pixel(g, aok[i] ? m0 + arow[i] : 0);
    srow[i] = a.styles + (int64_t)ap[i].b * a.style_stride + a.style_off;
    ascale[i] = a.sinv ? a.sinv[(int64_t)ap[i].b * a.sinv_stride + a.sinv_off] : 1.0f;
  }
  int brow[BV], bkc[BV];
#pragma unroll
  for (int i = 0; i < BV; ++i) tile_vec_coord(tid + i * Cfg::THREADS, &brow[i], &bkc[i]);

  // load() issues every global load of the next k-tile first (raw activations and weights into
  // registers, no dependent arithmetic); store() applies the style scale (and converts) while
  // writing shared memory, after the current tile's MMAs have been issued.
  uint4 areg[AV], breg[BV];
  int acol[AV];  // channel of the raw A vector (vector path), -1: zero (padding or K tail)
  KWalk aw[AV];
#pragma unroll
  for (int i = 0; i < AV; ++i) aw[i] = kwalk_start(g, akc[i]);
  auto load = [&](int k0) {
#pragma unroll
    for (int i = 0; i < AV; ++i) {
      uint4 out = make_uint4(0u, 0u, 0u, 0u);
      acol[i] = -1;
      const int k = k0 + akc[i];
      if (aok[i]) {
        if (vec8) {
          if (k < K) {
            const Tap t = kwalk_tap(g, aw[i]);
            const int64_t off = gemm_a_offset_tap(g, ap[i], t, a.x_bstride);
            if (off >= 0) {
              out = *reinterpret_cast<const uint4*>(x + off);
              acol[i] = t.c;
            }
          }
          kwalk_advance(g, &aw[i], BK);
        } else {
          // Cin % 8 != 0 (small first layers only): per-element taps, scaled here.
          T* ov = reinterpret_cast<T*>(&out);
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            if (k + e < K) {
              const Tap t = gemm_k_tap(g, k + e);
              const int64_t off = gemm_a_offset_tap(g, ap[i], t, a.x_bstride);
              if (off >= 0)
                ov[e] = Act<T>::from_float(Act<T>::to_float(x[off]) * (__ldg(srow[i] + t.c) * ascale[i]));
            }
          }
        }
      }
      areg[i] = out;
    }
#pragma unroll
    for (int i = 0; i < BV; ++i)
      breg[i] = *reinterpret_cast<const uint4*>(wp + brow[i] * Kpad + k0 + bkc[i]);
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int i = 0; i < AV; ++i) {
      uint4 v = areg[i];
      if (vec8 && acol[i] >= 0) {  // x * s * sinv for the 8 channels of this vector
        T* ov = reinterpret_cast<T*>(&v);
        const float* sp = srow[i] + acol[i];
#pragma unroll
        for (int e = 0; e < 8; ++e) ov[e] = Act<T>::from_float(Act<T>::to_float(ov[e]) * (__ldg(sp + e) * ascale[i]));
      }
      *reinterpret_cast<uint4*>(&As[buf][arow[i]][akc[i]]) = v;
    }
#pragma unroll
    for (int i = 0; i < BV; ++i) *reinterpret_cast<uint4*>(&Bs[buf][brow[i]][bkc[i]]) = breg[i];
  };

  int wm0, wn0;
  warp_tile_origin(warp, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &wm0, &wn0);
  int la_r, la_c, lb_n, lb_k;
  ldsm_a_addr(lane, &la_r, &la_c);
  ldsm_b_addr(lane, &lb_n, &lb_k);

  float acc[MI][NI][4];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const int nk = ceil_div(K, BK);
  load(0);
  store(0);
  __syncthreads();
  for (int kt = 0; kt < nk; ++kt) {
    const int cur = STAGES == 2 ? kt & 1 : 0;
    if (kt + 1 < nk) load((kt + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) ldsm_x4(af[mi], &As[cur][wm0 + mi * 16 + la_r][kk + la_c]);
#pragma unroll
      for (int p = 0; p < NI / 2; ++p) {
        uint32_t r[4];
        ldsm_x4(r, &Bs[cur][wn0 + p * 16 + lb_n][kk + lb_k]);
        bf[2 * p][0] = r[0];
        bf[2 * p][1] = r[1];
        bf[2 * p + 1][0] = r[2];
        bf[2 * p + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma_16816<T>(acc[mi][ni], af[mi], bf[ni]);
    }
    if (STAGES == 1) __syncthreads();  // every warp has read the tile before it is overwritten
    if (kt + 1 < nk) store(STAGES == 2 ? cur ^ 1 : 0);
    __syncthreads();
  }

  // Epilogue: element e of acc[mi][ni] is C[row][col] of mma_c_elem; rows e < 2 and e >= 2.
  // Fused toRGB (n0 == 0, N <= BN): each thread sums its columns of a row, the quad's 4 lanes are
  // added by shuffles, the WARPS_N warps' sums of the row meet in shared memory (the A tile is
  // free after the K loop's last barrier), and one thread per row finishes the pixel.
  const bool rgb = a.rgb.img != nullptr;
  constexpr int RED = BM * Cfg::WARPS_N * kMaxImgChannels;  // [BM][WARPS_N][kMaxImgChannels] floats
  static_assert(RED * sizeof(float) <= sizeof(As), "fused toRGB sums must fit the A tile");
  float* red = reinterpret_cast<float*>(&As[0][0][0]);
  const int wn = warp % Cfg::WARPS_N;
  const float* colscale = phase_colscale(a);
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int r, c;
      mma_c_elem(lane, 2 * h, &r, &c);
      const int m = m0 + wm0 + mi * 16 + r;
      const bool ok = m < M;
      const Pixel p = gemm_row_pixel(g, ok ? m : m0);
      float part[kMaxImgChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (ok) {
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
          // Elements 2h and 2h + 1 are columns c and c + 1 (c even) of this row.
          const int j = n0 + wn0 + ni * 8 + c;
          float q[2];
          conv_store_pair<T>(a, g, colscale, p, j, N, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1], q);
          if (rgb) {
            const float* sr = rgb_styles(a, p.b);
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (j + e < N) torgb_accum(a.rgb, a.rgb.weight, q[e], __ldg(sr + j + e), j + e, part);
          }
        }
      }
      if (rgb) {
#pragma unroll
        for (int cc = 0; cc < kMaxImgChannels; ++cc) {
          part[cc] += __shfl_xor_sync(0xffffffffu, part[cc], 1);
          part[cc] += __shfl_xor_sync(0xffffffffu, part[cc], 2);
        }
        if ((lane & 3) == 0)
#pragma unroll
          for (int cc = 0; cc < kMaxImgChannels; ++cc)
            red[((wm0 + mi * 16 + r) * Cfg::WARPS_N + wn) * kMaxImgChannels + cc] = part[cc];
      }
    }
  }
  if (rgb) {
    __syncthreads();
    for (int row = tid; row < BM; row += Cfg::THREADS) {
      const int m = m0 + row;
      if (m >= M) break;
      float sum[kMaxImgChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int w = 0; w < Cfg::WARPS_N; ++w)
#pragma unroll
        for (int cc = 0; cc < kMaxImgChannels; ++cc) sum[cc] += red[(row * Cfg::WARPS_N + w) * kMaxImgChannels + cc];
      const Pixel p = gemm_row_pixel(g, m);
      torgb_store(a.rgb, p.b, p.y, p.x, sum);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The up-conv's FIR pass over t ((2H+1)^2, indexing.cuh: upfir_tap), then + noise * strength,
// + bias, activation and clamp into y ((2H)^2, NHWC). Memory-bound: threads x run along one
// output row (pixel, channel pair or channel), blocks y over the rows of the batch.
constexpr int kUpfirThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kUpfirThreads) upfir_kernel(const ConvArgs a) {
  const ConvGeom& g = a.g;
  const int TH = geom_OH(g), TW = geom_OW(g), OH = conv_out_h(g), OW = conv_out_w(g), C = g.Cout;
  const int cw = (C & 1) ? 1 : 2;  // channels per thread
  const int cq = C / cw;
  const int i = blockIdx.x * kUpfirThreads + threadIdx.x;
  if (i >= OW * cq) return;
  const int X = i / cq, o = (i - X * cq) * cw;
  const T* __restrict__ t = static_cast<const T*>(a.t);
  for (int64_t row = blockIdx.y; row < (int64_t)g.batch * OH; row += gridDim.y) {
    const int b = (int)(row / OH), Y = (int)(row - (int64_t)b * OH);
    const T* tb = t + (int64_t)b * TH * TW * C + o;
    float v[2] = {0.0f, 0.0f};
#pragma unroll
    for (int ay = 0; ay < 4; ++ay) {
      const int ty = Y - 1 + ay;
      if (ty < 0 || ty >= TH) continue;
      float h[2] = {0.0f, 0.0f};
#pragma unroll
      for (int ax = 0; ax < 4; ++ax) {
        const int tx = X - 1 + ax;
        if (tx < 0 || tx >= TW) continue;
        const T* src = tb + ((int64_t)ty * TW + tx) * C;
        h[0] += upfir_tap(ax) * Act<T>::to_float(src[0]);
        if (cw == 2) h[1] += upfir_tap(ax) * Act<T>::to_float(src[1]);
      }
      v[0] += upfir_tap(ay) * h[0];
      v[1] += upfir_tap(ay) * h[1];
    }
    const float nz = a.noise ? a.noise[(int64_t)b * a.noise_bstride + Y * OW + X] * a.noise_strength : 0.0f;
    T* dst = static_cast<T*>(a.y) + ((int64_t)row * OW + X) * C + o;
    if (cw == 2) store_pair<T>(dst, conv_finish(a, o, v[0] + nz), conv_finish(a, o + 1, v[1] + nz));
    else dst[0] = Act<T>::from_float(conv_finish(a, o, v[0] + nz));
  }
}

template <typename T>
Status launch_upfir(const ConvArgs& a, cudaStream_t stream) {
  const int cq = (a.g.Cout & 1) ? a.g.Cout : a.g.Cout / 2;
  const int64_t rows = (int64_t)a.g.batch * conv_out_h(a.g);
  const dim3 grid(ceil_div(conv_out_w(a.g) * cq, kUpfirThreads), (unsigned)std::min<int64_t>(rows, 65535));
  upfir_kernel<T><<<grid, kUpfirThreads, 0, stream>>>(a);
  FG_CUDA_CHECK_LAUNCH("upfir_kernel");
  return Status::Ok();
}

template <typename T, class Cfg>
Status launch_mma(const ConvArgs& a, const dim3& grid, cudaStream_t stream) {
  modconv_mma_kernel<T, Cfg><<<grid, Cfg::THREADS, 0, stream>>>(a);
  FG_CUDA_CHECK_LAUNCH("modconv_mma_kernel");
  return Status::Ok();
}

Status launch_gemm(const ConvArgs& a, ActType t, ConvTile tile, cudaStream_t stream) {
  const int BM = conv_tile_bm(tile), BN = conv_tile_bn(tile);
  // Phase 0 has the most rows; blocks past a smaller phase's rows return at once.
  const dim3 grid(ceil_div(geom_M(conv_phase_geom(a.g, 0)), BM), a.Npad / BN, conv_phases(a.g));
  switch (tile) {
    case ConvTile::Ffma:
      modconv_ffma_kernel<<<grid, FfmaCfg::THREADS, 0, stream>>>(a);
      FG_CUDA_CHECK_LAUNCH("modconv_ffma_kernel");
      return Status::Ok();
    case ConvTile::MmaWide:
      return t == ActType::F16 ? launch_mma<__half, MmaCfgWide>(a, grid, stream)
                               : launch_mma<__nv_bfloat16, MmaCfgWide>(a, grid, stream);
    case ConvTile::MmaNarrow:
      return t == ActType::F16 ? launch_mma<__half, MmaCfgNarrow>(a, grid, stream)
                               : launch_mma<__nv_bfloat16, MmaCfgNarrow>(a, grid, stream);
  }
  return Status::Error("modconv: unknown tile configuration");
}

}  // namespace

Status launch_modconv(const ConvArgs& a, ActType t, ConvTile tile, cudaStream_t stream) {
  const int M = geom_M(a.g);
  if (M <= 0) return Status::Ok();
  if (a.Kpad != conv_tile_kpad(tile, a.g) || a.Npad != conv_tile_npad(tile, geom_N(a.g)))
    return Status::Error("modconv: packed weights do not match the tile configuration");
  if ((tile == ConvTile::Ffma) != (t == ActType::F32))
    return Status::Error("modconv: tile configuration does not match the precision");
  if (a.g.ks != 3 || a.g.phase != 0) return Status::Error("modconv: the kernels take a 3x3 layer geometry");
  if (a.g.up == 2 && (a.t == nullptr || a.g.src_shift != 0))
    return Status::Error("modconv: an up-conv needs its (2H+1)^2 buffer t and a plain input");
  if (a.Npad / conv_tile_bn(tile) > 65535) return Status::Error("modconv: too many output channels");
  if (a.rgb.img) {
    const ToRgbArgs& r = a.rgb;
    if (!conv_rgb_fits(tile, a.g, r.Cimg) || r.Cin != a.g.Cout || r.n != a.g.batch || r.R != a.g.H ||
        a.g.W != a.g.H || !r.styles || !r.weight || !r.bias)
      return Status::Error(
          "modconv: the fused toRGB needs a plain 3x3 layer (up 1) with every output channel in one column tile, "
          "1 to 4 image channels, Cin = Cout and R = H = W");
  }
  FG_RETURN_IF_ERROR(launch_gemm(a, t, tile, stream));
  return a.g.up == 1 ? Status::Ok() : launch_upfir(a, t, stream);
}

Status launch_upfir(const ConvArgs& a, ActType t, cudaStream_t stream) {
  switch (t) {
    case ActType::F32: return launch_upfir<float>(a, stream);
    case ActType::F16: return launch_upfir<__half>(a, stream);
    case ActType::BF16: return launch_upfir<__nv_bfloat16>(a, stream);
  }
  return Status::Error("modconv: unknown precision");
}

}  // namespace cuda
}  // namespace facegan
