// The CUDA backend's index arithmetic (native/cuda/indexing.cuh, plan.h) on the CPU: the
// implicit-GEMM mapping against a direct convolution, the up-conv's four sub-pixel GEMMs + FIR
// pass against transposed conv + [1,3,3,1]^2 FIR, the packed weights, the x2 skip upsampling, both uint8 maps
// (against the CPU engines' and proganToUint8's JavaScript semantics), ProGAN's dense rows and the
// row tiles.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../cpu/common.h"  // cpu::to_u8_hwc (the CPU engines' uint8 maps)
#include "../../cuda/plan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

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

void test_subpixel_upconv() {
  for (const ConvCase& c : conv_cases()) {
    if (c.g.up != 2) continue;
    const ConvGeom& g = c.g;
    const int64_t bstride = (int64_t)g.H * g.W * g.Cin;
    const auto x = random_vec((size_t)g.batch * bstride);
    const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
    const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
    const auto got = upconv_via_phases(g, [&](const ConvGeom& p) { return gemm_via_index(p, x, bstride, s, W); });
    double rmax;
    const double d = max_abs_diff(got, ref_upconv(g, x, bstride, s, W), &rmax);
    CHECK(d <= 1e-5 * std::max(1.0, rmax), fmt("max diff %g (ref max %g)", d, rmax));
    // Only the real taps: the phases use each of the 9 kernel taps once per input pixel, and their
    // rows x taps are the input's pixels x 9 plus the taps in the zero border ((2H+1)^2 - ...).
    int64_t macs = 0;
    std::vector<int> used(9, 0);
    for (int ph = 0; ph < conv_phases(g); ++ph) {
      const ConvGeom p = conv_phase_geom(g, ph);
      CHECK(geom_N(p) == g.Cout && geom_K(p) == geom_taps_y(p) * geom_taps_x(p) * g.Cin, "phase GEMM shape");
      macs += (int64_t)geom_M(p) * geom_K(p) / g.Cin;
      for (int ty = 0; ty < geom_taps_y(p); ++ty)
        for (int tx = 0; tx < geom_taps_x(p); ++tx)
          ++used[tap_kernel_index(p, ty, geom_py(p)) * 3 + tap_kernel_index(p, tx, geom_px(p))];
    }
    CHECK(std::all_of(used.begin(), used.end(), [](int u) { return u == 1; }), "each kernel tap in one phase");
    const int64_t rows_taps = (int64_t)g.batch * (4 * (g.H + 1) * (g.W + 1) + 2 * (g.H + 1) * g.W +
                                                  2 * g.H * (g.W + 1) + g.H * g.W);
    CHECK(macs == rows_taps, "rows x taps of the four phases");
  }
}

void test_output_mapping_bijective() {
  for (const ConvCase& c : conv_cases()) {
    const size_t total = (size_t)c.g.batch * geom_OH(c.g) * geom_OW(c.g) * c.g.Cout;  // up 2: t, all phases
    std::vector<int> hits(total, 0);
    bool in_range = true;
    for (int ph = 0; ph < conv_phases(c.g); ++ph) {
      const ConvGeom g = conv_phase_geom(c.g, ph);
      for (int m = 0; m < geom_M(g); ++m) {
        const Pixel p = gemm_row_pixel(g, m);
        CHECK((p.b * geom_RH(g) + p.y) * geom_RW(g) + p.x == m, "row decode");
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
    }
    CHECK(in_range, "offsets in range");
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }), "every output written once");
  }
}

void test_packing() {
  ConvGeom g;
  g.batch = 1; g.H = g.W = 4; g.Cin = 5; g.Cout = 7; g.up = 2;
  const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
  const int bk = 32, Kpad = conv_packed_k(g, bk), Npad = round_up(geom_N(g), 32);
  CHECK(Kpad == 4 * 32, "each phase padded to the k-tile");  // K = 20, 10, 10, 5
  std::vector<float> kmaj((size_t)Kpad * Npad), nmaj((size_t)Kpad * Npad), colscale((size_t)4 * Npad);
  pack_conv_layer(g, W.data(), bk, Npad, false, kmaj.data(), nullptr);
  pack_conv_layer(g, W.data(), bk, Npad, true, nmaj.data(), colscale.data());
  for (int ph = 0; ph < conv_phases(g); ++ph) {
    const ConvGeom p = conv_phase_geom(g, ph);
    const int K = geom_K(p), N = geom_N(p), kp = round_up(K, bk);
    const float* km = kmaj.data() + conv_phase_w_offset(g, ph, bk, Npad);
    const float* nm = nmaj.data() + conv_phase_w_offset(g, ph, bk, Npad);
    const float* cs = colscale.data() + (size_t)ph * Npad;
    for (int k = 0; k < kp; ++k)
      for (int j = 0; j < Npad; ++j) {
        const float b = conv_b_value(p, W.data(), k, j);
        if (k >= K || j >= N) CHECK(b == 0.0f, "padding is zero");
        CHECK(km[(size_t)k * Npad + j] == b, "k-major");
        const float v = nm[(size_t)j * kp + k];
        CHECK(std::fabs(v) <= 1.0f, "scaled into [-1, 1]");
        CHECK(close(v * cs[j], b, 1e-7, 1e-6), "n-major * colscale");
      }
    for (int j = N; j < Npad; ++j) CHECK(cs[j] == 1.0f, "all-zero column scale 1");
  }
  // Phase (1, 1) is the centre tap alone: B[c][o] = W[o][c][1][1].
  const ConvGeom p3 = conv_phase_geom(g, 3);
  CHECK(conv_b_value(p3, W.data(), 2, 4) == W[(4 * g.Cin + 2) * 9 + 4], "odd/odd phase = centre tap");
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

const Register kCases(__FILE__, {
    {"implicit GEMM indexing == direct 3x3 conv", test_gemm_index_vs_direct},
    {"sub-pixel up-conv + FIR pass == transposed conv + FIR", test_subpixel_upconv},
    {"GEMM output mapping is a bijection", test_output_mapping_bijective},
    {"weight packing", test_packing},
    {"toRGB x2 skip upsampling == upfirdn2d", test_up2_skip},
    {"uint8 conversion and truncation lerp", test_u8_and_lerp},
    {"ProGAN uint8 mapping == proganToUint8", test_u8_round},
    {"uint8 maps == CPU engines' to_u8_hwc", test_u8_maps_vs_cpu},
    {"ProGAN dense rows in NHWC order", test_dense_rows},
    {"row tiles", test_row_plans},
});

}  // namespace
