// AVX2 + FMA kernel variant (compiled with -mavx2 -mfma -mf16c; used only when cpuid has them).
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace facegan {
namespace cpu {
namespace isa_avx2 {

constexpr int VL = 8;
typedef __m256 V;
static inline V vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, V a) { _mm256_storeu_ps(p, a); }
static inline void vstream(float* p, V a) { _mm256_stream_ps(p, a); }
alignas(64) static const int32_t kLaneMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i lane_mask(int n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask + 8 - n)); }
static inline V vloadn(const float* p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
static inline void vstoren(float* p, V a, int n) { _mm256_maskstore_ps(p, lane_mask(n), a); }
static void vfence() { _mm_sfence(); }
static inline V vset1(float x) { return _mm256_set1_ps(x); }
static inline V vzero() { return _mm256_setzero_ps(); }
static inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V vand(V a, V b) { return _mm256_and_ps(a, b); }
static inline V vloadmask(const uint32_t* p) { return _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
static inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
static inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
static inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline void vinterleave(V a, V b, V* lo, V* hi) {
  V l = _mm256_unpacklo_ps(a, b);  // a0 b0 a1 b1 | a4 b4 a5 b5
  V h = _mm256_unpackhi_ps(a, b);  // a2 b2 a3 b3 | a6 b6 a7 b7
  *lo = _mm256_permute2f128_ps(l, h, 0x20);
  *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
static inline void vdeinterleave(const float* p, V* even, V* odd) {
  V a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  V e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
  V o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
}
constexpr int kMR = 6, kNV = 2;
constexpr int kSmallP = 2, kSmallNV = 1;  // 12 × 8

#include "kernels_impl.h"

}  // namespace isa_avx2

const KernelSet* kernels_avx2() { return isa_avx2::make_kernel_set("avx2"); }

}  // namespace cpu
}  // namespace facegan
