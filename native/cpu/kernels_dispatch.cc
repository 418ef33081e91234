// Run-time choice of the kernel variant (ggml-style scores; 0 = not usable on this CPU).
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace facegan {
namespace cpu {

namespace {

struct Variant {
  const KernelSet* (*get)();
  int (*score)();
};

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
int score_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 20 : 0;
}
int score_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("fma")
             ? 30
             : 0;
}
#define FG_HAVE_X86_VARIANTS 1
#endif
int score_scalar() { return 1; }

const Variant kVariants[] = {
#ifdef FG_HAVE_X86_VARIANTS
    {&kernels_avx512, &score_avx512},
    {&kernels_avx2, &score_avx2},
#endif
    {&kernels_scalar, &score_scalar},
};

}  // namespace

int kernel_sets(const KernelSet** out, int max) {
  // Usable variants sorted by score, best first.
  const KernelSet* sets[8];
  int scores[8];
  int n = 0;
  for (const Variant& v : kVariants) {
    int s = v.score();
    if (s <= 0) continue;
    int i = n++;
    while (i > 0 && scores[i - 1] < s) {
      sets[i] = sets[i - 1];
      scores[i] = scores[i - 1];
      --i;
    }
    sets[i] = v.get();
    scores[i] = s;
  }
  int m = n < max ? n : max;
  for (int i = 0; i < m; ++i) out[i] = sets[i];
  return n;
}

const KernelSet* find_kernel_set(const char* name) {
  const KernelSet* sets[8];
  int n = kernel_sets(sets, 8);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(sets[i]->name, name) == 0) return sets[i];
  return nullptr;
}

const KernelSet& best_kernel_set() {
  const char* force = std::getenv("FACEGAN_CPU_ISA");
  if (force && *force) {
    if (const KernelSet* k = find_kernel_set(force)) return *k;
  }
  const KernelSet* sets[8];
  kernel_sets(sets, 8);
  return *sets[0];
}

}  // namespace cpu
}  // namespace facegan

#if !(defined(__x86_64__) || defined(_M_X64))
// No AMX off x86-64 (gemm_amx.cc is not built): precision bf16 is refused before these are reached.
namespace facegan {
namespace cpu {
const char* amx_bf16_unusable() { return "AMX is x86-64 only"; }
uint16_t float_to_bf16(float) { return 0; }
void amx_pack_a(const float*, const PanelLayout&, int, uint16_t*) {}
void amx_gemm(const uint16_t*, int, int, const float*, int, int, int, float*, size_t, int, uint16_t*) {}
}  // namespace cpu
}  // namespace facegan
#endif
