// ProGAN: a small model in the canonical tensors of docs/progan.md, built into the shared
// description by the core's build_network (the path every backend reads), and a naive forward
// pass written from docs/progan.md on the raw tensors (not on the description): against the core's
// cpu-ref engine, a host emulation of the CUDA backend's ProGAN pipeline, and the CUDA backend
// itself (emulated, and on a GPU when there is one).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../cuda/plan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {


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

// A registered backend, created (nullptr when there is none).
std::unique_ptr<Backend> create_backend(const char* name) {
  const BackendReg* r = find_backend(name);
  return r ? r->create() : nullptr;
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
  auto be = create_backend("cpu-ref");
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
  auto be = create_backend("cpu-ref");
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
        std::vector<float> W;
        CHECK(layer_weight_f32(L, &W) == W.data(), L.name + ": conv weights kept as stored");
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
    auto ref_be = create_backend("cpu-ref");
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

const Register kCases(__FILE__, {
    {"ProGAN spec forward == core cpu-ref engine (tiny ProGAN)", test_progan_host_vs_cpu_ref},
    {"ProGAN pipeline emulation (backend geometry + kernels) == cpu-ref", test_progan_pipeline_emulation},
#ifdef FACEGAN_WITH_CUDA_EMU
    {"emulated CUDA ProGAN (cuda-emu) == cpu-ref, end to end", [] { test_cuda_progan("cuda-emu"); }},
#endif
#ifdef FACEGAN_WITH_CUDA
    {"CUDA ProGAN == cpu-ref (end to end when a GPU is present)", [] { test_cuda_progan("cuda"); }},
#endif
});

}  // namespace
