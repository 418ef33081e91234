// The CPU engine's opt-in bf16 path (precision bf16: AMX tiles, gemm_amx.cc). Where the CPU or
// the OS has no AMX-BF16 the kernel cases are skipped with the reason printed, and the engine
// must refuse bf16.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../../cpu/kernels.h"
#include "../random_model.h"
#include "facegan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::unit;

namespace {

bool amx_here() {
  if (const char* why = cpu::amx_bf16_unusable()) {
    std::printf("  skipped: %s\n", why);
    return false;
  }
  return true;
}

float bf16_value(float f) {
  const uint32_t u = uint32_t(cpu::float_to_bf16(f)) << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

// amx_gemm on rows that are not a multiple of 16 (24: a full tile and a half one), K = 100 in two
// blocks (64 accumulated onto by 36, whose tail is padded to 32), two 48-wide panels, against a
// double reference: exact for bf16-exact inputs (small multiples of 1/8, every sum exact in fp32),
// and within the fp32 accumulation bound for random floats rounded to bf16 (the kernel's rounding
// of both operands must be round-to-nearest-even, as float_to_bf16).
void test_amx_gemm() {
  if (!amx_here()) return;
  const int MR = 8, panels = 3, rows = panels * MR, K = 100, kpad = 128, nr = 48, npan = 2, N = npan * nr;
  for (int exact = 1; exact >= 0; --exact) {
    std::vector<float> a(size_t(rows) * K), b(size_t(K) * N);
    for (float& v : a) v = exact ? float(int(g_rng() % 17) - 8) / 8.0f : random_vec(1)[0];
    for (float& v : b) v = exact ? float(int(g_rng() % 17) - 8) / 8.0f : random_vec(1)[0];
    // The engine's K-blocked panel layout, with a short last block (100 = 64 + 36).
    const cpu::PanelLayout lay{MR, panels, K, 64};
    std::vector<float> Ap(lay.size());
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < K; ++k) Ap[lay.at(r / MR, k) + size_t(r % MR)] = a[size_t(r) * K + k];
    std::vector<uint16_t> Ab(size_t(rows + 16) * kpad);
    cpu::amx_pack_a(Ap.data(), lay, kpad, Ab.data());
    const size_t ldc = size_t(N);
    std::vector<float> C(size_t(rows) * ldc, 0.0f);
    std::vector<uint16_t> bbuf(size_t(N) * kpad);
    for (int kb = 0; kb < K; kb += 64) {
      const int kc = std::min(64, K - kb);
      std::vector<float> Bp(size_t(npan) * kc * nr);
      for (int jp = 0; jp < npan; ++jp)
        for (int k = 0; k < kc; ++k)
          for (int j = 0; j < nr; ++j) Bp[(size_t(jp) * kc + k) * nr + j] = b[size_t(kb + k) * N + jp * nr + j];
      cpu::amx_gemm(Ab.data() + kb, kpad, rows, Bp.data(), nr, npan, kc, C.data(), ldc, kb > 0, bbuf.data());
    }
    double worst = 0.0;
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < N; ++j) {
        double ref = 0.0, mag = 0.0;
        for (int k = 0; k < K; ++k) {
          const double p = double(bf16_value(a[size_t(r) * K + k])) * bf16_value(b[size_t(k) * N + j]);
          ref += p;
          mag += std::fabs(p);
        }
        const double err = std::fabs(C[size_t(r) * ldc + j] - ref);
        const double bound = exact ? 0.0 : (K + 2) * std::ldexp(1.0, -24) * mag;
        worst = std::max(worst, err - bound);
      }
    CHECK(worst <= 0.0, std::string(exact ? "bf16-exact inputs" : "random inputs") +
                            ": the AMX GEMM is off the reference by " + std::to_string(worst) + " beyond its bound");
  }
}

// The images of n samples of a random model on the CPU engine at a precision (z from a fixed
// seed; ws at psi 0.7; random noise). Empty with *err set when the engine refuses.
std::vector<float> images(const std::string& config, int n, Precision prec, std::string* err) {
  LoadOptions lo;
  lo.backend = "cpu";
  lo.num_threads = 2;
  lo.precision = prec;
  return random_model_images(config, n, lo, NoiseMode::Random, err);
}

