// The random-noise stream: Philox4x32-10 against the Random123 known-answer vectors, Box-Muller
// (sanity, accuracy, pinned values), the noise counter mapping, the CUDA keying against the CPU
// engines' noise_fill (native/cpu/noise.h) bit for bit, and on a GPU the noise kernel itself.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../../cpu/noise.h"  // noise_fill (the CPU engines' random noise)
#include "../../cuda/philox.cuh"
#ifdef FACEGAN_WITH_CUDA
#include "../../cuda/kernels.h"  // launch_noise, for the device-vs-host noise bits check
#endif
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

void test_philox_kat() {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  // Random123 tests/kat_vectors, "philox4x32 10" lines.
  const Kat kats[3] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const Philox4 r = philox4x32_10(k.ctr, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.out[i], "word " + std::to_string(i));
  }
}

void test_box_muller() {
  float z0, z1;
  box_muller(0u, 0u, &z0, &z1);  // u1 = 2^-24: the largest radius
  CHECK(std::isfinite(z0) && std::isfinite(z1) && std::fabs(z0) < 6.0f, "smallest u1");
  box_muller(0xffffffffu, 0xffffffffu, &z0, &z1);  // u1 = 1: radius 0
  CHECK(z0 == 0.0f && z1 == 0.0f, "u1 = 1 gives 0");
  // Moments of 2^20 normals of one noise plane.
  const int count = 1 << 20;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int p = 0; p < count; ++p) {
    const double z = noise_normal(0x123456789abcdefull, 3, 1, p);
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
  }
  const double mean = s1 / count, var = s2 / count - mean * mean, kurt = (s4 / count) / (var * var);
  CHECK(std::fabs(mean) < 0.005, fmt("mean %g (%g)", mean, 0.0));
  CHECK(std::fabs(var - 1.0) < 0.01, fmt("variance %g (%g)", var, 1.0));
  CHECK(std::fabs(kurt - 3.0) < 0.05, fmt("kurtosis %g (%g)", kurt, 3.0));
  // Different layers, samples and seeds give different streams.
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(1, 1, 0, 5), "layer");
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(1, 0, 1, 5), "sample");
  CHECK(noise_normal(1, 0, 0, 5) != noise_normal(2, 0, 0, 5), "seed");
  CHECK(noise_normal(1ull << 32, 0, 0, 5) != noise_normal(0, 0, 0, 5), "seed high word");
}

