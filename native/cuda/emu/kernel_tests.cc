// Unit tests of every CUDA kernel family, run through the emulator (the real .cu sources, launched
// with their own launchers) against naive host references: modulated conv in every tile shape and
// precision (K tails, several column tiles, tiles crossing samples, up 1 and 2, the scalar and the
// vector loaders, wide layers), the row-dot kernel (FC and demodulation modes, wide inputs),
// toRGB + skip, random noise, pixel norm, the mapping helpers. facegan-unit calls run_kernel_tests.
// Compiled inside the emulator build (the namespace `cuda` is the emulated backend's).
#include "kernel_tests.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common.cuh"
#include "conv_ref.h"
#include "emu_control.h"
#include "kernels.h"
#include "philox.cuh"
#include "plan.h"

namespace facegan {
namespace emu_tests {
namespace {

using namespace cuda;

std::mt19937 g_rng(4242);
std::vector<float> rnd(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(g_rng);
  return v;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return std::isfinite(num) ? std::sqrt(num / std::max(den, 1e-30)) : INFINITY;
}

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

// Device buffer helpers (the emulated runtime API).
template <class T>
T* upload(const std::vector<T>& v) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(1, v.size()) * sizeof(T)) != cudaSuccess) return nullptr;
  cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, 0);
  return static_cast<T*>(p);
}
template <class T>
std::vector<T> download(const void* p, size_t n) {
  std::vector<T> v(n);
  cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
}

uint16_t to16(float v, ActType t) {
  return t == ActType::F16 ? fg_emu::float_to_half_bits(v) : fg_emu::float_to_bf16_bits(v);
}
float from16(uint16_t h, ActType t) {
  if (t == ActType::F16) return fg_emu::half_bits_to_float(h);
  const uint32_t x = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
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
  const int K = geom_K(g), N = geom_N(g);
  const int Kpad = conv_tile_kpad(tile, K), Npad = conv_tile_npad(tile, N);
  ConvArgs a;
  a.g = g;
  a.x_bstride = bstride;
  std::vector<float> B((size_t)Kpad * Npad), colscale(Npad, 1.0f);
  void* wdev = nullptr;
  void* xdev = nullptr;
  float* csdev = nullptr;
  if (t == ActType::F32) {
    pack_b_kmajor(g, W.data(), Kpad, Npad, B.data());
    wdev = upload(B);
    xdev = upload(x);
  } else {
    pack_b_nmajor_scaled(g, W.data(), Kpad, Npad, B.data(), colscale.data());
    std::vector<uint16_t> B16(B.size()), x16(x.size());
    for (size_t i = 0; i < B.size(); ++i) B16[i] = to16(B[i], t);
    for (size_t i = 0; i < x.size(); ++i) x16[i] = to16(x[i], t);
    wdev = upload(B16);
    xdev = upload(x16);
    csdev = upload(colscale);
    a.colscale = csdev;
  }
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
  void* ydev = nullptr;
  cudaMalloc(&ydev, out_n * (t == ActType::F32 ? 4 : 2));
  a.y = ydev;
  const Status st = launch_modconv(a, t, tile, 0);
  const cudaError_t e = cudaDeviceSynchronize();
  std::vector<float> got(out_n);
  if (t == ActType::F32) {
    got = download<float>(ydev, out_n);
  } else {
    auto g16 = download<uint16_t>(ydev, out_n);
    for (size_t i = 0; i < out_n; ++i) got[i] = from16(g16[i], t);
  }
  for (void* p : {wdev, xdev, (void*)csdev, (void*)sdev, (void*)ddev, (void*)bdev, (void*)ndev, ydev}) cudaFree(p);
  const char* tname = tile == ConvTile::Ffma ? "ffma" : tile == ConvTile::MmaWide ? "mma128x128" : "mma128x32";
  const std::string name = std::string("modconv ") + c.name + " " + pname + " " + tname;
  if (!st.ok || e != cudaSuccess) {
    out->push_back({name, false, st.ok ? std::string(cudaGetErrorName(e)) + ": " + fg_emu::fault_message() : st.message});
    cudaDeviceReset();
    return;
  }
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
  };
  if (!quick) {
    cases.push_back({"wide 2x2 b1 176->24 (K 1584)", 1, 2, 176, 24, 1, false});
    cases.push_back({"9x9 b2 8->136 (rows cross samples)", 2, 9, 8, 136, 1, false});
  }
  for (const ConvCase& c : cases)
    for (ActType t : {ActType::F32, ActType::F16, ActType::BF16}) conv_case(c, t, out);
}

}  // namespace

void run_kernel_tests(Results* out, bool quick) {
  fg_emu::reset();
  test_modconv(out, quick);
}

}  // namespace emu_tests
}  // namespace facegan
