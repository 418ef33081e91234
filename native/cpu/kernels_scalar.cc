// Portable kernel variant: plain C++ on 4-float "vectors" (the compiler may use SSE / NEON).
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace facegan {
namespace cpu {
namespace isa_scalar {

constexpr int VL = 4;
struct V {
  float f[VL];
};
static inline V vload(const float* p) {
  V r;
  for (int i = 0; i < VL; ++i) r.f[i] = p[i];
  return r;
}
static inline void vstore(float* p, V a) {
  for (int i = 0; i < VL; ++i) p[i] = a.f[i];
}
static inline void vstream(float* p, V a) { vstore(p, a); }
static inline V vloadn(const float* p, int n) {
  V r;
  for (int i = 0; i < VL; ++i) r.f[i] = i < n ? p[i] : 0.0f;
  return r;
}
static inline void vstoren(float* p, V a, int n) {
  for (int i = 0; i < n; ++i) p[i] = a.f[i];
}
static void vfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
static inline V vset1(float x) {
  V r;
  for (int i = 0; i < VL; ++i) r.f[i] = x;
  return r;
}
static inline V vzero() { return vset1(0.0f); }
#define FG_BINOP(name, expr)                  \
  static inline V name(V a, V b) {            \
    V r;                                      \
    for (int i = 0; i < VL; ++i) r.f[i] = expr; \
    return r;                                 \
  }
FG_BINOP(vadd, a.f[i] + b.f[i])
FG_BINOP(vsub, a.f[i] - b.f[i])
FG_BINOP(vmul, a.f[i] * b.f[i])
FG_BINOP(vmax, a.f[i] > b.f[i] ? a.f[i] : b.f[i])
FG_BINOP(vmin, a.f[i] < b.f[i] ? a.f[i] : b.f[i])
#undef FG_BINOP
static inline V vfma(V a, V b, V c) {
  V r;
  for (int i = 0; i < VL; ++i) r.f[i] = a.f[i] * b.f[i] + c.f[i];
  return r;
}
static inline void vinterleave(V a, V b, V* lo, V* hi) {
  for (int i = 0; i < VL / 2; ++i) {
    lo->f[2 * i] = a.f[i];
    lo->f[2 * i + 1] = b.f[i];
    hi->f[2 * i] = a.f[VL / 2 + i];
    hi->f[2 * i + 1] = b.f[VL / 2 + i];
  }
}
static inline V vand(V a, V b) {
  V r;
  for (int i = 0; i < VL; ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a.f[i], 4);
    std::memcpy(&y, &b.f[i], 4);
    x &= y;
    std::memcpy(&r.f[i], &x, 4);
  }
  return r;
}
static inline V vloadmask(const uint32_t* p) {
  V r;
  for (int i = 0; i < VL; ++i) std::memcpy(&r.f[i], &p[i], 4);
  return r;
}
static inline void vdeinterleave(const float* p, V* even, V* odd) {
  for (int i = 0; i < VL; ++i) {
    even->f[i] = p[2 * i];
    odd->f[i] = p[2 * i + 1];
  }
}
constexpr int kMR = 4, kNV = 2;
constexpr int kSmallP = 2, kSmallNV = 1;  // 8 × 4

#include "kernels_impl.h"

}  // namespace isa_scalar

const KernelSet* kernels_scalar() { return isa_scalar::make_kernel_set("scalar"); }

}  // namespace cpu
}  // namespace facegan
