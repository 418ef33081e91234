// facegan-unit: CPU unit tests of the CUDA backend's index arithmetic (native/cuda/indexing.cuh,
// philox.cuh, plan.h), which compile with a plain C++ compiler. Every check compares against a
// naive reference written here from the definitions in docs/stylegan2.md:
//   - Philox4x32-10 against the Random123 known-answer vectors; Box-Muller sanity;
//   - the implicit-GEMM mapping (im2col rows/taps, output columns) against a direct convolution;
//   - the fused polyphase up-conv (combined kernels) against transposed conv + [1,3,3,1]^2 FIR;
//   - the packed weights, the x2 skip upsampling, the uint8 conversion, truncation's lerp;
//   - mma.sync m16n8k16 / ldmatrix fragment maps (bijections, and ldmatrix + mma composed as the
//     PTX ISA defines them), and host emulations of the FFMA and tensor-core kernels' tiling,
//     loaders and epilogue mapping against the direct convolution;
//   - the style / demodulation row plans, the conv layer geometry of both architectures;
//   - the random-noise stream: Box-Muller accuracy, pinned values, and the CUDA keying against the
//     CPU engines' noise_fill (native/cpu/noise.h), bit for bit;
//   - both uint8 maps against the CPU engines' and against proganToUint8's JavaScript semantics;
//   - ProGAN: nearest-x2 input indexing, the dense rows, a spec forward pass vs cpu-ref, and a host
//     emulation of the backend's ProGAN pipeline vs cpu-ref.
// When the build has the CUDA backend and this machine has a usable GPU, it also runs the CUDA
// backend end to end (StyleGAN2 against a naive host reference, ProGAN against cpu-ref) and the
// noise kernel against the host's bits (skipped otherwise).
// Prints "N passed, M failed" and exits non-zero on failure.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/common.h"  // cpu::to_u8_hwc (the CPU engines' uint8 maps)
#include "../cpu/noise.h"   // noise_fill (the CPU engines' random noise)
#include "../cpu/thread_pool.h"  // ThreadPool (its error reporting)
#include "../cuda/indexing.cuh"
#include "../cuda/philox.cuh"
#include "../cuda/plan.h"
#include "conv_ref.h"
#include "backend.h"
#ifdef FACEGAN_WITH_CUDA_EMU
#include "kernel_tests.h"  // the CUDA kernels run by the emulator
#include "emu_control.h"  // fault injection and fake device memory
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#endif
#ifdef FACEGAN_WITH_CUDA
#include "../cuda/kernels.h"  // launch_noise, for the device-vs-host noise bits check
#endif

using namespace facegan;
using namespace facegan::cuda;

namespace {

int g_passed = 0, g_failed = 0;
int g_case_failures = 0;

void fail(const std::string& what) {
  if (g_case_failures < 8) std::printf("    FAIL: %s\n", what.c_str());
  ++g_case_failures;
}
#define CHECK(cond, msg)                                          \
  do {                                                            \
    if (!(cond)) fail(std::string(#cond) + " -- " + (msg));       \
  } while (0)

// FACEGAN_UNIT_FILTER=text runs only the cases whose name contains it (e.g. "emulated").
bool selected(const std::string& name) {
  const char* f = std::getenv("FACEGAN_UNIT_FILTER");
  return !f || name.find(f) != std::string::npos;
}

void run_case(const char* name, const std::function<void()>& fn) {
  if (!selected(name)) return;
  g_case_failures = 0;
  fn();
  if (g_case_failures == 0) {
    ++g_passed;
    std::printf("  ok    %s\n", name);
  } else {
    ++g_failed;
    std::printf("  FAIL  %s (%d failed checks)\n", name, g_case_failures);
  }
}

std::mt19937 g_rng(12345);
std::vector<float> random_vec(size_t n, float lo = -1.0f, float hi = 1.0f) { return testref::random_vec(g_rng, n, lo, hi); }

bool close(double a, double b, double atol, double rtol) { return std::fabs(a - b) <= atol + rtol * std::fabs(b); }

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Naive references (activations NHWC, weights [Cout][Cin][3][3], styles [b][Cin]).

using testref::ref_conv3x3;
using testref::ref_upconv;

// Elements per sample of a conv's input tensor (the grid, or its nearest-x2 source).
int64_t in_plane(const ConvGeom& g) { return (int64_t)(g.H >> g.src_shift) * (g.W >> g.src_shift) * g.Cin; }

// Nearest-neighbour x2 upsampling written out (as TF's Tile + BatchToSpaceND does it): the
// (H/2) x (W/2) source [b][h][w][c] -> [b][2h+dy][2w+dx][c] for dy, dx in {0, 1}.
std::vector<float> ref_upsample_nearest(const ConvGeom& g, const std::vector<float>& x, int64_t bstride, int nb) {
  const int h = g.H / 2, w = g.W / 2;
  std::vector<float> out((size_t)nb * g.H * g.W * g.Cin);
  for (int b = 0; b < nb; ++b)
    for (int yy = 0; yy < h; ++yy)
      for (int xx = 0; xx < w; ++xx)
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx)
            for (int c = 0; c < g.Cin; ++c)
              out[(((size_t)b * g.H + 2 * yy + dy) * g.W + 2 * xx + dx) * g.Cin + c] =
                  x[b * bstride + ((size_t)yy * w + xx) * g.Cin + c];
  return out;
}

std::vector<float> ref_modconv(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                               const std::vector<float>& s, const std::vector<float>& W) {
  if (g.src_shift) {  // explicit upsample, then the plain conv over the grid
    ConvGeom g1 = g;
    g1.src_shift = 0;
    const int nb = bstride == 0 ? 1 : g.batch;
    return ref_conv3x3(g1, ref_upsample_nearest(g, x, bstride, nb), bstride == 0 ? 0 : (int64_t)g.H * g.W * g.Cin,
                       s, W);
  }
  return g.up == 1 ? ref_conv3x3(g, x, bstride, s, W) : ref_upconv(g, x, bstride, s, W);
}

// upsample2d of one plane [n][n] -> [2n][2n]: zero insertion, pad [2,1], FIR gain 4.
std::vector<double> ref_upsample2d(const std::vector<double>& p, int n) {
  const int Z = 2 * n;  // zero-inserted length (x[j] at 2j), then pad 2 before, 1 after
  const int P = Z + 3;
  std::vector<double> z((size_t)P * P, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) z[(size_t)(2 * i + 2) * P + (2 * j + 2)] = p[(size_t)i * n + j];
  const double f1[4] = {1, 3, 3, 1};
  std::vector<double> out((size_t)Z * Z);
  for (int Y = 0; Y < Z; ++Y)
    for (int X = 0; X < Z; ++X) {
      double acc = 0.0;
      for (int a = 0; a < 4; ++a)
        for (int c = 0; c < 4; ++c) acc += z[(size_t)(Y + a) * P + (X + c)] * f1[a] * f1[c] / 64.0 * 4.0;
      out[(size_t)Y * Z + X] = acc;
    }
  return out;
}

// The implicit GEMM computed through the kernels' index functions (no tiling).
std::vector<float> gemm_via_index(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                  const std::vector<float>& s, const std::vector<float>& W) {
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  std::vector<float> out((size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout, std::nanf(""));
  std::vector<double> a(K);
  for (int m = 0; m < M; ++m) {
    const Pixel p = gemm_row_pixel(g, m);
    for (int k = 0; k < K; ++k) {
      const int64_t off = gemm_a_offset(g, p, k, bstride);
      a[k] = off < 0 ? 0.0 : (double)x[off] * s[(size_t)p.b * g.Cin + gemm_k_tap(g, k).c];
    }
    for (int j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int k = 0; k < K; ++k) acc += a[k] * conv_b_value(g, W.data(), k, j);
      out[gemm_out_offset(g, p, gemm_col_out(g, j))] = (float)acc;
    }
  }
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, double* ref_max = nullptr) {
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs((double)a[i] - b[i]);
    d = std::isnan(e) ? INFINITY : std::max(d, e);
    r = std::max(r, std::fabs((double)b[i]));
  }
  if (ref_max) *ref_max = r;
  return d;
}

struct ConvCase {
  ConvGeom g;
  bool broadcast;  // input shared by the batch (the const input of block 4)
};

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> v;
  auto add = [&](int batch, int H, int Cin, int Cout, int up, bool bc, int src_shift = 0) {
    ConvCase c;
    c.g.batch = batch; c.g.H = c.g.W = H; c.g.Cin = Cin; c.g.Cout = Cout; c.g.up = up; c.g.ks = 3;
    c.g.src_shift = src_shift;
    c.broadcast = bc;
    v.push_back(c);
  };
  add(2, 4, 8, 16, 1, true);
  add(2, 5, 3, 7, 1, false);   // odd sizes, Cin not a multiple of 4
  add(3, 8, 16, 8, 1, false);
  add(2, 4, 8, 6, 2, false);
  add(1, 3, 5, 3, 2, false);
  add(2, 8, 12, 20, 2, false);
  // ProGAN: nearest x2 upsampling read through the input indexing (src_shift 1).
  add(2, 8, 8, 16, 1, false, 1);
  add(3, 6, 5, 7, 1, false, 1);  // Cin not a multiple of 4
  add(1, 4, 16, 3, 1, false, 1);
  return v;
}

// ---------------------------------------------------------------------------------------------

void test_philox_kat() {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  // Random123 tests/kat_vectors, "philox4x32 10" lines.
  const Kat kats[3] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const Philox4 r = philox4x32_10(k.ctr, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.out[i], "word " + std::to_string(i));
  }
}

void test_box_muller() {
  float z0, z1;
  box_muller(0u, 0u, &z0, &z1);  // u1 = 2^-24: the largest radius
  CHECK(std::isfinite(z0) && std::isfinite(z1) && std::fabs(z0) < 6.0f, "smallest u1");
  box_muller(0xffffffffu, 0xffffffffu, &z0, &z1);  // u1 = 1: radius 0
  CHECK(z0 == 0.0f && z1 == 0.0f, "u1 = 1 gives 0");
  // Moments of 2^20 normals of one noise plane.
  const int count = 1 << 20;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int p = 0; p < count; ++p) {
    const double z = noise_normal(0x123456789abcdefull, 3, 1, p);
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
  }
  const double mean = s1 / count, var = s2 / count - mean * mean, kurt = (s4 / count) / (var * var);
  CHECK(std::fabs(mean) < 0.005, fmt("mean %g (%g)", mean, 0.0));
  CHECK(std::fabs(var - 1.0) < 0.01, fmt("variance %g (%g)", var, 1.0));
  CHECK(std::fabs(kurt - 3.0) < 0.05, fmt("kurtosis %g (%g)", kurt, 3.0));
  // Different layers, samples and seeds give different streams.
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(1, 1, 0, 5), "layer");
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(1, 0, 1, 5), "sample");
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(2, 0, 0, 5), "seed");
  CHECK(noise_normal(1ull << 32, 0, 0, 5) != noise_normal(0, 0, 0, 5), "seed high word");
}

// The Box-Muller pieces against double precision over their whole input ranges (every 24-bit
// k of u1 = k / 2^24 and every 24-bit j of u2 = j / 2^24), and pinned values of the noise
// stream: the keying (counter / key words) and the transform must never change silently, since
// the CPU engines (native/cpu/noise.h) and the CUDA backend draw the same numbers from them.
void test_box_muller_exact() {
  double max_log = 0.0, max_sc = 0.0;
  for (uint32_t k = 1; k <= (1u << 24); k += (k < 4096 ? 1u : 7u)) {
    const double ref = std::log((double)k / 16777216.0);
    const double v = bm_log_k24(k);
    max_log = std::max(max_log, ref == 0.0 ? std::fabs(v) : std::fabs(v - ref) / std::fabs(ref));
  }
  CHECK(bm_log_k24(1u << 24) == 0.0f, "ln 1 = 0");
  CHECK(max_log < 4e-7, fmt("ln: max relative error %g (limit %g)", max_log, 4e-7));
  for (uint32_t j = 0; j < (1u << 24); j += (j < 4096 ? 1u : 5u)) {
    const double th = 6.283185307179586476925 * (double)j / 16777216.0;
    float sn, cs;
    bm_sincos_2pi_j24(j, &sn, &cs);
    max_sc = std::max(max_sc, std::max(std::fabs(sn - std::sin(th)), std::fabs(cs - std::cos(th))));
  }
  CHECK(max_sc < 2e-7, fmt("sin / cos: max abs error %g (limit %g)", max_sc, 2e-7));
  struct Pin {
    uint64_t seed;
    int layer;
    uint32_t image;
    int p;
    uint32_t bits;
  };
  const Pin pins[] = {
      // p 0..3: Box-Muller of the Philox4x32-10 KAT block {0,0,0,0} / {0,0}: (0.99113745,
      // -0.92466278) and (-0.61760905, -0.48206835) in double precision.
      {0x0ull, 0, 0x0u, 0, 0x3f7dbb2fu},
      {0x0ull, 0, 0x0u, 1, 0xbf6cb6b3u},
      {0x0ull, 0, 0x0u, 2, 0xbf1e1ba1u},
      {0x0ull, 0, 0x0u, 3, 0xbef6d1a9u},
      {0x2aull, 3, 0x1u, 4097, 0xbeb9e829u},
      {0x5eedull, 16, 0x7u, 1048575, 0xbf39fa91u},
      {0xffffffffffffffffull, 1, 0x80000001u, 12345, 0xbf8f1fcbu},
      {0x123456789abcdefull, 0, 0x0u, 5, 0x3f4b1becu},
  };
  for (const Pin& q : pins) {
    const float z = noise_normal(q.seed, q.layer, (int)q.image, q.p);
    uint32_t u;
    std::memcpy(&u, &z, 4);
    char msg[96];
    std::snprintf(msg, sizeof msg, "noise value %.9g has bits 0x%08x, pinned 0x%08x", z, (unsigned)u, (unsigned)q.bits);
    CHECK(u == q.bits, msg);
  }
}

