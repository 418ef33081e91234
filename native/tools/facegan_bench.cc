// facegan-bench: synthesis throughput.
//
//   facegan-bench [--backend B] [--precision P] [--threads N] [--config ffhq1024|ffhq256|MODEL.safetensors]
//                 [--batch 1,4,16] [--iters K] [--min-ms T] [--noise const|none|random] [--mapping]
//                 [--dump FILE]
//   facegan-bench --fma-peak [--threads N]
//
// Named configs use random weights of that shape. ProGAN models (arch progan) have no mapping:
// synthesis takes z directly (--mapping is ignored). For each batch size: one warm-up call (on
// CUDA it captures the graph), then K timed calls (more until T ms have passed, with --min-ms);
// prints img/s and ms/image (median, best, mean) and the arithmetic rate: TFLOP/s = 2 × the
// network's nominal multiply-adds per image (printed at load; FFHQ config-f 1024² ≈ 74.3 GMAC,
// each up-convolution counted at its input resolution, as docs/stylegan2.md does; the CUDA
// backend's own per-launch count: FACEGAN_CUDA_MACS=1 with --load-only) × images / time.
// Times are wall-clock per synthesis call (the engine's own synchronisation): they include the
// upload of ws / z and the download of the uint8 images (n × H × W × C bytes), not the mapping
// (unless --mapping). One line per batch starts with "RESULT " and holds key=value pairs for
// scripts (native/cuda/gpu-check.sh).
//
// --fma-peak: instead, measures the machine's float32 FMA peak with --threads threads (default:
// all cores): each thread runs 12 independent chains of vector FMAs (acc = acc·b + c, AVX-512
// 16 lanes, or AVX2 8 lanes, or plain float code) that stay in registers, best of 3 runs; GFLOP/s
// = 2 × lanes × FMAs / time, summed over threads (the ceiling the engine's GEMMs are held to).
//
// --load-only: load (prepare the backend), print the load line, stop.
//
// --dump FILE: after timing, one more call per batch size with a float output too; its float
// images then its uint8 images, batch after batch, are written raw to FILE. Two runs that must
// agree bit for bit (e.g. FACEGAN_CUDA_GRAPHS=0 vs graphs on) are then compared with cmp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#define FG_HAVE_RUSAGE 1
#endif

#include "backend.h"
#include "facegan.h"
#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#endif
#include "random_model.h"
#include "safetensors.h"

using namespace facegan;

namespace {

double process_cpu_ms() {
#ifdef FG_HAVE_RUSAGE
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-3;
#else
  return 0.0;
#endif
}

// Nominal multiply-adds per image, from the tensors' names and shapes (docs/weights-format.md):
// every 2-D weight [out, in] (mapping FCs, embed, affines, ProGAN's dense) is out·in; a 4-D
// weight [Cout, Cin, kh, kw] of block bR is Cout·Cin·kh·kw·R², except StyleGAN2's conv0 of a
// block R > 4 (the up-convolution), counted at its input resolution (R/2)²; ProGAN's torgb is at
// the image resolution. Demodulation, noise, biases, FIR filters and the skip upsample are not
// counted (each is O(pixels·channels), not O(pixels·channels²)).
double nominal_macs(const std::vector<TensorView>& tensors, const ModelInfo& mi) {
  double macs = 0;
  for (const TensorView& t : tensors) {
    const std::string& n = t.name;
    const size_t w = n.rfind(".weight");
    if (w == std::string::npos || w + 7 != n.size()) continue;
    if (t.shape.size() == 2) {
      macs += double(t.shape[0]) * double(t.shape[1]);
    } else if (t.shape.size() == 4) {
      double k = double(t.shape[0]) * double(t.shape[1]) * double(t.shape[2]) * double(t.shape[3]);
      double r = mi.img_resolution;
      const size_t b = n.find(".b");
      if (b != std::string::npos) {
        r = std::atof(n.c_str() + b + 2);
        if (mi.arch != "progan" && r > 4 && n.find(".conv0.", b) != std::string::npos) r /= 2;
      }
      macs += k * r * r;
    }
  }
  return macs;
}

// 12 independent FMA chains per thread (enough to cover the FMA latency on two FMA ports).
constexpr int kChains = 12;
constexpr long kFmaIters = 1L << 27;  // ~0.4 s per thread at 2.6 GHz (AVX-512)

#if defined(__x86_64__)
__attribute__((target("avx512f"))) float fma_loop_avx512(long iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j) * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(float(j) * 1e-3f);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], b, c);
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  float v[8];
  _mm256_storeu_ps(v, s);
  return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}
