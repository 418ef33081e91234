// The scalar reference engine ("cpu-ref"): shared/stylegan2-math.md written out literally,
// one image at a time, per-sample modulated weights, the transposed convolution materialised
// at (2H+1)² and then filtered, the skip image upsampled by zero insertion + FIR. Slow on
// purpose; the judge for the optimised engines.
#include <cmath>
#include <vector>

#include "backend.h"
#include "common.h"
#include "noise.h"

namespace facegan {
namespace {

constexpr float kSqrt2 = 1.41421356237309504880f;

// 1-D [1,3,3,1] filter; the 2-D filter is the outer product / 64.
const float kF1[4] = {1.0f, 3.0f, 3.0f, 1.0f};

class ReferenceBackend : public Backend {
 public:
  const char* name() const override { return "cpu-ref"; }

  Status prepare(const Network& net, const LoadOptions& options) override {
    if (options.precision != Precision::FP32) return Status::Error("the cpu-ref backend runs fp32 only");
    net_ = &net;
    return Status::Ok();
  }

  Status mapping(const MappingArgs& a) override {
    cpu::run_mapping(*net_, a);
    return Status::Ok();
  }

  Status synthesis(const SynthesisArgs& a) override {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels, wd = net.info.w_dim;
    std::vector<float> img_out(size_t(IC) * R * R);
    for (int n = 0; n < a.n; ++n) {
      const float* ws = a.ws + size_t(n) * net.info.num_ws * wd;
      synth_one(ws, a.noise, a.noise_seed, a.image_offset + uint32_t(n), img_out.data());
      if (a.img) {
        float* dst = a.img + size_t(n) * IC * R * R;
        for (size_t i = 0; i < img_out.size(); ++i) dst[i] = img_out[i];
      }
      if (a.img_u8) cpu::to_u8_hwc(img_out.data(), IC, R, R, a.img_u8 + size_t(n) * IC * R * R);
    }
    return Status::Ok();
  }

 private:
  const Network* net_ = nullptr;

  // s[i] = (w · A[i]ᵀ · affine_gain + b[i]) · style_gain
  static void styles(const LayerDesc& L, const float* w, int wd, std::vector<float>* s) {
    s->assign(size_t(L.in_ch), 0.0f);
    for (int i = 0; i < L.in_ch; ++i) {
      double acc = 0.0;
      for (int j = 0; j < wd; ++j) acc += double(w[j]) * (L.affine_W[size_t(i) * wd + j] * L.affine_gain);
      (*s)[size_t(i)] = (float(acc) + L.affine_b[i]) * L.style_gain;
    }
  }

  static float bias_act(float v, const LayerDesc& L) {
    if (L.activate) v = (v < 0.0f ? v * 0.2f : v) * kSqrt2;
    if (L.clamp >= 0.0f) v = std::fmin(std::fmax(v, -L.clamp), L.clamp);
    return v;
  }

  // Per-sample modulated (and demodulated) weights [out][in][k][k].
  static std::vector<float> modulated_weight(const LayerDesc& L, const std::vector<float>& s) {
    const int K = L.ksize * L.ksize;
    std::vector<float> w(size_t(L.out_ch) * L.in_ch * K);
    for (int o = 0; o < L.out_ch; ++o) {
      double ss = 0.0;
      for (int i = 0; i < L.in_ch; ++i)
        for (int k = 0; k < K; ++k) {
          size_t idx = (size_t(o) * L.in_ch + i) * K + k;
          float v = L.weight[idx] * s[size_t(i)];
          w[idx] = v;
          ss += double(v) * v;
        }
      if (L.demodulate) {
        float d = float(1.0 / std::sqrt(ss + 1e-8));
        for (size_t idx = size_t(o) * L.in_ch * K; idx < size_t(o + 1) * L.in_ch * K; ++idx) w[idx] *= d;
      }
    }
    return w;
  }