void test_noise_counter() {
  // Every plane element maps to a distinct (counter, lane) and the four lanes of a block are
  // four consecutive elements (what noise.cu writes as one float4).
  std::set<std::pair<uint32_t, int>> seen;
  for (int p = 0; p < 4096; ++p) {
    uint32_t ctr[4];
    int which;
    noise_counter(7, 2, p, ctr, &which);
    CHECK(ctr[1] == 7u && ctr[2] == 2u && ctr[3] == 0u, "counter words");
    CHECK((int)ctr[0] * 4 + which == p, "block, lane");
    seen.insert({ctr[0], which});
  }
  CHECK(seen.size() == 4096, "bijective");
  uint32_t ctr[4];
  int which;
  noise_counter(1, 0, 10, ctr, &which);
  float z[4];
  philox_normals4(ctr, 99, z);
  CHECK(noise_normal(99, 1, 0, 10) == z[2], "noise_normal picks lane p % 4");
}

// The CUDA backend's random noise (noise.cu: one thread per Philox block, image = image_base + b,
// layer = conv ordinal) against the CPU engines' noise_fill (native/cpu/noise.h), bit for bit,
// for every element of several planes, chunked fills starting anywhere, and image indices past
// 2^31 (SynthesisArgs::image_offset is a uint32).
void test_noise_cpu_vs_cuda_keying() {
  struct Case {
    uint64_t seed;
    int layer;
    uint32_t image_base;
    int n, plane;
  };
  const Case cases[] = {{0x5eedull, 0, 0u, 3, 16}, {42ull, 7, 5u, 2, 64 * 64}, {~0ull, 13, 0x7ffffffeu, 4, 8 * 8 + 3},
                        {0x0123456789abcdefull, 2, 0xfffffffeu, 3, 5}};
  for (const Case& c : cases) {
    // What each noise_kernel thread q writes: plane elements p0 .. p0+3 of sample b.
    std::vector<float> gpu((size_t)c.n * c.plane);
    const int groups = ceil_div(c.plane, 4);
    for (int64_t q = 0; q < (int64_t)c.n * groups; ++q) {
      const int b = (int)(q / groups);
      const int p0 = (int)(q - (int64_t)b * groups) * 4;
      uint32_t ctr[4];
      int which;
      const uint32_t image = c.image_base + (uint32_t)b;
      noise_counter(c.layer, (int)image, p0, ctr, &which);
      float z[4];
      philox_normals4(ctr, c.seed, z);
      for (int e = 0; e < 4 && p0 + e < c.plane; ++e) gpu[(size_t)b * c.plane + p0 + e] = z[e];
    }
    for (int b = 0; b < c.n; ++b) {
      std::vector<float> cpu((size_t)c.plane);
      // In uneven chunks, as the CPU engines' threads fill a plane.
      for (size_t b0 = 0; b0 < (size_t)c.plane;) {
        const size_t e0 = std::min<size_t>(c.plane, b0 + 1 + (b0 * 7 + 3) % 11);
        noise_fill(c.seed, c.layer, c.image_base + (uint32_t)b, b0, e0, cpu.data() + b0);
        b0 = e0;
      }
      CHECK(std::memcmp(cpu.data(), gpu.data() + (size_t)b * c.plane, cpu.size() * sizeof(float)) == 0,
            "layer " + std::to_string(c.layer) + " image " + std::to_string(c.image_base + (uint32_t)b) +
                ": CPU and CUDA noise differ");
      for (int p = 0; p < c.plane; p += 13)
        CHECK(noise_normal(c.seed, c.layer, (int)(c.image_base + (uint32_t)b), p) == cpu[(size_t)p], "noise_normal");
    }
  }
}

// ProGAN's dense start packed in NHWC row order (dense_src_row) == the spec formula.
void test_dense_rows() {
  const int Z = 7, C = 5;
  const auto W = random_vec((size_t)16 * C * Z);
  const auto z = random_vec(Z);
  std::vector<int> hits(16 * C, 0);
  for (int r = 0; r < 16 * C; ++r) {
    const int src = dense_src_row(r, C);
    CHECK(src >= 0 && src < 16 * C, "row in range");
    if (src < 0 || src >= 16 * C) continue;
    ++hits[src];
    // Row r of the packed matrix is NHWC element (y, x, o) with r = (y*4 + x)*C + o.
    const int pix = r / C, o = r % C, yy = pix / 4, xx = pix % 4;
    double packed = 0.0, spec = 0.0;
    for (int c = 0; c < Z; ++c) {
      packed += (double)W[(size_t)src * Z + c] * z[c];
      spec += (double)W[((size_t)o * 16 + yy * 4 + xx) * Z + c] * z[c];  // a[o][y][x], docs/progan.md
    }
    CHECK(packed == spec, "dense row value");
  }
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }), "a permutation of the rows");
}

// The CUDA uint8 maps against the CPU engines' (cpu::to_u8_hwc), both OutputMap modes.
void test_u8_maps_vs_cpu() {
  const int C = 3, H = 5, Wd = 7, HW = H * Wd;
  auto img = random_vec((size_t)C * HW, -1.3f, 1.3f);
  img[4] = std::nanf("");
  img[5] = 0.5f;
  img[6] = -0.5f;
  for (int mode = 0; mode < 2; ++mode) {
    OutputMap map;
    if (mode == 1) {
      map.mode = OutputMap::RoundF64;
      map.scale = 127.5;
      map.offset = 63.75;
    }
    std::vector<uint8_t> cpu((size_t)C * HW);
    cpu::to_u8_hwc(img.data(), C, H, Wd, cpu.data(), map);
    for (int p = 0; p < HW; ++p)
      for (int c = 0; c < C; ++c) {
        const float v = img[(size_t)c * HW + p];
        const uint8_t g = mode == 1 ? float_to_u8_round(v, map.scale, map.offset)
                                    : float_to_u8_scaled(v, (float)map.scale, (float)map.offset);
        CHECK(g == cpu[(size_t)p * C + c], std::string(mode ? "RoundF64" : "TruncF32") + fmt(" value %g -> %g", v, g));
      }
  }
}

void test_gemm_index_vs_direct() {
  for (const ConvCase& c : conv_cases()) {
    if (c.g.up != 1) continue;
    const ConvGeom& g = c.g;
    const int64_t bstride = c.broadcast ? 0 : in_plane(g);
    const auto x = random_vec((size_t)(c.broadcast ? 1 : g.batch) * in_plane(g));
    const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
    const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
    double rmax;
    const double d = max_abs_diff(gemm_via_index(g, x, bstride, s, W), ref_modconv(g, x, bstride, s, W), &rmax);
    CHECK(d <= 1e-5 * std::max(1.0, rmax),
          "src_shift " + std::to_string(g.src_shift) + fmt(": max diff %g (ref max %g)", d, rmax));
  }
}

void test_polyphase_upconv() {
  for (const ConvCase& c : conv_cases()) {
    if (c.g.up != 2) continue;
    const ConvGeom& g = c.g;
    const int64_t bstride = (int64_t)g.H * g.W * g.Cin;
    const auto x = random_vec((size_t)g.batch * bstride);
    const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
    const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
    double rmax;
    const double d = max_abs_diff(gemm_via_index(g, x, bstride, s, W), ref_upconv(g, x, bstride, s, W), &rmax);
    CHECK(d <= 1e-5 * std::max(1.0, rmax), fmt("max diff %g (ref max %g)", d, rmax));
  }
  // The combined 1-D taps: each phase sums the FIR over the conv taps it meets; all 4 phases x 3
  // taps together carry the full (w * f1) mass, i.e. sum(w) * sum(f1) = sum(w) * 2.
  const float w[3] = {0.3f, -1.1f, 0.7f};
  double total = 0;
  for (int p = 0; p < 2; ++p)
    for (int t = 0; t < 3; ++t)
      for (int k = 0; k < 3; ++k) total += w[k] * fir_up_tap(upconv_fir_index(p, t, k));
  CHECK(std::fabs(total - (0.3 - 1.1 + 0.7) * 2.0) < 1e-6, "1-D mass");
}

void test_output_mapping_bijective() {
  for (const ConvCase& c : conv_cases()) {
    const ConvGeom& g = c.g;
    const size_t total = (size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout;
    std::vector<int> hits(total, 0);
    bool in_range = true;
    for (int m = 0; m < geom_M(g); ++m) {
      const Pixel p = gemm_row_pixel(g, m);
      for (int j = 0; j < geom_N(g); ++j) {
        const OutCol oc = gemm_col_out(g, j);
        const int64_t off = gemm_out_offset(g, p, oc);
        if (off < 0 || (size_t)off >= total) {
          in_range = false;
          continue;
        }
        ++hits[off];
        CHECK(gemm_out_pixel(g, p, oc) == (int)((off / g.Cout) % (geom_OH(g) * geom_OW(g))), "noise pixel index");
      }
    }
    CHECK(in_range, "offsets in range");
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }), "every output written once");
    // Row decode round trip.
    for (int m = 0; m < geom_M(g); ++m) {
      const Pixel p = gemm_row_pixel(g, m);
      CHECK((p.b * g.H + p.y) * g.W + p.x == m, "row decode");
    }
  }
}

void test_packing() {
  ConvGeom g;
  g.batch = 1; g.H = g.W = 4; g.Cin = 5; g.Cout = 7; g.up = 2;
  const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
  const int K = geom_K(g), N = geom_N(g);
  const int Kpad = round_up(K, 32), Npad = round_up(N, 32);
  std::vector<float> kmaj((size_t)Kpad * Npad), nmaj((size_t)Kpad * Npad), colscale(Npad);
  pack_b_kmajor(g, W.data(), Kpad, Npad, kmaj.data());
  pack_b_nmajor_scaled(g, W.data(), Kpad, Npad, nmaj.data(), colscale.data());
  for (int k = 0; k < Kpad; ++k)
    for (int j = 0; j < Npad; ++j) {
      const float b = conv_b_value(g, W.data(), k, j);
      if (k >= K || j >= N) CHECK(b == 0.0f, "padding is zero");
      CHECK(kmaj[(size_t)k * Npad + j] == b, "k-major");
      const float v = nmaj[(size_t)j * Kpad + k];
      CHECK(std::fabs(v) <= 1.0f, "scaled into [-1, 1]");
      CHECK(close(v * colscale[j], b, 1e-7, 1e-6), "n-major * colscale");
    }
  for (int j = N; j < Npad; ++j) CHECK(colscale[j] == 1.0f, "all-zero column scale 1");
  // Demodulation table.
  std::vector<float> wsq((size_t)g.Cout * g.Cin);
  weight_sq_sums(W.data(), g.Cout, g.Cin, 9, wsq.data());
  double e = 0;
  for (int t = 0; t < 9; ++t) e += (double)W[(3 * g.Cin + 2) * 9 + t] * W[(3 * g.Cin + 2) * 9 + t];
  CHECK(close(wsq[3 * g.Cin + 2], e, 1e-7, 1e-6), "Wsq");
}

void test_up2_skip() {
  for (int n : {1, 2, 4, 5}) {
    std::vector<double> p(n * n);
    for (auto& v : p) v = std::uniform_real_distribution<double>(-1, 1)(g_rng);
    const auto ref = ref_upsample2d(p, n);
    for (int Y = 0; Y < 2 * n; ++Y)
      for (int X = 0; X < 2 * n; ++X) {
        const Up2Taps ty = up2_taps(Y, n), tx = up2_taps(X, n);
        CHECK(ty.i0 >= 0 && ty.i0 < n && ty.i1 >= 0 && ty.i1 < n, "taps readable");
        const double v = ty.w0 * (tx.w0 * p[ty.i0 * n + tx.i0] + tx.w1 * p[ty.i0 * n + tx.i1]) +
                         ty.w1 * (tx.w0 * p[ty.i1 * n + tx.i0] + tx.w1 * p[ty.i1 * n + tx.i1]);
        CHECK(close(v, ref[(size_t)Y * 2 * n + X], 1e-12, 1e-9), fmt("n=%g value %g", n, v));
      }
  }
}

void test_u8_and_lerp() {
  CHECK(float_to_u8(-1.0f) == 0, "-1 -> 0");
  CHECK(float_to_u8(0.0f) == 128, "0 -> 128");
  CHECK(float_to_u8(1.0f) == 255, "1 -> 255");
  CHECK(float_to_u8(0.5f) == 191, "0.5 -> 191");
  CHECK(float_to_u8(-0.5f) == 64, "-0.5 -> 64");
  CHECK(float_to_u8(-0.99f) == 1, "-0.99 -> 1");
  CHECK(float_to_u8(5.0f) == 255 && float_to_u8(-5.0f) == 0, "clamped");
  CHECK(float_to_u8(std::nanf("")) == 0, "NaN -> 0");
  for (int i = 0; i < 1000; ++i) {
    const float v = std::uniform_real_distribution<float>(-1.2f, 1.2f)(g_rng);
    const float t = std::min(255.0f, std::max(0.0f, v * 127.5f + 128.0f));
    CHECK(float_to_u8(v) == (uint8_t)t, "formula");
  }
  CHECK(lerp_torch(1.0f, 3.0f, 0.25f) == 1.0f + 0.25f * 2.0f, "lerp low branch");
  CHECK(lerp_torch(1.0f, 3.0f, 0.7f) == 3.0f - 2.0f * (1.0f - 0.7f), "lerp high branch");
  CHECK(lerp_torch(0.3f, -0.9f, 1.0f) == -0.9f, "psi 1 keeps w");
  CHECK(lerp_torch(0.3f, -0.9f, 0.0f) == 0.3f, "psi 0 gives w_avg");
}

