// The CUDA backend on the CPU emulator (native/cuda/emu): its kernels against naive references
// (kernel_tests.cc), and its run-time behaviour (graphs, chunking, OOM halving, non-finite counts,
// cancel, faults). Built only with the emulator (FACEGAN_WITH_CUDA_EMU).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#include "emu_control.h"  // fault injection and fake device memory
#include "kernel_tests.h"  // the CUDA kernels run by the emulator
#endif
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

#ifdef FACEGAN_WITH_CUDA_EMU
// The CUDA backend's run-time behaviour on the emulator: CUDA graphs on / off give the same bits;
// a pool too small for the batch (fake device memory) runs in chunks with the same bits; a failed
// pool allocation halves the pool and still succeeds; non-finite images are counted (fp32 NaN,
// fp16 overflow); a cancel flag stops the call; a kernel fault is reported (named with
// FACEGAN_CUDA_SYNC=1) and then reported as a dead context on every later call.
void test_cuda_emu_runtime() {
  const BackendReg* reg = find_backend("cuda-emu");
  CHECK(reg != nullptr, "cuda-emu is registered");
  if (!reg) return;
  auto t = make_tiny_model();
  const Network& net = t->net;
  const int nb = 5;
  const auto z = random_vec((size_t)nb * net.mapping.z_dim, -2.0f, 2.0f);
  std::vector<float> c((size_t)nb * net.mapping.c_dim, 0.0f);
  for (int b = 0; b < nb; ++b) c[(size_t)b * net.mapping.c_dim + b % net.mapping.c_dim] = 1.0f;
  std::vector<float> ws;
  ref_mapping(net, nb, z.data(), c.data(), 1.0f, &ws);
  const size_t img_elems = (size_t)nb * net.info.img_channels * net.info.img_resolution * net.info.img_resolution;
  auto run = [&](Precision prec, NoiseMode mode, std::vector<float>* img, uint64_t* bad, Status* st, const CancelFlag* cancel = nullptr) {
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda-emu";
    opt.precision = prec;
    *st = be->prepare(net, opt);
    if (!st->ok) return;
    SynthesisArgs sa;
    sa.n = nb;
    sa.ws = ws.data();
    sa.noise = mode;
    sa.noise_seed = 77;
    img->assign(img_elems, 0.0f);
    sa.img = img->data();
    sa.nonfinite_count = bad;
    sa.cancel = cancel;
    *st = be->synthesis(sa);
  };
  fg_emu::reset();
  std::vector<float> ref, img;
  uint64_t bad = 99;
  Status st;
  run(Precision::FP32, NoiseMode::Random, &ref, &bad, &st);
  CHECK(st.ok && bad == 0, "reference run: " + st.message + ", non-finite " + std::to_string(bad));
  const auto launches_graphs = fg_emu::stats().graph_launches;
  CHECK(launches_graphs >= 1, "synthesis replays a CUDA graph");

  setenv("FACEGAN_CUDA_GRAPHS", "0", 1);
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  unsetenv("FACEGAN_CUDA_GRAPHS");
  CHECK(st.ok && img == ref, "graphs off == graphs on (bits): " + st.message);
  CHECK(fg_emu::stats().graph_launches == launches_graphs, "FACEGAN_CUDA_GRAPHS=0 launches no graph");

  // Fake device memory for ~2 samples of the synthesis pool: chunks of 2, 2, 1.
  fg_emu::reset();
  fg_emu::config().device_memory = 600 * 1024;
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  const auto chunked_launches = fg_emu::stats().graph_launches;
  CHECK(st.ok && img == ref, "chunked (small device memory) == one batch (bits): " + st.message);
  CHECK(chunked_launches >= 3, "the small memory forced chunks (" + std::to_string(chunked_launches) + " graph launches)");

  // The first pool allocation fails: the backend halves the pool and carries on.
  fg_emu::reset();
  fg_emu::config().fail_malloc_at = 3;  // weights, mapping pool untouched here: the synthesis pool
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  CHECK(st.ok && img == ref, "out-of-memory halving still gives the same images: " + st.message);
  fg_emu::reset();

  // Cancel before the call: Status::Cancelled, nothing reported as an error.
  CancelFlag stop{true};
  run(Precision::FP32, NoiseMode::Const, &img, &bad, &st, &stop);
  CHECK(!st.ok && st.cancelled(), "a set cancel flag cancels: " + st.message);

  // Non-finite output: a NaN bias (fp32) and a value beyond the fp16 range (no saturation).
  LayerDesc* conv = nullptr;
  for (LayerDesc& L : t->net.layers)
    if (L.kind == LayerDesc::Conv && L.out_res == 8 && L.up == 1) conv = &L;
  CHECK(conv != nullptr, "the tiny model has an 8x8 conv");
  if (conv) {
    float* bias = const_cast<float*>(conv->bias);
    const float saved = bias[0];
    bias[0] = std::nanf("");
    run(Precision::FP32, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad > 0, "a NaN bias gives a non-finite count (" + std::to_string(bad) + ")");
    bias[0] = 1e5f;  // > 65504: inf in fp16 activations
    run(Precision::FP16, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad > 0, "an fp16 overflow is counted, not saturated (" + std::to_string(bad) + ")");
    run(Precision::FP32, NoiseMode::Const, &img, &bad, &st);
    CHECK(st.ok && bad == 0, "the same model in fp32 is finite (" + std::to_string(bad) + ")");
    bias[0] = saved;
  }

  // A kernel fault: reported at the synchronisation (or, with FACEGAN_CUDA_SYNC=1, with the
  // kernel's name), then every later call says the context is dead.
  for (int sync = 0; sync < 2; ++sync) {
    fg_emu::reset();
    if (sync) setenv("FACEGAN_CUDA_SYNC", "1", 1);
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda-emu";
    CHECK(be->prepare(net, opt).ok, "prepare");
    fg_emu::config().fault_kernel = "modconv_ffma_kernel";
    SynthesisArgs sa;
    sa.n = 1;
    sa.ws = ws.data();
    std::vector<float> one((size_t)net.info.img_channels * net.info.img_resolution * net.info.img_resolution);
    sa.img = one.data();
    const Status s1 = be->synthesis(sa);
    CHECK(!s1.ok, "the injected fault fails the call");
    if (sync)
      CHECK(s1.message.find("modconv_ffma_kernel") != std::string::npos, "FACEGAN_CUDA_SYNC=1 names the kernel: " + s1.message);
    fg_emu::config().fault_kernel.clear();
    const Status s2 = be->synthesis(sa);
    CHECK(!s2.ok && s2.message.find("unusable") != std::string::npos, "the next call reports the dead context: " + s2.message);
    unsetenv("FACEGAN_CUDA_SYNC");
  }
  fg_emu::reset();
}
#endif

#ifdef FACEGAN_WITH_CUDA_EMU
// The CUDA kernels themselves (native/cuda/*.cu), executed by the CPU emulator, each family
// against a naive reference: one line per kernel case (FACEGAN_EMU_QUICK=1: fewer, smaller shapes).
void run_emulated_kernel_tests() {
  const char* quick = std::getenv("FACEGAN_EMU_QUICK");
  const bool q = quick && std::string(quick) == "1";
  emu_results::Results results;
  emu_tests::run_kernel_tests(&results, q);            // sm_80+ device code paths
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  emu_tests_sm75::run_kernel_tests(&results, true);    // sm_75's (fp16 as two m16n8k8)
#endif
  for (const auto& r : results) report(r.ok, "emulated " + r.name + ": " + r.detail);
}

const Register kCases(__FILE__, {
    {"emulated kernels", run_emulated_kernel_tests, true},
    {"emulated CUDA backend: graphs, chunking, OOM halving, non-finite, cancel, faults", test_cuda_emu_runtime},
});
#endif

}  // namespace
