// The CUDA backend on the CPU emulator (native/cuda/emu): its kernels against naive references
// (kernel_tests.cc), and its run-time behaviour (graphs, out-of-memory answers and the core's
// chunking, generate with the ws on the device, non-finite counts, cancel, faults). Built only
// with the emulator (FACEGAN_WITH_CUDA_EMU).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#include "emu_control.h"  // fault injection and fake device memory
#include "kernel_tests.h"  // the CUDA kernels run by the emulator
#endif
#include "../random_model.h"
#include "facegan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

#ifdef FACEGAN_WITH_CUDA_EMU
// The CUDA backend's run-time behaviour on the emulator: CUDA graphs on / off give the same bits;
// a batch the device memory cannot hold (fake device memory, or a failed cudaMalloc) is answered
// with Status::OutOfMemory, never split by the backend (the Generator's halving is
// test_cuda_emu_core_chunking); non-finite images are counted (fp32 NaN, fp16 overflow); a
// cancel flag stops the call; a kernel fault is reported (named with FACEGAN_CUDA_SYNC=1) and
// then reported as a dead context on every later call.
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
  // fail_malloc: the Nth cudaMalloc after prepare fails (0: none).
  auto run = [&](Precision prec, NoiseMode mode, std::vector<float>* img, uint64_t* bad, Status* st,
                 const CancelFlag* cancel = nullptr, int fail_malloc = 0) {
    auto be = reg->create();
    LoadOptions opt;
    opt.backend = "cuda-emu";
    opt.precision = prec;
    *st = be->prepare(net, opt);
    if (!st->ok) return;
    if (fail_malloc) fg_emu::config().fail_malloc_at = fail_malloc;
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
  const auto launches_before = fg_emu::stats().graph_launches;
  run(Precision::FP32, NoiseMode::Random, &ref, &bad, &st);
  CHECK(st.ok && bad == 0, "reference run: " + st.message + ", non-finite " + std::to_string(bad));
  const size_t pool_of_5 = fg_emu::stats().peak_bytes;  // the weights and the pool (no mapping here)
  const auto launches_graphs = fg_emu::stats().graph_launches;
  CHECK(launches_graphs > launches_before, "synthesis replays a CUDA graph");

  setenv("FACEGAN_CUDA_GRAPHS", "0", 1);
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  unsetenv("FACEGAN_CUDA_GRAPHS");
  CHECK(st.ok && img == ref, "graphs off == graphs on (bits): " + st.message);
  CHECK(fg_emu::stats().graph_launches == launches_graphs, "FACEGAN_CUDA_GRAPHS=0 launches no graph");


  // Fake device memory one byte short of the weights and the pool for 5 images: the backend runs
  // no chunks of its own, it answers OutOfMemory (and launches nothing).
  fg_emu::reset();
  fg_emu::config().device_memory = pool_of_5 - 1;
  auto launches = fg_emu::stats().graph_launches;
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  CHECK(!st.ok && st.code == StatusCode::OutOfMemory, "5 images in too little memory: OutOfMemory (" + st.message + ")");
  CHECK(fg_emu::stats().graph_launches == launches, "no chunk ran");
  fg_emu::reset();
  fg_emu::config().device_memory = pool_of_5;
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st);
  CHECK(st.ok && img == ref, "the same 5 images in just enough memory (bits): " + st.message);

  // The synthesis pool's cudaMalloc (the first after prepare) fails: OutOfMemory too.
  fg_emu::reset();
  const auto mallocs = fg_emu::stats().mallocs;
  launches = fg_emu::stats().graph_launches;
  run(Precision::FP32, NoiseMode::Random, &img, &bad, &st, nullptr, 1);
  CHECK(!st.ok && st.code == StatusCode::OutOfMemory, "a failed pool cudaMalloc: OutOfMemory (" + st.message + ")");
  CHECK(fg_emu::stats().graph_launches == launches, "no chunk ran after the failed cudaMalloc");
  CHECK(fg_emu::stats().mallocs - mallocs >= 2, "prepare's and the pool's cudaMalloc");
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