// proganToUint8 (test/helpers/progan-reference.ts) in JavaScript's terms: x = v * scale + offset in
// double, Math.max(0, x), Math.min(255, .), Math.round (nearest, halves toward +infinity), stored
// into a Uint8Array (NaN -> 0).
uint8_t js_progan_u8(float v, double scale, double offset) {
  volatile double prod = (double)v * scale;
  const double x = prod + offset;
  if (std::isnan(x)) return 0;
  const double c = std::min(255.0, std::max(0.0, x));
  const double r = std::floor(c);
  const double rounded = (c - r > 0.5 || c - r == 0.5) ? r + 1.0 : r;
  return (uint8_t)rounded;
}

void test_u8_round() {
  const double sc = 127.5, off = 63.75;  // docs/progan.md
  CHECK(float_to_u8_round(0.5f, sc, off) == 128, "127.5 rounds up");
  CHECK(float_to_u8_round(-0.5f, sc, off) == 0, "0");
  CHECK(float_to_u8_round(0.25f, sc, off) == 96, "95.625 -> 96");
  CHECK(float_to_u8_round(1.0f, sc, off) == 191, "191.25 -> 191");
  CHECK(float_to_u8_round(1.5f, sc, off) == 255 && float_to_u8_round(9.0f, sc, off) == 255, "255 / clamped");
  CHECK(float_to_u8_round(-3.0f, sc, off) == 0, "clamped at 0");
  CHECK(float_to_u8_round(std::nanf(""), sc, off) == 0, "NaN -> 0");
  CHECK(float_to_u8_round(INFINITY, sc, off) == 255 && float_to_u8_round(-INFINITY, sc, off) == 0, "infinities");
  // Every value whose scaled result is a half-integer (v = (k + 0.5 - offset) / scale where that is
  // a float) and random values, against the JavaScript semantics.
  int halves = 0;
  for (int k = 0; k < 256; ++k) {
    const float v = (float)((k + 0.5 - off) / sc);
    if ((double)v * sc + off == k + 0.5) {
      ++halves;
      CHECK(float_to_u8_round(v, sc, off) == std::min(255, k + 1), "half-integer rounds up");
    }
  }
  CHECK(halves > 0, "some half-integers are reachable");
  for (int i = 0; i < 200000; ++i) {
    const float v = std::uniform_real_distribution<float>(-0.7f, 1.7f)(g_rng);
    CHECK(float_to_u8_round(v, sc, off) == js_progan_u8(v, sc, off), "scale 127.5, offset 63.75");
    CHECK(float_to_u8_round(v, 255.0, 0.0) == js_progan_u8(v, 255.0, 0.0), "scale 255, offset 0");
    CHECK(float_to_u8_round(v, 127.4, 63.1) == js_progan_u8(v, 127.4, 63.1), "inexact scale and offset");
  }
}

// Fragment maps: each is a bijection from (lane, element) onto its tile.
void test_mma_fragments() {
  std::vector<int> a(16 * 16, 0), b(16 * 8, 0), c(16 * 8, 0);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      int r, col;
      mma_a_elem(lane, i, &r, &col);
      CHECK(r >= 0 && r < 16 && col >= 0 && col < 16, "A in tile");
      ++a[r * 16 + col];
    }
    for (int i = 0; i < 4; ++i) {
      int k, n;
      mma_b_elem(lane, i, &k, &n);
      CHECK(k >= 0 && k < 16 && n >= 0 && n < 8, "B in tile");
      ++b[k * 8 + n];
      int r, col;
      mma_c_elem(lane, i, &r, &col);
      CHECK(r >= 0 && r < 16 && col >= 0 && col < 8, "C in tile");
      ++c[r * 8 + col];
    }
  }
  CHECK(std::all_of(a.begin(), a.end(), [](int h) { return h == 1; }), "A bijective");
  CHECK(std::all_of(b.begin(), b.end(), [](int h) { return h == 1; }), "B bijective");
  CHECK(std::all_of(c.begin(), c.end(), [](int h) { return h == 1; }), "C bijective");
  // Spot checks against the PTX ISA tables.
  int r, col;
  mma_a_elem(5, 7, &r, &col);  // groupID 1, tig 1, a7: row g+8, col 2*tig+1+8
  CHECK(r == 9 && col == 11, "a7 of lane 5");
  mma_a_elem(6, 2, &r, &col);  // a2: row g+8, col 2*tig
  CHECK(r == 9 && col == 4, "a2 of lane 6");
  mma_b_elem(6, 3, &r, &col);  // b3: k = 2*tig+1+8, n = g
  CHECK(r == 13 && col == 1, "b3 of lane 6");
  mma_c_elem(31, 3, &r, &col);
  CHECK(r == 15 && col == 7, "c3 of lane 31");
}

// Emulates ldmatrix.x4 as the PTX ISA defines it: matrix q's row i comes from the address supplied
// by lane 8q + i; lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix in register q.
// addr(lane) gives (row, col) into a 2-D array `mem` with row pitch `ld`.
void emulate_ldsm_x4(const std::vector<float>& mem, int ld, const std::function<void(int, int*, int*)>& addr,
                     float regs[32][4][2]) {
  for (int lane = 0; lane < 32; ++lane)
    for (int q = 0; q < 4; ++q)
      for (int e = 0; e < 2; ++e) {
        int mr, mc;
        ldsm_dst_elem(lane, e, &mr, &mc);
        int r0, c0;
        addr(8 * q + mr, &r0, &c0);
        regs[lane][q][e] = mem[(size_t)r0 * ld + c0 + mc];
      }
}

// ldmatrix (with our lane addresses) composed with the mma fragment maps gives exactly the
// operand tiles of the shared arrays: A [16 rows][16 k] and B [16 n][16 k].
void test_ldmatrix_feeds_mma() {
  const int ld = 40;  // LDS of the configs
  std::vector<float> As(16 * ld), Bs(16 * ld);
  for (int i = 0; i < 16 * ld; ++i) {
    As[i] = (float)i;
    Bs[i] = (float)(100000 + i);
  }
  float ra[32][4][2], rb[32][4][2];
  emulate_ldsm_x4(As, ld, [](int lane, int* r, int* c) { ldsm_a_addr(lane, r, c); }, ra);
  emulate_ldsm_x4(Bs, ld, [](int lane, int* n, int* k) { ldsm_b_addr(lane, n, k); }, rb);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      int r, c;
      mma_a_elem(lane, i, &r, &c);
      CHECK(ra[lane][i / 2][i % 2] == As[(size_t)r * ld + c], "A fragment element");
    }
    // First n8 tile: registers 0, 1; second: registers 2, 3.
    for (int t = 0; t < 2; ++t)
      for (int i = 0; i < 4; ++i) {
        int k, n;
        mma_b_elem(lane, i, &k, &n);
        CHECK(rb[lane][2 * t + i / 2][i % 2] == Bs[(size_t)(n + 8 * t) * ld + k], "B fragment element");
      }
  }
}

// Loader maps: the 16-byte vectors of all threads cover each [rows][32] k-tile exactly once.
template <class Cfg>
void check_mma_cfg_loaders() {
  std::vector<int> a(Cfg::BM * Cfg::BK, 0), b(Cfg::BN * Cfg::BK, 0);
  for (int tid = 0; tid < Cfg::THREADS; ++tid) {
    for (int i = 0; i < Cfg::A_VECS; ++i) {
      int r, kc;
      tile_vec_coord(tid + i * Cfg::THREADS, &r, &kc);
      for (int e = 0; e < Cfg::VEC; ++e) ++a[r * Cfg::BK + kc + e];
      CHECK(((r * Cfg::LDS + kc) * 2) % 16 == 0, "A vector 16-byte aligned in shared memory");
    }
    for (int i = 0; i < Cfg::B_VECS; ++i) {
      int r, kc;
      tile_vec_coord(tid + i * Cfg::THREADS, &r, &kc);
      for (int e = 0; e < Cfg::VEC; ++e) ++b[r * Cfg::BK + kc + e];
    }
  }
  CHECK(std::all_of(a.begin(), a.end(), [](int h) { return h == 1; }), "A tile covered once");
  CHECK(std::all_of(b.begin(), b.end(), [](int h) { return h == 1; }), "B tile covered once");
  // Warp tiles cover the block tile once.
  std::vector<int> c(Cfg::BM * Cfg::BN, 0);
  for (int w = 0; w < Cfg::WARPS; ++w) {
    int r0, c0;
    warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &r0, &c0);
    for (int r = 0; r < Cfg::WM; ++r)
      for (int cc = 0; cc < Cfg::WN; ++cc) ++c[(r0 + r) * Cfg::BN + c0 + cc];
  }
  CHECK(std::all_of(c.begin(), c.end(), [](int h) { return h == 1; }), "warp tiles cover the block tile once");
  CHECK((Cfg::LDS * 2) % 16 == 0, "row pitch keeps ldmatrix rows 16-byte aligned");
  // ldmatrix rows of one 8x8 matrix fall in distinct 16-byte bank groups (no conflicts).
  std::set<int> groups;
  for (int i = 0; i < 8; ++i) groups.insert(((i * Cfg::LDS * 2) / 16) % 8);
  CHECK(groups.size() == 8, "conflict-free ldmatrix");
}

void test_tile_loaders() {
  check_mma_cfg_loaders<MmaCfgWide>();
  check_mma_cfg_loaders<MmaCfgNarrow>();
  std::vector<int> a(FfmaCfg::BM * FfmaCfg::BK, 0), b(FfmaCfg::BK * FfmaCfg::BN, 0), c(FfmaCfg::BM * FfmaCfg::BN, 0);
  for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
    int r, k;
    ffma_a_coord(tid, &r, &k);
    for (int e = 0; e < 4; ++e) ++a[r * FfmaCfg::BK + k + e];
    ffma_b_coord(tid, &k, &r);
    for (int e = 0; e < 4; ++e) ++b[k * FfmaCfg::BN + r + e];
    int r0, c0;
    ffma_thread_origin(tid, &r0, &c0);
    for (int i = 0; i < FfmaCfg::TM; ++i)
      for (int j = 0; j < FfmaCfg::TN; ++j) ++c[(r0 + i) * FfmaCfg::BN + c0 + j];
  }
  auto once = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [](int h) { return h == 1; }); };
  CHECK(once(a), "FFMA A tile covered once");
  CHECK(once(b), "FFMA B tile covered once");
  CHECK(once(c), "FFMA outputs covered once");
}

