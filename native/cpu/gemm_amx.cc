// The opt-in bf16 GEMM of the CPU engine (LoadOptions.precision = bf16): AMX tiles, bf16
// operands, fp32 accumulation (compiled with -mamx-tile -mamx-bf16 -mavx512bf16; called only when
// amx_bf16_unusable() says nullptr: cpuid has AMX-BF16 / AMX-TILE / AVX512-BF16, the OS enables
// the tile state in XCR0 and grants this process XTILEDATA).
//
// A (weights) is packed once at load, row-major bf16 rows of kpad = round_up(K, 32); B (the
// style-scaled activations) arrives as the fp32 panels of kernels.h pack_b and is rounded to
// bf16 (nearest even) in the VNNI pair layout the tiles read. Every output element is the same
// sequence of tile dot products wherever it falls in the run (batch invariance).
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace facegan {
namespace cpu {

namespace {

bool cpuid_has_amx_bf16() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(1, 0, a, b, c, d);
  if (!(c & (1u << 27))) return false;  // OSXSAVE
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  const bool avx512bw = b & (1u << 30), avx512f = b & (1u << 16);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = a & (1u << 5);
  if (!(amx_bf16 && amx_tile && avx512bw && avx512f && avx512_bf16)) return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & (3u << 17)) == (3u << 17);  // XTILECFG, XTILEDATA
}

const char* amx_check() {
  if (!cpuid_has_amx_bf16()) return "the CPU (or the OS) has no AMX-BF16 / AVX512-BF16";
#ifdef SYS_arch_prctl
  const long kReqXcompPerm = 0x1023, kXtiledata = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) != 0) return "the OS refused the AMX tile state (arch_prctl)";
  return nullptr;
#else
  return "no arch_prctl to request the AMX tile state";
#endif
}

struct TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// All eight tiles 16 rows × 64 bytes: C (16 × 16 fp32) in 0..2, A (16 × 32 bf16) in 3, B (16
// pairs × 16 columns) in 4..6.
void load_tile_config() {
  TileConfig tc;
  std::memset(&tc, 0, sizeof tc);
  tc.palette = 1;
  for (int i = 0; i < 8; ++i) {
    tc.colsb[i] = 64;
    tc.rows[i] = 16;
  }
  _tile_loadconfig(&tc);
}

inline uint16_t bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

}  // namespace

const char* amx_bf16_unusable() {
  static const char* reason = amx_check();
  return reason;
}

uint16_t float_to_bf16(float f) { return bf16_rne(f); }

void amx_pack_a(const float* A, const PanelLayout& lay, int kpad, uint16_t* out) {
  const int MR = lay.MR, rows = lay.panels * MR;
  std::memset(out, 0, sizeof(uint16_t) * size_t(rows + 16) * kpad);
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < lay.K; ++k) out[size_t(r) * kpad + k] = bf16_rne(A[lay.at(r / MR, k) + size_t(r % MR)]);
}

