// Unit tests of every CUDA kernel family, run through the emulator (the real .cu sources, launched
// with their own launchers) against naive host references: modulated conv in every tile shape and
// precision (K tails, several column tiles, tiles crossing samples, up 1 and 2, the scalar and the
// vector loaders, wide layers), the row-dot kernel (FC and demodulation modes, wide inputs),
// toRGB + skip, toRGB fused into the conv epilogue against the separate pass, random noise, pixel
// norm, the mapping helpers. facegan-unit calls run_kernel_tests.
// Compiled inside the emulator build (the namespace `cuda` is the emulated backend's).
#include "kernel_tests.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.cuh"
#include "conv_ref.h"
#include "emu_control.h"
#include "kernels.h"
#include "philox.cuh"
#include "plan.h"
#include "test_util.h"

namespace facegan {
namespace emu_tests {
namespace {

using namespace cuda;
using namespace emu_test_util;

std::mt19937 g_rng(4242);
std::vector<float> rnd(size_t n, float lo = -1.0f, float hi = 1.0f) { return testref::random_vec(g_rng, n, lo, hi); }
using testref::rel_l2;

// A launcher error or a kernel fault ends a case: reports it and resets the emulated device.
bool failed_launch(const std::string& name, const Status& st, cudaError_t e, Results* out) {
  if (st.ok && e == cudaSuccess) return false;
  out->push_back({name, false, st.ok ? std::string(cudaGetErrorName(e)) + ": " + fg_emu::fault_message() : st.message});
  cudaDeviceReset();
  return true;
}

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

// Device buffer helpers (the emulated runtime API).


// Values stored in the activation type t (float, or 16-bit bits) on the device, and back.
void* upload_act(const std::vector<float>& v, ActType t) {
  if (t == ActType::F32) return upload(v);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = to16(v[i], t);
  return upload(h);
}
std::vector<float> download_act(const void* p, size_t n, ActType t) {
  if (t == ActType::F32) return download<float>(p, n);
  const auto h = download<uint16_t>(p, n);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = from16(h[i], t);
  return v;
}

struct ConvCase {
  const char* name;
  int batch, H, Cin, Cout, up;
  bool shared_input;  // x_bstride 0 (StyleGAN2's const input)
};

// One modulated conv through launch_modconv against ref_conv3x3 / ref_upconv + the epilogue.
void conv_case(const ConvCase& c, ActType t, Results* out) {
  const char* pname = t == ActType::F32 ? "fp32" : t == ActType::F16 ? "fp16" : "bf16";
  ConvGeom g;
  g.batch = c.batch;
  g.H = g.W = c.H;
  g.Cin = c.Cin;
  g.Cout = c.Cout;
  g.up = c.up;
  const int64_t in_plane = (int64_t)g.H * g.W * g.Cin;
  const int64_t bstride = c.shared_input ? 0 : in_plane;
  auto x = rnd((size_t)(c.shared_input ? 1 : c.batch) * in_plane);
  if (t != ActType::F32)
    for (float& v : x) v = from16(to16(v, t), t);  // the reference sees the stored activations
  auto s = rnd((size_t)c.batch * c.Cin, 0.5f, 1.5f);
  auto W = rnd((size_t)c.Cout * c.Cin * 9);
  auto d = rnd((size_t)c.batch * c.Cout, 0.5f, 1.0f);
  auto bias = rnd(c.Cout, -0.2f, 0.2f);
  const int OH = g.up * g.H;
  auto noise = rnd((size_t)OH * OH);
  const float strength = 0.3f, clamp = 1.5f;
  std::vector<float> ref = g.up == 1 ? testref::ref_conv3x3(g, x, bstride, s, W) : testref::ref_upconv(g, x, bstride, s, W);
  for (int b = 0; b < c.batch; ++b)
    for (int p = 0; p < OH * OH; ++p)
      for (int o = 0; o < c.Cout; ++o) {
        float& v = ref[((size_t)b * OH * OH + p) * c.Cout + o];
        double r = (double)v * d[(size_t)b * c.Cout + o] + noise[p] * strength + bias[o];
        r = (r < 0 ? r * 0.2 : r) * std::sqrt(2.0);
        v = (float)std::min<double>(std::max<double>(r, -clamp), clamp);
      }

  const ConvTile tile = choose_conv_tile(t, geom_N(g));
  const int Kpad = conv_tile_kpad(tile, g), Npad = conv_tile_npad(tile, geom_N(g));
  ConvArgs a;
  a.g = g;
  a.x_bstride = bstride;
  std::vector<float> B((size_t)Kpad * Npad), colscale((size_t)conv_phases(g) * Npad, 1.0f);
  pack_conv_layer(g, W.data(), conv_tile_bk(tile), Npad, t != ActType::F32, B.data(), colscale.data());
  float* csdev = nullptr;
  if (t != ActType::F32) {
    csdev = upload(colscale);
    a.colscale = csdev;
  }
  void* wdev = upload_act(B, t);
  void* xdev = upload_act(x, t);
  a.x = xdev;
  float* sdev = upload(s);
  float* ddev = upload(d);
  float* bdev = upload(bias);
  float* ndev = upload(noise);
  a.styles = sdev;
  a.style_stride = c.Cin;
  a.w = wdev;
  a.Kpad = Kpad;
  a.Npad = Npad;
  a.dcoef = ddev;
  a.d_stride = c.Cout;
  a.noise = ndev;
  a.noise_strength = strength;
  a.bias = bdev;
  a.clamp = clamp;
  const size_t out_n = (size_t)c.batch * OH * OH * c.Cout;
  void *ydev = nullptr, *tdev = nullptr;
  cudaMalloc(&ydev, out_n * (t == ActType::F32 ? 4 : 2));
  a.y = ydev;
  if (g.up == 2) {  // the transposed conv's (2H+1)^2 output, before the FIR pass
    cudaMalloc(&tdev, (size_t)c.batch * geom_OH(g) * geom_OW(g) * c.Cout * (t == ActType::F32 ? 4 : 2));
    a.t = tdev;
  }
  const Status st = launch_modconv(a, t, tile, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  const std::vector<float> got = download_act(ydev, out_n, t);
  for (void* p : {wdev, xdev, (void*)csdev, (void*)sdev, (void*)ddev, (void*)bdev, (void*)ndev, ydev, tdev}) cudaFree(p);
  const char* tname = tile == ConvTile::Ffma ? "ffma" : tile == ConvTile::MmaWide ? "mma128x128" : "mma128x32";
  const std::string name = std::string("modconv ") + c.name + " " + pname + " " + tname + " sm_" +
                           std::to_string(__CUDA_ARCH__ / 10);
  if (failed_launch(name, st, e, out)) return;
  const double err = rel_l2(got, ref);
  const double limit = t == ActType::F32 ? 1e-5 : t == ActType::F16 ? 2e-3 : 1.5e-2;
  out->push_back({name, err < limit, fmt("rel. L2 error %.3g (limit %g)", err, limit)});
}

void test_modconv(Results* out, bool quick) {
  std::vector<ConvCase> cases = {
      {"4x4 const input, 32->40", 3, 4, 32, 40, 1, true},      // shared input, K tail (288 % 32 != 0 for mma)
      {"5x5 b3 12->20 (scalar loaders)", 3, 5, 12, 20, 1, false},  // Cin % 8 != 0: scalar A loader
      {"6x6 b2 16->72 (column tiles)", 2, 6, 16, 72, 1, false},  // several column tiles
      {"up2 4x4 b2 24->16", 2, 4, 24, 16, 2, false},
      {"up2 3x3 b3 10->12 (scalar)", 3, 3, 10, 12, 2, false},
      {"up2 5x5 b1 8->7 (odd Cout)", 1, 5, 8, 7, 2, false},
  };
  if (!quick) {
    cases.push_back({"wide 2x2 b1 176->24 (K 1584)", 1, 2, 176, 24, 1, false});
    cases.push_back({"9x9 b2 8->136 (rows cross samples)", 2, 9, 8, 136, 1, false});
    cases.push_back({"up2 9x9 b2 16->72 (row and column tiles)", 2, 9, 16, 72, 2, false});
  }
  for (const ConvCase& c : cases)
    for (ActType t : {ActType::F32, ActType::F16, ActType::BF16})
      if (t != ActType::BF16 || __CUDA_ARCH__ >= 800) conv_case(c, t, out);  // bf16 mma needs sm_80
}


// ---- gemv.cu: the row-dot kernel in FC mode (gains, bias, lrelu) and in demodulation mode
// (with the 16-bit pre-scale), against double-precision sums; wide inputs reach the shared-memory
// opt-in path (K = 1536 with 8 samples per block is 48 KB of vectors plus the kernel's static
// shared memory).
void rows_case(const char* name, int n, int K, int rows, bool demod, bool scale16, Results* out) {
  auto x = rnd((size_t)n * K, demod ? 0.2f : -1.0f, 1.0f);
  auto M = rnd((size_t)rows * K, demod ? 0.0f : -1.0f, 1.0f);
  auto bias = rnd(rows);
  RowTile seg;
  seg.K = K;
  seg.ld = K;
  seg.w_gain = 0.5f;
  seg.b_gain = 2.0f;
  seg.post_gain = 1.5f;
  std::vector<RowTile> tiles;
  split_rows(seg, rows, 32, &tiles);
  RowsArgs a;
  a.n = n;
  a.demod = demod ? 1 : 0;
  RowTile* tdev = upload(tiles);
  float* xdev = upload(x);
  float* Mdev = upload(M);
  float* bdev = upload(bias);
  float *ydev = nullptr, *sdev = nullptr;
  cudaMalloc(&ydev, (size_t)n * rows * 4);
  if (scale16) cudaMalloc(&sdev, (size_t)n * 4);
  a.tiles = tdev;
  a.num_tiles = (int)tiles.size();
  a.max_K = K;
  a.x = xdev;
  a.x_stride = K;
  a.M = Mdev;
  a.bias = demod ? nullptr : bdev;
  a.y = ydev;
  a.y_stride = rows;
  a.lrelu = demod ? 0 : 1;
  a.sinv = sdev;
  a.sinv_stride = 1;
  const Status st = launch_rows(a, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  auto got = download<float>(ydev, (size_t)n * rows);
  std::vector<float> sinv = scale16 ? download<float>(sdev, n) : std::vector<float>();
  for (void* p : {(void*)tdev, (void*)xdev, (void*)Mdev, (void*)bdev, (void*)ydev, (void*)sdev}) cudaFree(p);
  const std::string full = std::string("row-dot ") + name;
  if (failed_launch(full, st, e, out)) return;
  std::vector<float> ref((size_t)n * rows);
  bool sinv_ok = true;
  for (int b = 0; b < n; ++b) {
    double mx = 0;
    for (int k = 0; k < K; ++k) mx = std::max(mx, (double)std::fabs(x[(size_t)b * K + k]));
    if (scale16) sinv_ok = sinv_ok && std::fabs(sinv[b] - 1.0 / mx) <= 1e-6 / mx;
    for (int r = 0; r < rows; ++r) {
      double acc = 0;
      for (int k = 0; k < K; ++k) {
        const double v = x[(size_t)b * K + k];
        acc += (demod ? v * v : v) * M[(size_t)r * K + k];
      }
      double v;
      if (demod) {
        v = 1.0 / std::sqrt(acc + 1e-8);
        if (scale16) v *= mx;
      } else {
        v = (acc * 0.5 + bias[r] * 2.0) * 1.5;
        v = (v < 0 ? v * 0.2 : v) * std::sqrt(2.0);
      }
      ref[(size_t)b * rows + r] = (float)v;
    }
  }
  const double err = rel_l2(got, ref);
  out->push_back({full, err < 1e-5 && sinv_ok, fmt("rel. L2 error %.3g (limit %g)", err, 1e-5) + (sinv_ok ? "" : "; wrong 1/max|s|")});
}

void test_rows(Results* out, bool quick) {
  rows_case("FC n=3 K=64 rows=70", 3, 64, 70, false, false, out);
  rows_case("demod n=10 K=40 rows=33 (16-bit prescale)", 10, 40, 33, true, true, out);
  rows_case("FC n=16 K=1536 rows=8 (48 KB of vectors + static shared)", 16, 1536, 8, false, false, out);
  if (!quick) rows_case("demod n=4 K=3072 rows=4", 4, 3072, 4, true, true, out);
}

// ---- torgb.cu: 1x1 modulated conv + bias + clamp + the x2 skip upsample + uint8, against a
// direct computation (the upsample as upfirdn2d: zero insertion, pad [2,1], [1,3,3,1]^2/64 x 4).
void torgb_case(const char* name, int n, int R, int Cin, int Cimg, bool prev, ActType t, Results* out) {
  const char* pname = t == ActType::F32 ? "fp32" : t == ActType::F16 ? "fp16" : "bf16";
  auto x = rnd((size_t)n * R * R * Cin);
  if (t != ActType::F32)
    for (float& v : x) v = from16(to16(v, t), t);
  auto s = rnd((size_t)n * Cin, 0.5f, 1.5f);
  auto W = rnd((size_t)Cimg * Cin);
  auto bias = rnd(Cimg, -0.1f, 0.1f);
  const int Rl = R / 2;
  auto img_prev = rnd((size_t)n * Cimg * Rl * Rl);
  const float clamp = 2.0f;
  std::vector<float> ref((size_t)n * Cimg * R * R);
  const double f1[4] = {1, 3, 3, 1};
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < Cimg; ++c)
      for (int Y = 0; Y < R; ++Y)
        for (int X = 0; X < R; ++X) {
          double acc = 0;
          for (int i = 0; i < Cin; ++i)
            acc += (double)x[(((size_t)b * R + Y) * R + X) * Cin + i] * s[(size_t)b * Cin + i] * W[(size_t)c * Cin + i];
          acc = std::min<double>(std::max<double>(acc + bias[c], -clamp), clamp);
          if (prev) {
            double up = 0;  // upsample2d: zero-stuffed (2 Rl) grid padded [2, 1], 4x4 FIR, gain 4
            for (int a = 0; a < 4; ++a)
              for (int e = 0; e < 4; ++e) {
                const int zy = Y + a - 2, zx = X + e - 2;  // index into the zero-stuffed grid
                if (zy < 0 || zx < 0 || zy >= 2 * Rl || zx >= 2 * Rl || (zy & 1) || (zx & 1)) continue;
                up += img_prev[(((size_t)b * Cimg + c) * Rl + zy / 2) * Rl + zx / 2] * f1[a] * f1[e] / 64.0 * 4.0;
              }
            acc += up;
          }
          ref[(((size_t)b * Cimg + c) * R + Y) * R + X] = (float)acc;
        }
  ToRgbArgs a;
  a.n = n;
  a.R = R;
  a.Cin = Cin;
  a.Cimg = Cimg;
  void* xdev = upload_act(x, t);
  float* sdev = upload(s);
  float* wdev = upload(W);
  float* bdev = upload(bias);
  float* pdev = upload(img_prev);
  float* idev = nullptr;
  uint8_t* udev = nullptr;
  cudaMalloc(&idev, ref.size() * 4);
  cudaMalloc(&udev, ref.size());
  a.x = xdev;
  a.styles = sdev;
  a.style_stride = Cin;
  a.weight = wdev;
  a.bias = bdev;
  a.clamp = clamp;
  a.img_prev = prev ? pdev : nullptr;
  a.img = idev;
  a.u8 = udev;
  const Status st = launch_torgb(a, t, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  auto got = download<float>(idev, ref.size());
  auto u8 = download<uint8_t>(udev, ref.size());
  for (void* p : {xdev, (void*)sdev, (void*)wdev, (void*)bdev, (void*)pdev, (void*)idev, (void*)udev}) cudaFree(p);
  const std::string full = std::string("toRGB ") + name + " " + pname;
  if (failed_launch(full, st, e, out)) return;
  bool u8_ok = true;  // the uint8 image is the float image's map, HWC
  for (int b = 0; b < n; ++b)
    for (int p = 0; p < R * R; ++p)
      for (int c = 0; c < Cimg; ++c)
        u8_ok = u8_ok && u8[((size_t)b * R * R + p) * Cimg + c] == float_to_u8(got[((size_t)b * Cimg + c) * R * R + p]);
  const double err = rel_l2(got, ref);
  out->push_back({full, err < 1e-5 && u8_ok, fmt("rel. L2 error %.3g (limit %g)", err, 1e-5) + (u8_ok ? "" : "; uint8 map wrong")});
}

void test_torgb(Results* out) {
  torgb_case("R8 Cin16 RGB + skip", 2, 8, 16, 3, true, ActType::F32, out);
  torgb_case("R4 Cin10 gray, first block", 3, 4, 10, 1, false, ActType::F32, out);
  torgb_case("R8 Cin24 RGB + skip", 2, 8, 24, 3, true, ActType::F16, out);
  if (__CUDA_ARCH__ >= 800) torgb_case("R8 Cin24 RGB + skip", 1, 8, 24, 3, true, ActType::BF16, out);
}

// ---- modconv.cu + torgb.cu: toRGB fused into a conv's epilogue (ConvArgs::rgb) against the same
// conv followed by the separate ToRGB pass, on the same inputs: the activation must be the same
// bits, the image equal to the unfused one up to the order of the 1x1 conv's fp32 sums (the fused
// epilogue adds per thread, then across the row's threads), the uint8 image its map and the
// non-finite count the same (nan_prev: NaN / inf planted in the previous image).
struct FusedCase {
  const char* name;
  int batch, H, Cin, Cout, Cimg;
  bool prev, nan_prev;
};

void fused_rgb_case(const FusedCase& c, ActType t, Results* out) {
  const char* pname = t == ActType::F32 ? "fp32" : t == ActType::F16 ? "fp16" : "bf16";
  const size_t esz = t == ActType::F32 ? 4 : 2;
  ConvGeom g;
  g.batch = c.batch;
  g.H = g.W = c.H;
  g.Cin = c.Cin;
  g.Cout = c.Cout;
  const int R = c.H, Rl = R / 2, plane = R * R;
  auto x = rnd((size_t)c.batch * plane * c.Cin);
  auto s = rnd((size_t)c.batch * c.Cin, 0.5f, 1.5f);
  auto W = rnd((size_t)c.Cout * c.Cin * 9);
  auto d = rnd((size_t)c.batch * c.Cout, 0.5f, 1.0f);
  auto bias = rnd(c.Cout, -0.2f, 0.2f);
  auto noise = rnd((size_t)plane);
  auto rs = rnd((size_t)c.batch * (c.Cout + 3), 0.5f, 1.5f);  // rgb styles at offset 3 of a wider row
  auto rw = rnd((size_t)c.Cimg * c.Cout);
  auto rb = rnd(c.Cimg, -0.1f, 0.1f);
  auto img_prev = rnd((size_t)c.batch * c.Cimg * Rl * Rl, -1.2f, 1.2f);
  if (c.nan_prev) {
    img_prev[1] = std::nanf("");
    img_prev[img_prev.size() - 1] = INFINITY;
  }
  const ConvTile tile = choose_conv_tile(t, geom_N(g));
  const int Kpad = conv_tile_kpad(tile, g), Npad = conv_tile_npad(tile, geom_N(g));
  std::vector<float> B((size_t)Kpad * Npad), colscale((size_t)Npad, 1.0f);
  pack_conv_layer(g, W.data(), conv_tile_bk(tile), Npad, t != ActType::F32, B.data(), colscale.data());
  float* csdev = t != ActType::F32 ? upload(colscale) : nullptr;
  void* wdev = upload_act(B, t);
  void* xdev = upload_act(x, t);
  float *sdev = upload(s), *ddev = upload(d), *bdev = upload(bias), *ndev = upload(noise);
  float *rsdev = upload(rs), *rwdev = upload(rw), *rbdev = upload(rb), *pdev = upload(img_prev);
  const size_t out_n = (size_t)c.batch * plane * c.Cout, img_n = (size_t)c.batch * c.Cimg * plane;
  void *y1 = nullptr, *y2 = nullptr, *img1 = nullptr, *img2 = nullptr, *u1 = nullptr, *u2 = nullptr, *nf = nullptr;
  cudaMalloc(&y1, out_n * esz);
  cudaMalloc(&y2, out_n * esz);
  cudaMalloc(&img1, img_n * 4);
  cudaMalloc(&img2, img_n * 4);
  cudaMalloc(&u1, img_n);
  cudaMalloc(&u2, img_n);
  cudaMalloc(&nf, 2 * sizeof(unsigned long long));
  cudaMemset(nf, 0, 2 * sizeof(unsigned long long));
  ConvArgs a;
  a.g = g;
  a.x = xdev;
  a.x_bstride = (int64_t)plane * c.Cin;
  a.styles = sdev;
  a.style_stride = c.Cin;
  a.w = wdev;
  a.Kpad = Kpad;
  a.Npad = Npad;
  a.colscale = csdev;
  a.dcoef = ddev;
  a.d_stride = c.Cout;
  a.noise = ndev;
  a.noise_strength = 0.3f;
  a.bias = bdev;
  a.clamp = 1.5f;
  ToRgbArgs r;
  r.n = c.batch;
  r.R = R;
  r.Cin = c.Cout;
  r.Cimg = c.Cimg;
  r.styles = rsdev;
  r.style_stride = c.Cout + 3;
  r.style_off = 3;
  r.weight = rwdev;
  r.bias = rbdev;
  r.clamp = 1.0f;
  r.img_prev = c.prev ? pdev : nullptr;
  auto* nfp = static_cast<unsigned long long*>(nf);
  // Unfused: the conv into y1, then the ToRGB pass reading y1.
  a.y = y1;
  Status st = launch_modconv(a, t, tile, 0);
  ToRgbArgs r1 = r;
  r1.x = y1;
  r1.img = static_cast<float*>(img1);
  r1.u8 = static_cast<uint8_t*>(u1);
  r1.nonfinite = nfp;
  if (st.ok) st = launch_torgb(r1, t, 0);
  // Fused: one launch.
  a.y = y2;
  a.rgb = r;
  a.rgb.img = static_cast<float*>(img2);
  a.rgb.u8 = static_cast<uint8_t*>(u2);
  a.rgb.nonfinite = nfp + 1;
  if (st.ok) st = launch_modconv(a, t, tile, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  const auto yb1 = download<uint8_t>(y1, out_n * esz), yb2 = download<uint8_t>(y2, out_n * esz);
  const auto i1 = download<float>(img1, img_n), i2 = download<float>(img2, img_n);
  const auto ub1 = download<uint8_t>(u1, img_n), ub2 = download<uint8_t>(u2, img_n);
  const auto cnt = download<unsigned long long>(nf, 2);
  for (void* p : {wdev, xdev, (void*)csdev, (void*)sdev, (void*)ddev, (void*)bdev, (void*)ndev, (void*)rsdev,
                  (void*)rwdev, (void*)rbdev, (void*)pdev, y1, y2, img1, img2, u1, u2, nf})
    cudaFree(p);
  const char* tname = tile == ConvTile::Ffma ? "ffma" : tile == ConvTile::MmaWide ? "mma128x128" : "mma128x32";
  const std::string name = std::string("fused toRGB ") + c.name + " " + pname + " " + tname + " sm_" +
                           std::to_string(__CUDA_ARCH__ / 10);
  if (failed_launch(name, st, e, out)) return;
  // Finite values compared by relative L2; non-finite ones must sit at the same places.
  std::vector<float> f1, f2;
  unsigned long long nonfinite = 0;
  bool same_nonfinite = true, u8_ok = true;
  for (size_t i = 0; i < img_n; ++i) {
    const bool fin = std::isfinite(i2[i]);
    nonfinite += fin ? 0 : 1;
    if (!fin || !std::isfinite(i1[i])) {
      same_nonfinite = same_nonfinite && std::isfinite(i1[i]) == fin;
      continue;
    }
    f1.push_back(i1[i]);
    f2.push_back(i2[i]);
  }
  for (int b = 0; b < c.batch; ++b)  // the uint8 image is the fused float image's map, HWC
    for (int p = 0; p < plane; ++p)
      for (int ch = 0; ch < c.Cimg; ++ch)
        u8_ok = u8_ok && ub2[((size_t)b * plane + p) * c.Cimg + ch] == float_to_u8(i2[((size_t)b * c.Cimg + ch) * plane + p]);
  int u8_diff = 0;
  for (size_t i = 0; i < img_n; ++i) u8_diff = std::max(u8_diff, std::abs((int)ub1[i] - (int)ub2[i]));
  const bool y_same = yb1 == yb2;
  const double err = rel_l2(f2, f1);
  const bool counts_ok = cnt[0] == cnt[1] && cnt[1] == nonfinite && (nonfinite > 0) == c.nan_prev;
  const bool ok = y_same && err < 1e-6 && same_nonfinite && u8_ok && u8_diff <= 1 && counts_ok;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "image rel. L2 vs unfused %.3g (limit 1e-06), activation %s, uint8 max diff %d%s, non-finite %llu / %llu%s",
                err, y_same ? "bit-identical" : "DIFFERS", u8_diff, u8_ok ? "" : " (uint8 map wrong)", cnt[0], cnt[1],
                same_nonfinite ? "" : " (at other places)");
  out->push_back({name, ok, buf});
}

void test_fused_rgb(Results* out, bool quick) {
  std::vector<FusedCase> cases = {
      {"6x6 b2 16->32 RGB + skip (row tail)", 2, 6, 16, 32, 3, true, false},
      {"4x4 b3 12->21 gray, first block (odd Cout)", 3, 4, 12, 21, 1, false, false},
      {"8x8 b1 16->24 RGB + NaN/inf skip", 1, 8, 16, 24, 3, true, true},
  };
  if (!quick) cases.push_back({"9x9 b2 8->64 RGBA + skip (rows cross samples)", 2, 9, 8, 64, 4, true, false});
  for (const FusedCase& c : cases)
    for (ActType t : {ActType::F32, ActType::F16, ActType::BF16})
      if (t != ActType::BF16 || __CUDA_ARCH__ >= 800) {
        if (t != ActType::F32 && c.Cout > 32) continue;  // 33-64 channels: two 128x32 column tiles
        fused_rgb_case(c, t, out);
      }
  // The 128x128 tile: 4 warps across the columns meet in shared memory.
  for (ActType t : {ActType::F16, ActType::BF16})
    if (t != ActType::BF16 || __CUDA_ARCH__ >= 800) {
      fused_rgb_case({"9x9 b2 16->128 RGB + skip (wide tile)", 2, 9, 16, 128, 3, true, false}, t, out);
      if (!quick) fused_rgb_case({"6x6 b1 8->72 RGB + NaN/inf skip (wide, padded)", 1, 6, 8, 72, 3, true, true}, t, out);
    }
  // Where it does not fit (two column tiles), the launcher refuses the fused toRGB.
  {
    ConvGeom g;
    g.batch = 1;
    g.H = g.W = 4;
    g.Cin = 8;
    g.Cout = 64;
    const bool narrow = conv_rgb_fits(ConvTile::MmaNarrow, g, 3), ffma = conv_rgb_fits(ConvTile::Ffma, g, 3);
    g.up = 2;
    const bool up = conv_rgb_fits(ConvTile::Ffma, g, 3);
    g.up = 1;
    ConvArgs a;
    a.g = g;
    a.Kpad = conv_tile_kpad(ConvTile::MmaNarrow, g);
    a.Npad = conv_tile_npad(ConvTile::MmaNarrow, 64);
    float dummy = 0.0f;
    a.rgb.n = 1;
    a.rgb.R = 4;
    a.rgb.Cin = 64;
    a.rgb.Cimg = 3;
    a.rgb.styles = a.rgb.weight = a.rgb.bias = &dummy;
    a.rgb.img = &dummy;
    const Status st = launch_modconv(a, ActType::F16, ConvTile::MmaNarrow, 0);
    const bool refused = !st.ok && st.message.find("fused toRGB") != std::string::npos;
    out->push_back({"fused toRGB refused where it does not fit (64 channels in 128x32 tiles, up-conv)",
                    !narrow && ffma && !up && refused, st.ok ? "launched" : st.message});
  }
}

// ---- noise.cu: the device stream against the host's noise_normal, bit for bit (odd plane sizes
// take the scalar tail, even ones the float4 stores).
void test_noise(Results* out) {
  for (int plane : {64, 25}) {
    const int n = 3, layer = 2;
    NoiseParams p{0x1234567887654321ull, 7u, 0u};
    NoiseParams* pdev = upload(std::vector<NoiseParams>{p});
    float* odev = nullptr;
    cudaMalloc(&odev, (size_t)n * plane * 4);
    const Status st = launch_noise(n, plane, layer, pdev, odev, 0);
    const cudaError_t e = cudaDeviceSynchronize();
    auto got = download<float>(odev, (size_t)n * plane);
    cudaFree(pdev);
    cudaFree(odev);
    int bad = 0;
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < plane; ++i) {
        const float want = noise_normal(p.seed, layer, (int)(p.image_base + b), i);
        bad += std::memcmp(&want, &got[(size_t)b * plane + i], 4) != 0;
      }
    out->push_back({"noise plane " + std::to_string(plane), st.ok && e == cudaSuccess && bad == 0,
                    std::to_string(bad) + " of " + std::to_string(n * plane) + " values differ from noise_normal (bits)"});
  }
}

// ---- pixnorm.cu: pixel norm (in place, and from a float source with bias + leaky ReLU).
void test_pixnorm(Results* out) {
  for (ActType t : {ActType::F32, ActType::F16}) {
    const int pixels = 37, C = 70;
    auto src = rnd((size_t)pixels * C);
    auto bias = rnd(C, -0.1f, 0.1f);
    std::vector<float> ref((size_t)pixels * C);
    for (int p = 0; p < pixels; ++p) {
      double ss = 0;
      std::vector<double> v(C);
      for (int c = 0; c < C; ++c) {
        double a = src[(size_t)p * C + c] + bias[c];
        a = (a < 0 ? a * 0.2 : a) * 1.5;
        v[c] = a;
        ss += a * a;
      }
      const double r = 1.0 / std::sqrt(ss / C + 1e-8);
      for (int c = 0; c < C; ++c) ref[(size_t)p * C + c] = (float)(v[c] * r);
    }
    float* sdev = upload(src);
    float* bdev = upload(bias);
    void* xdev = nullptr;
    cudaMalloc(&xdev, (size_t)pixels * C * (t == ActType::F32 ? 4 : 2));
    PixNormArgs a;
    a.pixels = pixels;
    a.C = C;
    a.src = sdev;
    a.bias = bdev;
    a.activate = 1;
    a.gain = 1.5f;
    a.x = xdev;
    const Status st = launch_pixnorm(a, t, 0);
    const cudaError_t e = cudaDeviceSynchronize();
    const std::vector<float> got = download_act(xdev, (size_t)pixels * C, t);
    cudaFree(sdev);
    cudaFree(bdev);
    cudaFree(xdev);
    const double err = rel_l2(got, ref), limit = t == ActType::F32 ? 1e-6 : 1e-3;
    out->push_back({std::string("pixel norm ") + (t == ActType::F32 ? "fp32" : "fp16"), st.ok && e == cudaSuccess && err < limit,
                    fmt("rel. L2 error %.3g (limit %g)", err, limit)});
  }
}

// ---- mapping.cu: normalize + concatenate (with a label embedding), broadcast + truncation.
void test_mapping_kernels(Results* out) {
  const int n = 3, zd = 20, ed = 6, wd = 9, num_ws = 4, cutoff = 2;
  const float psi = 0.7f;
  auto z = rnd((size_t)n * zd), e = rnd((size_t)n * ed), w = rnd((size_t)n * wd), avg = rnd(wd);
  float *zdev = upload(z), *edev = upload(e), *wdev = upload(w), *adev = upload(avg), *x0 = nullptr, *ws = nullptr;
  cudaMalloc(&x0, (size_t)n * (zd + ed) * 4);
  cudaMalloc(&ws, (size_t)n * num_ws * wd * 4);
  const Status s1 = launch_normalize_concat(n, zdev, zd, edev, ed, x0, 0);
  const Status s2 = launch_broadcast_truncate(n, wdev, wd, num_ws, adev, psi, cutoff, ws, 0);
  const cudaError_t er = cudaDeviceSynchronize();
  auto gx = download<float>(x0, (size_t)n * (zd + ed));
  auto gw = download<float>(ws, (size_t)n * num_ws * wd);
  for (float* p : {zdev, edev, wdev, adev, x0, ws}) cudaFree(p);
  std::vector<float> rx, rw;
  for (int b = 0; b < n; ++b) {
    for (int seg = 0; seg < 2; ++seg) {
      const float* v = seg ? &e[(size_t)b * ed] : &z[(size_t)b * zd];
      const int len = seg ? ed : zd;
      double ss = 0;
      for (int i = 0; i < len; ++i) ss += (double)v[i] * v[i];
      for (int i = 0; i < len; ++i) rx.push_back((float)(v[i] / std::sqrt(ss / len + 1e-8)));
    }
    for (int r = 0; r < num_ws; ++r)
      for (int k = 0; k < wd; ++k)
        rw.push_back(r < cutoff ? lerp_torch(avg[k], w[(size_t)b * wd + k], psi) : w[(size_t)b * wd + k]);
  }
  const double ex = rel_l2(gx, rx), ew = rel_l2(gw, rw);
  out->push_back({"mapping normalize + concat", s1.ok && er == cudaSuccess && ex < 1e-6, fmt("rel. L2 error %.3g (limit %g)", ex, 1e-6)});
  out->push_back({"mapping broadcast + truncation", s2.ok && er == cudaSuccess && ew == 0.0, fmt("rel. L2 error %.3g (exact: %g)", ew, 0.0)});
}

}  // namespace

void run_kernel_tests(Results* out, bool quick) {
  fg_emu::reset();
  test_modconv(out, quick);
  test_rows(out, quick);
  test_torgb(out);
  test_fused_rgb(out, quick);
  test_noise(out);
  test_pixnorm(out);
  test_mapping_kernels(out);
}

}  // namespace emu_tests
}  // namespace facegan