// The tensor-core kernel's data flow on the host: loaders -> shared tiles -> ldmatrix -> mma ->
// epilogue, with the kernel's index functions and the PTX-defined ldmatrix / mma semantics.
template <class Cfg>
std::vector<float> emulate_mma_kernel(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                      const std::vector<float>& s, const std::vector<float>& W) {
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int Kpad = round_up(K, Cfg::BK), Npad = round_up(N, Cfg::BN);
  std::vector<float> Bp((size_t)Npad * Kpad), colscale(Npad);
  pack_b_nmajor_scaled(g, W.data(), Kpad, Npad, Bp.data(), colscale.data());
  std::vector<float> out((size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout, std::nanf(""));
  std::vector<float> As((size_t)Cfg::BM * Cfg::LDS), Bs((size_t)Cfg::BN * Cfg::LDS);
  std::vector<float> acc((size_t)Cfg::WARPS * 32 * Cfg::MI * Cfg::NI * 4);
  auto ACC = [&](int w, int lane, int mi, int ni, int e) -> float& {
    return acc[((((size_t)w * 32 + lane) * Cfg::MI + mi) * Cfg::NI + ni) * 4 + e];
  };
  for (int m0 = 0; m0 < M; m0 += Cfg::BM)
    for (int n0 = 0; n0 < Npad; n0 += Cfg::BN) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int k0 = 0; k0 < Kpad; k0 += Cfg::BK) {
        for (int tid = 0; tid < Cfg::THREADS; ++tid) {
          for (int i = 0; i < Cfg::A_VECS; ++i) {
            int row, kc;
            tile_vec_coord(tid + i * Cfg::THREADS, &row, &kc);
            const bool ok = m0 + row < M;
            const Pixel p = gemm_row_pixel(g, ok ? m0 + row : 0);
            for (int e = 0; e < Cfg::VEC; ++e) {
              const int k = k0 + kc + e;
              float v = 0.0f;
              if (ok && k < K) {
                const Tap t = gemm_k_tap(g, k);
                const int64_t off = gemm_a_offset_tap(g, p, t, bstride);
                if (off >= 0) v = x[off] * s[(size_t)p.b * g.Cin + t.c];
              }
              As[(size_t)row * Cfg::LDS + kc + e] = v;
            }
          }
          for (int i = 0; i < Cfg::B_VECS; ++i) {
            int row, kc;
            tile_vec_coord(tid + i * Cfg::THREADS, &row, &kc);
            for (int e = 0; e < Cfg::VEC; ++e)
              Bs[(size_t)row * Cfg::LDS + kc + e] = Bp[(size_t)(n0 + row) * Kpad + k0 + kc + e];
          }
        }
        for (int w = 0; w < Cfg::WARPS; ++w) {
          int wm0, wn0;
          warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &wm0, &wn0);
          for (int kk = 0; kk < Cfg::BK; kk += 16) {
            std::vector<std::array<std::array<float, 8>, 32>> af(Cfg::MI);
            std::vector<std::array<std::array<float, 4>, 32>> bf(Cfg::NI);
            for (int mi = 0; mi < Cfg::MI; ++mi) {
              float regs[32][4][2];
              emulate_ldsm_x4(As, Cfg::LDS,
                              [&](int lane, int* r, int* c) {
                                ldsm_a_addr(lane, r, c);
                                *r += wm0 + mi * 16;
                                *c += kk;
                              },
                              regs);
              for (int lane = 0; lane < 32; ++lane)
                for (int i = 0; i < 8; ++i) af[mi][lane][i] = regs[lane][i / 2][i % 2];
            }
            for (int p = 0; p < Cfg::NI / 2; ++p) {
              float regs[32][4][2];
              emulate_ldsm_x4(Bs, Cfg::LDS,
                              [&](int lane, int* n, int* k) {
                                ldsm_b_addr(lane, n, k);
                                *n += wn0 + p * 16;
                                *k += kk;
                              },
                              regs);
              for (int lane = 0; lane < 32; ++lane)
                for (int i = 0; i < 4; ++i) {
                  bf[2 * p][lane][i] = regs[lane][i / 2][i % 2];
                  bf[2 * p + 1][lane][i] = regs[lane][2 + i / 2][i % 2];
                }
            }
            // mma.sync m16n8k16 as defined by the fragment maps.
            for (int mi = 0; mi < Cfg::MI; ++mi)
              for (int ni = 0; ni < Cfg::NI; ++ni) {
                float A[16][16], B[16][8];
                for (int lane = 0; lane < 32; ++lane) {
                  for (int i = 0; i < 8; ++i) {
                    int r, c;
                    mma_a_elem(lane, i, &r, &c);
                    A[r][c] = af[mi][lane][i];
                  }
                  for (int i = 0; i < 4; ++i) {
                    int k, n;
                    mma_b_elem(lane, i, &k, &n);
                    B[k][n] = bf[ni][lane][i];
                  }
                }
                for (int lane = 0; lane < 32; ++lane)
                  for (int e = 0; e < 4; ++e) {
                    int r, c;
                    mma_c_elem(lane, e, &r, &c);
                    float d = 0.0f;
                    for (int k = 0; k < 16; ++k) d += A[r][k] * B[k][c];
                    ACC(w, lane, mi, ni, e) += d;
                  }
              }
          }
        }
      }
      // Epilogue (as the kernel: rows from e = 0 / 2, columns from each e).
      for (int w = 0; w < Cfg::WARPS; ++w) {
        int wm0, wn0;
        warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &wm0, &wn0);
        for (int lane = 0; lane < 32; ++lane)
          for (int mi = 0; mi < Cfg::MI; ++mi)
            for (int h = 0; h < 2; ++h) {
              int r, c;
              mma_c_elem(lane, 2 * h, &r, &c);
              const int m = m0 + wm0 + mi * 16 + r;
              if (m >= M) continue;
              const Pixel p = gemm_row_pixel(g, m);
              for (int ni = 0; ni < Cfg::NI; ++ni)
                for (int e = 0; e < 2; ++e) {
                  int rr, cc;
                  mma_c_elem(lane, 2 * h + e, &rr, &cc);
                  const int col = n0 + wn0 + ni * 8 + cc;
                  if (col < N)
                    out[gemm_out_offset(g, p, gemm_col_out(g, col))] = ACC(w, lane, mi, ni, 2 * h + e) * colscale[col];
                }
            }
      }
    }
  return out;
}

std::vector<float> emulate_ffma_kernel(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                       const std::vector<float>& s, const std::vector<float>& W) {
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int Kpad = round_up(K, FfmaCfg::BK), Npad = round_up(N, FfmaCfg::BN);
  std::vector<float> Bp((size_t)Kpad * Npad);
  pack_b_kmajor(g, W.data(), Kpad, Npad, Bp.data());
  std::vector<float> out((size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout, std::nanf(""));
  constexpr int BM = FfmaCfg::BM, BN = FfmaCfg::BN, BK = FfmaCfg::BK;
  std::vector<float> As(BK * (BM + FfmaCfg::APAD)), Bs(BK * BN), acc((size_t)FfmaCfg::THREADS * 16);
  for (int m0 = 0; m0 < M; m0 += BM)
    for (int n0 = 0; n0 < Npad; n0 += BN) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int k0 = 0; k0 < Kpad; k0 += BK) {
        for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
          int row, kq;
          ffma_a_coord(tid, &row, &kq);
          const bool ok = m0 + row < M;
          const Pixel p = gemm_row_pixel(g, ok ? m0 + row : 0);
          for (int e = 0; e < 4; ++e) {
            const int k = k0 + kq + e;
            float v = 0.0f;
            if (ok && k < K) {
              const Tap t = gemm_k_tap(g, k);
              const int64_t off = gemm_a_offset_tap(g, p, t, bstride);
              if (off >= 0) v = x[off] * s[(size_t)p.b * g.Cin + t.c];
            }
            As[(kq + e) * (BM + FfmaCfg::APAD) + row] = v;
          }
          int bk, bnq;
          ffma_b_coord(tid, &bk, &bnq);
          for (int e = 0; e < 4; ++e) Bs[bk * BN + bnq + e] = Bp[(size_t)(k0 + bk) * Npad + n0 + bnq + e];
        }
        for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
          int r0, c0;
          ffma_thread_origin(tid, &r0, &c0);
          for (int kk = 0; kk < BK; ++kk)
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j)
                acc[tid * 16 + i * 4 + j] += As[kk * (BM + FfmaCfg::APAD) + r0 + i] * Bs[kk * BN + c0 + j];
        }
      }
      for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
        int r0, c0;
        ffma_thread_origin(tid, &r0, &c0);
        for (int i = 0; i < 4; ++i) {
          const int m = m0 + r0 + i;
          if (m >= M) continue;
          const Pixel p = gemm_row_pixel(g, m);
          for (int j = 0; j < 4; ++j) {
            const int col = n0 + c0 + j;
            if (col < N) out[gemm_out_offset(g, p, gemm_col_out(g, col))] = acc[tid * 16 + i * 4 + j];
          }
        }
      }
    }
  return out;
}