  void conv_layer(const LayerDesc& L, const std::vector<float>& s, const std::vector<float>& x,
                  std::vector<float>* y, NoiseMode mode, const float* noise) const {
    const int H = L.in_res, OH = L.out_res, Ci = L.in_ch, Co = L.out_ch;
    std::vector<float> w = modulated_weight(L, s);
    std::vector<double> acc(size_t(OH) * OH);
    y->assign(size_t(Co) * OH * OH, 0.0f);
    for (int o = 0; o < Co; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      if (L.up == 1) {
        for (int i = 0; i < Ci; ++i)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              double wv = w[((size_t(o) * Ci + i) * 3 + ky) * 3 + kx];
              for (int oy = 0; oy < H; ++oy) {
                int iy = oy + ky - 1;
                if (iy < 0 || iy >= H) continue;
                for (int ox = 0; ox < H; ++ox) {
                  int ix = ox + kx - 1;
                  if (ix < 0 || ix >= H) continue;
                  acc[size_t(oy) * H + ox] += wv * x[(size_t(i) * H + iy) * H + ix];
                }
              }
            }
      } else {
        // Transposed convolution, stride 2, no padding: (2H+1)².
        const int T = 2 * H + 1;
        std::vector<double> t(size_t(T) * T, 0.0);
        for (int i = 0; i < Ci; ++i)
          for (int iy = 0; iy < H; ++iy)
            for (int ix = 0; ix < H; ++ix) {
              double xv = x[(size_t(i) * H + iy) * H + ix];
              for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx)
                  t[size_t(2 * iy + ky) * T + (2 * ix + kx)] += xv * w[((size_t(o) * Ci + i) * 3 + ky) * 3 + kx];
            }
        // FIR [1,3,3,1]²/64 with gain 4, padding 1 on every side: (2H)².
        for (int oy = 0; oy < OH; ++oy)
          for (int ox = 0; ox < OH; ++ox) {
            double v = 0.0;
            for (int a = 0; a < 4; ++a)
              for (int b = 0; b < 4; ++b) {
                int ty = oy + a - 1, tx = ox + b - 1;
                if (ty < 0 || ty >= T || tx < 0 || tx >= T) continue;
                v += t[size_t(ty) * T + tx] * (kF1[a] * kF1[b] / 64.0 * 4.0);
              }
            acc[size_t(oy) * OH + ox] = v;
          }
      }
      for (int p = 0; p < OH * OH; ++p) {
        float v = float(acc[size_t(p)]);
        if (mode == NoiseMode::Const) v += L.noise_const[p] * L.noise_strength;
        else if (mode == NoiseMode::Random) v += noise[p] * L.noise_strength;
        v += L.bias[o];
        (*y)[size_t(o) * OH * OH + p] = bias_act(v, L);
      }
    }
  }

  // upsample2d: zero insertion ×2, padding [2, 1], FIR gain 4.
  static std::vector<float> upsample(const std::vector<float>& img, int C, int H) {
    const int U = 2 * H, P = U + 3;
    std::vector<float> out(size_t(C) * U * U);
    std::vector<double> z(size_t(P) * P);
    for (int c = 0; c < C; ++c) {
      std::fill(z.begin(), z.end(), 0.0);
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < H; ++x) z[size_t(2 * y + 2) * P + (2 * x + 2)] = img[(size_t(c) * H + y) * H + x];
      for (int oy = 0; oy < U; ++oy)
        for (int ox = 0; ox < U; ++ox) {
          double v = 0.0;
          for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) v += z[size_t(oy + a) * P + (ox + b)] * (kF1[3 - a] * kF1[3 - b] / 64.0 * 4.0);
          out[(size_t(c) * U + oy) * U + ox] = float(v);
        }
    }
    return out;
  }

  void synth_one(const float* ws, NoiseMode mode, uint64_t seed, uint32_t image, float* out) const {
    const Network& net = *net_;
    const int wd = net.info.w_dim, IC = net.info.img_channels;
    std::vector<float> x(net.const_input, net.const_input + size_t(net.const_ch) * 16), y, s, img, noise;
    int img_res = 0, conv_ordinal = 0;
    for (size_t li = 0; li < net.layers.size(); ++li) {
      const LayerDesc& L = net.layers[li];
      styles(L, ws + size_t(L.w_index) * wd, wd, &s);
      if (L.kind == LayerDesc::Conv) {
        if (mode == NoiseMode::Random) {
          noise.resize(size_t(L.out_res) * L.out_res);
          noise_fill(seed, conv_ordinal, image, 0, noise.size(), noise.data());
        }
        ++conv_ordinal;
        conv_layer(L, s, x, &y, mode, noise.data());
        x.swap(y);
      } else {
        const int H = L.out_res, Ci = L.in_ch;
        std::vector<float> w = modulated_weight(L, s);
        std::vector<float> rgb(size_t(IC) * H * H);
        for (int k = 0; k < IC; ++k)
          for (int p = 0; p < H * H; ++p) {
            double acc = 0.0;
            for (int i = 0; i < Ci; ++i) acc += double(w[size_t(k) * Ci + i]) * x[size_t(i) * H * H + p];
            rgb[size_t(k) * H * H + p] = bias_act(float(acc) + L.bias[k], L);
          }
        if (img_res) {
          std::vector<float> up = upsample(img, IC, img_res);
          for (size_t i = 0; i < rgb.size(); ++i) rgb[i] += up[i];
        }
        img.swap(rgb);
        img_res = H;
      }
    }
    for (size_t i = 0; i < img.size(); ++i) out[i] = img[i];
  }
};

}  // namespace

std::unique_ptr<Backend> create_cpu_reference_backend() { return std::unique_ptr<Backend>(new ReferenceBackend()); }

}  // namespace facegan
