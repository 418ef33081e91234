// The Hopper (sm_90a) path of the modulated 3x3 conv and of the up-conv's sub-pixel phases: the
// same implicit GEMMs as modconv.cu (rows: pixels of the input grid, or of a phase's grid; k =
// tap*Cin + c; columns: output channels; the same packed 16-bit weights B[Npad][Kpad] and the same
// epilogue), computed with wgmma.mma_async (m64n128k16 / m64n64k16, f16 / bf16 in, f32 accumulate)
// from operands staged in shared memory by TMA. An up-conv's four phases are grid z of one launch
// (each with its own taps, B tensor map at conv_phase_w_offset and column scales, written to t);
// modconv.cu's FIR pass (launch_upfir) follows.
//
// Tiles: a block of 256 threads (two warpgroups) computes 128 rows x BN columns (BN 128, or 64 for
// layers of at most 64 output channels). Its 128 rows are a rectangle of one sample's row grid,
// 8 x 16 (or, for an up-conv phase's extra last row / column, 1 x 128 / 128 x 1: Sm90Tile), not
// 128 consecutive GEMM rows, so that the A tile of one tap (dy, dx) and one 64-channel block is a
// single *tiled* TMA box of the NHWC activation tensor, {64 channels, 16 x, 8 y, 1 sample} at
// (c0, x0 + dx, y0 + dy, b): the tensor-map bounds zero-fill the conv padding and the tile's edges.
// (im2col-mode TMA is not used: the tiled box already is the im2col tile of one tap.) B is one box
// {64 k, BN n} of the packed weights. Both use the 128-byte swizzle, rows of 64 16-bit elements,
// which wgmma reads through K-major descriptors (SBO 1024 bytes). K runs over the taps (9, or the
// phase's (2 - py) x (2 - px)) x Cin / 64 channel blocks.
//
// Pipeline: S stages of (A 16 KB + B 16 or 8 KB) (S = 3 for BN 128, 4 for BN 64: about 97 KB of
// shared memory either way, two blocks per SM), one "full" mbarrier each (arrive.expect_tx by the
// issuing thread + the two TMA transactions). At k-tile kt every thread waits for its stage,
// scales its A chunks in place by the sample's style (x * s * sinv, the same rounding as the
// mma.sync path) and fences them to the async proxy; after the block barrier, thread 0 issues the
// TMA loads of k-tile kt + P (P = S - 2: 1 or 2 k-tiles ahead) into the stage of k-tile kt + P - S
// = kt - 2, whose wgmma groups both warpgroups have waited for (wgmma.wait_group 1 at kt - 1)
// before reaching the barrier (Sm90Cfg::prefetch). Each warpgroup then issues 4 wgmma (k16 steps)
// on its 64 rows, commits them and waits for the previous group.
//
// Used for 16-bit 3x3 layers and up-convs with Cin % 64 == 0, more than 32 output channels, a
// per-sample input and an input grid of at least 8 x 16, on a device of compute capability 9.0
// with this file's sm_90a cubin; everything else (and every other GPU) runs modconv.cu.
// The device code exists only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); other targets compile the
// kernel as empty.
#include <cudaTypedefs.h>

#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "conv_epilogue.cuh"
#include "modconv_sm90.cuh"