void test_kernel_emulation() {
  for (const ConvCase& c : conv_cases()) {
    const ConvGeom& g = c.g;
    const int64_t bstride = c.broadcast ? 0 : in_plane(g);
    const auto x = random_vec((size_t)(c.broadcast ? 1 : g.batch) * in_plane(g));
    const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
    const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
    const auto ref = ref_modconv(g, x, bstride, s, W);
    const std::string name = "up " + std::to_string(g.up) + " src_shift " + std::to_string(g.src_shift) + " Cin " +
                             std::to_string(g.Cin) + " Cout " + std::to_string(g.Cout) + ": ";
    double rmax, d;
    d = max_abs_diff(emulate_ffma_kernel(g, x, bstride, s, W), ref, &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("FFMA max diff %g (ref max %g)", d, rmax));
    d = max_abs_diff(emulate_mma_kernel<MmaCfgWide>(g, x, bstride, s, W), ref, &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("MMA wide max diff %g (ref max %g)", d, rmax));
    d = max_abs_diff(emulate_mma_kernel<MmaCfgNarrow>(g, x, bstride, s, W), ref, &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("MMA narrow max diff %g (ref max %g)", d, rmax));
  }
  // A case larger than one tile in every dimension (several M, N and K tiles).
  ConvGeom g;
  g.batch = 2; g.H = g.W = 12; g.Cin = 24; g.Cout = 40; g.up = 2;
  const int64_t bstride = (int64_t)g.H * g.W * g.Cin;
  const auto x = random_vec((size_t)g.batch * bstride);
  const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
  const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
  const auto ref = ref_upconv(g, x, bstride, s, W);
  double rmax;
  double d = max_abs_diff(emulate_mma_kernel<MmaCfgWide>(g, x, bstride, s, W), ref, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile MMA max diff %g (ref max %g)", d, rmax));
  d = max_abs_diff(emulate_ffma_kernel(g, x, bstride, s, W), ref, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile FFMA max diff %g (ref max %g)", d, rmax));
  // The same with ProGAN's nearest-x2 input (a 12x12 source read as a 24x24 grid), unmodulated.
  ConvGeom h;
  h.batch = 2; h.H = h.W = 24; h.Cin = 24; h.Cout = 40; h.src_shift = 1;
  const auto xh = random_vec((size_t)h.batch * in_plane(h));
  const std::vector<float> ones((size_t)h.batch * h.Cin, 1.0f);
  const auto refh = ref_modconv(h, xh, in_plane(h), ones, W);
  d = max_abs_diff(emulate_mma_kernel<MmaCfgWide>(h, xh, in_plane(h), ones, W), refh, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile nearest-x2 MMA max diff %g (ref max %g)", d, rmax));
  d = max_abs_diff(emulate_ffma_kernel(h, xh, in_plane(h), ones, W), refh, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile nearest-x2 FFMA max diff %g (ref max %g)", d, rmax));
}

void test_row_plans() {
  RowTile seg;
  seg.K = 10; seg.ld = 10; seg.m_off = 1000; seg.out_off = 7; seg.bias_off = 3;
  std::vector<RowTile> tiles;
  split_rows(seg, 70, 32, &tiles);
  CHECK(tiles.size() == 3, "3 tiles");
  int rows = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    CHECK(tiles[i].out_off == 7 + rows && tiles[i].bias_off == 3 + rows && tiles[i].m_off == 1000 + rows * 10,
          "offsets advance with the rows");
    CHECK(tiles[i].first == (i == 0 ? 1 : 0), "first flag");
    rows += tiles[i].nrows;
  }
  CHECK(rows == 70, "all rows");
  CHECK(rows_samples_per_block(1, 512) == 1 && rows_samples_per_block(100, 512) == 8, "samples per block");
  CHECK(rows_samples_per_block(100, 4096) == 3 && rows_samples_per_block(100, 20000) == 1, "shared memory cap");
}

// ---------------------------------------------------------------------------------------------
// A small synthetic network (the Network description the core builds, filled in by hand) and a
// naive host forward pass from docs/stylegan2.md.

struct TinyModel {
  Network net;
  std::vector<std::vector<float>> store;
  const float* keep(std::vector<float> v) {
    store.push_back(std::move(v));
    return store.back().data();
  }
};

// res 16: b4 (conv1, torgb), b8 (conv0 up, conv1, torgb), b16 (conv0 up, conv1, torgb).
// Channels 32, 32, 10 (10: the scalar loader paths); c_dim 5 (label embedding); clamps on b16.
std::unique_ptr<TinyModel> make_tiny_model() {
  std::unique_ptr<TinyModel> t(new TinyModel());
  Network& n = t->net;
  const int z_dim = 24, w_dim = 32, c_dim = 5, R = 16, img_ch = 3;
  n.info.arch = "stylegan2";
  n.info.z_dim = z_dim; n.info.w_dim = w_dim; n.info.c_dim = c_dim;
  n.info.img_resolution = R; n.info.img_channels = img_ch; n.info.num_ws = 6; n.info.mapping_layers = 2;
  MappingDesc& m = n.mapping;
  m.z_dim = z_dim; m.c_dim = c_dim; m.w_dim = w_dim; m.num_ws = 6;
  m.has_embed = true;
  auto fc = [&](int in, int out, float lr, bool lrelu) {
    FcDesc f;
    f.in = in; f.out = out;
    f.W = t->keep(random_vec((size_t)in * out, -1.7f / lr, 1.7f / lr));  // raw values: randn / lr
    f.b = t->keep(random_vec(out, -1.0f, 1.0f));
    f.w_gain = lr / std::sqrt((float)in);
    f.b_gain = lr;
    f.lrelu = lrelu;
    return f;
  };
  m.embed = fc(c_dim, w_dim, 1.0f, false);
  m.fcs.push_back(fc(z_dim + w_dim, w_dim, 0.01f, true));
  m.fcs.push_back(fc(w_dim, w_dim, 0.01f, true));
  m.w_avg = t->keep(random_vec(w_dim, -0.5f, 0.5f));
  n.const_ch = 32;
  n.const_input = t->keep(random_vec(16 * 32));
  const int ch[3] = {32, 32, 10};
  int style = 0, w_index = 0;
  auto layer = [&](const std::string& name, LayerDesc::Kind kind, int in_res, int up, int in_ch, int out_ch, int wi,
                   float clamp) {
    LayerDesc L;
    L.kind = kind;
    L.name = name;
    L.in_res = in_res; L.out_res = in_res * up; L.up = up;
    L.in_ch = in_ch; L.out_ch = out_ch;
    L.ksize = kind == LayerDesc::Conv ? 3 : 1;
    L.w_index = wi;
    L.affine_W = t->keep(random_vec((size_t)in_ch * w_dim, -1.7f, 1.7f));
    L.affine_b = t->keep(random_vec(in_ch, 0.5f, 1.5f));
    L.affine_gain = 1.0f / std::sqrt((float)w_dim);
    L.style_gain = kind == LayerDesc::Conv ? 1.0f : 1.0f / std::sqrt((float)in_ch);
    L.style_offset = style;
    style += in_ch;
    L.weight = t->keep(random_vec((size_t)out_ch * in_ch * L.ksize * L.ksize, -1.7f, 1.7f));
    L.bias = t->keep(random_vec(out_ch, -0.3f, 0.3f));
    L.demodulate = kind == LayerDesc::Conv;
    L.activate = kind == LayerDesc::Conv;
    L.clamp = clamp;
    if (kind == LayerDesc::Conv) {
      L.has_noise = true;
      L.noise_strength = 0.3f;
      L.noise_const = t->keep(random_vec((size_t)L.out_res * L.out_res));
    }
    n.layers.push_back(L);
  };
  layer("b4.conv1", LayerDesc::Conv, 4, 1, 32, ch[0], 0, -1.0f);
  layer("b4.torgb", LayerDesc::ToRGB, 4, 1, ch[0], img_ch, 1, -1.0f);
  w_index = 1;
  for (int bi = 1; bi < 3; ++bi) {
    const int r = 4 << bi;
    const float clamp = bi == 2 ? 1.5f : -1.0f;
    const std::string b = "b" + std::to_string(r);
    layer(b + ".conv0", LayerDesc::Conv, r / 2, 2, ch[bi - 1], ch[bi], w_index, clamp);
    layer(b + ".conv1", LayerDesc::Conv, r, 1, ch[bi], ch[bi], w_index + 1, clamp);
    layer(b + ".torgb", LayerDesc::ToRGB, r, 1, ch[bi], img_ch, w_index + 2, clamp);
    w_index += 2;
  }
  n.style_dim = style;
  return t;
}

void test_style_plan() {
  auto t = make_tiny_model();
  const Network& n = t->net;
  StylePlan p;
  std::string err;
  CHECK(build_style_plan(n, 32, &p, &err), err);
  std::vector<int> rows(n.style_dim, 0);
  for (const RowTile& tile : p.affine_tiles)
    for (int r = 0; r < tile.nrows; ++r) {
      ++rows[tile.out_off + r];
      CHECK(tile.bias_off == tile.out_off && tile.m_off == (int64_t)tile.out_off * n.mapping.w_dim, "affine rows");
    }
  CHECK(std::all_of(rows.begin(), rows.end(), [](int h) { return h == 1; }), "every style written once");
  int convs = 0, dsum = 0;
  for (size_t i = 0; i < n.layers.size(); ++i) {
    if (n.layers[i].kind == LayerDesc::Conv) {
      CHECK(p.conv_index[i] == convs++, "conv ordinal");
      CHECK(p.d_off[i] == dsum, "demod offset");
      dsum += n.layers[i].out_ch;
    } else {
      CHECK(p.conv_index[i] == -1 && p.d_off[i] == -1, "toRGB has no demod");
    }
  }
  CHECK(p.num_conv == convs && p.demod_dim == dsum, "demod totals");
  std::vector<int> d(dsum, 0);
  for (const RowTile& tile : p.demod_tiles)
    for (int r = 0; r < tile.nrows; ++r) ++d[tile.out_off + r];
  CHECK(std::all_of(d.begin(), d.end(), [](int h) { return h == 1; }), "every coefficient written once");
  // Overlapping style rows are an error.
  Network bad = n;
  bad.layers[1].style_offset = 0;
  StylePlan q;
  CHECK(!build_style_plan(bad, 32, &q, &err) && err.find("overlap") != std::string::npos, "overlap detected");
}

// conv_layer_geom: StyleGAN2's convs keep the input grid (up-convs as 4 polyphase phases), ProGAN's
// nearest up-convs become the plain conv over the output grid reading the input via src_shift.
void test_conv_layer_geom() {
  auto t = make_tiny_model();
  for (const LayerDesc& L : t->net.layers) {
    if (L.kind != LayerDesc::Conv) continue;
    const ConvGeom g = conv_layer_geom(L);
    CHECK(g.H == L.in_res && g.W == L.in_res && g.up == L.up && g.src_shift == 0 && g.Cin == L.in_ch &&
              g.Cout == L.out_ch && geom_OH(g) == L.out_res,
          "StyleGAN2 " + L.name);
  }
  LayerDesc L;
  L.kind = LayerDesc::Conv;
  L.up = 2;
  L.resample = LayerDesc::Nearest;
  L.in_res = 8;
  L.out_res = 16;
  L.in_ch = 5;
  L.out_ch = 7;
  const ConvGeom g = conv_layer_geom(L);
  CHECK(g.H == 16 && g.W == 16 && g.up == 1 && g.src_shift == 1 && geom_OH(g) == 16 && in_plane(g) == 8 * 8 * 5,
        "ProGAN nearest up-conv");
}

void ref_mapping(const Network& net, int nb, const float* z, const float* c, float psi, std::vector<float>* ws) {
  const MappingDesc& m = net.mapping;
  ws->assign((size_t)nb * m.num_ws * m.w_dim, 0.0f);
  for (int b = 0; b < nb; ++b) {
    auto norm = [](std::vector<double> v) {
      double ss = 0;
      for (double x : v) ss += x * x;
      const double r = 1.0 / std::sqrt(ss / v.size() + 1e-8);
      for (double& x : v) x *= r;
      return v;
    };
    auto apply = [](const FcDesc& f, const std::vector<double>& x) {
      std::vector<double> y(f.out);
      for (int o = 0; o < f.out; ++o) {
        double acc = 0;
        for (int i = 0; i < f.in; ++i) acc += x[i] * f.W[(size_t)o * f.in + i] * f.w_gain;
        acc += f.b[o] * f.b_gain;
        if (f.lrelu) acc = (acc < 0 ? acc * 0.2 : acc) * std::sqrt(2.0);
        y[o] = acc;
      }
      return y;
    };
    std::vector<double> x = norm(std::vector<double>(z + (size_t)b * m.z_dim, z + (size_t)(b + 1) * m.z_dim));
    if (m.has_embed) {
      const auto e = norm(apply(m.embed, std::vector<double>(c + (size_t)b * m.c_dim, c + (size_t)(b + 1) * m.c_dim)));
      x.insert(x.end(), e.begin(), e.end());
    }
    for (const FcDesc& f : m.fcs) x = apply(f, x);
    for (int r = 0; r < m.num_ws; ++r)
      for (int k = 0; k < m.w_dim; ++k)
        (*ws)[((size_t)b * m.num_ws + r) * m.w_dim + k] = (float)(m.w_avg[k] + psi * (x[k] - m.w_avg[k]));
  }
}

// noise: 0 const, 1 none, 2 random (noise_normal, as the CUDA backend draws it).
std::vector<float> ref_synthesis(const Network& net, int nb, const std::vector<float>& ws, int noise, uint64_t seed) {
  const int w_dim = net.mapping.w_dim, num_ws = net.mapping.num_ws, C = net.info.img_channels;
  std::vector<float> img_all;
  for (int b = 0; b < nb; ++b) {
    const float* wb = ws.data() + (size_t)b * num_ws * w_dim;
    int res = 4, ch = net.const_ch, conv_idx = 0;
    std::vector<float> x(16 * ch);  // NHWC
    for (int c = 0; c < ch; ++c)
      for (int p = 0; p < 16; ++p) x[(size_t)p * ch + c] = net.const_input[(size_t)c * 16 + p];
    std::vector<double> img;  // NCHW for this sample
    int img_res = 0;
    for (const LayerDesc& L : net.layers) {
      std::vector<float> s(L.in_ch);
      for (int i = 0; i < L.in_ch; ++i) {
        double acc = 0;
        for (int k = 0; k < w_dim; ++k) acc += (double)wb[(size_t)L.w_index * w_dim + k] * L.affine_W[(size_t)i * w_dim + k];
        s[i] = (float)((acc * L.affine_gain + L.affine_b[i]) * L.style_gain);
      }
      if (L.kind == LayerDesc::Conv) {
        ConvGeom g;
        g.batch = 1; g.H = g.W = res; g.Cin = L.in_ch; g.Cout = L.out_ch; g.up = L.up;
        std::vector<float> W(L.weight, L.weight + (size_t)L.out_ch * L.in_ch * 9);
        // Modulate + demodulate the weight per sample (the official formulation).
        for (int o = 0; o < L.out_ch; ++o) {
          double ss = 0;
          for (int i = 0; i < L.in_ch; ++i)
            for (int t = 0; t < 9; ++t) {
              const double v = (double)W[((size_t)o * L.in_ch + i) * 9 + t] * s[i];
              ss += v * v;
            }
          const double d = 1.0 / std::sqrt(ss + 1e-8);
          for (int i = 0; i < L.in_ch; ++i)
            for (int t = 0; t < 9; ++t) W[((size_t)o * L.in_ch + i) * 9 + t] = (float)(W[((size_t)o * L.in_ch + i) * 9 + t] * d);
        }
        std::vector<float> y = ref_modconv(g, x, 0, s, W);
        const int R2 = L.out_res * L.out_res;
        for (int p = 0; p < R2; ++p)
          for (int o = 0; o < L.out_ch; ++o) {
            double v = y[(size_t)p * L.out_ch + o];
            const double nz = noise == 0 ? L.noise_const[p] : noise == 2 ? noise_normal(seed, conv_idx, b, p) : 0.0;
            v += nz * L.noise_strength + L.bias[o];
            v = (v < 0 ? v * 0.2 : v) * std::sqrt(2.0);
            if (L.clamp >= 0) v = std::min<double>(std::max<double>(v, -L.clamp), L.clamp);
            y[(size_t)p * L.out_ch + o] = (float)v;
          }
        x = y;
        res = L.out_res;
        ch = L.out_ch;
        ++conv_idx;
      } else {
        const int R2 = res * res;
        std::vector<double> out((size_t)C * R2);
        for (int c = 0; c < C; ++c) {
          std::vector<double> up;
          if (img_res) {
            up = ref_upsample2d(std::vector<double>(img.begin() + (size_t)c * img_res * img_res,
                                                    img.begin() + (size_t)(c + 1) * img_res * img_res),
                                img_res);
          }
          for (int p = 0; p < R2; ++p) {
            double acc = 0;
            for (int i = 0; i < ch; ++i) acc += (double)x[(size_t)p * ch + i] * s[i] * L.weight[(size_t)c * ch + i];
            acc += L.bias[c];
            if (L.clamp >= 0) acc = std::min<double>(std::max<double>(acc, -L.clamp), L.clamp);
            out[(size_t)c * R2 + p] = (img_res ? up[p] : 0.0) + acc;
          }
        }
        img = out;
        img_res = res;
      }
    }
    img_all.insert(img_all.end(), img.begin(), img.end());
  }
  return img_all;
}

using testref::rel_l2;

// The host reference of this file against the core's scalar reference engine (cpu-ref), so that
// the GPU parity check below compares against something known to match the official math.
void test_host_reference_vs_cpu_ref() {
  auto t = make_tiny_model();
  const Network& net = t->net;
  std::unique_ptr<Backend> be;
  for (const BackendReg& r : backend_registry())
    if (std::string(r.name) == "cpu-ref") be = r.create();
  CHECK(be != nullptr, "cpu-ref is registered");
  if (!be) return;
  LoadOptions opt;
  opt.backend = "cpu-ref";
  opt.num_threads = 1;
  const Status st = be->prepare(net, opt);
  CHECK(st.ok, "cpu-ref prepare: " + st.message);
  if (!st.ok) return;
  const int nb = 2;
  const auto z = random_vec((size_t)nb * net.mapping.z_dim, -2.0f, 2.0f);
  std::vector<float> c((size_t)nb * net.mapping.c_dim, 0.0f);
  for (int b = 0; b < nb; ++b) c[(size_t)b * net.mapping.c_dim + b + 1] = 1.0f;
  std::vector<float> ws_ref, ws((size_t)nb * net.mapping.num_ws * net.mapping.w_dim);
  ref_mapping(net, nb, z.data(), c.data(), 0.7f, &ws_ref);
  MappingArgs ma;
  ma.n = nb;
  ma.z = z.data();
  ma.c = c.data();
  ma.psi = 0.7f;
  ma.ws = ws.data();
  CHECK(be->mapping(ma).ok, "cpu-ref mapping");
  const double em = rel_l2(ws, ws_ref);
  CHECK(em < 1e-5, fmt("mapping rel. L2 error %g (limit %g)", em, 1e-5));
  for (int mode = 0; mode < 2; ++mode) {
    SynthesisArgs sa;
    sa.n = nb;
    sa.ws = ws_ref.data();
    sa.noise = mode == 0 ? NoiseMode::Const : NoiseMode::None;
    std::vector<float> img((size_t)nb * net.info.img_channels * net.info.img_resolution * net.info.img_resolution);
    sa.img = img.data();
    CHECK(be->synthesis(sa).ok, "cpu-ref synthesis");
    const double e = rel_l2(img, ref_synthesis(net, nb, ws_ref, mode, 0));
    CHECK(e < 1e-5, "noise mode " + std::to_string(mode) + fmt(": image rel. L2 error %g (limit %g)", e, 1e-5));
  }
}

#if defined(FACEGAN_WITH_CUDA) || defined(FACEGAN_WITH_CUDA_EMU)
// A registered backend by name ("cuda", or "cuda-emu": the same sources on the CPU emulator).
const BackendReg* find_backend(const std::string& name) {
  for (const BackendReg& r : backend_registry())
    if (name == r.name) return &r;
  return nullptr;
}

void test_cuda_backend(const std::string& bname) {
  const BackendReg* reg = find_backend(bname);
  CHECK(reg != nullptr, bname + " is registered");
  if (!reg) return;
  std::string why;
  const bool avail = reg->available(&why);
  if (!avail) {
    CHECK(!why.empty(), "unavailable with a reason");
    std::printf("        (CUDA backend unavailable here: %s; GPU parity skipped)\n", why.c_str());
    // Creating and preparing must fail cleanly too.
    auto t = make_tiny_model();
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda";
    const Status st = be->prepare(t->net, opt);
    CHECK(!st.ok && !st.message.empty(), "prepare without a GPU returns an error");
    std::printf("        (prepare without a GPU: %s)\n", st.message.c_str());
    return;
  }
  auto t = make_tiny_model();
  const Network& net = t->net;
  const int nb = 3;
  const auto z = random_vec((size_t)nb * net.mapping.z_dim, -2.0f, 2.0f);
  std::vector<float> c((size_t)nb * net.mapping.c_dim, 0.0f);
  for (int b = 0; b < nb; ++b) c[(size_t)b * net.mapping.c_dim + (b * 2) % net.mapping.c_dim] = 1.0f;
  std::vector<float> ws_ref;
  ref_mapping(net, nb, z.data(), c.data(), 0.7f, &ws_ref);
  const size_t img_elems = (size_t)nb * net.info.img_channels * net.info.img_resolution * net.info.img_resolution;
  for (Precision prec : {Precision::FP32, Precision::FP16, Precision::BF16}) {
    const char* pname = prec == Precision::FP32 ? "fp32" : prec == Precision::FP16 ? "fp16" : "bf16";
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda";
    opt.precision = prec;
    const Status st = be->prepare(net, opt);
    if (!st.ok && prec == Precision::BF16 && st.message.find("compute capability") != std::string::npos) {
      std::printf("        (bf16 skipped: %s)\n", st.message.c_str());
      continue;
    }
    CHECK(st.ok, std::string(pname) + " prepare: " + st.message);
    if (!st.ok) continue;
    MappingArgs ma;
    ma.n = nb;
    ma.z = z.data();
    ma.c = c.data();
    ma.psi = 0.7f;
    std::vector<float> ws((size_t)nb * net.mapping.num_ws * net.mapping.w_dim);
    ma.ws = ws.data();
    const Status ms = be->mapping(ma);
    CHECK(ms.ok, "mapping: " + ms.message);
    const double em = rel_l2(ws, ws_ref);
    CHECK(em < 1e-5, std::string(pname) + fmt(" mapping rel. L2 error %g (limit %g)", em, 1e-5));
    const double limit = prec == Precision::FP32 ? 1e-5 : prec == Precision::FP16 ? 1e-2 : 4e-2;
    for (int mode = 0; mode < 3; ++mode) {
      SynthesisArgs sa;
      sa.n = nb;
      sa.ws = ws_ref.data();
      sa.noise = mode == 0 ? NoiseMode::Const : mode == 1 ? NoiseMode::None : NoiseMode::Random;
      sa.noise_seed = 0x5eedull;
      std::vector<float> img(img_elems);
      std::vector<uint8_t> u8(img_elems);
      sa.img = img.data();
      sa.img_u8 = u8.data();
      for (int rep = 0; rep < 2; ++rep) {  // the second run replays the captured graph
        const Status ss = be->synthesis(sa);
        CHECK(ss.ok, "synthesis: " + ss.message);
        const auto ref = ref_synthesis(net, nb, ws_ref, mode, sa.noise_seed);
        const double e = rel_l2(img, ref);
        CHECK(e < limit, std::string(pname) + " noise mode " + std::to_string(mode) + " run " + std::to_string(rep) +
                             fmt(": image rel. L2 error %g (limit %g)", e, limit));
        // uint8 output is the float output converted (HWC).
        const int R = net.info.img_resolution, C = net.info.img_channels;
        bool u8_ok = true;
        for (int b = 0; b < nb && u8_ok; ++b)
          for (int p = 0; p < R * R && u8_ok; ++p)
            for (int ch = 0; ch < C; ++ch)
              if (u8[((size_t)b * R * R + p) * C + ch] != float_to_u8(img[((size_t)b * C + ch) * R * R + p])) u8_ok = false;
        CHECK(u8_ok, "uint8 output matches the float output");
      }
    }
    // Batch invariance: sample 1 alone equals sample 1 of the batch (const noise and random noise
    // use absolute sample indices, so take sample 0 for the random check).
    SynthesisArgs one;
    one.n = 1;
    one.ws = ws_ref.data();
    one.noise = NoiseMode::Const;
    std::vector<float> img1((size_t)net.info.img_channels * net.info.img_resolution * net.info.img_resolution);
    one.img = img1.data();
    CHECK(be->synthesis(one).ok, "batch-1 synthesis");
    SynthesisArgs all = one;
    all.n = nb;
    std::vector<float> imgn(img_elems);
    all.img = imgn.data();
    CHECK(be->synthesis(all).ok, "batch synthesis");
    double d = 0;
    for (size_t i = 0; i < img1.size(); ++i) d = std::max(d, (double)std::fabs(img1[i] - imgn[i]));
    CHECK(d <= (prec == Precision::FP32 ? 1e-5 : 1e-2), fmt("batching changes sample 0 by %g (%g)", d, 0.0));
    // Chunking with image_offset: image 2 of a random-noise request computed alone (image_offset 2)
    // equals image 2 of the whole request.
    all.noise = one.noise = NoiseMode::Random;
    all.noise_seed = one.noise_seed = 0xC0FFEEull;
    CHECK(be->synthesis(all).ok, "random batch synthesis");
    one.ws = ws_ref.data() + (size_t)2 * net.mapping.num_ws * net.mapping.w_dim;
    one.image_offset = 2;
    CHECK(be->synthesis(one).ok, "random synthesis with image_offset");
    d = 0;
    for (size_t i = 0; i < img1.size(); ++i) d = std::max(d, (double)std::fabs(img1[i] - imgn[2 * img1.size() + i]));
    CHECK(d <= (prec == Precision::FP32 ? 1e-5 : 1e-2), fmt("image_offset chunk differs by %g (%g)", d, 0.0));
  }
}

// The noise kernel on the device against noise_fill on the host, bit for bit (philox.cuh's
// Box-Muller is built from correctly rounded float operations only).
#endif
#ifdef FACEGAN_WITH_CUDA
void test_cuda_noise_bits() {
  if (!cuda_backend_available(nullptr)) {
    std::printf("        (no usable GPU: skipped)\n");
    return;
  }
  const int n = 3, plane = 64 * 64 + 3, layer = 5;
  NoiseParams hp;
  hp.seed = 0xfeedfacecafebeefull;
  hp.image_base = 0xfffffffeu;  // wraps past 2^32 within the batch
  hp.pad = 0;
  NoiseParams* dp = nullptr;
  float* dout = nullptr;
  CHECK(cudaMalloc(&dp, sizeof hp) == cudaSuccess && cudaMalloc(&dout, (size_t)n * plane * sizeof(float)) == cudaSuccess,
        "cudaMalloc");
  if (!dp || !dout) return;
  std::vector<float> got((size_t)n * plane);
  const bool ok = cudaMemcpy(dp, &hp, sizeof hp, cudaMemcpyHostToDevice) == cudaSuccess &&
                  launch_noise(n, plane, layer, dp, dout, nullptr).ok && cudaDeviceSynchronize() == cudaSuccess &&
                  cudaMemcpy(got.data(), dout, got.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess;
  CHECK(ok, "noise kernel ran");
  cudaFree(dp);
  cudaFree(dout);
  if (!ok) return;
  for (int b = 0; b < n; ++b) {
    std::vector<float> want((size_t)plane);
    noise_fill(hp.seed, layer, hp.image_base + (uint32_t)b, 0, (size_t)plane, want.data());
    size_t diff = 0;
    for (int p = 0; p < plane; ++p)
      if (std::memcmp(&want[(size_t)p], &got[(size_t)b * plane + p], sizeof(float)) != 0) ++diff;
    CHECK(diff == 0, "image " + std::to_string(b) + ": " + std::to_string(diff) + " device normals differ from the host's");
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// ProGAN: a small model in the canonical tensors of docs/progan.md, built into the shared
// description by the core's build_network (the path every backend reads), and a naive forward
// pass written from docs/progan.md on the raw tensors (not on the description).

struct TinyProgan {
  int Z = 0, R = 0, IC = 0;
  std::vector<int> C;
  std::string config;
  std::vector<std::pair<std::string, std::vector<float>>> data;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<TensorView> views;
  Network net;
  const std::vector<float>& get(const std::string& name) const {
    for (const auto& kv : data)
      if (kv.first == name) return kv.second;
    static const std::vector<float> none;
    return none;
  }
};

std::unique_ptr<TinyProgan> make_tiny_progan(int Z, int R, const std::vector<int>& C, int IC, std::string* err) {
  std::unique_ptr<TinyProgan> t(new TinyProgan());
  t->Z = Z; t->R = R; t->IC = IC; t->C = C;
  std::string ch;
  for (size_t i = 0; i < C.size(); ++i) ch += (i ? ", " : "") + std::to_string(C[i]);
  t->config = "{\"arch\": \"progan\", \"z_dim\": " + std::to_string(Z) + ", \"img_resolution\": " + std::to_string(R) +
              ", \"img_channels\": " + std::to_string(IC) + ", \"channels\": [" + ch +
              "], \"lrelu_slope\": 0.2, \"pixelnorm_eps\": 1e-8, \"normalize_latent\": true, "
              "\"upsample\": \"nearest\", \"weight_gain\": 1, "
              "\"output\": {\"tfhub_clip\": [0, 1], \"scale\": 127.5, \"offset\": 63.75}}";
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float amp, float centre = 0.0f) {
    size_t count = 1;
    for (int64_t d : shape) count *= (size_t)d;
    t->data.emplace_back(name, random_vec(count, centre - amp, centre + amp));
    t->shapes.push_back(std::move(shape));
  };
  // He-like scales (the stored ProGAN weights have the run-time gain folded in).
  add("progan.dense.weight", {16 * (int64_t)C[0], Z}, std::sqrt(3.0f / Z));
  add("progan.dense.bias", {C[0]}, 0.2f);
  add("progan.b4.conv1.weight", {C[0], C[0], 3, 3}, std::sqrt(6.0f / (9.0f * C[0])));
  add("progan.b4.conv1.bias", {C[0]}, 0.2f);
  for (size_t i = 1; i < C.size(); ++i) {
    const std::string pre = "progan.b" + std::to_string(4 << i) + ".";
    add(pre + "conv0.weight", {C[i], C[i - 1], 3, 3}, std::sqrt(6.0f / (9.0f * C[i - 1])));
    add(pre + "conv0.bias", {C[i]}, 0.2f);
    add(pre + "conv1.weight", {C[i], C[i], 3, 3}, std::sqrt(6.0f / (9.0f * C[i])));
    add(pre + "conv1.bias", {C[i]}, 0.2f);
  }
  add("progan.torgb.weight", {IC, C.back(), 1, 1}, std::sqrt(3.0f / C.back()) * 0.4f);
  add("progan.torgb.bias", {IC}, 0.1f, 0.5f);
  for (size_t i = 0; i < t->data.size(); ++i) {
    TensorView v;
    v.name = t->data[i].first;
    v.dtype = DType::F32;
    v.shape = t->shapes[i];
    v.data = t->data[i].second.data();
    v.nbytes = t->data[i].second.size() * sizeof(float);
    t->views.push_back(v);
  }
  const Status st = build_network(t->config, t->views, &t->net);
  if (!st.ok) {
    *err = st.message;
    return nullptr;
  }
  return t;
}

// docs/progan.md "Forward pass", one latent -> v as NCHW [IC][R][R]; activations [C][H][W] in
// double throughout.
std::vector<float> progan_spec_forward(const TinyProgan& t, const float* z) {
  const double slope = (double)0.2f, eps = (double)1e-8f;
  auto lrelu = [&](double v) { return v < 0 ? v * slope : v; };
  auto pixnorm = [&](std::vector<double>& a, int Cc, int HW) {
    for (int p = 0; p < HW; ++p) {
      double ss = 0;
      for (int c = 0; c < Cc; ++c) ss += a[(size_t)c * HW + p] * a[(size_t)c * HW + p];
      const double r = 1.0 / std::sqrt(ss / Cc + eps);
      for (int c = 0; c < Cc; ++c) a[(size_t)c * HW + p] *= r;
    }
  };
  std::vector<double> zn(z, z + t.Z);
  {
    double ss = 0;
    for (double v : zn) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / t.Z + eps);
    for (double& v : zn) v *= r;
  }
  const std::vector<float>& Wd = t.get("progan.dense.weight");
  const std::vector<float>& bd = t.get("progan.dense.bias");
  int Cc = t.C[0], H = 4;
  std::vector<double> a((size_t)Cc * 16);
  for (int o = 0; o < Cc; ++o)
    for (int p = 0; p < 16; ++p) {
      double acc = bd[o];
      for (int c = 0; c < t.Z; ++c) acc += (double)Wd[((size_t)o * 16 + p) * t.Z + c] * zn[c];
      a[(size_t)o * 16 + p] = lrelu(acc);
    }
  pixnorm(a, Cc, 16);
  auto conv = [&](const std::string& name, int Cout) {
    const std::vector<float>& W = t.get(name + ".weight");
    const std::vector<float>& b = t.get(name + ".bias");
    std::vector<double> y((size_t)Cout * H * H);
    for (int o = 0; o < Cout; ++o)
      for (int yy = 0; yy < H; ++yy)
        for (int xx = 0; xx < H; ++xx) {
          double acc = b[o];
          for (int c = 0; c < Cc; ++c)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int iy = yy + ky - 1, ix = xx + kx - 1;
                if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
                acc += (double)W[(((size_t)o * Cc + c) * 3 + ky) * 3 + kx] * a[((size_t)c * H + iy) * H + ix];
              }
          y[((size_t)o * H + yy) * H + xx] = lrelu(acc);
        }
    a.swap(y);
    Cc = Cout;
    pixnorm(a, Cc, H * H);
  };
  conv("progan.b4.conv1", t.C[0]);
  for (size_t i = 1; i < t.C.size(); ++i) {
    std::vector<double> up((size_t)Cc * 4 * H * H);
    for (int c = 0; c < Cc; ++c)
      for (int yy = 0; yy < 2 * H; ++yy)
        for (int xx = 0; xx < 2 * H; ++xx)
          up[((size_t)c * 2 * H + yy) * 2 * H + xx] = a[((size_t)c * H + yy / 2) * H + xx / 2];
    a.swap(up);
    H *= 2;
    const std::string pre = "progan.b" + std::to_string(4 << i);
    conv(pre + ".conv0", t.C[i]);
    conv(pre + ".conv1", t.C[i]);
  }
  const std::vector<float>& Wr = t.get("progan.torgb.weight");
  const std::vector<float>& br = t.get("progan.torgb.bias");
  std::vector<float> v((size_t)t.IC * H * H);
  for (int k = 0; k < t.IC; ++k)
    for (int p = 0; p < H * H; ++p) {
      double acc = br[k];
      for (int c = 0; c < Cc; ++c) acc += (double)Wr[(size_t)k * Cc + c] * a[(size_t)c * H * H + p];
      v[(size_t)k * H * H + p] = (float)acc;
    }
  return v;
}

std::unique_ptr<Backend> create_named(const char* name) {
  for (const BackendReg& r : backend_registry())
    if (std::string(r.name) == name) return r.create();
  return nullptr;
}

// Runs ProGAN synthesis of nb latents on a prepared backend: float image (NCHW) and uint8 (HWC).
Status run_progan(Backend* be, const TinyProgan& t, int nb, const float* z, std::vector<float>* img,
                  std::vector<uint8_t>* u8) {
  const size_t elems = (size_t)nb * t.IC * t.R * t.R;
  img->assign(elems, 0.0f);
  u8->assign(elems, 0);
  SynthesisArgs sa;
  sa.n = nb;
  sa.z = z;
  sa.img = img->data();
  sa.img_u8 = u8->data();
  return be->synthesis(sa);
}

// The naive spec forward above == the core's cpu-ref engine on the description.
void test_progan_host_vs_cpu_ref() {
  std::string err;
  auto t = make_tiny_progan(20, 16, {16, 12, 10}, 3, &err);
  CHECK(t != nullptr, "build_network: " + err);
  if (!t) return;
  CHECK(t->net.arch == Arch::ProGAN && t->net.layers.front().kind == LayerDesc::Dense, "description");
  auto be = create_named("cpu-ref");
  CHECK(be && be->supports(Arch::ProGAN), "cpu-ref runs ProGAN");
  if (!be) return;
  LoadOptions opt;
  opt.backend = "cpu-ref";
  const Status st = be->prepare(t->net, opt);
  CHECK(st.ok, "cpu-ref prepare: " + st.message);
  if (!st.ok) return;
  const int nb = 2;
  const auto z = random_vec((size_t)nb * t->Z, -2.0f, 2.0f);
  std::vector<float> img;
  std::vector<uint8_t> u8;
  const Status ss = run_progan(be.get(), *t, nb, z.data(), &img, &u8);
  CHECK(ss.ok, "cpu-ref synthesis: " + ss.message);
  std::vector<float> ref;
  for (int b = 0; b < nb; ++b) {
    const auto v = progan_spec_forward(*t, z.data() + (size_t)b * t->Z);
    ref.insert(ref.end(), v.begin(), v.end());
  }
  const double e = rel_l2(img, ref);
  CHECK(e < 1e-5, fmt("image rel. L2 error %g (limit %g)", e, 1e-5));
  const int HW = t->R * t->R;
  int off = 0;
  for (int b = 0; b < nb; ++b)
    for (int p = 0; p < HW; ++p)
      for (int c = 0; c < t->IC; ++c) {
        const uint8_t want = float_to_u8_round(ref[((size_t)b * t->IC + c) * HW + p], 127.5, 63.75);
        const int d = std::abs((int)u8[((size_t)b * HW + p) * t->IC + c] - (int)want);
        CHECK(d <= 1, "uint8 within 1");
        off += d != 0;
      }
  CHECK(off <= nb * HW * t->IC / 200, "uint8: " + std::to_string(off) + " values off by one (rounding ties)");
}

// The CUDA backend's ProGAN pipeline on the host, from the description as backend_cuda.cu reads
// it: the dense start packed in NHWC rows (dense_src_row) + bias + leaky ReLU + pixel norm, each
// conv through the layer geometry the backend derives (conv_layer_geom: ProGAN's up-convs read a
// nearest-x2 input through src_shift) and the FFMA or tensor-core kernel emulation (tile chosen as
// choose_conv_tile does; s = 1), the epilogue + pixel norm, then the 1x1 ToRGB: == cpu-ref.
void test_progan_pipeline_emulation() {
  std::string err;
  auto t = make_tiny_progan(12, 16, {24, 72, 10}, 3, &err);
  CHECK(t != nullptr, "build_network: " + err);
  if (!t) return;
  const Network& net = t->net;
  auto be = create_named("cpu-ref");
  LoadOptions opt;
  opt.backend = "cpu-ref";
  CHECK(be && be->prepare(net, opt).ok, "cpu-ref prepare");
  if (!be) return;
  const int nb = 2;
  const auto z = random_vec((size_t)nb * t->Z, -2.0f, 2.0f);
  std::vector<float> ref;
  std::vector<uint8_t> ref_u8;
  CHECK(run_progan(be.get(), *t, nb, z.data(), &ref, &ref_u8).ok, "cpu-ref synthesis");
  auto act_norm = [](std::vector<float>& x, int C, const LayerDesc& L) {  // NHWC, in place
    for (size_t p = 0; p < x.size() / C; ++p) {
      double ss = 0;
      for (int c = 0; c < C; ++c) {
        float& v = x[p * C + c];
        if (L.activate) v = (v < 0.0f ? v * L.lrelu_slope : v) * L.act_gain;
        ss += (double)v * v;
      }
      if (!L.pixel_norm) continue;
      const float r = (float)(1.0 / std::sqrt(ss / C + L.pixel_norm_eps));
      for (int c = 0; c < C; ++c) x[p * C + c] *= r;
    }
  };
  for (int path = 0; path < 2; ++path) {  // 0: FFMA (fp32), 1: tensor-core tiles
    std::vector<float> x;
    int C = 0;
    std::vector<float> img;
    for (const LayerDesc& L : net.layers) {
      if (L.kind == LayerDesc::Dense) {
        std::vector<float> zn(z);
        for (int b = 0; b < nb; ++b) {
          double ss = 0;
          for (int k = 0; k < t->Z; ++k) ss += (double)zn[(size_t)b * t->Z + k] * zn[(size_t)b * t->Z + k];
          const float r = (float)(1.0 / std::sqrt(ss / t->Z + net.latent_eps));
          for (int k = 0; k < t->Z; ++k) zn[(size_t)b * t->Z + k] *= r;
        }
        C = L.out_ch;
        x.assign((size_t)nb * 16 * C, 0.0f);
        for (int b = 0; b < nb; ++b)
          for (int r = 0; r < 16 * C; ++r) {
            const float* w = L.weight + (size_t)dense_src_row(r, C) * L.in_ch;
            double acc = 0;
            for (int k = 0; k < L.in_ch; ++k) acc += (double)w[k] * zn[(size_t)b * t->Z + k];
            x[(size_t)b * 16 * C + r] = (float)acc + L.bias[r % C];
          }
        act_norm(x, C, L);
      } else if (L.kind == LayerDesc::Conv) {
        ConvGeom g = conv_layer_geom(L);
        g.batch = nb;
        CHECK(L.up == 1 || (g.src_shift == 1 && g.H == L.out_res && g.up == 1), "nearest up-conv geometry");
        const std::vector<float> ones((size_t)nb * g.Cin, 1.0f);
        const std::vector<float> W(L.weight, L.weight + (size_t)L.out_ch * L.in_ch * 9);
        const int64_t bstride = in_plane(g);
        CHECK((int64_t)x.size() == nb * bstride, L.name + ": input size");
        std::vector<float> y = path == 0                  ? emulate_ffma_kernel(g, x, bstride, ones, W)
                               : geom_N(g) <= 64 ? emulate_mma_kernel<MmaCfgNarrow>(g, x, bstride, ones, W)
                                                 : emulate_mma_kernel<MmaCfgWide>(g, x, bstride, ones, W);
        for (size_t i = 0; i < y.size(); ++i) y[i] += L.bias[i % L.out_ch];
        C = L.out_ch;
        act_norm(y, C, L);
        x.swap(y);
      } else {
        const int HW = L.out_res * L.out_res;
        img.assign((size_t)nb * L.out_ch * HW, 0.0f);
        for (int b = 0; b < nb; ++b)
          for (int p = 0; p < HW; ++p)
            for (int k = 0; k < L.out_ch; ++k) {
              double acc = 0;
              for (int c = 0; c < C; ++c) acc += (double)x[((size_t)b * HW + p) * C + c] * L.weight[(size_t)k * C + c];
              img[((size_t)b * L.out_ch + k) * HW + p] = (float)acc + L.bias[k];
            }
      }
    }
    const double e = rel_l2(img, ref);
    CHECK(e < 1e-5, std::string(path ? "tensor-core" : "FFMA") + fmt(" emulation: image rel. L2 error %g (limit %g)", e, 1e-5));
  }
}

#if defined(FACEGAN_WITH_CUDA) || defined(FACEGAN_WITH_CUDA_EMU)
// The CUDA backend's ProGAN against cpu-ref, end to end (GPU only): fp32 / fp16 / bf16, twice per
// precision (the second run replays the captured graph), the uint8 output, batch invariance, and
// mapping() refused.
void test_cuda_progan(const std::string& bname) {
  const BackendReg* reg = find_backend(bname);
  CHECK(reg != nullptr, bname + " is registered");
  if (!reg) return;
  std::string why;
  if (!reg->available(&why)) {
    std::printf("        (CUDA backend unavailable here: %s; ProGAN GPU parity skipped)\n", why.c_str());
    auto be = reg->create();
    CHECK(be->supports(Arch::ProGAN), "the CUDA backend declares ProGAN");
    return;
  }
  struct Shape {
    int Z, R;
    std::vector<int> C;
  };
  // Widths that take every conv path: 128 / 96 (wide tensor-core tiles), 40 / 24 / 12 / 10 (narrow
  // tiles; Cin % 8 != 0 and % 4 != 0 loaders).
  const Shape shapes[] = {{20, 16, {16, 12, 10}}, {64, 32, {128, 96, 40, 24}}};
  for (const Shape& sh : shapes) {
    std::string err;
    auto t = make_tiny_progan(sh.Z, sh.R, sh.C, 3, &err);
    CHECK(t != nullptr, "build_network: " + err);
    if (!t) return;
    auto ref_be = create_named("cpu-ref");
    LoadOptions ro;
    ro.backend = "cpu-ref";
    CHECK(ref_be && ref_be->prepare(t->net, ro).ok, "cpu-ref prepare");
    if (!ref_be) return;
    const int nb = 3;
    const auto z = random_vec((size_t)nb * t->Z, -2.0f, 2.0f);
    std::vector<float> ref;
    std::vector<uint8_t> ref_u8;
    CHECK(run_progan(ref_be.get(), *t, nb, z.data(), &ref, &ref_u8).ok, "cpu-ref synthesis");
    const std::string tag = "res " + std::to_string(sh.R) + " ";
    for (Precision prec : {Precision::FP32, Precision::FP16, Precision::BF16}) {
      const char* pname = prec == Precision::FP32 ? "fp32" : prec == Precision::FP16 ? "fp16" : "bf16";
      auto be = reg->create();
      CHECK(be->supports(Arch::ProGAN), "supports ProGAN");
      LoadOptions opt;
      opt.backend = "cuda";
      opt.precision = prec;
      const Status st = be->prepare(t->net, opt);
      if (!st.ok && prec == Precision::BF16 && st.message.find("compute capability") != std::string::npos) {
        std::printf("        (bf16 skipped: %s)\n", st.message.c_str());
        continue;
      }
      CHECK(st.ok, tag + pname + " prepare: " + st.message);
      if (!st.ok) continue;
      MappingArgs ma;
      ma.n = 1;
      ma.z = z.data();
      std::vector<float> ws(16);
      ma.ws = ws.data();
      CHECK(!be->mapping(ma).ok, "mapping is refused for ProGAN");
      const double limit = prec == Precision::FP32 ? 1e-5 : prec == Precision::FP16 ? 1e-2 : 4e-2;
      std::vector<float> img;
      std::vector<uint8_t> u8;
      for (int rep = 0; rep < 2; ++rep) {
        const Status ss = run_progan(be.get(), *t, nb, z.data(), &img, &u8);
        CHECK(ss.ok, tag + pname + " synthesis: " + ss.message);
        const double e = rel_l2(img, ref);
        CHECK(e < limit, tag + pname + " run " + std::to_string(rep) + fmt(": image rel. L2 error %g (limit %g)", e, limit));
        const int HW = t->R * t->R;
        bool self = true;
        int maxd = 0;
        for (int b = 0; b < nb; ++b)
          for (int p = 0; p < HW; ++p)
            for (int c = 0; c < t->IC; ++c) {
              const size_t hwc = ((size_t)b * HW + p) * t->IC + c;
              if (u8[hwc] != float_to_u8_round(img[((size_t)b * t->IC + c) * HW + p], 127.5, 63.75)) self = false;
              maxd = std::max(maxd, std::abs((int)u8[hwc] - (int)ref_u8[hwc]));
            }
        CHECK(self, tag + pname + ": uint8 output == proganToUint8 of the float output");
        if (prec == Precision::FP32) CHECK(maxd <= 1, tag + "fp32 uint8 within 1 of cpu-ref's");
      }
      // Batch invariance: latent 1 alone.
      std::vector<float> one;
      std::vector<uint8_t> one_u8;
      CHECK(run_progan(be.get(), *t, 1, z.data() + t->Z, &one, &one_u8).ok, "batch-1 synthesis");
      double d = 0;
      for (size_t i = 0; i < one.size(); ++i) d = std::max(d, (double)std::fabs(one[i] - img[one.size() + i]));
      CHECK(d <= (prec == Precision::FP32 ? 1e-5 : 1e-2), tag + pname + fmt(": batching changes latent 1 by %g (%g)", d, 0.0));
    }
  }
}
#endif


#ifdef FACEGAN_WITH_CUDA_EMU
// The CUDA backend's run-time behaviour on the emulator: CUDA graphs on / off give the same bits;
// a pool too small for the batch (fake device memory) runs in chunks with the same bits; a failed
// pool allocation halves the pool and still succeeds; non-finite images are counted (fp32 NaN,
// fp16 overflow); a cancel flag stops the call; a kernel fault is reported (named with
// FACEGAN_CUDA_SYNC=1) and then reported as a dead context on every later call.
void test_cuda_emu_runtime() {
  const BackendReg* reg = find_backend("cuda-emu");
  CHECK(reg != nullptr, "cuda-emu is registered");
  if (!reg) return;
  auto t = make_tiny_model();
  const Network& net = t->net;
  const int nb = 5;
  const auto z = random_vec((size_t)nb * net.mapping.z_dim, -2.0f, 2.0f);
  std::vector<float> c((size_t)nb * net.mapping.c_dim, 0.0f);
  for (int b = 0; b < nb; ++b) c[(size_t)b * net.mapping.c_dim + b % net.mapping.c_dim] = 1.0f;
  std::vector<float> ws;
  ref_mapping(net, nb, z.data(), c.data(), 1.0f, &ws);
  const size_t img_elems = (size_t)nb * net.info.img_channels * net.info.img_resolution * net.info.img_resolution;
  auto run = [&](Precision prec, NoiseMode mode, std::vector<float>* img, uint64_t* bad, Status* st, const CancelFlag* cancel = nullptr) {
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda-emu";
    opt.precision = prec;
    *st = be->prepare(net, opt);
    if (!st->ok) return;
    SynthesisArgs sa;
    sa.n = nb;
    sa.ws = ws.data();
    sa.noise = mode;
    sa.noise_seed = 77;
    img->assign(img_elems, 0.0f);
    sa.img = img->data();
    sa.nonfinite_count = bad;
    sa.cancel = cancel;
    *st = be->synthesis(sa);
  };
  fg_emu::reset();
  std::vector<float> ref, img;
  uint64_t bad = 99;
  Status st;
  run(Precision::FP32, NoiseMode::Random, &ref, &bad, &st);
  CHECK(st.ok && bad == 0, "reference run: " + st.message + ", non-finite " + std::to_string(bad));
  const auto launches_graphs = fg_emu::stats().graph_launches;
  CHECK(launches_graphs >= 1, "synthesis replays a CUDA graph");

  setenv("FACEGAN_CUDA_GRAPHS", "0", 1);
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  unsetenv("FACEGAN_CUDA_GRAPHS");
  CHECK(st.ok && img == ref, "graphs off == graphs on (bits): " + st.message);
  CHECK(fg_emu::stats().graph_launches == launches_graphs, "FACEGAN_CUDA_GRAPHS=0 launches no graph");

  // Fake device memory for ~2 samples of the synthesis pool: chunks of 2, 2, 1.
  fg_emu::reset();
  fg_emu::config().device_memory = 600 * 1024;
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  const auto chunked_launches = fg_emu::stats().graph_launches;
  CHECK(st.ok && img == ref, "chunked (small device memory) == one batch (bits): " + st.message);
  CHECK(chunked_launches >= 3, "the small memory forced chunks (" + std::to_string(chunked_launches) + " graph launches)");

  // The first pool allocation fails: the backend halves the pool and carries on.
  fg_emu::reset();
  fg_emu::config().fail_malloc_at = 3;  // weights, mapping pool untouched here: the synthesis pool
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  CHECK(st.ok && img == ref, "out-of-memory halving still gives the same images: " + st.message);
  fg_emu::reset();

  // Cancel before the call: Status::Cancelled, nothing reported as an error.
  CancelFlag stop{true};
  run(Precision::FP32, NoiseMode::Const, &img, &bad, &st, &stop);
  CHECK(!st.ok && st.cancelled(), "a set cancel flag cancels: " + st.message);

  // Non-finite output: a NaN bias (fp32) and a value beyond the fp16 range (no saturation).
  LayerDesc* conv = nullptr;
  for (LayerDesc& L : t->net.layers)
    if (L.kind == LayerDesc::Conv && L.out_res == 8 && L.up == 1) conv = &L;
  CHECK(conv != nullptr, "the tiny model has an 8x8 conv");
  if (conv) {
    float* bias = const_cast<float*>(conv->bias);
    const float saved = bias[0];
    bias[0] = std::nanf("");
    run(Precision::FP32, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad > 0, "a NaN bias gives a non-finite count (" + std::to_string(bad) + ")");
    bias[0] = 1e5f;  // > 65504: inf in fp16 activations
    run(Precision::FP16, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad > 0, "an fp16 overflow is counted, not saturated (" + std::to_string(bad) + ")");
    run(Precision::FP32, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad == 0, "the same model in fp32 is finite (" + std::to_string(bad) + ")");
    bias[0] = saved;
  }

  // A kernel fault: reported at the synchronisation (or, with FACEGAN_CUDA_SYNC=1, with the
  // kernel's name), then every later call says the context is dead.
  for (int sync = 0; sync < 2; ++sync) {
    fg_emu::reset();
    if (sync) setenv("FACEGAN_CUDA_SYNC", "1", 1);
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda-emu";
    CHECK(be->prepare(net, opt).ok, "prepare");
    fg_emu::config().fault_kernel = "modconv_ffma_kernel";
    SynthesisArgs sa;
    sa.n = 1;
    sa.ws = ws.data();
    std::vector<float> one((size_t)net.info.img_channels * net.info.img_resolution * net.info.img_resolution);
    sa.img = one.data();
    const Status s1 = be->synthesis(sa);
    CHECK(!s1.ok, "the injected fault fails the call");
    if (sync)
      CHECK(s1.message.find("modconv_ffma_kernel") != std::string::npos, "FACEGAN_CUDA_SYNC=1 names the kernel: " + s1.message);
    fg_emu::config().fault_kernel.clear();
    const Status s2 = be->synthesis(sa);
    CHECK(!s2.ok && s2.message.find("unusable") != std::string::npos, "the next call reports the dead context: " + s2.message);
    unsetenv("FACEGAN_CUDA_SYNC");
  }
  fg_emu::reset();
}
#endif

#ifdef FACEGAN_WITH_CUDA_EMU
// The CUDA kernels themselves (native/cuda/*.cu), executed by the CPU emulator, each family
// against a naive reference: one line per kernel case.
void run_emulated_kernel_tests() {
  if (!selected("emulated kernels")) return;
  const char* quick = std::getenv("FACEGAN_EMU_QUICK");
  const bool q = quick && std::string(quick) == "1";
  emu_results::Results results;
  emu_tests::run_kernel_tests(&results, q);            // sm_80+ device code paths
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  emu_tests_sm75::run_kernel_tests(&results, true);    // sm_75's (fp16 as two m16n8k8)
#endif
  for (const auto& r : results) {
    if (r.ok) ++g_passed;
    else ++g_failed;
    std::printf("  %-5s emulated %s: %s\n", r.ok ? "ok" : "FAIL", r.name.c_str(), r.detail.c_str());
  }
}
#endif

// The CPU engine's thread pool: a task's exception fails run() and its text is kept (error(),
// which the engine puts in its error message); the other tasks still run; the next run() starts
// clean. With one thread and with several.
void test_thread_pool_errors() {
  for (int threads : {1, 4}) {
    const std::string with = std::to_string(threads) + " threads: ";
    facegan::cpu::ThreadPool pool(threads);
    std::atomic<int> ran{0};
    bool ok = pool.run(64, [&](int t, int) {
      ran.fetch_add(1);
      if (t == 17) throw std::runtime_error("task 17: out of scratch");
    });
    CHECK(!ok, with + "run() reports the failure");
    CHECK(pool.error() == "task 17: out of scratch", with + "the exception text is kept (got '" + pool.error() + "')");
    CHECK(ran.load() == 64, with + "the other tasks still ran (" + std::to_string(ran.load()) + " of 64)");
    ok = pool.run(8, [&](int t, int) {
      if (t == 3) throw 42;
    });
    CHECK(!ok && pool.error() == "unknown exception", with + "a non-std exception (got '" + pool.error() + "')");
    ok = pool.run(8, [&](int, int) {});
    CHECK(ok && pool.error().empty(), with + "a clean run clears the error");
  }
}

}  // namespace

int main() {
  facegan::register_builtin_backends();
#ifdef FACEGAN_WITH_CUDA_EMU
  facegan::register_cuda_emu_backend();
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  facegan::register_cuda_emu_sm75_backend();
#endif
#endif
  std::printf("facegan-unit: CUDA backend index arithmetic on the CPU (and end to end on a GPU)\n");
  run_case("philox4x32-10 known-answer vectors", test_philox_kat);
  run_case("box-muller normals", test_box_muller);
  run_case("box-muller accuracy and pinned noise values", test_box_muller_exact);
  run_case("noise counter mapping", test_noise_counter);
  run_case("random noise: CUDA keying == CPU noise_fill (bits)", test_noise_cpu_vs_cuda_keying);
  run_case("implicit GEMM indexing == direct 3x3 conv", test_gemm_index_vs_direct);
  run_case("polyphase up-conv == transposed conv + FIR", test_polyphase_upconv);
  run_case("GEMM output mapping is a bijection", test_output_mapping_bijective);
  run_case("weight packing", test_packing);
  run_case("toRGB x2 skip upsampling == upfirdn2d", test_up2_skip);
  run_case("uint8 conversion and truncation lerp", test_u8_and_lerp);
  run_case("ProGAN uint8 mapping == proganToUint8", test_u8_round);
  run_case("uint8 maps == CPU engines' to_u8_hwc", test_u8_maps_vs_cpu);
  run_case("ProGAN dense rows in NHWC order", test_dense_rows);
  run_case("mma.sync m16n8k16 fragment maps", test_mma_fragments);
  run_case("ldmatrix addresses feed the mma fragments", test_ldmatrix_feeds_mma);
  run_case("tile loaders and warp tiles cover their tiles", test_tile_loaders);
  run_case("FFMA / tensor-core kernel emulation == direct conv", test_kernel_emulation);
  run_case("row tiles", test_row_plans);
  run_case("style and demodulation plan", test_style_plan);
  run_case("conv layer geometry (both architectures)", test_conv_layer_geom);
  run_case("host reference == core cpu-ref engine (tiny network)", test_host_reference_vs_cpu_ref);
  run_case("ProGAN spec forward == core cpu-ref engine (tiny ProGAN)", test_progan_host_vs_cpu_ref);
  run_case("ProGAN pipeline emulation (backend geometry + kernels) == cpu-ref", test_progan_pipeline_emulation);
  run_case("CPU thread pool keeps a worker's exception text", test_thread_pool_errors);
#ifdef FACEGAN_WITH_CUDA_EMU
  run_emulated_kernel_tests();
  run_case("emulated CUDA backend (cuda-emu) == host reference, end to end", [] { test_cuda_backend("cuda-emu"); });
  run_case("emulated CUDA ProGAN (cuda-emu) == cpu-ref, end to end", [] { test_cuda_progan("cuda-emu"); });
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  run_case("emulated CUDA backend, sm_75 code paths (cuda-emu-sm75) == host reference", [] {
    fg_emu::reset();
    fg_emu::config().cc = 75;  // the device reports 7.5: bf16 is refused, fp16 runs as m16n8k8 pairs
    test_cuda_backend("cuda-emu-sm75");
    fg_emu::reset();
  });
#endif
  run_case("emulated CUDA backend: graphs, chunking, OOM halving, non-finite, cancel, faults", test_cuda_emu_runtime);
#endif
#ifdef FACEGAN_WITH_CUDA
  run_case("CUDA backend (end to end when a GPU is present)", [] { test_cuda_backend("cuda"); });
  run_case("CUDA noise kernel == CPU noise_fill, bits (GPU only)", test_cuda_noise_bits);
  run_case("CUDA ProGAN == cpu-ref (end to end when a GPU is present)", [] { test_cuda_progan("cuda"); });
#endif
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