// A small conditional StyleGAN2 (16², 32 channels, c_dim 4, conv_clamp 0.5) with random weights.
tools::RandomModel small_conditional_model() {
  tools::RandomModelSpec spec;
  spec.name = "emu-c16";
  spec.z_dim = 24;
  spec.w_dim = 32;
  spec.c_dim = 4;
  spec.resolution = 16;
  spec.mapping_layers = 2;
  spec.channel_base = 512;
  spec.channel_max = 32;
  spec.conv_clamp = 0.5f;
  tools::RandomModel model;
  tools::make_random_model(spec, 21, &model);
  return model;
}

std::unique_ptr<Generator> emu_generator(const tools::RandomModel& model, int max_chunk) {
  LoadOptions lo;
  lo.backend = "cuda-emu";
  lo.max_chunk = max_chunk;
  std::unique_ptr<Generator> gen;
  const Status s = Generator::create(model.config_json, model.tensors, lo, &gen);
  CHECK(s.ok, "create on cuda-emu: " + s.message);
  return s.ok ? std::move(gen) : nullptr;
}

// n latents (standard normal, fixed seed) and one-hot labels (image i: class i % c_dim).
struct Latents {
  std::vector<float> z, c;
};
Latents make_latents(const ModelInfo& mi, int n) {
  Latents l;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  l.z.resize(size_t(n) * mi.z_dim);
  for (float& v : l.z) v = normal(rng);
  l.c.assign(size_t(n) * mi.c_dim, 0.0f);
  for (int i = 0; i < n; ++i) l.c[size_t(i) * mi.c_dim + i % mi.c_dim] = 1.0f;
  return l;
}

struct Images {
  std::vector<float> f;
  std::vector<uint8_t> u8;
  bool operator==(const Images& o) const { return f == o.f && u8 == o.u8; }
};

struct GenCase {
  float psi;
  int cutoff;
  NoiseMode noise;
  const char* name;
};
const GenCase kGenCases[] = {
    {1.0f, -1, NoiseMode::Const, "psi 1, const noise"},
    {0.6f, -1, NoiseMode::Random, "psi 0.6, random noise"},
    {0.5f, 3, NoiseMode::None, "psi 0.5 cutoff 3, no noise"},
    {0.7f, 2, NoiseMode::Random, "psi 0.7 cutoff 2, random noise"},
};

// Mapping of latents l (n of them) into ws with the case's ψ and cutoff.
MappingArgs mapping_args(const Latents& l, int n, const GenCase& gc, float* ws) {
  MappingArgs m;
  m.n = n;
  m.z = l.z.data();
  m.c = l.c.data();
  m.psi = gc.psi;
  m.truncation_cutoff = gc.cutoff;
  m.ws = ws;
  return m;
}

// The reference: Generator::mapping into host ws, then Generator::synthesis from them (one pass).
Images mapping_then_synthesis(Generator* gen, const Latents& l, int n, const GenCase& gc) {
  const ModelInfo& mi = gen->info();
  const size_t per = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
  Images out;
  std::vector<float> ws(size_t(n) * mi.num_ws * mi.w_dim);
  const MappingArgs m = mapping_args(l, n, gc, ws.data());
  Status s = gen->mapping(m);
  CHECK(s.ok, std::string(gc.name) + ": mapping: " + s.message);
  out.f.assign(n * per, -7.0f);
  out.u8.assign(n * per, 7);
  SynthesisArgs sa;
  sa.n = n;
  sa.ws = ws.data();
  sa.noise = gc.noise;
  sa.noise_seed = 9;
  sa.image_offset = 3;
  sa.img = out.f.data();
  sa.img_u8 = out.u8.data();
  s = gen->synthesis(sa);
  CHECK(s.ok, std::string(gc.name) + ": synthesis: " + s.message);
  return out;
}