// The Box-Muller pieces against double precision over their whole input ranges (every 24-bit
// k of u1 = k / 2^24 and every 24-bit j of u2 = j / 2^24), and pinned values of the noise
// stream: the keying (counter / key words) and the transform must never change silently, since
// the CPU engines (native/cpu/noise.h) and the CUDA backend draw the same numbers from them.
void test_box_muller_exact() {
  double max_log = 0.0, max_sc = 0.0;
  for (uint32_t k = 1; k <= (1u << 24); k += (k < 4096 ? 1u : 7u)) {
    const double ref = std::log((double)k / 16777216.0);
    const double v = bm_log_k24(k);
    max_log = std::max(max_log, ref == 0.0 ? std::fabs(v) : std::fabs(v - ref) / std::fabs(ref));
  }
  CHECK(bm_log_k24(1u << 24) == 0.0f, "ln 1 = 0");
  CHECK(max_log < 4e-7, fmt("ln: max relative error %g (limit %g)", max_log, 4e-7));
  for (uint32_t j = 0; j < (1u << 24); j += (j < 4096 ? 1u : 5u)) {
    const double th = 6.283185307179586476925 * (double)j / 16777216.0;
    float sn, cs;
    bm_sincos_2pi_j24(j, &sn, &cs);
    max_sc = std::max(max_sc, std::max(std::fabs(sn - std::sin(th)), std::fabs(cs - std::cos(th))));
  }
  CHECK(max_sc < 2e-7, fmt("sin / cos: max abs error %g (limit %g)", max_sc, 2e-7));
  struct Pin {
    uint64_t seed;
    int layer;
    uint32_t image;
    int p;
    uint32_t bits;
  };
  const Pin pins[] = {
      // p 0..3: Box-Muller of the Philox4x32-10 KAT block {0,0,0,0} / {0,0}: (0.99113745,
      // -0.92466278) and (-0.61760905, -0.48206835) in double precision.
      {0x0ull, 0, 0x0u, 0, 0x3f7dbb2fu},
      {0x0ull, 0, 0x0u, 1, 0xbf6cb6b3u},
      {0x0ull, 0, 0x0u, 2, 0xbf1e1ba1u},
      {0x0ull, 0, 0x0u, 3, 0xbef6d1a9u},
      {0x2aull, 3, 0x1u, 4097, 0xbeb9e829u},
      {0x5eedull, 16, 0x7u, 1048575, 0xbf39fa91u},
      {0xffffffffffffffffull, 1, 0x80000001u, 12345, 0xbf8f1fcbu},
      {0x123456789abcdefull, 0, 0x0u, 5, 0x3f4b1becu},
  };
  for (const Pin& q : pins) {
    const float z = noise_normal(q.seed, q.layer, (int)q.image, q.p);
    uint32_t u;
    std::memcpy(&u, &z, 4);
    char msg[96];
    std::snprintf(msg, sizeof msg, "noise value %.9g has bits 0x%08x, pinned 0x%08x", z, (unsigned)u, (unsigned)q.bits);
    CHECK(u == q.bits, msg);
  }
}

void test_noise_counter() {
  // Every plane element maps to a distinct (counter, lane) and the four lanes of a block are
  // four consecutive elements (what noise.cu writes as one float4).
  std::set<std::pair<uint32_t, int>> seen;
  for (int p = 0; p < 4096; ++p) {
    uint32_t ctr[4];
    int which;
    noise_counter(7, 2, p, ctr, &which);
    CHECK(ctr[1] == 7u && ctr[2] == 2u && ctr[3] == 0u, "counter words");
    CHECK((int)ctr[0] * 4 + which == p, "block, lane");
    seen.insert({ctr[0], which});
  }
  CHECK(seen.size() == 4096, "bijective");
  uint32_t ctr[4];
  int which;
  noise_counter(1, 0, 10, ctr, &which);
  float z[4];
  philox_normals4(ctr, 99, z);
  CHECK(noise_normal(99, 1, 0, 10) == z[2], "noise_normal picks lane p % 4");
}

// The CUDA backend's random noise (noise.cu: one thread per Philox block, image = image_base + b,
// layer = conv ordinal) against the CPU engines' noise_fill (native/cpu/noise.h), bit for bit,
// for every element of several planes, chunked fills starting anywhere, and image indices past
// 2^31 (SynthesisArgs::image_offset is a uint32).
void test_noise_cpu_vs_cuda_keying() {
  struct Case {
    uint64_t seed;
    int layer;
    uint32_t image_base;
    int n, plane;
  };
  const Case cases[] = {{0x5eedull, 0, 0u, 3, 16}, {42ull, 7, 5u, 2, 64 * 64}, {~0ull, 13, 0x7ffffffeu, 4, 8 * 8 + 3},
                        {0x0123456789abcdefull, 2, 0xfffffffeu, 3, 5}};
  for (const Case& c : cases) {
    // What each noise_kernel thread q writes: plane elements p0 .. p0+3 of sample b.
    std::vector<float> gpu((size_t)c.n * c.plane);
    const int groups = ceil_div(c.plane, 4);
    for (int64_t q = 0; q < (int64_t)c.n * groups; ++q) {
      const int b = (int)(q / groups);
      const int p0 = (int)(q - (int64_t)b * groups) * 4;
      uint32_t ctr[4];
      int which;
      const uint32_t image = c.image_base + (uint32_t)b;
      noise_counter(c.layer, (int)image, p0, ctr, &which);
      float z[4];
      philox_normals4(ctr, c.seed, z);
      for (int e = 0; e < 4 && p0 + e < c.plane; ++e) gpu[(size_t)b * c.plane + p0 + e] = z[e];
    }
    for (int b = 0; b < c.n; ++b) {
      std::vector<float> cpu((size_t)c.plane);
      // In uneven chunks, as the CPU engines' threads fill a plane.
      for (size_t b0 = 0; b0 < (size_t)c.plane;) {
        const size_t e0 = std::min<size_t>(c.plane, b0 + 1 + (b0 * 7 + 3) % 11);
        noise_fill(c.seed, c.layer, c.image_base + (uint32_t)b, b0, e0, cpu.data() + b0);
        b0 = e0;
      }
      CHECK(std::memcmp(cpu.data(), gpu.data() + (size_t)b * c.plane, cpu.size() * sizeof(float)) == 0,
            "layer " + std::to_string(c.layer) + " image " + std::to_string(c.image_base + (uint32_t)b) +
                ": CPU and CUDA noise differ");
      for (int p = 0; p < c.plane; p += 13)
        CHECK(noise_normal(c.seed, c.layer, (int)(c.image_base + (uint32_t)b), p) == cpu[(size_t)p], "noise_normal");
    }
  }
}

