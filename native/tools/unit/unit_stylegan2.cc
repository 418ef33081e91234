// StyleGAN2 end to end on a small synthetic network (the Network description the core builds,
// filled in by hand) and a naive host forward pass from docs/stylegan2.md: the style /
// demodulation plan and conv geometry, the host reference against the core's cpu-ref engine, and
// the CUDA backend (emulated, and on a GPU when there is one) against the host reference, its
// generate (ws on the device) against its own mapping + synthesis.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../../cpu/noise.h"
#include "../../cuda/philox.cuh"
#include "../../cuda/plan.h"
#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_control.h"  // the emulated device's compute capability
#endif
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace facegan {
namespace unit {

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

}  // namespace unit
}  // namespace facegan

namespace {

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

// conv_layer_geom: StyleGAN2's convs keep the input grid (up-convs as 4 sub-pixel phases), ProGAN's
// nearest up-convs become the plain conv over the output grid reading the input via src_shift.
void test_conv_layer_geom() {
  auto t = make_tiny_model();
  for (const LayerDesc& L : t->net.layers) {
    if (L.kind != LayerDesc::Conv) continue;
    const ConvGeom g = conv_layer_geom(L);
    CHECK(g.H == L.in_res && g.W == L.in_res && g.up == L.up && g.src_shift == 0 && g.Cin == L.in_ch &&
              g.Cout == L.out_ch && conv_out_h(g) == L.out_res,
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
    // generate (Backend::generate: the ws stay on the device) == mapping, then synthesis of those
    // ws, bit for bit: labels, ψ 0.7 with cutoff 3, every noise mode, a request offset.
    for (int mode = 0; mode < 3; ++mode) {
      MappingArgs mc = ma;
      mc.truncation_cutoff = 3;
      std::vector<float> wsc(ws.size());
      mc.ws = wsc.data();
      SynthesisArgs sa;
      sa.n = nb;
      sa.ws = wsc.data();
      sa.noise = mode == 0 ? NoiseMode::Const : mode == 1 ? NoiseMode::None : NoiseMode::Random;
      sa.noise_seed = 0xABCull;
      sa.image_offset = 5;
      std::vector<float> img(img_elems), img_g(img_elems, -9.0f);
      std::vector<uint8_t> u8(img_elems), u8_g(img_elems, 9);
      sa.img = img.data();
      sa.img_u8 = u8.data();
      Status gs = be->mapping(mc);
      if (gs.ok) gs = be->synthesis(sa);
      CHECK(gs.ok, std::string(pname) + " mapping + synthesis: " + gs.message);
      BackendGenerateArgs ga;
      ga.mapping = mc;
      ga.mapping.ws = nullptr;
      ga.synthesis = sa;
      ga.synthesis.ws = nullptr;
      ga.synthesis.img = img_g.data();
      ga.synthesis.img_u8 = u8_g.data();
      uint64_t ws_bad = 1, img_bad = 1;
      ga.ws_nonfinite_count = &ws_bad;
      ga.synthesis.nonfinite_count = &img_bad;
      CHECK(be->provides_generate(), bname + " provides generate()");
      gs = be->generate(ga);
      CHECK(gs.ok && ws_bad == 0 && img_bad == 0 && img_g == img && u8_g == u8,
            std::string(pname) + " noise mode " + std::to_string(mode) +
                ": generate == mapping + synthesis (bits): " + gs.message + fmt(", max |diff| %g (%g)", max_abs_diff(img_g, img), 0.0));
    }
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
#endif

const Register kCases(__FILE__, {
    {"style and demodulation plan", test_style_plan},
    {"conv layer geometry (both architectures)", test_conv_layer_geom},
    {"host reference == core cpu-ref engine (tiny network)", test_host_reference_vs_cpu_ref},
#ifdef FACEGAN_WITH_CUDA_EMU
    {"emulated CUDA backend (cuda-emu) == host reference, end to end", [] { test_cuda_backend("cuda-emu"); }},
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
    {"emulated CUDA backend, sm_75 code paths (cuda-emu-sm75) == host reference",
     [] {
       fg_emu::reset();
       fg_emu::config().cc = 75;  // the device reports 7.5: bf16 is refused, fp16 runs as m16n8k8 pairs
       test_cuda_backend("cuda-emu-sm75");
       fg_emu::reset();
     }},
#endif
#endif
#ifdef FACEGAN_WITH_CUDA
    {"CUDA backend (end to end when a GPU is present)", [] { test_cuda_backend("cuda"); }},
#endif
});

}  // namespace
