// The naive convolution references the unit tests share (declared in unit.h), written from the
// definitions in docs/stylegan2.md.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../random_model.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

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

}  // namespace

namespace facegan {
namespace unit {

int64_t in_plane(const ConvGeom& g) { return (int64_t)(g.H >> g.src_shift) * (g.W >> g.src_shift) * g.Cin; }

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

std::vector<float> upconv_via_phases(const ConvGeom& g, const std::function<std::vector<float>(const ConvGeom&)>& gemm) {
  const int TH = geom_OH(g), TW = geom_OW(g), OH = conv_out_h(g), OW = conv_out_w(g), C = g.Cout;
  std::vector<float> t((size_t)g.batch * TH * TW * C, std::nanf(""));
  std::vector<char> seen(t.size(), 0);
  for (int ph = 0; ph < conv_phases(g); ++ph) {
    const std::vector<float> part = gemm(conv_phase_geom(g, ph));
    for (size_t i = 0; i < t.size(); ++i)
      if (!std::isnan(part[i])) {
        t[i] = seen[i] ? std::nanf("") : part[i];
        seen[i] = 1;
      }
  }
  std::vector<float> out((size_t)g.batch * OH * OW * C);
  for (int b = 0; b < g.batch; ++b)
    for (int Y = 0; Y < OH; ++Y)
      for (int X = 0; X < OW; ++X)
        for (int o = 0; o < C; ++o) {
          double acc = 0.0;
          for (int ay = 0; ay < 4; ++ay)
            for (int ax = 0; ax < 4; ++ax) {
              const int ty = Y - 1 + ay, tx = X - 1 + ax;
              if (ty < 0 || ty >= TH || tx < 0 || tx >= TW) continue;
              acc += (double)upfir_tap(ay) * upfir_tap(ax) * t[(((size_t)b * TH + ty) * TW + tx) * C + o];
            }
          out[(((size_t)b * OH + Y) * OW + X) * C + o] = (float)acc;
        }
  return out;
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


double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, double* ref_max) {
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs((double)a[i] - b[i]);
    d = std::isnan(e) ? INFINITY : std::max(d, e);
    r = std::max(r, std::fabs((double)b[i]));
  }
  if (ref_max) *ref_max = r;
  return d;
}

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

}  // namespace unit
}  // namespace facegan

namespace facegan {
namespace unit {

std::vector<float> random_model_images(const std::string& config, int n, const LoadOptions& lo, NoiseMode noise,
                                       std::string* err) {
  tools::RandomModelSpec spec;
  tools::RandomModel model;
  if (!tools::random_model_spec(config, &spec)) {
    *err = "unknown random config " + config;
    return {};
  }
  tools::make_random_model(spec, 3, &model);
  std::unique_ptr<Generator> gen;
  Status s = Generator::create(model.config_json, model.tensors, lo, &gen);
  if (!s) {
    *err = s.message;
    return {};
  }
  const ModelInfo& mi = gen->info();
  const bool progan = mi.arch == "progan";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> z(size_t(n) * mi.z_dim);
  for (float& v : z) v = normal(rng);
  std::vector<float> labels(size_t(n) * std::max(1, mi.c_dim), 0.0f);
  for (int i = 0; i < n && mi.c_dim > 0; ++i) labels[size_t(i) * mi.c_dim + size_t(i % mi.c_dim)] = 1.0f;
  std::vector<float> img(size_t(n) * mi.img_channels * mi.img_resolution * mi.img_resolution);
  GenerateArgs ga;
  ga.n = n;
  ga.z = z.data();
  if (mi.c_dim > 0) ga.c = labels.data();
  ga.psi = progan ? 1.0f : 0.7f;
  ga.noise = progan ? NoiseMode::None : noise;
  ga.noise_seed = 11;
  ga.img = img.data();
  if (!(s = gen->generate(ga))) {
    *err = s.message;
    return {};
  }
  return img;
}

}  // namespace unit
}  // namespace facegan
