#include "common.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace facegan {
namespace cpu {

void to_u8_hwc(const float* img, int C, int H, int W, uint8_t* out, const OutputMap& map) {
  const size_t HW = size_t(H) * W;
  if (map.mode == OutputMap::RoundF64) {
    const double scale = map.scale, offset = map.offset;
    for (size_t p = 0; p < HW; ++p)
      for (int c = 0; c < C; ++c) {
        volatile double prod = double(img[size_t(c) * HW + p]) * scale;  // never fused with the add
        double t = prod + offset;
        uint8_t u = 0;
        if (t >= 255.0) {
          u = 255;
        } else if (t > 0.0) {  // (NaN → 0)
          double r = std::floor(t);
          if (t - r >= 0.5) r += 1.0;  // JavaScript Math.round: half up
          u = uint8_t(r);
        }
        out[p * C + c] = u;
      }
    return;
  }
  // TruncF32: scale 127.5, offset 128 (the only StyleGAN2 map).
  for (size_t p = 0; p < HW; ++p) {
    for (int c = 0; c < C; ++c) {
      float x = img[size_t(c) * HW + p];
      // Two float32 roundings, never fused: (float)(x·127.5) is exact-then-rounded, likewise + 128.
      float prod = float(double(x) * 127.5);
      float v = float(double(prod) + 128.0);
      uint8_t u;
      if (!(v > 0.0f)) u = 0;  // also NaN
      else if (v >= 255.0f) u = 255;
      else u = uint8_t(int(v));
      out[p * C + c] = u;
    }
  }
}

namespace {

// x ← x · rsqrt(mean(x²) + 1e-8)
void normalize_2nd_moment(float* x, int n) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  float mean = float(ss / n);
  float k = float(1.0 / std::sqrt(double(mean + 1e-8f)));
  for (int i = 0; i < n; ++i) x[i] *= k;
}

void plain_fc(const FcDesc& f, const float* x, float* y) {
  const float bg = f.b_gain;
  for (int o = 0; o < f.out; ++o) {
    const float* Wr = f.W + size_t(o) * f.in;
    double acc = 0.0;
    // Accumulate in blocks of 8 float lanes (vectorisable), then in double across blocks.
    int i = 0;
    for (; i + 8 <= f.in; i += 8) {
      float part = 0.0f;
      for (int j = 0; j < 8; ++j) part += x[i + j] * (Wr[i + j] * f.w_gain);
      acc += part;
    }
    for (; i < f.in; ++i) acc += double(x[i]) * (Wr[i] * f.w_gain);
    float v = float(acc) + f.b[o] * bg;
    if (f.lrelu) v = (v < 0.0f ? v * 0.2f : v) * 1.41421356237309504880f;
    y[o] = v;
  }
}

}  // namespace

void map_sample(const Network& net, const MappingArgs& a, int n, const MappingFc& fc) {
  const MappingDesc& m = net.mapping;
  const int zd = m.z_dim, wd = m.w_dim;
  const int in0 = zd + (m.has_embed ? wd : 0);
  std::vector<float> x(static_cast<size_t>(std::max(in0, wd)));
  std::vector<float> y(static_cast<size_t>(wd));
  std::vector<float> e(static_cast<size_t>(wd));
  for (int i = 0; i < zd; ++i) x[size_t(i)] = a.z[size_t(n) * zd + i];
  normalize_2nd_moment(x.data(), zd);
  int index = 0;
  if (m.has_embed) {
    fc(index++, m.embed, a.c + size_t(n) * m.c_dim, e.data());
    normalize_2nd_moment(e.data(), wd);
    for (int i = 0; i < wd; ++i) x[size_t(zd + i)] = e[size_t(i)];
  }
  for (const FcDesc& f : m.fcs) {
    fc(index++, f, x.data(), y.data());
    for (int i = 0; i < wd; ++i) x[size_t(i)] = y[size_t(i)];
  }
  float* out = a.ws + size_t(n) * m.num_ws * wd;
  const int cutoff = a.truncation_cutoff < 0 ? m.num_ws : a.truncation_cutoff;
  for (int r = 0; r < m.num_ws; ++r) {
    for (int i = 0; i < wd; ++i) {
      float v = x[size_t(i)];
      if (r < cutoff && a.psi != 1.0f) v = lerp_torch(m.w_avg[i], v, a.psi);
      out[size_t(r) * wd + i] = v;
    }
  }
}

void run_mapping(const Network& net, const MappingArgs& a) {
  const MappingFc fc = [](int, const FcDesc& f, const float* x, float* y) { plain_fc(f, x, y); };
  for (int n = 0; n < a.n; ++n) map_sample(net, a, n, fc);
}

}  // namespace cpu
}  // namespace facegan
