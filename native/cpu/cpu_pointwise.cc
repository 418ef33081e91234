// The CPU engine's pointwise layers: ToRGB (1×1 modulated, no demodulation) with the skip
// upsampling of the previous image (out[2j] = .25·x[j−1] + .75·x[j], out[2j+1] = .75·x[j] +
// .25·x[j+1]) when it does not run fused into a Winograd conv, ProGAN's dense start, the pixel
// norm pass and the nearest ×2 upsampling.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu_engine.h"

namespace facegan {
namespace cpu {

// Modulated ToRGB weights w[img][k][c] = weight[k][c] · s[img][c].
void CpuBackend::rgb_weights(const LayerDesc& L, const float* S, int nb, std::vector<float>* w) const {
  const int C = L.in_ch, IC = L.out_ch;
  w->resize(size_t(nb) * IC * C);
  for (int img = 0; img < nb; ++img) {
    const float* s = S + size_t(img) * net_->style_dim + L.style_offset;
    float* wi = w->data() + size_t(img) * IC * C;
    for (int k = 0; k < IC; ++k)
      for (int c = 0; c < C; ++c) wi[size_t(k) * C + c] = L.weight[size_t(k) * C + c] * s[c];
  }
}

// Skip branch: row y, columns [xa, xb) of the ×2 upsampled previous image (P×P per channel),
// per axis out[2j] = .25·x[j−1] + .75·x[j], out[2j+1] = .75·x[j] + .25·x[j+1], zero outside.
void skip_upsample(float* o, size_t HW, int W, const float* pv, int P, int IC, int y, int xa, int xb) {
  const int i = y / 2;
  const int ia = (y & 1) ? i : i - 1, ib = (y & 1) ? i + 1 : i;
  const float wa = (y & 1) ? 0.75f : 0.25f, wb = (y & 1) ? 0.25f : 0.75f;
  const int ja = std::max(0, xa / 2 - 1), jb = std::min(P, (xb + 1) / 2 + 1);  // source columns needed
  float tmp[8192 + 2];
  float* row = tmp + 1;
  for (int k = 0; k < IC; ++k) {
    const float* pk = pv + size_t(k) * P * P;
    const float* ra = ia >= 0 ? pk + size_t(ia) * P : nullptr;
    const float* rb = ib < P ? pk + size_t(ib) * P : nullptr;
    for (int j = ja; j < jb; ++j) row[j] = (ra ? wa * ra[j] : 0.0f) + (rb ? wb * rb[j] : 0.0f);
    row[ja - 1] = 0.0f;  // only read when ja == 0 (outside the image)
    row[jb] = 0.0f;      // only read when jb == P
    float* orow = o + size_t(k) * HW + size_t(y) * W;
    for (int x = xa; x < xb; ++x) {
      const int j = x >> 1;
      orow[x] = (x & 1) ? 0.75f * row[j] + 0.25f * row[j + 1] : 0.25f * row[j - 1] + 0.75f * row[j];
    }
  }
  (void)W;
}

void CpuBackend::torgb(const LayerDesc& L, const float* x, size_t x_stride, const float* prev, int prev_res,
                       float* out, int nb, const float* S) {
  const int H = L.out_res, W = H, C = L.in_ch, IC = L.out_ch;
  const size_t HW = size_t(H) * W;
  const int rows_per = std::max(1, std::min(H, int(16384 / std::max(W, 1))));
  const int rchunks = ceil_div(H, rows_per);
  std::vector<float> wm;
  rgb_weights(L, S, nb, &wm);
  run_or_throw(nb * rchunks, [&](int t, int) {
    const int img = t / rchunks, rc = t % rchunks;
    const int y0 = rc * rows_per, y1 = std::min(H, y0 + rows_per);
    const float* w = wm.data() + size_t(img) * IC * C;
    float* o = out + size_t(img) * IC * HW;
    const float* xi = x + size_t(img) * x_stride;
    const float* pv = prev ? prev + size_t(img) * IC * size_t(prev_res) * prev_res : nullptr;
    for (int y = y0; y < y1; ++y) {
      if (pv) skip_upsample(o, HW, W, pv, prev_res, IC, y, 0, W);
      ks_->torgb_row(o + size_t(y) * W, HW, xi + size_t(y) * W, HW, C, W, w, L.bias, IC, L.clamp, pv ? 1 : 0);
    }
  });
}

// ProGAN's start: the latent pixel norm of z (per image; the float64 sum of squares as the
// reference), then a[o][p] = W[o·16 + p] · ẑ + b[o], the activation, and the pixel norm of the
// 16 pixels, into out [img][C][4][4].
void CpuBackend::dense(const LayerDesc& L, const float* z, int nb, float* out) {
  const Network& net = *net_;
  const int Z = L.in_ch, C = L.out_ch;
  zn_.reserve(size_t(nb) * Z);
  for (int img = 0; img < nb; ++img) {
    float* zn = zn_.data() + size_t(img) * Z;
    std::memcpy(zn, z + size_t(img) * Z, size_t(Z) * sizeof(float));
    if (net.normalize_latent) {
      double ss = 0.0;
      for (int k = 0; k < Z; ++k) ss += double(zn[k]) * double(zn[k]);
      const float mean = float(ss / Z);
      const float sc = float(1.0 / std::sqrt(double(float(double(mean) + double(net.latent_eps)))));
      for (int k = 0; k < Z; ++k) zn[k] = zn[k] * sc;
    }
  }
  const size_t ostride = size_t(C) * 16;
  // Tasks own blocks of output channels for every image: each weight row (the 16 MB of a 512-
  // channel start are read from memory) is read once per call, not once per image.
  const int per = 16;
  const int chunks = ceil_div(C, per);
  run_or_throw(chunks, [&](int t, int) {
    const int o0 = t * per, o1 = std::min(C, o0 + per);
    for (int o = o0; o < o1; ++o)
      for (int p = 0; p < 16; ++p) {
        const float* w = L.weight + (size_t(o) * 16 + p) * Z;
        for (int img = 0; img < nb; ++img) {
          float v = ks_->dot(w, zn_.data() + size_t(img) * Z, Z) + L.bias[o];
          if (L.activate) {
            v = v < 0.0f ? v * L.lrelu_slope : v;
            if (L.act_gain != 1.0f) v = v * L.act_gain;
          }
          out[size_t(img) * ostride + size_t(o) * 16 + p] = v;
        }
      }
  });
  if (L.pixel_norm)
    run_or_throw(nb, [&](int img, int) { ks_->pixel_norm(out + size_t(img) * ostride, 16, C, 16, L.pixel_norm_eps); });
}

// The layer's pixel norm over the channels of every output pixel (a pass of its own).
void CpuBackend::pixel_norm(const LayerDesc& L, float* out, size_t out_stride, int nb) {
  const int HW = L.out_res * L.out_res;
  const int pchunk = 1024;
  const int chunks = ceil_div(HW, pchunk);
  run_or_throw(nb * chunks, [&](int t, int) {
    const int img = t / chunks, p0 = (t % chunks) * pchunk, n = std::min(pchunk, HW - p0);
    ks_->pixel_norm(out + size_t(img) * out_stride + p0, size_t(HW), L.out_ch, n, L.pixel_norm_eps);
  });
}

// ProGAN's nearest ×2 (when its conv does not run in the polyphase Winograd form) into `up`
// [img][C_in][2H][2H]: row y of the 2H grid is input row y/2, each value twice.
void CpuBackend::upsample_nearest(const LayerDesc& L, const float* x, size_t x_stride, float* up, int nb) {
  const int H = L.out_res, HW = H * H, h = L.in_res, Ci = L.in_ch;
  const size_t ustride = size_t(Ci) * HW;
  const int cper = std::max(1, 16384 / HW);
  const int chunks = ceil_div(Ci, cper);
  run_or_throw(nb * chunks, [&](int t, int) {
    const int img = t / chunks, c0 = (t % chunks) * cper, c1 = std::min(Ci, c0 + cper);
    for (int c = c0; c < c1; ++c) {
      const float* src = x + size_t(img) * x_stride + size_t(c) * h * h;
      float* dst = up + size_t(img) * ustride + size_t(c) * HW;
      for (int yy = 0; yy < h; ++yy) {
        float* r0 = dst + size_t(2 * yy) * H;
        for (int xx = 0; xx < h; ++xx) r0[2 * xx] = r0[2 * xx + 1] = src[size_t(yy) * h + xx];
        std::memcpy(r0 + H, r0, size_t(H) * sizeof(float));
      }
    }
  });
}

}  // namespace cpu
}  // namespace facegan
