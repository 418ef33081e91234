// facegan-bench: synthesis throughput.
//
//   facegan-bench [--backend B] [--precision P] [--threads N] [--config ffhq1024|ffhq256|MODEL.safetensors]
//                 [--batch 1,4,16] [--iters K] [--noise const|none|random] [--mapping]
//
// Named configs use random weights of that shape. ProGAN models (arch progan) have no mapping:
// synthesis takes z directly (--mapping is ignored). For each batch size: one warm-up call, then K
// timed calls; prints img/s and ms/image (best and mean).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#define FG_HAVE_RUSAGE 1
#endif

#include "facegan.h"
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

[[noreturn]] void usage(const char* msg = nullptr) {
  if (msg) std::fprintf(stderr, "facegan-bench: %s\n", msg);
  std::fprintf(stderr,
               "usage: facegan-bench [--backend B] [--precision fp32|fp16|bf16] [--threads N]\n"
               "                     [--config NAME|MODEL.safetensors] [--batch 1,4,16] [--iters K]\n"
               "                     [--noise const|none|random] [--mapping]\n"
               "       named configs (random weights): %s\n",
               tools::random_model_names().c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  LoadOptions lo;
  std::string config = "ffhq256";
  std::vector<int> batches = {1, 4};
  int iters = 3;
  NoiseMode noise = NoiseMode::Const;
  bool with_mapping = false;
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
      noise = m == "none" ? NoiseMode::None : m == "random" ? NoiseMode::Random : NoiseMode::Const;
    } else if (a == "--mapping") with_mapping = true;
    else if (a == "-h" || a == "--help") usage();
    else usage(("unknown argument " + a).c_str());
  }

  std::unique_ptr<Generator> gen;
  std::unique_ptr<SafetensorsFile> file;
  tools::RandomModel model;
  tools::RandomModelSpec spec;
  Status s;
  auto t0 = std::chrono::steady_clock::now();
  if (tools::random_model_spec(config, &spec)) {
    tools::make_random_model(spec, 1, &model);
    s = Generator::create(model.config_json, model.tensors, lo, &gen);
    model = tools::RandomModel();  // the generator keeps its own copy
  } else {
    s = SafetensorsFile::open(config, &file);
    std::vector<TensorView> views;
    if (s) s = file->tensor_views(&views);
    const std::string* cfg = s ? file->metadata_value("config") : nullptr;
    if (s && !cfg) s = Status::Error(config + ": no config in __metadata__");
    if (s) s = Generator::create(*cfg, views, lo, &gen);
  }
  if (!s) {
    std::fprintf(stderr, "facegan-bench: %s\n", s.message.c_str());
    return 1;
  }
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const ModelInfo& mi = gen->info();
  std::printf("%s: %dx%d, %.2f M params, backend %s, threads %d, loaded in %.0f ms\n", config.c_str(),
              mi.img_resolution, mi.img_resolution, double(mi.num_params) / 1e6, gen->backend_name(),
              lo.num_threads, load_ms);
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
    double best = 1e30, total = 0;
    const double c0 = process_cpu_ms();
    for (int k = 0; k < iters; ++k) {
      double t = once();
      best = std::min(best, t);
      total += t;
    }
    const double cpu = (process_cpu_ms() - c0) / iters / b;
    double mean = total / iters;
    std::printf("batch %4d: %8.2f img/s  %9.1f ms/image (best %.1f, mean %.1f ms/call over %d, warm-up %.0f ms; "
                "process cpu %.1f ms/image)\n",
                b, 1000.0 * b / mean, mean / b, best / b, mean, iters, warm, cpu);
    std::fflush(stdout);
  }
  return 0;
}
