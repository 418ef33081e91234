// facegan-unit's test framework and the helpers its files share (see unit_main.cc).
//
// A file adds its cases by defining, at namespace scope,
//   const facegan::unit::Register kCases(__FILE__, {{"case name", test_fn}, ...});
// no central list to edit. The runner runs the files in name order, each file's cases in the
// order given; FACEGAN_UNIT_FILTER=text runs only the cases whose name contains it. Each case
// starts with g_rng seeded the same way, so a case draws the same inputs whether it runs alone
// or in the whole suite.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../cuda/indexing.cuh"
#include "backend.h"
#include "conv_ref.h"
#include "network.h"

namespace facegan {
namespace unit {

struct Case {
  const char* name;
  std::function<void()> fn;
  // A group reports its own results with report() (one per sub-case) instead of counting as one.
  bool group = false;
};

struct Register {
  Register(const char* file, std::vector<Case> cases);
};

// A failed check of the running case (the first 8 are printed).
void fail(const std::string& what);
// One result of a group case: counted, and printed as "ok" / "FAIL" with the line.
void report(bool ok, const std::string& line);

#define CHECK(cond, msg)                                                  \
  do {                                                                    \
    if (!(cond)) ::facegan::unit::fail(std::string(#cond) + " -- " + (msg)); \
  } while (0)

extern std::mt19937 g_rng;  // reseeded before each case
inline std::vector<float> random_vec(size_t n, float lo = -1.0f, float hi = 1.0f) {
  return testref::random_vec(g_rng, n, lo, hi);
}
inline bool close(double a, double b, double atol, double rtol) { return std::fabs(a - b) <= atol + rtol * std::fabs(b); }
std::string fmt(const char* f, double a, double b);
// max |a - b| (inf when a holds a NaN); *ref_max = max |b|.
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, double* ref_max = nullptr);
using testref::rel_l2;
// A registered backend by name (nullptr when there is none).
const BackendReg* find_backend(const std::string& name);
// The float images of n samples of the random model `config` (tools/random_model.h, weights seed
// 3) through Generator::generate with `lo`: z from a fixed seed (5), psi 0.7 (StyleGAN2), label
// i % c_dim for a conditional model, `noise` (seed 11; ProGAN has none). Empty, with *err set,
// when the engine refuses the model or the call.
std::vector<float> random_model_images(const std::string& config, int n, const LoadOptions& lo, NoiseMode noise,
                                       std::string* err);

// ---- Naive convolution references (unit_refs.cc; activations NHWC, weights [Cout][Cin][3][3],
// styles [b][Cin]).
using testref::ref_conv3x3;
using testref::ref_upconv;
// Elements per sample of a conv's input tensor (the grid, or its nearest-x2 source).
int64_t in_plane(const cuda::ConvGeom& g);
// The modulated conv of g (plain, transposed x2 + FIR, or nearest-x2 source) written out.
std::vector<float> ref_modconv(const cuda::ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                               const std::vector<float>& s, const std::vector<float>& W);
// An up-conv (g.up == 2) computed as the CUDA kernels do (indexing.cuh): each of its four sub-pixel
// GEMMs by `gemm` on conv_phase_geom(g, phase) (writing its parity of t, (2H+1)^2 NHWC, NaN
// elsewhere), then the FIR pass with upfir_tap. An element of t written twice or never comes out NaN.
std::vector<float> upconv_via_phases(const cuda::ConvGeom& g,
                                     const std::function<std::vector<float>(const cuda::ConvGeom&)>& gemm);
// upsample2d of one plane [n][n] -> [2n][2n]: zero insertion, pad [2,1], FIR gain 4.
std::vector<double> ref_upsample2d(const std::vector<double>& p, int n);
struct ConvCase {
  cuda::ConvGeom g;
  bool broadcast;  // input shared by the batch (the const input of block 4)
};
std::vector<ConvCase> conv_cases();

// ---- Host emulations of the CUDA conv kernels (unit_mma.cc): the tensor-core kernel's data flow
// (instantiated for MmaCfgWide and MmaCfgNarrow) and the FFMA kernel's, with the kernels' index
// functions.
template <class Cfg>
std::vector<float> emulate_mma_kernel(const cuda::ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                      const std::vector<float>& s, const std::vector<float>& W);
std::vector<float> emulate_ffma_kernel(const cuda::ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                       const std::vector<float>& s, const std::vector<float>& W);

// ---- The tiny StyleGAN2 network (unit_stylegan2.cc).
struct TinyModel {
  Network net;
  std::vector<std::vector<float>> store;
  const float* keep(std::vector<float> v) {
    store.push_back(std::move(v));
    return store.back().data();
  }
};
std::unique_ptr<TinyModel> make_tiny_model();
// The naive host mapping: nb latents (and labels c) -> ws [nb][num_ws][w_dim].
void ref_mapping(const Network& net, int nb, const float* z, const float* c, float psi, std::vector<float>* ws);

}  // namespace unit
}  // namespace facegan
