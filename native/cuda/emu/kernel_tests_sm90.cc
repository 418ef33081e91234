// Emulated tests of the Hopper (sm_90a) path, modconv_sm90.cu: wgmma.mma_async from TMA-staged,
// 128-byte-swizzled shared memory through a 3- or 4-stage mbarrier pipeline, plain 3x3 layers and
// the up-convs' sub-pixel phases, run by the emulator's PTX (ptx.cc) against naive references.
// Built only into the sm_90a emulator library (__CUDA_ARCH__ 900, __CUDA_ARCH_FEAT_SM90_ALL), whose
// device reports compute capability 9.0.
#include "kernel_tests_sm90.h"

#include <cudaTypedefs.h>

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
#include "modconv_sm90.cuh"
#include "plan.h"
#include "test_util.h"

namespace facegan {
namespace emu_tests_sm90a {
namespace {

using namespace cuda;
using namespace emu_test_util;
using emu_results::Results;

std::mt19937 g_rng(9090);

float q16(float v, ActType t) { return from16(to16(v, t), t); }

struct Sm90Case {
  const char* name;
  int batch, H, W, Cin, Cout;
};

// A layer's host operands on the device, in the ConvArgs fields the kernel reads (all but the
// outputs y and t); each device buffer is also appended to *dev for the caller to free.
ConvArgs device_conv_args(const ConvGeom& g, int64_t plane, int Kpad, int Npad, const std::vector<uint16_t>& B16,
                          const std::vector<uint16_t>& x16, const std::vector<float>& s,
                          const std::vector<float>& sinv, const std::vector<float>& colscale,
                          const std::vector<float>& d, const std::vector<float>& bias,
                          const std::vector<float>& noise, float strength, float clamp, std::vector<void*>* dev) {
  ConvArgs a;
  a.g = g;
  a.x_bstride = plane;
  a.Kpad = Kpad;
  a.Npad = Npad;
  void* wdev = upload(B16);
  void* xdev = upload(x16);
  float* sdev = upload(s);
  float* sinvdev = upload(sinv);
  float* csdev = upload(colscale);
  float* ddev = upload(d);
  float* bdev = upload(bias);
  float* ndev = upload(noise);
  dev->insert(dev->end(), {wdev, xdev, sdev, sinvdev, csdev, ddev, bdev, ndev});
  a.w = wdev;
  a.x = xdev;
  a.styles = sdev;
  a.style_stride = g.Cin;
  a.sinv = sinvdev;
  a.sinv_stride = 1;
  a.colscale = csdev;
  a.dcoef = ddev;
  a.d_stride = g.Cout;
  a.noise = ndev;
  a.noise_strength = strength;
  a.bias = bdev;
  a.clamp = clamp;
  return a;
}

// 16-bit results against an operand-exact reference, in units in the last place of type t:
// *bad counts the values beyond 2 ulp + 1e-4, *worst is the largest error in ulp where |ref| ≥ 0.01.
void ulp_compare(const std::vector<float>& got, const std::vector<double>& exact, ActType t, size_t* bad,
                 double* worst) {
  const int mant = t == ActType::F16 ? 10 : 7;
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = exact[i], mag = std::max(std::fabs(r), 1e-3);
    const double ulp = std::ldexp(1.0, (int)std::floor(std::log2(mag)) - mant);
    const double err = std::fabs(got[i] - r);
    if (!(err <= 2 * ulp + 1e-4)) ++*bad;
    if (std::fabs(r) >= 0.01 && !(err / ulp <= *worst)) *worst = err / ulp;
  }
}

// One layer through launch_modconv_sm90, against two references:
//  - the float reference (ref_conv3x3 on the stored activations and the float weights) with the
//    limits of the mma.sync tests (kernel_tests.cc);
//  - an operand-exact one: the same 16-bit operands the kernel multiplies (x * s * sinv rounded to
//    the activation type, the packed 16-bit weights times colscale), summed in double, the same
//    epilogue in double: every output within 2 units in the last place of the 16-bit output
//    (plus 1e-4 absolute), which a wrong fragment, swizzle, stage or tap shows at once.
void sm90_case(const Sm90Case& c, ActType t, Results* out) {
  const char* pname = t == ActType::F16 ? "fp16" : "bf16";
  const std::string name = std::string("modconv sm_90a wgmma+TMA ") + c.name + " " + pname;
  ConvGeom g;
  g.batch = c.batch;
  g.H = c.H;
  g.W = c.W;
  g.Cin = c.Cin;
  g.Cout = c.Cout;
  const int64_t plane = (int64_t)g.H * g.W * g.Cin;
  auto x = testref::random_vec(g_rng, (size_t)c.batch * plane, -1.0f, 1.0f);
  for (float& v : x) v = q16(v, t);
  auto s = testref::random_vec(g_rng, (size_t)c.batch * c.Cin, 0.5f, 1.5f);
  auto sinv = testref::random_vec(g_rng, (size_t)c.batch, 0.6f, 0.9f);
  auto W = testref::random_vec(g_rng, (size_t)c.Cout * c.Cin * 9, -1.0f, 1.0f);
  auto d = testref::random_vec(g_rng, (size_t)c.batch * c.Cout, 0.5f, 1.0f);
  auto bias = testref::random_vec(g_rng, c.Cout, -0.2f, 0.2f);
  auto noise = testref::random_vec(g_rng, (size_t)g.H * g.W, -1.0f, 1.0f);
  const float strength = 0.3f, clamp = 1.5f;

  // The backend's tensor-core packing: columns to 128 (more than 64) or 32; K is a multiple of 64.
  const int Kpad = geom_K(g), Npad = round_up(geom_N(g), geom_N(g) > 64 ? 128 : 32);
  std::vector<float> B((size_t)Kpad * Npad), colscale(Npad);
  pack_b_nmajor_scaled(g, W.data(), Kpad, Npad, B.data(), colscale.data());
  std::vector<uint16_t> B16(B.size()), x16(x.size());
  for (size_t i = 0; i < B.size(); ++i) B16[i] = to16(B[i], t);
  for (size_t i = 0; i < x.size(); ++i) x16[i] = to16(x[i], t);

  // Float reference: the kernel scales x by s * sinv (the backend's d carries 1 / sinv back).
  std::vector<float> s_eff(s.size());
  for (int b = 0; b < c.batch; ++b)
    for (int ch = 0; ch < c.Cin; ++ch) s_eff[(size_t)b * c.Cin + ch] = s[(size_t)b * c.Cin + ch] * sinv[b];
  auto epilogue = [&](int b, int p, int o, double acc) {
    double r = acc * d[(size_t)b * c.Cout + o] + noise[p] * strength + bias[o];
    r = (r < 0 ? r * 0.2 : r) * std::sqrt(2.0);
    return std::min<double>(std::max<double>(r, -clamp), clamp);
  };
  std::vector<float> ref = testref::ref_conv3x3(g, x, plane, s_eff, W);
  const int HW = g.H * g.W;
  for (int b = 0; b < c.batch; ++b)
    for (int p = 0; p < HW; ++p)
      for (int o = 0; o < c.Cout; ++o) {
        float& v = ref[((size_t)b * HW + p) * c.Cout + o];
        v = (float)epilogue(b, p, o, v);
      }
  // Operand-exact reference.
  std::vector<float> ax(x.size());
  for (int b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < plane; ++i) {
      const int ch = (int)(i % c.Cin);
      ax[(size_t)(b * plane + i)] = q16(x[(size_t)(b * plane + i)] * (s[(size_t)b * c.Cin + ch] * sinv[b]), t);
    }
  std::vector<double> exact(ref.size());
  for (int b = 0; b < c.batch; ++b)
    for (int y = 0; y < g.H; ++y)
      for (int xx = 0; xx < g.W; ++xx)
        for (int o = 0; o < c.Cout; ++o) {
          double acc = 0.0;
          for (int tap = 0; tap < 9; ++tap) {
            const int iy = y + tap / 3 - 1, ix = xx + tap % 3 - 1;
            if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
            const float* a = &ax[(size_t)b * plane + ((size_t)iy * g.W + ix) * g.Cin];
            const uint16_t* w = &B16[(size_t)o * Kpad + (size_t)tap * g.Cin];
            for (int ch = 0; ch < g.Cin; ++ch) acc += (double)a[ch] * from16(w[ch], t);
          }
          const double v = acc * colscale[o] * d[(size_t)b * c.Cout + o] + noise[y * g.W + xx] * strength + bias[o];
          const double r = (v < 0 ? v * 0.2 : v) * std::sqrt(2.0);
          exact[(((size_t)b * g.H + y) * g.W + xx) * c.Cout + o] = std::min<double>(std::max<double>(r, -clamp), clamp);
        }

  std::vector<void*> dev;
  ConvArgs a = device_conv_args(g, plane, Kpad, Npad, B16, x16, s, sinv, colscale, d, bias, noise, strength, clamp, &dev);
  const size_t out_n = (size_t)c.batch * HW * c.Cout;
  void* ydev = nullptr;
  cudaMalloc(&ydev, out_n * 2);
  a.y = ydev;
  const uint64_t blocks0 = fg_emu::stats().blocks;
  const bool fits = modconv_sm90_fits(a, t);
  const Status st = fits ? launch_modconv_sm90(a, t, 0) : Status::Error("modconv_sm90_fits refuses the layer");
  const cudaError_t e = cudaDeviceSynchronize();
  std::vector<uint16_t> got16(out_n);
  cudaMemcpy(got16.data(), ydev, out_n * 2, cudaMemcpyDeviceToHost);
  const fg_emu::Stats stats = fg_emu::stats();
  dev.push_back(ydev);
  for (void* p : dev) cudaFree(p);
  if (!st.ok || e != cudaSuccess) {
    out->push_back({name, false, st.ok ? std::string(cudaGetErrorName(e)) + ": " + fg_emu::fault_message() : st.message});
    cudaDeviceReset();
    return;
  }
  std::vector<float> got(out_n);
  for (size_t i = 0; i < out_n; ++i) got[i] = from16(got16[i], t);
  const double err = testref::rel_l2(got, ref);
  const double limit = t == ActType::F16 ? 2e-3 : 1.5e-2;
  size_t bad = 0;
  double worst = 0.0;
  ulp_compare(got, exact, t, &bad, &worst);
  char buf[256];
  std::snprintf(buf, sizeof buf, "rel. L2 error %.3g (limit %g); vs the exact 16-bit operands: max %.2f ulp (|v| >= 0.01), %zu of %zu beyond 2 ulp + 1e-4; %llu blocks",
                err, limit, worst, bad, out_n, (unsigned long long)(stats.blocks - blocks0));
  out->push_back({name, err < limit && bad == 0, buf});
}

// One up-conv (the transposed 3x3 conv, stride 2, as four sub-pixel phases: grid z, into t, then
// modconv.cu's FIR pass) through launch_modconv_sm90, against
//  - the float reference: ref_upconv (transposed conv + [1,3,3,1]^2 FIR) + the epilogue, with the
//    limits of the mma.sync up-conv tests (kernel_tests.cc);
//  - the kernel's intermediate t against t computed in double from the same 16-bit operands (the
//    scaled activations, each phase's packed 16-bit weights and column scales, x d), straight from
//    the transposed conv's definition t[2i + kh][2j + kw] += x[i][j] W[kh][kw]: every element of t
//    (it starts as NaN) within 2 ulp of the 16-bit type + 1e-4, which a wrong phase, tap, tensor
//    map or parity shows at once.
void sm90_upconv_case(const Sm90Case& c, ActType t, Results* out) {
  const char* pname = t == ActType::F16 ? "fp16" : "bf16";
  const std::string name = std::string("modconv sm_90a up-conv phases ") + c.name + " " + pname;
  ConvGeom g;
  g.batch = c.batch;
  g.H = c.H;
  g.W = c.W;  // ref_upconv: square
  g.Cin = c.Cin;
  g.Cout = c.Cout;
  g.up = 2;
  const int64_t plane = (int64_t)g.H * g.W * g.Cin;
  const int TH = 2 * g.H + 1, TW = 2 * g.W + 1, OH = 2 * g.H, OW = 2 * g.W;
  auto x = testref::random_vec(g_rng, (size_t)c.batch * plane, -1.0f, 1.0f);
  for (float& v : x) v = q16(v, t);
  auto s = testref::random_vec(g_rng, (size_t)c.batch * c.Cin, 0.5f, 1.5f);
  auto sinv = testref::random_vec(g_rng, (size_t)c.batch, 0.6f, 0.9f);
  auto W = testref::random_vec(g_rng, (size_t)c.Cout * c.Cin * 9, -1.0f, 1.0f);
  auto d = testref::random_vec(g_rng, (size_t)c.batch * c.Cout, 0.5f, 1.0f);
  auto bias = testref::random_vec(g_rng, c.Cout, -0.2f, 0.2f);
  auto noise = testref::random_vec(g_rng, (size_t)OH * OW, -1.0f, 1.0f);
  const float strength = 0.3f, clamp = 1.5f;

  // The backend's packing of the four phases (conv_phase_w_offset), columns to 128 or 32.
  const int Kpad = conv_packed_k(g, Sm90Cfg::BK), Npad = round_up(geom_N(g), geom_N(g) > 64 ? 128 : 32);
  std::vector<float> B((size_t)Kpad * Npad), colscale((size_t)conv_phases(g) * Npad);
  pack_conv_layer(g, W.data(), Sm90Cfg::BK, Npad, true, B.data(), colscale.data());
  std::vector<uint16_t> B16(B.size()), x16(x.size());
  for (size_t i = 0; i < B.size(); ++i) B16[i] = to16(B[i], t);
  for (size_t i = 0; i < x.size(); ++i) x16[i] = to16(x[i], t);

  // Float reference.
  std::vector<float> s_eff(s.size());
  for (int b = 0; b < c.batch; ++b)
    for (int ch = 0; ch < c.Cin; ++ch) s_eff[(size_t)b * c.Cin + ch] = s[(size_t)b * c.Cin + ch] * sinv[b];
  std::vector<float> ref = testref::ref_upconv(g, x, plane, s_eff, W);
  for (int b = 0; b < c.batch; ++b)
    for (int p = 0; p < OH * OW; ++p)
      for (int o = 0; o < c.Cout; ++o) {
        float& v = ref[((size_t)b * OH * OW + p) * c.Cout + o];
        double r = (double)v * d[(size_t)b * c.Cout + o] + noise[p] * strength + bias[o];
        r = (r < 0 ? r * 0.2 : r) * std::sqrt(2.0);
        v = (float)std::min<double>(std::max<double>(r, -clamp), clamp);
      }
  // t from the exact 16-bit operands: weight tap (kh, kw) of output parity (py, px) is row k of
  // that phase's packed B, tap (ty, tx) = (kh / 2, kw / 2) for even kh, kw (the only taps of an
  // even parity), (0, 0) for the odd one (kh or kw = 1).
  std::vector<float> ax(x.size());
  for (int b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < plane; ++i) {
      const int ch = (int)(i % c.Cin);
      ax[(size_t)(b * plane + i)] = q16(x[(size_t)(b * plane + i)] * (s[(size_t)b * c.Cin + ch] * sinv[b]), t);
    }
  const size_t t_n = (size_t)c.batch * TH * TW * c.Cout;
  std::vector<double> texact(t_n, 0.0);
  for (int ph = 0; ph < 4; ++ph) {
    const int py = ph >> 1, px = ph & 1, nty = 2 - py, ntx = 2 - px;
    const ConvGeom pg = conv_phase_geom(g, ph);
    const int64_t woff = conv_phase_w_offset(g, ph, Sm90Cfg::BK, Npad);
    const int K = geom_K(pg);
    for (int b = 0; b < c.batch; ++b)
      for (int i = 0; i < g.H; ++i)
        for (int j = 0; j < g.W; ++j)
          for (int ty = 0; ty < nty; ++ty)
            for (int tx = 0; tx < ntx; ++tx) {
              const int kh = py ? 1 : 2 * ty, kw = px ? 1 : 2 * tx;
              const int Y = 2 * i + kh, X = 2 * j + kw;
              const float* a = &ax[(size_t)b * plane + ((size_t)i * g.W + j) * g.Cin];
              for (int o = 0; o < c.Cout; ++o) {
                const uint16_t* w = &B16[(size_t)woff + (size_t)o * K + (size_t)(ty * ntx + tx) * g.Cin];
                double acc = 0.0;
                for (int ch = 0; ch < g.Cin; ++ch) acc += (double)a[ch] * from16(w[ch], t);
                texact[(((size_t)b * TH + Y) * TW + X) * c.Cout + o] +=
                    acc * colscale[(size_t)ph * Npad + o] * d[(size_t)b * c.Cout + o];
              }
            }
  }

  std::vector<void*> dev;
  ConvArgs a = device_conv_args(g, plane, Kpad, Npad, B16, x16, s, sinv, colscale, d, bias, noise, strength, clamp, &dev);
  const size_t out_n = (size_t)c.batch * OH * OW * c.Cout;
  void* ydev = nullptr;
  void* tdev = nullptr;
  cudaMalloc(&ydev, out_n * 2);
  cudaMalloc(&tdev, t_n * 2);
  cudaMemset(tdev, 0xff, t_n * 2);  // NaN: t must be written everywhere
  a.y = ydev;
  a.t = tdev;
  const uint64_t blocks0 = fg_emu::stats().blocks;
  const bool fits = modconv_sm90_fits(a, t);
  const Status st = fits ? launch_modconv_sm90(a, t, 0) : Status::Error("modconv_sm90_fits refuses the layer");
  const cudaError_t e = cudaDeviceSynchronize();
  std::vector<uint16_t> got16(out_n), t16(t_n);
  cudaMemcpy(got16.data(), ydev, out_n * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(t16.data(), tdev, t_n * 2, cudaMemcpyDeviceToHost);
  const fg_emu::Stats stats = fg_emu::stats();
  dev.push_back(ydev);
  dev.push_back(tdev);
  for (void* p : dev) cudaFree(p);
  if (!st.ok || e != cudaSuccess) {
    out->push_back({name, false, st.ok ? std::string(cudaGetErrorName(e)) + ": " + fg_emu::fault_message() : st.message});
    cudaDeviceReset();
    return;
  }
  std::vector<float> got(out_n);
  for (size_t i = 0; i < out_n; ++i) got[i] = from16(got16[i], t);
  const double err = testref::rel_l2(got, ref);
  const double limit = t == ActType::F16 ? 2e-3 : 1.5e-2;
  std::vector<float> tgot(t_n);
  for (size_t i = 0; i < t_n; ++i) tgot[i] = from16(t16[i], t);
  size_t bad = 0;
  double worst = 0.0;
  ulp_compare(tgot, texact, t, &bad, &worst);
  char buf[320];
  std::snprintf(buf, sizeof buf, "rel. L2 error %.3g (limit %g); t vs the exact 16-bit operands: max %.2f ulp (|v| >= 0.01), %zu of %zu beyond 2 ulp + 1e-4; %llu blocks",
                err, limit, worst, bad, t_n, (unsigned long long)(stats.blocks - blocks0));
  out->push_back({name, err < limit && bad == 0, buf});
}

// Which layers the kernel takes, and on which device.
void fit_checks(Results* out) {
  ConvArgs a;
  a.g.batch = 2;
  a.g.H = a.g.W = 64;
  a.g.Cin = 128;
  a.g.Cout = 128;
  a.x_bstride = (int64_t)64 * 64 * 128;
  a.Kpad = geom_K(a.g);
  a.Npad = round_up(geom_N(a.g), 128);
  bool ok = modconv_sm90_fits(a, ActType::BF16) && modconv_sm90_fits(a, ActType::F16) && !modconv_sm90_fits(a, ActType::F32);
  std::string why;
  auto refuse = [&](const char* what, ConvArgs b) {
    if (modconv_sm90_fits(b, ActType::BF16)) {
      ok = false;
      why += std::string(" takes ") + what + ";";
    }
  };
  ConvArgs b = a;
  b.g.Cin = 96;
  refuse("Cin 96", b);
  b = a;
  b.x_bstride = 0;
  refuse("a broadcast input", b);
  b = a;
  b.g.W = 8;
  refuse("W 8", b);
  b = a;
  b.g.up = 2;
  b.Kpad = conv_packed_k(b.g, Sm90Cfg::BK);
  refuse("an up-conv without its buffer t", b);
  b.t = reinterpret_cast<void*>(uintptr_t{0x2000});
  if (!modconv_sm90_fits(b, ActType::BF16)) {
    ok = false;
    why += " refuses an up-conv (its four phases);";
  }
  b.Kpad = geom_K(b.g);  // phase 0's K only: not the layer's packing
  refuse("an up-conv with one phase's packed weights", b);
  b = a;
  b.g.up = 2;
  b.g.phase = 1;
  b.Kpad = conv_packed_k(b.g, Sm90Cfg::BK);
  b.t = reinterpret_cast<void*>(uintptr_t{0x2000});
  refuse("a phase geometry (the layer's, phase 0, is expected)", b);
  b = a;
  b.g.src_shift = 1;
  refuse("a nearest-x2 input", b);
  b = a;
  b.x = reinterpret_cast<const void*>(uintptr_t{0x1008});
  refuse("an input address TMA cannot take (8-byte aligned)", b);
  b = a;
  b.g.Cout = 32;
  b.Npad = 32;  // the 128 x 32 tiles' packing
  refuse("32 columns", b);
  b.g.Cout = 64;
  b.Npad = 64;
  if (!modconv_sm90_fits(b, ActType::F16)) {
    ok = false;
    why += " refuses 64 columns;";
  }
  fg_emu::config().cc = 90;
  const bool on90 = modconv_sm90_available(0);
  fg_emu::config().cc = 89;
  const bool on89 = modconv_sm90_available(0);
  fg_emu::config().cc = 90;
  if (!on90 || on89) {
    ok = false;
    why += on90 ? " available on cc 8.9;" : " unavailable on cc 9.0;";
  }
  out->push_back({"modconv sm_90a: layers and devices it takes", ok, ok ? "as documented" : why});
}

// The tensor-map encoder (through the driver entry point, as the backend gets it) refuses what
// cuTensorMapEncodeTiled documents as invalid.
void tensor_map_checks(Results* out) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q);
  if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !fn) {
    out->push_back({"tensor map encoder", false, "cuTensorMapEncodeTiled not found"});
    return;
  }
  auto enc = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  std::vector<uint16_t> buf(64 * 64 * 4, 0);
  const cuuint64_t dims[2] = {256, 64};
  const cuuint64_t strides[1] = {512};
  const cuuint32_t box[2] = {64, 128}, estr[2] = {1, 1};
  alignas(64) CUtensorMap m;
  auto run = [&](const cuuint64_t* st, const cuuint32_t* bx, CUtensorMapSwizzle sw) {
    return enc(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, buf.data(), dims, st, bx, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, sw,
               CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  };
  const cuuint64_t bad_stride[1] = {520};
  const cuuint32_t big_box[2] = {64, 257}, wide_box[2] = {128, 8};
  std::string why;
  if (run(strides, box, CU_TENSOR_MAP_SWIZZLE_128B) != CUDA_SUCCESS) why += " a valid map refused;";
  if (run(bad_stride, box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS) why += " stride 520 accepted;";
  if (run(strides, big_box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS) why += " box 257 accepted;";
  if (run(strides, wide_box, CU_TENSOR_MAP_SWIZZLE_128B) == CUDA_SUCCESS) why += " a 256-byte inner box with the 128B swizzle accepted;";
  if (run(strides, wide_box, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_SUCCESS) why += " a 256-byte inner box without swizzle refused;";
  out->push_back({"tensor map encoder (cuTensorMapEncodeTiled stand-in) checks its arguments", why.empty(),
                  why.empty() ? "valid / invalid maps as documented" : why});
}

}  // namespace

void run_sm90_kernel_tests(emu_results::Results* out) {
  fg_emu::reset();
  fg_emu::config().cc = 90;
  fit_checks(out);
  tensor_map_checks(out);
  const Sm90Case cases[] = {
      {"16x16 b2 64->72 (N tail)", 2, 16, 16, 64, 72},
      {"20x24 b1 128->136 (M tails in x and y, 2 column tiles, 18 k-tiles)", 1, 20, 24, 128, 136},
      {"8x16 b3 192->128 (3 channel blocks, 27 k-tiles, 3 samples)", 3, 8, 16, 192, 128},
      {"16x16 b2 64->64 (64-column blocks)", 2, 16, 16, 64, 64},
      {"12x20 b1 128->40 (64-column blocks, N tail, M tails)", 1, 12, 20, 128, 40},
  };
  for (const Sm90Case& c : cases)
    for (cuda::ActType t : {cuda::ActType::BF16, cuda::ActType::F16}) sm90_case(c, t, out);
  const Sm90Case up_cases[] = {
      {"16x16 b2 64->72 (N tail; phase grids 17x17 .. 16x16: border row / column tiles)", 2, 16, 16, 64, 72},
      {"16x16 b1 128->48 (64-column blocks, 2 channel blocks)", 1, 16, 16, 128, 48},
      {"20x20 b2 64->136 (partial core tiles, 2 column tiles, 2 samples)", 2, 20, 20, 64, 136},
  };
  for (const Sm90Case& c : up_cases)
    for (cuda::ActType t : {cuda::ActType::BF16, cuda::ActType::F16}) sm90_upconv_case(c, t, out);
  fg_emu::reset();
}
}  // namespace emu_tests_sm90a

}  // namespace facegan