GenerateArgs generate_args(const Latents& l, int n, const GenCase& gc, Images* out, const ModelInfo& mi) {
  const size_t per = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
  out->f.assign(n * per, -5.0f);
  out->u8.assign(n * per, 5);
  GenerateArgs g;
  g.n = n;
  g.z = l.z.data();
  g.c = l.c.data();
  g.psi = gc.psi;
  g.truncation_cutoff = gc.cutoff;
  g.noise = gc.noise;
  g.noise_seed = 9;
  g.image_offset = 3;
  g.img = out->f.data();
  g.img_u8 = out->u8.data();
  return g;
}

// generate() on the CUDA backend keeps the ws on the device (Backend::generate: mapping,
// truncation and synthesis in one device pass) and must give the bits of mapping() into host ws
// then synthesis() from them, for ψ / cutoff / labels / every noise mode: on the backend itself,
// and through the Generator in one pass, chunked (max_chunk 2: chunks 2, 2, 1) and from seeds.
// Non-finite ws (a NaN mapping bias) are counted on the device and answered as mapping's.
void test_cuda_emu_generate() {
  fg_emu::reset();
  const tools::RandomModel model = small_conditional_model();
  const int n = 5;
  {
    std::unique_ptr<Generator> one = emu_generator(model, 0), chunked = emu_generator(model, 2);
    if (!one || !chunked) return;
    const ModelInfo& mi = one->info();
    const Latents l = make_latents(mi, n);
    for (const GenCase& gc : kGenCases) {
      const Images ref = mapping_then_synthesis(one.get(), l, n, gc);
      Images got;
      Status s = one->generate(generate_args(l, n, gc, &got, mi));
      CHECK(s.ok && got == ref, std::string(gc.name) + ": generate == mapping + synthesis (bits): " + s.message +
                                    ", max |diff| " + std::to_string(max_abs_diff(got.f, ref.f)));
      const auto launches = fg_emu::stats().graph_launches;
      s = chunked->generate(generate_args(l, n, gc, &got, mi));
      CHECK(s.ok && got == ref, std::string(gc.name) + ": generate in chunks of 2 == one pass (bits): " + s.message);
      CHECK(fg_emu::stats().graph_launches - launches == 3,
            std::string(gc.name) + ": chunks of 2, 2, 1 are three synthesis graphs (" +
                std::to_string(fg_emu::stats().graph_launches - launches) + ")");
    }
    // Seeds: the core draws z = randn(seed) in float32; the device then maps it as any z.
    const std::vector<uint32_t> seeds = {0, 1, 42, 7, 123456};
    Latents ls = l;
    std::vector<double> zd(mi.z_dim);
    for (int i = 0; i < n; ++i) {
      numpy_randn(seeds[i], zd.size(), zd.data());
      for (int k = 0; k < mi.z_dim; ++k) ls.z[size_t(i) * mi.z_dim + k] = float(zd[k]);
    }
    const Images ref = mapping_then_synthesis(one.get(), ls, n, kGenCases[1]);
    Images got;
    GenerateArgs g = generate_args(ls, n, kGenCases[1], &got, mi);
    g.z = nullptr;
    g.seeds = seeds.data();
    const Status s = chunked->generate(g);
    CHECK(s.ok && got == ref, "generate from seeds == mapping + synthesis of their z (bits): " + s.message);
  }

  // The backend's own generate (no Generator): the same bits as its mapping + synthesis.
  {
    const BackendReg* reg = find_backend("cuda-emu");
    auto t = make_tiny_model();
    auto be = reg ? reg->create() : nullptr;
    LoadOptions opt;
    opt.backend = "cuda-emu";
    CHECK(be && be->prepare(t->net, opt).ok, "prepare the tiny model on cuda-emu");
    CHECK(be && be->provides_generate(), "the CUDA backend provides generate()");
    if (be) {
      const ModelInfo& mi = t->net.info;
      Latents l;
      l.z = random_vec(size_t(n) * mi.z_dim, -2.0f, 2.0f);
      l.c.assign(size_t(n) * mi.c_dim, 0.0f);
      for (int i = 0; i < n; ++i) l.c[size_t(i) * mi.c_dim + (i + 1) % mi.c_dim] = 1.0f;
      const size_t per = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
      for (const GenCase& gc : kGenCases) {
        std::vector<float> ws(size_t(n) * mi.num_ws * mi.w_dim), ref(n * per), img(n * per, -3.0f);
        const MappingArgs m = mapping_args(l, n, gc, ws.data());
        Status s = be->mapping(m);
        SynthesisArgs sa;
        sa.n = n;
        sa.ws = ws.data();
        sa.noise = gc.noise;
        sa.noise_seed = 4;
        sa.image_offset = 1;
        sa.img = ref.data();
        if (s.ok) s = be->synthesis(sa);
        CHECK(s.ok, std::string(gc.name) + ": backend mapping + synthesis: " + s.message);
        BackendGenerateArgs ga;
        ga.mapping = m;
        ga.mapping.ws = nullptr;
        ga.synthesis = sa;
        ga.synthesis.ws = nullptr;
        ga.synthesis.img = img.data();
        uint64_t ws_bad = 99, img_bad = 99;
        ga.ws_nonfinite_count = &ws_bad;
        ga.synthesis.nonfinite_count = &img_bad;
        s = be->generate(ga);
        CHECK(s.ok && ws_bad == 0 && img_bad == 0 && img == ref,
              std::string(gc.name) + ": backend generate == its mapping + synthesis (bits): " + s.message +
                  ", non-finite ws " + std::to_string(ws_bad) + " image " + std::to_string(img_bad));
      }
    }
  }

  // Weights that overflow float32 in the mapping (fc0's bias at 1e34, fc1's first row at 3e38,
  // both finite): every ws row's first value is +Inf, the others stay finite. generate answers
  // NonFinite with mapping's message (the count n × num_ws, counted on the device).
  {
    tools::RandomModel bad = small_conditional_model();
    for (TensorView& tv : bad.tensors) {
      float* v = static_cast<float*>(const_cast<void*>(tv.data));
      if (tv.name == "mapping.fc0.bias") std::fill(v, v + tv.shape[0], 1e34f);
      if (tv.name == "mapping.fc1.weight") std::fill(v, v + tv.shape[1], 3e38f);
    }
    std::unique_ptr<Generator> gen = emu_generator(bad, 0);
    if (gen) {
      const ModelInfo& mi = gen->info();
      const Latents l = make_latents(mi, n);
      std::vector<float> ws(size_t(n) * mi.num_ws * mi.w_dim);
      const Status sm = gen->mapping(mapping_args(l, n, kGenCases[0], ws.data()));
      Images got;
      const Status sg = gen->generate(generate_args(l, n, kGenCases[0], &got, mi));
      CHECK(sm.non_finite() && sg.non_finite() && sg.message == sm.message,
            "non-finite ws: generate answers as mapping (" + sg.message + " / " + sm.message + ")");
      CHECK(sg.message.find(std::to_string(n * mi.num_ws) + " of ") != std::string::npos,
            "the device counted n × num_ws non-finite ws: " + sg.message);
    }
  }
  fg_emu::reset();
}