namespace facegan {
namespace cuda {

namespace {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FG_SM90A_DEVICE 1
#endif

// The kernel's tensor maps: the activations in the three tile shapes (Sm90Tile), and the packed
// weights of each phase (one for up 1).
struct Sm90Maps {
  CUtensorMap a[3];
  CUtensorMap b[4];
};

// A block's 128 rows: a rectangle of the GEMM's row grid (the input grid for up 1, the phase's
// (H + 1 - py) x (W + 1 - px) grid for up 2). Shape 0, 8 x 16 tiles, covers the H x W core; an
// up-conv phase's extra row ry = H (py = 0) is covered by 1 x 128 tiles (shape 1) and its extra
// column rx = W (px = 0, rows < H) by 128 x 1 tiles (shape 2), instead of a whole row / column of
// mostly empty 8 x 16 tiles. Row r of the tile is pixel (y0 + r / tw, x0 + r % tw), tw = 1 << lw;
// the block writes the pixels with y < ylim and x < xlim.
struct Sm90Tile {
  int shape, y0, x0, lw, ylim, xlim;
};
// Tiles per sample of phase `g` (count only) or tile i of it (tile != nullptr; false past the count).
__host__ __device__ inline int sm90_tiles(const ConvGeom& g, int i, Sm90Tile* tile) {
  const int cy = ceil_div(g.H, Sm90Cfg::TILE_H), cx = ceil_div(g.W, Sm90Cfg::TILE_W);
  const bool row = g.up == 2 && geom_py(g) == 0, col = g.up == 2 && geom_px(g) == 0;
  const int nrow = row ? ceil_div(geom_RW(g), 128) : 0, ncol = col ? ceil_div(g.H, 128) : 0;
  if (!tile) return cy * cx + nrow + ncol;
  if (i < cy * cx) {
    *tile = {0, (i / cx) * Sm90Cfg::TILE_H, (i % cx) * Sm90Cfg::TILE_W, 4, g.H, g.W};
  } else if ((i -= cy * cx) < nrow) {
    *tile = {1, g.H, i * 128, 7, g.H + 1, geom_RW(g)};
  } else if ((i -= nrow) < ncol) {
    *tile = {2, i * 128, g.W, 0, g.H, g.W + 1};
  } else {
    return 0;
  }
  return 1;
}

#ifdef FG_SM90A_DEVICE
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" : : "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" : : "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.b32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  }
}
// One TMA box into shared memory, completing `bytes` of the mbarrier's transaction count.
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
      :
      : "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      :
      : "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" : : : "memory"); }
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;" : : : "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" : : : "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" : : : "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" : : "n"(N) : "memory");
}
// Keeps the compiler from moving accumulator accesses across the asynchronous wgmma.
template <int R>
__device__ __forceinline__ void fence_acc(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i]) : : "memory");
}