void amx_gemm(const uint16_t* A, int kpad, int rows, const float* Bp, int nr, int npan, int kc, float* C, size_t ldc,
              int accumulate, uint16_t* bbuf) {
  const int kc32 = (kc + 31) / 32 * 32, pairs = kc32 / 2;
  const int nsub = nr / 16, T = npan * nsub;
  // B to bf16 pairs: subtile t (16 columns) at bbuf + t · pairs · 32, row q = k pair (2q, 2q+1).
  const __m512i il = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                      5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int jp = 0; jp < npan; ++jp)
    for (int s = 0; s < nsub; ++s) {
      uint16_t* dst = bbuf + size_t(jp * nsub + s) * pairs * 32;
      const float* src = Bp + size_t(jp) * kc * nr + s * 16;
      for (int q = 0; q < pairs; ++q) {
        const int k = 2 * q;
        const __m512 r0 = k < kc ? _mm512_loadu_ps(src + size_t(k) * nr) : _mm512_setzero_ps();
        const __m512 r1 = k + 1 < kc ? _mm512_loadu_ps(src + size_t(k + 1) * nr) : _mm512_setzero_ps();
        const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);
        _mm512_storeu_si512(dst + size_t(q) * 32, _mm512_permutexvar_epi16(il, v));
      }
    }
  load_tile_config();
  alignas(64) float tmp[3][16 * 16];
  const size_t bstride = size_t(pairs) * 32;
  for (int m0 = 0; m0 < rows; m0 += 16) {
    const int mr = rows - m0 < 16 ? rows - m0 : 16;
    const uint16_t* Am = A + size_t(m0) * kpad;
    int t = 0;
    for (; t + 3 <= T; t += 3) {
      float* Ct = C + size_t(m0) * ldc + size_t(t) * 16;
      const uint16_t* Bt = bbuf + size_t(t) * bstride;
      if (mr < 16 && accumulate)
        for (int j = 0; j < 3; ++j)
          for (int r = 0; r < mr; ++r) std::memcpy(tmp[j] + r * 16, Ct + size_t(r) * ldc + j * 16, 64);
      if (!accumulate) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
      } else if (mr == 16) {
        _tile_loadd(0, Ct, ldc * 4);
        _tile_loadd(1, Ct + 16, ldc * 4);
        _tile_loadd(2, Ct + 32, ldc * 4);
      } else {
        _tile_loadd(0, tmp[0], 64);
        _tile_loadd(1, tmp[1], 64);
        _tile_loadd(2, tmp[2], 64);
      }
      for (int q = 0; q < pairs; q += 16) {
        _tile_loadd(3, Am + 2 * q, size_t(kpad) * 2);
        _tile_loadd(4, Bt + size_t(q) * 32, 64);
        _tile_loadd(5, Bt + bstride + size_t(q) * 32, 64);
        _tile_loadd(6, Bt + 2 * bstride + size_t(q) * 32, 64);
        _tile_dpbf16ps(0, 3, 4);
        _tile_dpbf16ps(1, 3, 5);
        _tile_dpbf16ps(2, 3, 6);
      }
      if (mr == 16) {
        _tile_stored(0, Ct, ldc * 4);
        _tile_stored(1, Ct + 16, ldc * 4);
        _tile_stored(2, Ct + 32, ldc * 4);
      } else {
        _tile_stored(0, tmp[0], 64);
        _tile_stored(1, tmp[1], 64);
        _tile_stored(2, tmp[2], 64);
        for (int j = 0; j < 3; ++j)
          for (int r = 0; r < mr; ++r) std::memcpy(Ct + size_t(r) * ldc + j * 16, tmp[j] + r * 16, 64);
      }
    }
    for (; t < T; ++t) {
      float* Ct = C + size_t(m0) * ldc + size_t(t) * 16;
      const uint16_t* Bt = bbuf + size_t(t) * bstride;
      if (mr < 16 && accumulate)
        for (int r = 0; r < mr; ++r) std::memcpy(tmp[0] + r * 16, Ct + size_t(r) * ldc, 64);
      if (!accumulate) _tile_zero(0);
      else if (mr == 16) _tile_loadd(0, Ct, ldc * 4);
      else _tile_loadd(0, tmp[0], 64);
      for (int q = 0; q < pairs; q += 16) {
        _tile_loadd(3, Am + 2 * q, size_t(kpad) * 2);
        _tile_loadd(4, Bt + size_t(q) * 32, 64);
        _tile_dpbf16ps(0, 3, 4);
      }
      if (mr == 16) {
        _tile_stored(0, Ct, ldc * 4);
      } else {
        _tile_stored(0, tmp[0], 64);
        for (int r = 0; r < mr; ++r) std::memcpy(Ct + size_t(r) * ldc, tmp[0] + r * 16, 64);
      }
    }
  }
  _tile_release();
}

}  // namespace cpu
}  // namespace facegan