// PSNR of a against the reference b, the peak being b's range.
double psnr(const std::vector<float>& a, const std::vector<float>& b) {
  double mse = 0.0, lo = b[0], hi = b[0];
  for (size_t i = 0; i < b.size(); ++i) {
    mse += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    lo = std::min(lo, double(b[i]));
    hi = std::max(hi, double(b[i]));
  }
  mse /= double(b.size());
  return mse > 0 ? 10.0 * std::log10((hi - lo) * (hi - lo) / mse) : 1e9;
}

// bf16 against fp32 on random models of both architectures (every conv kind: 4² and 8² im2col,
// the 3×3 from 16², StyleGAN2's up-convs, ProGAN's nearest ×2): PSNR ≥ 40 dB, and not the fp32
// bits (the bf16 path runs); an image's bits do not depend on the batch (image 0 alone == in a
// batch of 3). Where AMX is absent, bf16 is refused; FACEGAN_CPU_ISA=avx2 refuses it everywhere.
void test_bf16_images() {
  const bool amx = cpu::amx_bf16_unusable() == nullptr;
  for (const char* config : {"gray16", "tinyc", "wide256", "progan-tiny", "progan-wide"}) {
    std::string err;
    const std::vector<float> f32 = images(config, 3, Precision::FP32, &err);
    CHECK(!f32.empty(), std::string(config) + " fp32: " + err);
    err.clear();
    const std::vector<float> b16 = images(config, 3, Precision::BF16, &err);
    if (!amx) {
      CHECK(b16.empty() && err.find("AMX") != std::string::npos,
            std::string(config) + ": bf16 without AMX must be refused naming AMX (got '" + err + "')");
      continue;
    }
    CHECK(!b16.empty(), std::string(config) + " bf16: " + err);
    if (f32.empty() || b16.size() != f32.size()) continue;
    const double db = psnr(b16, f32);
    std::printf("  %s: bf16 vs fp32 PSNR %.1f dB\n", config, db);
    CHECK(db >= 40.0, std::string(config) + ": bf16 vs fp32 PSNR " + std::to_string(db) + " dB < 40");
    CHECK(std::memcmp(b16.data(), f32.data(), f32.size() * sizeof(float)) != 0,
          std::string(config) + ": bf16 gave the fp32 bits (the bf16 path did not run)");
    const std::vector<float> one = images(config, 1, Precision::BF16, &err);
    CHECK(one.size() * 3 == b16.size() && std::memcmp(one.data(), b16.data(), one.size() * sizeof(float)) == 0,
          std::string(config) + ": bf16 image 0 alone differs from image 0 in a batch of 3");
  }
  if (!amx) std::printf("  bf16 images not checked: %s\n", cpu::amx_bf16_unusable());
  const char* isa_env = std::getenv("FACEGAN_CPU_ISA");
  const std::string saved = isa_env ? isa_env : "";
  setenv("FACEGAN_CPU_ISA", "avx2", 1);
  std::string err;
  const std::vector<float> refused = images("tiny", 1, Precision::BF16, &err);
  CHECK(refused.empty() && err.find("precision bf16 needs AMX-BF16") != std::string::npos,
        "FACEGAN_CPU_ISA=avx2: bf16 must be refused (got '" + err + "')");
  err.clear();
  CHECK(images("tiny", 1, Precision::FP16, &err).empty() && err.find("fp16") != std::string::npos,
        "the cpu backend refuses fp16 (got '" + err + "')");
  if (isa_env) setenv("FACEGAN_CPU_ISA", saved.c_str(), 1);
  else unsetenv("FACEGAN_CPU_ISA");
}

const Register kCases(__FILE__, {
                                    {"cpu bf16: AMX GEMM vs the fp32 reference", test_amx_gemm},
                                    {"cpu bf16: images vs fp32 (PSNR), batch invariance, refusal", test_bf16_images},
                                });

}  // namespace