#endif

float fma_loop_scalar(long iters) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = float(j) * 1e-3f;
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * 0.999999f + 1e-6f;
  float s = 0;
  for (int j = 0; j < kChains; ++j) s += acc[j];
  return s;
}

// The float32 FMA peak of `threads` threads (see --fma-peak above); prints one line per ISA.
int fma_peak(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  struct Isa {
    const char* name;
    int lanes;
    float (*loop)(long);
    bool ok;
  };
  std::vector<Isa> isas;
#if defined(__x86_64__)
  isas.push_back({"avx512", 16, fma_loop_avx512, __builtin_cpu_supports("avx512f") != 0});
  isas.push_back({"avx2", 8, fma_loop_avx2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")});
#endif
  isas.push_back({"scalar", 1, fma_loop_scalar, true});
  for (const Isa& isa : isas) {
    if (!isa.ok) continue;
    const long iters = isa.lanes == 1 ? kFmaIters / 8 : kFmaIters;
    std::vector<float> sink(static_cast<size_t>(threads));
    double s = 1e30;  // the best of 3 runs (the machine may be shared)
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<std::thread> pool;
      const auto t0 = std::chrono::steady_clock::now();
      for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[size_t(t)] = isa.loop(iters); });
      for (auto& th : pool) th.join();
      s = std::min(s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double gflops = 2.0 * isa.lanes * kChains * double(iters) * threads / s / 1e9;
    std::printf("fma peak %-6s %d thread(s): %8.1f GFLOP/s fp32 (%.1f per thread; %.2f s; sink %g)\n", isa.name,
                threads, gflops, gflops / threads, s, double(sink[0]));
    std::printf("RESULT fma_peak isa=%s threads=%d gflops=%.2f\n", isa.name, threads, gflops);
  }
  return 0;
}

[[noreturn]] void usage(const char* msg = nullptr) {
  if (msg) std::fprintf(stderr, "facegan-bench: %s\n", msg);
  std::fprintf(stderr,
               "usage: facegan-bench [--backend B] [--precision fp32|fp16|bf16] [--threads N]\n"
               "                     [--config NAME|MODEL.safetensors] [--batch 1,4,16] [--iters K] [--min-ms T]\n"
               "                     [--noise const|none|random] [--mapping] [--dump FILE] [--load-only]\n"
               "       facegan-bench --fma-peak [--threads N]\n"
               "       named configs (random weights): %s\n",
               tools::random_model_names().c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  facegan::register_builtin_backends();
#ifdef FACEGAN_WITH_CUDA_EMU
  facegan::register_cuda_emu_backend();
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  facegan::register_cuda_emu_sm75_backend();
#endif
#endif
  LoadOptions lo;
  std::string config = "ffhq256";
  std::vector<int> batches = {1, 4};
  int iters = 3;
  double min_ms = 0;
  std::string dump;
  NoiseMode noise = NoiseMode::Const;
  bool with_mapping = false;
  bool peak = false;       // --fma-peak
  bool load_only = false;  // prepare the backend, print the load line, stop (e.g. FACEGAN_CUDA_MACS=1)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--backend") lo.backend = next();
    else if (a == "--precision") {
      std::string p = next();
      if (p == "fp32") lo.precision = Precision::FP32;
      else if (p == "fp16") lo.precision = Precision::FP16;
      else if (p == "bf16") lo.precision = Precision::BF16;
      else usage("bad --precision");
    } else if (a == "--threads") lo.num_threads = std::atoi(next().c_str());
    else if (a == "--config") config = next();
    else if (a == "--iters") iters = std::max(1, std::atoi(next().c_str()));
    else if (a == "--min-ms") min_ms = std::max(0.0, std::atof(next().c_str()));
    else if (a == "--dump") dump = next();
    else if (a == "--batch") {
      batches.clear();
      std::string s = next();
      size_t p = 0;
      while (p <= s.size()) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        int b = std::atoi(s.substr(p, q - p).c_str());
        if (b < 1 || b > 1024) usage("batch sizes must be in [1, 1024]");
        batches.push_back(b);
        p = q + 1;
      }
    } else if (a == "--noise") {
      std::string m = next();
      if (m != "none" && m != "random" && m != "const") usage("bad --noise");
      noise = m == "none" ? NoiseMode::None : m == "random" ? NoiseMode::Random : NoiseMode::Const;
    } else if (a == "--mapping") with_mapping = true;
    else if (a == "--load-only") load_only = true;
    else if (a == "--fma-peak") peak = true;
    else if (a == "-h" || a == "--help") usage();
    else usage(("unknown argument " + a).c_str());
  }

  if (peak) return fma_peak(lo.num_threads);

  std::unique_ptr<Generator> gen;
  std::unique_ptr<SafetensorsFile> file;
  tools::RandomModel model;
  tools::RandomModelSpec spec;
  Status s;
  double macs = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (tools::random_model_spec(config, &spec)) {
    tools::make_random_model(spec, 1, &model);
    s = Generator::create(model.config_json, model.tensors, lo, &gen);
    if (s) macs = nominal_macs(model.tensors, gen->info());
    model = tools::RandomModel();  // the generator keeps its own copy
  } else {
    s = SafetensorsFile::open(config, &file);
    std::vector<TensorView> views;
    if (s) s = file->tensor_views(&views);
    const std::string* cfg = s ? file->metadata_value("config") : nullptr;
    if (s && !cfg) s = Status::Error(config + ": no config in __metadata__");
    if (s) s = Generator::create(*cfg, views, lo, &gen);
    if (s) macs = nominal_macs(views, gen->info());
  }
  if (!s) {
    std::fprintf(stderr, "facegan-bench: %s\n", s.message.c_str());
    return 1;
  }
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const ModelInfo& mi = gen->info();
  const char* prec = lo.precision == Precision::FP32 ? "fp32" : lo.precision == Precision::FP16 ? "fp16" : "bf16";
  const char* noise_name = noise == NoiseMode::Const ? "const" : noise == NoiseMode::None ? "none" : "random";
  std::printf("%s: %dx%d, %.2f M params, %.2f GMAC/image (nominal), backend %s, %s, noise %s, threads %d, "
              "loaded in %.0f ms\n",
              config.c_str(), mi.img_resolution, mi.img_resolution, double(mi.num_params) / 1e6, macs / 1e9,
              gen->backend_name(), prec, noise_name, lo.num_threads, load_ms);
  if (load_only) return 0;
  std::FILE* dump_file = nullptr;
  if (!dump.empty() && !(dump_file = std::fopen(dump.c_str(), "wb"))) {
    std::fprintf(stderr, "facegan-bench: cannot write %s\n", dump.c_str());
    return 1;
  }
  const size_t ws_n = size_t(mi.num_ws) * mi.w_dim;
  const size_t img_n = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
  for (int b : batches) {
    std::vector<float> z(size_t(b) * mi.z_dim), c(size_t(b) * std::max(1, mi.c_dim), 0.0f), ws(size_t(b) * ws_n);
    std::vector<uint8_t> u8(size_t(b) * img_n);
    for (int i = 0; i < b; ++i) {
      std::vector<double> zd(size_t(mi.z_dim));
      numpy_randn(uint32_t(i), zd.size(), zd.data());
      for (int j = 0; j < mi.z_dim; ++j) z[size_t(i) * mi.z_dim + j] = float(zd[size_t(j)]);
      if (mi.c_dim) c[size_t(i) * mi.c_dim + size_t(i % mi.c_dim)] = 1.0f;
    }
    MappingArgs m;
    m.n = b;
    m.z = z.data();
    m.c = mi.c_dim ? c.data() : nullptr;
    m.psi = 0.7f;
    m.ws = ws.data();
    const bool progan = mi.arch == "progan";  // no mapping: synthesis takes z
    SynthesisArgs sa;
    sa.n = b;
    if (progan) sa.z = z.data();
    else sa.ws = ws.data();
    sa.noise = noise;
    sa.noise_seed = 7;
    sa.img_u8 = u8.data();
    auto once = [&]() -> double {
      auto a = std::chrono::steady_clock::now();
      Status st = with_mapping && !progan ? gen->mapping(m) : Status::Ok();
      if (st) st = gen->synthesis(sa);
      if (!st) {
        std::fprintf(stderr, "facegan-bench: %s\n", st.message.c_str());
        std::exit(1);
      }
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
    };
    if (!progan && !(s = gen->mapping(m))) {
      std::fprintf(stderr, "facegan-bench: %s\n", s.message.c_str());
      return 1;
    }
    double warm = once();
    std::vector<double> times;
    double total = 0;
    const double c0 = process_cpu_ms();
    while (int(times.size()) < iters || (total < min_ms && times.size() < 100000)) {
      double t = once();
      times.push_back(t);
      total += t;
    }
    const int k = int(times.size());
    const double cpu = (process_cpu_ms() - c0) / k / b;
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const double median = k % 2 ? sorted[size_t(k / 2)] : 0.5 * (sorted[size_t(k / 2 - 1)] + sorted[size_t(k / 2)]);
    const double best = sorted.front(), mean = total / k;
    const double img_s = 1000.0 * b / median;
    const double tflops = macs > 0 ? 2.0 * macs * b / (median * 1e-3) / 1e12 : 0.0;
    std::printf("batch %4d: %8.2f img/s  %9.2f ms/image  %7.2f TFLOP/s (median %.2f, best %.2f, mean %.2f ms/call "
                "over %d, warm-up %.0f ms; process cpu %.1f ms/image)\n",
                b, img_s, median / b, tflops, median, best, mean, k, warm, cpu);
    std::printf("RESULT backend=%s precision=%s config=%s res=%d batch=%d iters=%d img_s=%.3f ms_img=%.4f "
                "tflops=%.3f gmac_img=%.3f median_ms=%.4f best_ms=%.4f mean_ms=%.4f warm_ms=%.1f noise=%s\n",
                gen->backend_name(), prec, config.c_str(), mi.img_resolution, b, k, img_s, median / b, tflops,
                macs / 1e9, median, best, mean, warm, noise_name);
    std::fflush(stdout);
    if (dump_file) {
      std::vector<float> img(size_t(b) * img_n);
      sa.img = img.data();
      Status st = gen->synthesis(sa);
      sa.img = nullptr;
      if (!st) {
        std::fprintf(stderr, "facegan-bench: %s\n", st.message.c_str());
        return 1;
      }
      if (std::fwrite(img.data(), 4, img.size(), dump_file) != img.size() ||
          std::fwrite(u8.data(), 1, u8.size(), dump_file) != u8.size()) {
        std::fprintf(stderr, "facegan-bench: cannot write %s\n", dump.c_str());
        return 1;
      }
    }
  }
  if (dump_file && std::fclose(dump_file) != 0) {
    std::fprintf(stderr, "facegan-bench: cannot write %s\n", dump.c_str());
    return 1;
  }
  return 0;
}