#ifdef FACEGAN_WITH_CUDA
// The noise kernel on the device against noise_fill on the host, bit for bit (philox.cuh's
// Box-Muller is built from correctly rounded float operations only).
void test_cuda_noise_bits() {
  if (!cuda_backend_available(nullptr)) {
    std::printf("        (no usable GPU: skipped)\n");
    return;
  }
  const int n = 3, plane = 64 * 64 + 3, layer = 5;
  NoiseParams hp;
  hp.seed = 0xfeedfacecafebeefull;
  hp.image_base = 0xfffffffeu;  // wraps past 2^32 within the batch
  hp.pad = 0;
  NoiseParams* dp = nullptr;
  float* dout = nullptr;
  CHECK(cudaMalloc(&dp, sizeof hp) == cudaSuccess && cudaMalloc(&dout, (size_t)n * plane * sizeof(float)) == cudaSuccess,
        "cudaMalloc");
  if (!dp || !dout) return;
  std::vector<float> got((size_t)n * plane);
  const bool ok = cudaMemcpy(dp, &hp, sizeof hp, cudaMemcpyHostToDevice) == cudaSuccess &&
                  launch_noise(n, plane, layer, dp, dout, nullptr).ok && cudaDeviceSynchronize() == cudaSuccess &&
                  cudaMemcpy(got.data(), dout, got.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess;
  CHECK(ok, "noise kernel ran");
  cudaFree(dp);
  cudaFree(dout);
  if (!ok) return;
  for (int b = 0; b < n; ++b) {
    std::vector<float> want((size_t)plane);
    noise_fill(hp.seed, layer, hp.image_base + (uint32_t)b, 0, (size_t)plane, want.data());
    size_t diff = 0;
    for (int p = 0; p < plane; ++p)
      if (std::memcmp(&want[(size_t)p], &got[(size_t)b * plane + p], sizeof(float)) != 0) ++diff;
    CHECK(diff == 0, "image " + std::to_string(b) + ": " + std::to_string(diff) + " device normals differ from the host's");
  }
}
#endif

const Register kCases(__FILE__, {
    {"philox4x32-10 known-answer vectors", test_philox_kat},
    {"box-muller normals", test_box_muller},
    {"box-muller accuracy and pinned noise values", test_box_muller_exact},
    {"noise counter mapping", test_noise_counter},
    {"random noise: CUDA keying == CPU noise_fill (bits)", test_noise_cpu_vs_cuda_keying},
#ifdef FACEGAN_WITH_CUDA
    {"CUDA noise kernel == CPU noise_fill, bits (GPU only)", test_cuda_noise_bits},
#endif
});

}  // namespace