// The core is the one place requests are split: on the emulated device, a chunk the memory
// cannot hold comes back from the backend as Status::OutOfMemory and the Generator halves it,
// with the same bits as one pass. (a) Fake device memory for a few images: the backend's
// images_per_call() estimate already bounds the chunk. (b) The synthesis pool's cudaMalloc fails
// once: 5 -> OutOfMemory -> chunks of 2 (kept for later calls), for generate and for synthesis.
void test_cuda_emu_core_chunking() {
  const tools::RandomModel model = small_conditional_model();
  const int n = 5;
  const GenCase& gc = kGenCases[3];
  Images ref, ref_synth;
  std::vector<float> ws;
  size_t one_image = 0, two_images = 0;  // device bytes held after a call of 1 / 2 images
  fg_emu::reset();
  {
    std::unique_ptr<Generator> gen = emu_generator(model, 0);
    if (!gen) return;
    const Latents l = make_latents(gen->info(), n);
    const Status s = gen->generate(generate_args(l, n, gc, &ref, gen->info()));
    CHECK(s.ok, "reference generate: " + s.message);
  }
  for (int k = 1; k <= 2; ++k) {
    fg_emu::reset();
    std::unique_ptr<Generator> gen = emu_generator(model, 0);
    if (!gen) return;
    const Latents l = make_latents(gen->info(), k);
    Images img;
    CHECK(gen->generate(generate_args(l, k, gc, &img, gen->info())).ok, "a generate of " + std::to_string(k));
    (k == 1 ? one_image : two_images) = fg_emu::stats().bytes_in_use;
  }
  CHECK(two_images > one_image, "a second image needs device memory");

  // (a) Memory for the weights and pools of about three images: the Generator's chunk follows the
  // backend's estimate (80 % of the free memory), below 5.
  fg_emu::reset();
  fg_emu::config().device_memory = one_image + 2 * (two_images - one_image) + (two_images - one_image) / 2;
  {
    std::unique_ptr<Generator> gen = emu_generator(model, 0);
    if (gen) {
      const int chunk = gen->chunk_images();
      Images img;
      const auto before = fg_emu::stats().graph_launches;
      const Status s = gen->generate(generate_args(make_latents(gen->info(), n), n, gc, &img, gen->info()));
      const int launches = (int)(fg_emu::stats().graph_launches - before);
      CHECK(chunk >= 1 && chunk < n, "the small device memory bounds the chunk (" + std::to_string(chunk) + ")");
      CHECK(s.ok && img == ref, "chunks from the backend's estimate == one pass (bits): " + s.message);
      CHECK(launches == (n + gen->chunk_images() - 1) / gen->chunk_images(),
            "one synthesis graph per chunk (" + std::to_string(launches) + " for chunks of " +
                std::to_string(gen->chunk_images()) + ")");
    }
  }

  // (b) The first cudaMalloc of the call (the synthesis pool for 5) fails: the core halves.
  fg_emu::reset();
  {
    std::unique_ptr<Generator> gen = emu_generator(model, 0);
    if (gen) {
      const ModelInfo& mi = gen->info();
      const Latents l = make_latents(mi, n);
      CHECK(gen->chunk_images() == n || gen->chunk_images() > n, "the estimate allows 5 at once");
      fg_emu::config().fail_malloc_at = 1;
      Images img;
      const auto before = fg_emu::stats().graph_launches;
      Status s = gen->generate(generate_args(l, n, gc, &img, mi));
      const auto launches = fg_emu::stats().graph_launches - before;
      CHECK(s.ok && img == ref, "generate after an out-of-memory, halved by the core == one pass (bits): " + s.message);
      CHECK(gen->chunk_images() == 2, "the core halved the chunk 5 -> 2 (" + std::to_string(gen->chunk_images()) + ")");
      CHECK(launches == 3, "chunks 2, 2, 1 (" + std::to_string(launches) + " graphs)");
      // The halved chunk is kept; synthesis (ws from the host) is chunked the same way.
      ref_synth = mapping_then_synthesis(gen.get(), l, n, gc);
      CHECK(ref_synth == ref, "mapping + synthesis in chunks of 2 == generate (bits)");
    }
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

}  // namespace

// The race checker's own case launches a kernel written by hand as the source pass would emit it,
// so it needs the emulator's device-side API (fg_emu.h); its macros stay below this point.
#define __CUDA_ARCH__ 800
#include "include/fg_emu.h"

namespace {

void race_probe() {}

// One block of 64 threads (two warps) over a 16x8 tile of halves; thread t writes halves 2t and
// 2t + 1, so warp w writes rows 8w..8w+7. mode 0: every thread writes, [barrier], each warp reads
// the other warp's rows by ldmatrix.x1 (got[t]: thread t's register). mode 1: every thread writes,
// barrier, warp 0 reads warp 1's rows, [barrier], warp 1 rewrites them. Returns the fault message.
std::string race_launch(int mode, bool barrier, bool check, std::vector<uint32_t>* got) {
  fg_emu::reset();
  fg_emu::config().schedule = 0;  // by warps
  fg_emu::config().race_check = check;
  got->assign(64, 0);
  uint32_t* out = got->data();
  fg_emu::LaunchCfg lc;
  lc.grid = dim3(1);
  lc.block = dim3(64);
  fg_emu::launch("race_probe", race_probe, lc, [=] {
    static thread_local __align__(16) uint16_t tile[16][8];
    fg_emu::shared_static(&tile, sizeof(tile), "tile");
    const int t = fg_emu::tls_thread->linear, warp = t / 32, lane = t % 32;
    auto read_rows = [&](int first) {
      uint32_t r = 0;
      const unsigned addr = fg_emu::cvta_shared(&tile[first + lane % 8][0]);
      fg_emu::ptx("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];", {fg_emu::op_out('r', &r), fg_emu::op_in('r', addr)});
      out[t] = r;
    };
    tile[t / 4][2 * (t % 4)] = (uint16_t)(2 * t);
    tile[t / 4][2 * (t % 4) + 1] = (uint16_t)(2 * t + 1);
    if (mode == 0) {
      if (barrier) fg_emu::syncthreads();
      read_rows(8 * (1 - warp));
    } else {
      fg_emu::syncthreads();
      if (warp == 0) read_rows(8);
      if (barrier) fg_emu::syncthreads();
      if (warp == 1) tile[t / 4][2 * (t % 4)] = (uint16_t)(1000 + t);
    }
  });
  const std::string msg = fg_emu::fault_message();
  fg_emu::reset();
  return msg;
}

// The shared-memory race checker (runtime.cc): a read after a write and a write after a read of
// the same bytes by two warps, each with and without the barrier between them.
void test_emu_race_checker() {
  std::vector<uint32_t> got;
  std::string m = race_launch(0, true, true, &got);
  CHECK(m.empty(), "write, barrier, other warp's ldmatrix: no fault (" + m + ")");
  bool values = true;
  for (int t = 0; t < 64; ++t) {
    const int src = 32 * (1 - t / 32) + t % 32;  // the thread that wrote the halves thread t receives
    values = values && got[t] == ((uint32_t)(2 * src) | (uint32_t)(2 * src + 1) << 16);
  }
  CHECK(values, "ldmatrix.x1 after the barrier gives the other warp's rows");
  m = race_launch(0, false, true, &got);
  CHECK(m.find("race_probe") != std::string::npos && m.find("shared-memory race: warp 1 reads (ldmatrix)") != std::string::npos &&
            m.find("`tile`") != std::string::npos && m.find("which warp 0 wrote") != std::string::npos,
        "write then another warp's ldmatrix without a barrier is a fault naming both warps and the array: " + m);
  m = race_launch(0, false, false, &got);
  CHECK(m.empty() && got[0] == 0xffffffffu, "without the checker, the warp order alone makes warp 0 read the NaN fill");
  m = race_launch(1, true, true, &got);
  CHECK(m.empty(), "ldmatrix, barrier, another warp's write: no fault (" + m + ")");
  m = race_launch(1, false, true, &got);
  CHECK(m.find("shared-memory race: warp 1 writes") != std::string::npos && m.find("which warp 0 read (ldmatrix)") != std::string::npos,
        "ldmatrix then another warp's write without a barrier is a fault: " + m);
}

const Register kCases(__FILE__, {
    {"emulator race checker: two warps' shared-memory accesses with no barrier between them", test_emu_race_checker},
    {"emulated kernels", run_emulated_kernel_tests, true},
    {"emulated CUDA backend: graphs, out-of-memory answers, non-finite, cancel, faults", test_cuda_emu_runtime},
    {"emulated CUDA backend: generate (ws on the device) == mapping + synthesis, bits", test_cuda_emu_generate},
    {"emulated CUDA backend: the core halves a chunk the device cannot hold, same bits", test_cuda_emu_core_chunking},
});
#endif

}  // namespace
