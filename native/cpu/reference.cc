// The scalar reference engine ("cpu-ref"): docs/stylegan2.md written out literally,
// one image at a time, per-sample modulated weights, the transposed convolution materialised
// at (2H+1)² and then filtered, the skip image upsampled by zero insertion + FIR. Slow on
// purpose; the judge for the optimised engines.
//
// ProGAN: docs/progan.md / test/helpers/progan-reference.ts written out the same way (float32
// intermediates, float64 accumulation, the same roundings as the TypeScript reference), the
// nearest ×2 upsampling materialised.
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
  bool supports(Arch) const override { return true; }

  Status prepare(const Network& net, const LoadOptions& options) override {
    if (options.precision != Precision::FP32) return Status::Error("the cpu-ref backend runs fp32 only");
    net_ = &net;
    // Its own copy of the layers with every weight as float32 (the network keeps conv weights as
    // stored, readable during prepare only): this engine reads them on every call.
    layers_ = net.layers;
    weights_.clear();
    weights_.reserve(layers_.size());
    for (LayerDesc& L : layers_) {
      std::vector<float> w;
      const float* p = layer_weight_f32(L, &w);
      if (p != L.weight) {
        weights_.push_back(std::move(w));
        L.weight = weights_.back().data();
      }
      L.weight_src = TensorView();
    }
    return Status::Ok();
  }

  Status mapping(const MappingArgs& a) override {
    if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
    cpu::run_mapping(*net_, a);
    return Status::Ok();
  }

  Status synthesis(const SynthesisArgs& a) override {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels, wd = net.info.w_dim;
    std::vector<float> img_out(size_t(IC) * R * R);
    // Non-finite values: reports_nonfinite() is false, the Generator scans the float image.
    for (int n = 0; n < a.n; ++n) {
      bool done = false;
      if (net.arch == Arch::ProGAN) {
        done = progan_one(a.z + size_t(n) * net.info.z_dim, img_out.data(), a.cancel);
      } else {
        const float* ws = a.ws + size_t(n) * net.info.num_ws * wd;
        done = synth_one(ws, a.noise, a.noise_seed, a.image_offset + uint32_t(n), img_out.data(), a.cancel);
      }
      if (!done) return Status::Cancelled("synthesis: cancelled");
      if (a.img) {
        float* dst = a.img + size_t(n) * IC * R * R;
        for (size_t i = 0; i < img_out.size(); ++i) dst[i] = img_out[i];
      }
      if (a.img_u8) cpu::to_u8_hwc(img_out.data(), IC, R, R, a.img_u8 + size_t(n) * IC * R * R, net.output);
    }
    return Status::Ok();
  }

 private:
  const Network* net_ = nullptr;
  std::vector<LayerDesc> layers_;            // net_->layers, with float32 conv weights
  std::vector<std::vector<float>> weights_;  // owns those weights

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

  // ---- ProGAN -----------------------------------------------------------------------------

  // x ← x·rsqrt(mean(x²) + eps) over n values at stride `stride` (the TypeScript reference's
  // roundings: float64 sum of squares, mean rounded to float32, + eps rounded, 1/sqrt rounded).
  static void pixel_norm(float* x, int n, size_t stride, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += double(x[size_t(i) * stride]) * double(x[size_t(i) * stride]);
    const float mean = float(ss / n);
    const float scale = float(1.0 / std::sqrt(double(float(double(mean) + double(eps)))));
    for (int i = 0; i < n; ++i) x[size_t(i) * stride] = x[size_t(i) * stride] * scale;
  }

  // Activation then pixel norm over the channels of every pixel of a [C, HW] map.
  static void act_norm(const LayerDesc& L, float* a, int C, size_t HW) {
    if (L.activate)
      for (size_t i = 0; i < size_t(C) * HW; ++i) {
        float v = a[i];
        if (v < 0.0f) v = v * L.lrelu_slope;
        if (L.act_gain != 1.0f) v = v * L.act_gain;
        a[i] = v;
      }
    if (L.pixel_norm)
      for (size_t p = 0; p < HW; ++p) pixel_norm(a + p, C, HW, L.pixel_norm_eps);
  }

  // False when cancelled (checked before each layer).
  bool progan_one(const float* z, float* out, const CancelFlag* cancel) const {
    const Network& net = *net_;
    const int Z = net.info.z_dim;
    std::vector<float> zf(z, z + Z), x, y;
    if (net.normalize_latent) pixel_norm(zf.data(), Z, 1, net.latent_eps);
    int res = 0, ch = 0;
    for (const LayerDesc& L : layers_) {
      if (is_cancelled(cancel)) return false;
      if (L.kind == LayerDesc::Dense) {
        // a[o][y][x] = Σ_c W[o·16 + y·4 + x][c]·z[c] + b[o]
        x.assign(size_t(L.out_ch) * 16, 0.0f);
        for (int o = 0; o < L.out_ch; ++o)
          for (int p = 0; p < 16; ++p) {
            const float* w = L.weight + (size_t(o) * 16 + p) * Z;
            double s = 0.0;
            for (int k = 0; k < Z; ++k) s += double(w[k]) * double(zf[size_t(k)]);
            x[size_t(o) * 16 + p] = float(s + double(L.bias[o]));
          }
        res = 4;
        ch = L.out_ch;
        act_norm(L, x.data(), ch, 16);
      } else if (L.kind == LayerDesc::Conv) {
        // Optional nearest ×2, then a SAME 3×3 cross-correlation + bias.
        const int H = L.out_res;
        std::vector<float> src;
        if (L.up == 2) {
          src.resize(size_t(L.in_ch) * H * H);
          for (int c = 0; c < L.in_ch; ++c)
            for (int yy = 0; yy < H; ++yy)
              for (int xx = 0; xx < H; ++xx)
                src[(size_t(c) * H + yy) * H + xx] = x[(size_t(c) * res + yy / 2) * res + xx / 2];
        } else {
          src = x;
        }
        y.assign(size_t(L.out_ch) * H * H, 0.0f);
        std::vector<double> acc(size_t(H) * H);
        for (int o = 0; o < L.out_ch; ++o) {
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int c = 0; c < L.in_ch; ++c)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const double w = L.weight[((size_t(o) * L.in_ch + c) * 3 + ky) * 3 + kx];
                for (int oy = 0; oy < H; ++oy) {
                  const int iy = oy + ky - 1;
                  if (iy < 0 || iy >= H) continue;
                  const float* row = src.data() + (size_t(c) * H + iy) * H;
                  double* arow = acc.data() + size_t(oy) * H;
                  for (int ox = 0; ox < H; ++ox) {
                    const int ix = ox + kx - 1;
                    if (ix < 0 || ix >= H) continue;
                    arow[ox] += w * double(row[ix]);
                  }
                }
              }
          for (size_t p = 0; p < acc.size(); ++p) y[size_t(o) * H * H + p] = float(acc[p] + double(L.bias[o]));
        }
        x.swap(y);
        res = H;
        ch = L.out_ch;
        act_norm(L, x.data(), ch, size_t(H) * H);
      } else {
        // ToRGB 1×1 + bias, linear, no clip.
        const size_t HW = size_t(res) * res;
        for (int k = 0; k < L.out_ch; ++k)
          for (size_t p = 0; p < HW; ++p) {
            double s = 0.0;
            for (int c = 0; c < ch; ++c) s += double(L.weight[size_t(k) * ch + c]) * double(x[size_t(c) * HW + p]);
            out[size_t(k) * HW + p] = float(s + double(L.bias[k]));
          }
      }
    }
    return true;
  }

  // ---- StyleGAN2 --------------------------------------------------------------------------

  // False when cancelled (checked before each layer).
  bool synth_one(const float* ws, NoiseMode mode, uint64_t seed, uint32_t image, float* out, const CancelFlag* cancel) const {
    const Network& net = *net_;
    const int wd = net.info.w_dim, IC = net.info.img_channels;
    std::vector<float> x(net.const_input, net.const_input + size_t(net.const_ch) * 16), y, s, img, noise;
    int img_res = 0, conv_ordinal = 0;
    for (size_t li = 0; li < net.layers.size(); ++li) {
      if (is_cancelled(cancel)) return false;
      const LayerDesc& L = layers_[li];
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
    return true;
  }
};

}  // namespace

std::unique_ptr<Backend> create_cpu_reference_backend() { return std::unique_ptr<Backend>(new ReferenceBackend()); }

}  // namespace facegan
