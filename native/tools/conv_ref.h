// Test helpers and naive references of the modulated convolutions (activations NHWC, weights [Cout][Cin][3][3],
// styles [b][Cin]), written from the definitions in docs/stylegan2.md, for the unit
// tests of the CUDA kernels: facegan-unit's host emulations and the emulated kernels
// (native/cuda/emu/kernel_tests.cc) check against the same code. Header-only; needs ConvGeom
// (native/cuda/indexing.cuh) in scope as cuda::ConvGeom.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace facegan {
namespace testref {

using cuda::ConvGeom;

// n uniform values in [lo, hi).
inline std::vector<float> random_vec(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Relative L2 error of a against the reference b (inf when a holds a non-finite value).
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return std::isfinite(num) ? std::sqrt(num / std::max(den, 1e-30)) : INFINITY;
}

// out[b][y][x][o] = sum x[b][y+ky-1][x+kx-1][c] * s[b][c] * W[o][c][ky][kx] (bstride 0: shared input)
inline std::vector<float> ref_conv3x3(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                               const std::vector<float>& s, const std::vector<float>& W) {
  std::vector<float> out((size_t)g.batch * g.H * g.W * g.Cout, 0.0f);
  for (int b = 0; b < g.batch; ++b)
    for (int y = 0; y < g.H; ++y)
      for (int xx = 0; xx < g.W; ++xx)
        for (int o = 0; o < g.Cout; ++o) {
          double acc = 0.0;
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = y + ky - 1, ix = xx + kx - 1;
              if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
              for (int c = 0; c < g.Cin; ++c)
                acc += (double)x[b * bstride + ((size_t)iy * g.W + ix) * g.Cin + c] * s[(size_t)b * g.Cin + c] *
                       W[(((size_t)o * g.Cin + c) * 3 + ky) * 3 + kx];
            }
          out[(((size_t)b * g.H + y) * g.W + xx) * g.Cout + o] = (float)acc;
        }
  return out;
}

// Transposed conv (stride 2, no padding) -> (2H+1)^2, then FIR [1,3,3,1]^2/64 * 4 with padding 1
// -> (2H)^2. Output NHWC.
inline std::vector<float> ref_upconv(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                              const std::vector<float>& s, const std::vector<float>& W) {
  const int T = 2 * g.H + 1, O = 2 * g.H;
  std::vector<double> t((size_t)T * T);
  std::vector<float> out((size_t)g.batch * O * O * g.Cout, 0.0f);
  const double f1[4] = {1, 3, 3, 1};
  for (int b = 0; b < g.batch; ++b)
    for (int o = 0; o < g.Cout; ++o) {
      std::fill(t.begin(), t.end(), 0.0);
      for (int i = 0; i < g.H; ++i)
        for (int j = 0; j < g.W; ++j)
          for (int c = 0; c < g.Cin; ++c) {
            const double v = (double)x[b * bstride + ((size_t)i * g.W + j) * g.Cin + c] * s[(size_t)b * g.Cin + c];
            for (int kh = 0; kh < 3; ++kh)
              for (int kw = 0; kw < 3; ++kw)
                t[(size_t)(2 * i + kh) * T + (2 * j + kw)] += v * W[(((size_t)o * g.Cin + c) * 3 + kh) * 3 + kw];
          }
      // upfirdn2d: pad 1, correlate with the flipped (symmetric) 4x4 filter, gain 4.
      for (int Y = 0; Y < O; ++Y)
        for (int X = 0; X < O; ++X) {
          double acc = 0.0;
          for (int a = 0; a < 4; ++a)
            for (int c = 0; c < 4; ++c) {
              const int ty = Y + a - 1, tx = X + c - 1;
              if (ty < 0 || ty >= T || tx < 0 || tx >= T) continue;
              acc += t[(size_t)ty * T + tx] * f1[a] * f1[c] / 64.0 * 4.0;
            }
          out[(((size_t)b * O + Y) * O + X) * g.Cout + o] = (float)acc;
        }
    }
  return out;
}

}  // namespace testref
}  // namespace facegan
