// AVX-512 (F/BW/VL/DQ) kernel variant (compiled with -mavx512*; used only when cpuid has them).
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace facegan {
namespace cpu {
namespace isa_avx512 {

constexpr int VL = 16;
typedef __m512 V;
static inline V vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, V a) { _mm512_storeu_ps(p, a); }
static inline void vstream(float* p, V a) { _mm512_stream_ps(p, a); }
static inline V vloadn(const float* p, int n) { return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p); }
static inline void vstoren(float* p, V a, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), a); }
static void vfence() { _mm_sfence(); }
static inline V vset1(float x) { return _mm512_set1_ps(x); }
static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V vand(V a, V b) { return _mm512_and_ps(a, b); }
static inline V vloadmask(const uint32_t* p) { return _mm512_castsi512_ps(_mm512_loadu_si512(p)); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
// maskz forms: GCC 12 warns about the undefined pass-through operand of the plain ones.
static inline V vmax(V a, V b) { return _mm512_maskz_max_ps(__mmask16(0xFFFF), a, b); }
static inline V vmin(V a, V b) { return _mm512_maskz_min_ps(__mmask16(0xFFFF), a, b); }
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline void vinterleave(V a, V b, V* lo, V* hi) {
  const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  *lo = _mm512_permutex2var_ps(a, il, b);
  *hi = _mm512_permutex2var_ps(a, ih, b);
}
static inline void vdeinterleave(const float* p, V* even, V* odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  V a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
  *even = _mm512_permutex2var_ps(a, ie, b);
  *odd = _mm512_permutex2var_ps(a, io, b);
}
constexpr int kMR = 8, kNV = 3;
constexpr int kSmallP = 3, kSmallNV = 1;  // 24 × 16

#include "kernels_impl.h"

}  // namespace isa_avx512

const KernelSet* kernels_avx512() { return isa_avx512::make_kernel_set("avx512"); }

}  // namespace cpu
}  // namespace facegan