// K-major operand descriptor, 128-byte swizzle: rows of 128 bytes, 8-row groups 1024 bytes apart
// (SBO); the leading byte offset is unused by swizzled K-major layouts (1 by convention).
__device__ __forceinline__ uint64_t sm90_desc(uint32_t addr) {
  return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

// D[64 x N] += A[64 x 16] * B[N x 16]^T (both K-major in shared memory), N = 128 or 64.
template <typename T, int N>
struct Wgmma;
template <>
struct Wgmma<__nv_bfloat16, 128> {
  static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, uint32_t scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <>
struct Wgmma<__nv_bfloat16, 64> {
  static __device__ __forceinline__ void run(float (&d)[32], uint64_t da, uint64_t db, uint32_t scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <>
struct Wgmma<__half, 128> {
  static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, uint32_t scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
            "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
            "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
            "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
            "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <>
struct Wgmma<__half, 64> {
  static __device__ __forceinline__ void run(float (&d)[32], uint64_t da, uint64_t db, uint32_t scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
            "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
            "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
            "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
#endif  // FG_SM90A_DEVICE

template <typename T, int BN>
__global__ void __launch_bounds__(Sm90Cfg::THREADS, 2)
    modconv_sm90_kernel(const __grid_constant__ Sm90Maps maps, const ConvArgs a) {
#ifdef FG_SM90A_DEVICE
  constexpr int S = Sm90Cfg::stages(BN), P = Sm90Cfg::prefetch(BN), BK = Sm90Cfg::BK;
  static_assert(P >= 1 && P + Sm90Cfg::WGMMA_PENDING <= S - 1, "a TMA load would overwrite a stage a wgmma still reads");
  constexpr uint32_t A_BYTES = Sm90Cfg::A_BYTES, B_BYTES = Sm90Cfg::b_bytes(BN), STAGE = A_BYTES + B_BYTES;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Stages at a 1024-byte aligned shared address (the 128-byte swizzle repeats every 1024 bytes,
  // and the descriptors assume base offset 0); the mbarriers after them.
  const uint32_t raw = smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* const smem = smem_raw + (base - raw);
  const uint32_t bars = base + S * STAGE;

  // The GEMM of this launch: the layer (up 1) or sub-pixel phase blockIdx.z of the up-conv, whose
  // rows are its (H + 1 - py) x (W + 1 - px) grid; the grid of blocks covers phase 0's (the largest).
  const ConvGeom g = conv_phase_geom(a.g, blockIdx.z);
  const int tid = threadIdx.x, wg = tid >> 7;
  const int N = geom_N(g);
  const int per_sample = sm90_tiles(conv_phase_geom(a.g, 0), 0, nullptr);  // phase 0 has the most
  const int b = blockIdx.x / per_sample;
  Sm90Tile tile;
  if (!sm90_tiles(g, blockIdx.x - b * per_sample, &tile)) return;  // past a smaller phase's tiles: the whole block, before any barrier
  const int x0 = tile.x0, y0 = tile.y0;
  const CUtensorMap* const tmap_a = &maps.a[tile.shape];
  const int n0 = blockIdx.y * BN;
  // Taps (ty, tx) read input pixel (y + dy, x + dx): up 1, 3 x 3 taps, d = t - 1; up 2, the phase's
  // (2 - py) x (2 - px) taps, d = -t (indexing.cuh: tap_offset). k-tile kt = tap * cblocks + cb.
  const int taps_x = geom_taps_x(g), cblocks = g.Cin / BK, nk = geom_taps_y(g) * taps_x * cblocks;
  const CUtensorMap* const tmap_b = &maps.b[blockIdx.z];
  const float* const colscale = a.colscale ? a.colscale + (int64_t)blockIdx.z * a.Npad : nullptr;

  if (tid == 0) {
    for (int s = 0; s < S; ++s) mbar_init(bars + 8u * s, 1);
    fence_mbar_init();
  }
  __syncthreads();

  // Thread 0 issues k-tile kt (tap kt / cblocks, channels (kt % cblocks) * 64 ...) into its stage.
  auto issue = [&](int kt) {
    const int s = kt % S, tap = kt / cblocks, cb = kt - tap * cblocks;
    const int tap_y = tap / taps_x, tap_x = tap - tap_y * taps_x;
    const uint32_t st = base + s * STAGE, bar = bars + 8u * s;
    mbar_expect_tx(bar, STAGE);
    tma_load_4d(st, tmap_a, cb * BK, x0 + tap_offset(g, tap_x), y0 + tap_offset(g, tap_y), b, bar);
    tma_load_2d(st + A_BYTES, tmap_b, tap * g.Cin + cb * BK, n0, bar);
  };
  if (tid == 0)
    for (int kt = 0; kt < P && kt < nk; ++kt) issue(kt);

  // The style scale: thread t always owns 16-byte chunk t % 8 of rows t / 8 + 32 i (i < 4) of the
  // A stage; through the swizzle that is logical chunk (t % 8) ^ (row % 8) = (t % 8) ^ ((t / 8) % 8),
  // i.e. channels 8 * lchunk .. + 7 of the k-tile's 64.
  const int lchunk = (tid & 7) ^ ((tid >> 3) & 7);
  const float* srow = a.styles + (int64_t)b * a.style_stride + a.style_off + lchunk * 8;
  const float sinv = a.sinv ? a.sinv[(int64_t)b * a.sinv_stride + a.sinv_off] : 1.0f;

  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

  for (int kt = 0; kt < nk; ++kt) {
    const int s = kt % S, cb = kt % cblocks;
    mbar_wait(bars + 8u * s, (uint32_t)(kt / S) & 1u);
    {
      float sc[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) sc[e] = __ldg(srow + cb * BK + e) * sinv;
      unsigned char* ast = smem + s * STAGE;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint4* p = reinterpret_cast<uint4*>(ast + (tid + 256 * i) * 16);
        uint4 v = *p;
        T* h = reinterpret_cast<T*>(&v);
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = Act<T>::from_float(Act<T>::to_float(h[e]) * sc[e]);
        *p = v;
      }
    }
    fence_proxy_async();  // the scaled A is read by wgmma (the async proxy)
    __syncthreads();
    if (tid == 0 && kt + P < nk) issue(kt + P);

    const uint32_t st = base + s * STAGE;
    wgmma_fence();
    fence_acc(acc);
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk)
      Wgmma<T, BN>::run(acc, sm90_desc(st + wg * (A_BYTES / 2) + kk * 32), sm90_desc(st + A_BYTES + kk * 32), 1u);
    wgmma_commit();
    wgmma_wait<Sm90Cfg::WGMMA_PENDING>();
    fence_acc(acc);
  }
  wgmma_wait<0>();
  fence_acc(acc);

  // Epilogue. Accumulator i of a thread (warp w of its warpgroup, lane l) is row
  // 16 w + l / 4 + 8 ((i / 2) % 2) of the warpgroup's 64, column 8 (i / 4) + 2 (l % 4) + i % 2.
  const int w = (tid >> 5) & 3, lane = tid & 31;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = wg * 64 + 16 * w + (lane >> 2) + 8 * h;  // tile row
    const int y = y0 + (r >> tile.lw), x = x0 + (r & ((1 << tile.lw) - 1));
    if (y >= tile.ylim || x >= tile.xlim) continue;
    const Pixel p{b, y, x};
#pragma unroll
    for (int q = 0; q < BN / 8; ++q) {
      const int i = 4 * q + 2 * h;
      float stored[2];  // unused: no fused toRGB here
      conv_store_pair<T>(a, g, colscale, p, n0 + 8 * q + 2 * (lane & 3), N, acc[i], acc[i + 1], stored);
    }
  }
#else
  (void)maps;
  (void)a;
#endif
}

// Blocks per column tile: phase 0's tiles (the most) per sample.
int64_t sm90_row_tiles(const ConvGeom& g) { return (int64_t)sm90_tiles(conv_phase_geom(g, 0), 0, nullptr) * g.batch; }

// cuTensorMapEncodeTiled, from the driver through the runtime (the runtime is linked statically
// and the driver API is not linked at all): looked up once.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

template <typename T, int BN>
Status launch_sm90(const ConvArgs& a, cudaStream_t stream) {
  const ConvGeom& g = a.g;
  PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (!encode) return Status::Error("modconv sm_90a: cuTensorMapEncodeTiled is not available from the driver");
  const CUtensorMapDataType dt =
      std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const cuuint32_t estr[4] = {1, 1, 1, 1};
  // A: the NHWC activations as a 4-D tensor {C, W, H, N}; one box = one tap's 8 x 16 pixels x 64
  // channels (its parts outside the input, the padding, read as zeros).
  Sm90Maps maps;
  std::memset(&maps, 0, sizeof maps);
  const cuuint64_t adims[4] = {(cuuint64_t)g.Cin, (cuuint64_t)g.W, (cuuint64_t)g.H, (cuuint64_t)g.batch};
  const cuuint64_t astr[3] = {(cuuint64_t)g.Cin * 2, (cuuint64_t)g.W * g.Cin * 2, (cuuint64_t)g.H * g.W * g.Cin * 2};
  // The three tile shapes (Sm90Tile): 16 x 8, 128 x 1 and 1 x 128 pixels (x, y); the last two for up-convs.
  const cuuint32_t aboxes[3][4] = {{Sm90Cfg::BK, Sm90Cfg::TILE_W, Sm90Cfg::TILE_H, 1}, {Sm90Cfg::BK, 128, 1, 1},
                                   {Sm90Cfg::BK, 1, 128, 1}};
  for (int sh = 0; sh < (g.up == 2 ? 3 : 1); ++sh)
    if (encode(&maps.a[sh], dt, 4, const_cast<void*>(a.x), adims, astr, aboxes[sh], estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
      return Status::Error("modconv sm_90a: cuTensorMapEncodeTiled refused the activation tensor");
  // B: each phase's packed weights [Npad][K] (at conv_phase_w_offset); one box = BN columns x 64 k.
  for (int ph = 0; ph < conv_phases(g); ++ph) {
    const int64_t K = geom_K(conv_phase_geom(g, ph));
    const cuuint64_t bdims[2] = {(cuuint64_t)K, (cuuint64_t)a.Npad};
    const cuuint64_t bstr[1] = {(cuuint64_t)K * 2};
    const cuuint32_t bbox[2] = {Sm90Cfg::BK, BN};
    void* const w = static_cast<unsigned char*>(const_cast<void*>(a.w)) + 2 * conv_phase_w_offset(g, ph, Sm90Cfg::BK, a.Npad);
    if (encode(&maps.b[ph], dt, 2, w, bdims, bstr, bbox, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
      return Status::Error("modconv sm_90a: cuTensorMapEncodeTiled refused the weight tensor");
  }
  constexpr int smem = Sm90Cfg::smem_bytes(BN);
  FG_CUDA_CHECK(cudaFuncSetAttribute(modconv_sm90_kernel<T, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((unsigned)sm90_row_tiles(g), ceil_div(a.Npad, BN), conv_phases(g));
  modconv_sm90_kernel<T, BN><<<grid, Sm90Cfg::THREADS, smem, stream>>>(maps, a);
  FG_CUDA_CHECK_LAUNCH("modconv_sm90_kernel");
  return Status::Ok();
}

}  // namespace

bool modconv_sm90_fits(const ConvArgs& a, ActType t) {
  const ConvGeom& g = a.g;
  const int N = geom_N(g);
  return t != ActType::F32 && (g.up == 1 || (g.up == 2 && a.t != nullptr)) && g.ks == 3 && g.phase == 0 &&
         g.src_shift == 0 && g.Cin % Sm90Cfg::BK == 0 && a.x_bstride == (int64_t)g.H * g.W * g.Cin &&
         g.W >= Sm90Cfg::TILE_W && g.H >= Sm90Cfg::TILE_H && N > 32 && a.Npad >= N && a.Npad % 32 == 0 &&
         a.Kpad == conv_packed_k(g, Sm90Cfg::BK) && ceil_div(a.Npad, sm90_bn(N)) <= 65535 &&
         (reinterpret_cast<uintptr_t>(a.x) & 15) == 0 && (reinterpret_cast<uintptr_t>(a.w) & 15) == 0 &&  // TMA bases
         sm90_row_tiles(g) <= 0x7fffffff;
}

bool modconv_sm90_available(int device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
    return false;
  if (major != 9 || minor != 0) return false;  // sm_90a code runs on compute capability 9.0 only
#if defined(FACEGAN_CUDA_EMU)
  // The emulator build runs the sm_90a paths only in its sm_90a library (CMake: cuda-emu-sm90a).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  return true;
#else
  return false;
#endif
#else
  // The real build: the kernel has an image for this device only when the sm_90a cubin is in.
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, modconv_sm90_kernel<__half, 128>) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.binaryVersion == 90;
#endif
}

Status launch_modconv_sm90(const ConvArgs& a, ActType t, cudaStream_t stream) {
  if (geom_M(a.g) <= 0) return Status::Ok();
  if (!modconv_sm90_fits(a, t)) return Status::Error("modconv sm_90a: layer shape not supported by the sm_90a kernel");
  const bool f16 = t == ActType::F16, narrow = sm90_bn(geom_N(a.g)) == 64;
  const Status st = narrow ? (f16 ? launch_sm90<__half, 64>(a, stream) : launch_sm90<__nv_bfloat16, 64>(a, stream))
                           : (f16 ? launch_sm90<__half, 128>(a, stream) : launch_sm90<__nv_bfloat16, 128>(a, stream));
  if (!st.ok) return st;
  return a.g.up == 2 ? launch_upfir(a, t, stream) : Status::Ok();  // the up-conv's FIR pass (modconv.cu)
}

}  // namespace cuda
}  // namespace facegan
