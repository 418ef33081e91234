// facegan-check: runs a converted model against the fixtures' goldens, or compares two
// backends on random weights of a given shape.
//
//   facegan-check [--backend B] [--precision fp32|fp16|bf16] [--threads N] MODEL.safetensors GOLDEN_PREFIX
//   facegan-check --compare-backends A B --random-config ffhq1024|ffhq256|tiny|... [--batch N]
//                 [--precision P] [--precision-b P] [--threads N] [--seed S]
//   facegan-check --self-test [--threads N]
//   facegan-check --progan [--backend B] [--precision P] MODEL.safetensors test/fixtures/progan/progan-tfjs-outputs.safetensors
//                 (fp16 / bf16: the image is judged by PSNR >= 40 dB instead of max abs <= 1e-4)
//
// Self-test: numpy_randn against known values, the JSON / safetensors readers against malformed
// input, then the optimised CPU engine with every kernel variant this CPU supports (scalar, AVX2,
// AVX-512) against the scalar reference engine (cpu-ref) on small random configs, batches 1 and 3;
// the random configs include ProGAN ones (progan-tiny, progan-wide; progan128 for invariance);
// then batch invariance with every kernel variant on the random configs: the mapping, and each
// image of a batch of 5 bit-identical to the same image in batches of 3 and 1 (const, none and
// random noise), and with one thread as with the pool.
//
// Golden mode also checks batch invariance on the model (seeds 0, 1, 42, 1234, 7, psi 0.7).
// Golden mode reads GOLDEN_PREFIX.golden.safetensors and GOLDEN_PREFIX.golden.json and prints one
// line per check, PASS / FAIL against: ws ≤ 1e-5 relative, float images ≤ 1e-4 max abs, uint8
// ≤ 0.1 % of values off by one and none by more (fp16 / bf16: image PSNR ≥ 40 dB). Exit 1 on any
// FAIL.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backend.h"
#include "facegan.h"
#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#endif
#include "json.h"
#include "random_model.h"
#include "safetensors.h"
#include "../cpu/kernels.h"
#include "../cpu/noise.h"

using namespace facegan;

namespace {

struct Opts {
  std::string backend = "cpu";
  std::string backend_b;
  Precision precision = Precision::FP32;
  Precision precision_b = Precision::FP32;
  bool precision_b_set = false;
  int threads = 0;
  std::string model, golden;
  std::string random_config;
  int batch = 2;
  uint64_t seed = 1;
  bool verbose = false;
};

[[noreturn]] void usage(const char* msg = nullptr) {
  if (msg) std::fprintf(stderr, "facegan-check: %s\n", msg);
  std::fprintf(stderr,
               "usage: facegan-check [--backend cpu|cuda|cpu-ref] [--precision fp32|fp16|bf16] [--threads N]\n"
               "                     MODEL.safetensors GOLDEN_PREFIX\n"
               "       facegan-check --progan [--backend B] [--precision P] [--threads N] MODEL.safetensors TFJS_OUTPUTS.safetensors\n"
               "       facegan-check --compare-backends A B --random-config NAME [--batch N] [--seed S]\n"
               "                     [--precision P] [--precision-b P] [--threads N]\n"
               "       facegan-check --self-test [--threads N]\n"
               "       random configs: %s\n",
               tools::random_model_names().c_str());
  std::exit(2);
}

bool parse_precision(const std::string& s, Precision* p) {
  if (s == "fp32") *p = Precision::FP32;
  else if (s == "fp16") *p = Precision::FP16;
  else if (s == "bf16") *p = Precision::BF16;
  else return false;
  return true;
}

const char* precision_name(Precision p) {
  return p == Precision::FP32 ? "fp32" : p == Precision::FP16 ? "fp16" : "bf16";
}

struct Stats {
  double max_abs = 0, max_ref = 0, sse = 0;
  size_t n = 0;
  double rel() const { return max_abs / (max_ref > 0 ? max_ref : 1.0); }
  double psnr() const {  // peak-to-peak 2 (images in [-1, 1])
    double mse = n ? sse / double(n) : 0.0;
    return mse > 0 ? 10.0 * std::log10(4.0 / mse) : 999.0;
  }
};

Stats compare(const float* a, const float* ref, size_t n) {
  Stats s;
  s.n = n;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(double(a[i]) - double(ref[i]));
    if (!(d == d)) d = INFINITY;  // NaN
    if (d > s.max_abs) s.max_abs = d;
    s.max_ref = std::fmax(s.max_ref, std::fabs(double(ref[i])));
    s.sse += d * d;
  }
  return s;
}

std::vector<float> as_f32(const SafetensorsEntry& e) {
  std::vector<float> v(size_t(e.numel()));
  if (e.dtype == "F32") {
    std::memcpy(v.data(), e.data, v.size() * 4);
  } else if (e.dtype == "F64") {
    for (size_t i = 0; i < v.size(); ++i) {
      double d;
      std::memcpy(&d, e.data + 8 * i, 8);
      v[i] = float(d);
    }
  } else {
    std::fprintf(stderr, "unexpected dtype %s for %s\n", e.dtype.c_str(), e.name.c_str());
    std::exit(2);
  }
  return v;
}

struct Checker {
  int pass = 0, fail = 0;
  bool reduced = false;  // fp16 / bf16: PSNR criteria for images

  void line(bool ok, const std::string& what, const std::string& detail) {
    std::printf("%-4s  %-28s %s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.c_str());
    std::fflush(stdout);
    (ok ? pass : fail)++;
  }
  static std::string fmt(const char* f, double a, double b = 0, double c = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, a, b, c);
    return buf;
  }
  void ws(const std::string& key, const float* got, const float* ref, size_t n) {
    Stats s = compare(got, ref, n);
    double tol = reduced ? 1e-2 : 1e-5;
    line(s.rel() <= tol, key, fmt("rel err %.3g (max abs %.3g, tol %.0e)", s.rel(), s.max_abs, tol));
  }
  void img(const std::string& key, const float* got, const float* ref, size_t n) {
    Stats s = compare(got, ref, n);
    if (reduced)
      line(s.psnr() >= 40.0, key, fmt("PSNR %.2f dB (max abs %.3g, need >= 40 dB)", s.psnr(), s.max_abs));
    else
      line(s.max_abs <= 1e-4, key, fmt("max abs %.3g (PSNR %.1f dB, tol 1e-4)", s.max_abs, s.psnr()));
  }
  // Golden rule: ≤ 0.1 % of the values off by one, none by more. `min_allowed` relaxes the
  // off-by-one count for tiny random images in compare mode.
  void u8(const std::string& key, const uint8_t* got, const uint8_t* ref, size_t n, size_t min_allowed = 0) {
    size_t off1 = 0, worse = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; ++i) {
      int d = std::abs(int(got[i]) - int(ref[i]));
      if (d == 1) ++off1;
      else if (d > 1) ++worse;
      if (d > maxd) maxd = d;
    }
    double frac = double(off1 + worse) / double(n);
    bool ok = reduced ? frac <= 0.5 && maxd <= 16
                      : worse == 0 && (double(off1) <= 0.001 * double(n) || off1 <= min_allowed);
    char buf[200];
    std::snprintf(buf, sizeof buf, "%zu/%zu off by one (%.3f%%), %zu by more (max %d)", off1, n,
                  100.0 * double(off1) / double(n), worse, maxd);
    line(ok, key, buf);
  }
};

// Batch invariance: every image must come out bit-identical whatever the batch size and its
// position in the batch. `ws` holds 5 images; they are run as one batch of 5, as batches of 3
// (permuted, and a contiguous slice) and one by one, in every noise mode, and compared bit for
// bit (float and uint8). Random noise is keyed by (seed, image_offset + position), so the
// random-noise runs keep each image's index in the request: contiguous slices with image_offset.
// `ws5`: 5 images of the synthesis input: ws (StyleGAN2) or z (ProGAN, which has no noise: the
// const run only).
void check_batch_invariance(Checker& ck, Generator& g, const std::vector<float>& ws5, const std::string& label) {
  const ModelInfo& mi = g.info();
  const bool progan = mi.arch == "progan";
  const size_t ws_n = progan ? size_t(mi.z_dim) : size_t(mi.num_ws) * mi.w_dim;
  const size_t img_n = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
  if (ws5.size() != 5 * ws_n) {
    ck.line(false, label + " batch invariance", "internal: need 5 images of ws");
    return;
  }
  auto run = [&](const std::vector<int>& idx, NoiseMode mode, uint32_t offset, std::vector<float>* img,
                 std::vector<uint8_t>* u8) -> bool {
    const int n = int(idx.size());
    std::vector<float> ws(size_t(n) * ws_n);
    for (int i = 0; i < n; ++i)
      std::copy(ws5.begin() + long(size_t(idx[size_t(i)]) * ws_n), ws5.begin() + long(size_t(idx[size_t(i)] + 1) * ws_n),
                ws.begin() + long(size_t(i) * ws_n));
    img->assign(size_t(n) * img_n, 0.0f);
    u8->assign(size_t(n) * img_n, 0);
    SynthesisArgs a;
    a.n = n;
    (progan ? a.z : a.ws) = ws.data();
    a.noise = mode;
    a.noise_seed = 1234567;
    a.image_offset = offset;
    a.img = img->data();
    a.img_u8 = u8->data();
    Status st = g.synthesis(a);
    if (!st) ck.line(false, label + " batch invariance", st.message);
    return bool(st);
  };
  for (NoiseMode mode : {NoiseMode::Const, NoiseMode::None, NoiseMode::Random}) {
    if (progan && mode != NoiseMode::Const) break;
    const char* mname = mode == NoiseMode::Const ? "const" : mode == NoiseMode::None ? "none" : "random";
    std::vector<float> full, part;
    std::vector<uint8_t> full8, part8;
    if (!run({0, 1, 2, 3, 4}, mode, 0, &full, &full8)) return;
    // (images, image_offset) of each smaller call; image k of the call is image idx[k] of the 5.
    struct Call { std::vector<int> idx; uint32_t offset; };
    std::vector<Call> calls;
    if (mode == NoiseMode::Random) calls = {{{2, 3, 4}, 2}, {{0, 1, 2}, 0}, {{0}, 0}, {{1}, 1}, {{2}, 2}, {{3}, 3}, {{4}, 4}};
    else calls = {{{4, 0, 2}, 0}, {{1, 3, 1}, 7}, {{0}, 0}, {{1}, 0}, {{2}, 9}, {{3}, 0}, {{4}, 0}};
    size_t bad = 0, bad8 = 0, total = 0;
    for (const Call& c : calls) {
      if (!run(c.idx, mode, c.offset, &part, &part8)) return;
      for (size_t k = 0; k < c.idx.size(); ++k) {
        const size_t src = size_t(c.idx[k]) * img_n, dst = k * img_n;
        bad += std::memcmp(&full[src], &part[dst], img_n * sizeof(float)) != 0;
        bad8 += std::memcmp(&full8[src], &part8[dst], img_n) != 0;
        ++total;
      }
    }
    ck.line(bad == 0 && bad8 == 0, label + " batch inv. " + mname,
            std::to_string(bad) + "/" + std::to_string(total) + " float images, " + std::to_string(bad8) +
                " uint8 images differ from the batch of 5 (bit-exact; batches 3 and 1)");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::string();
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Status load_model(const std::string& path, const Opts& o, Precision prec, std::unique_ptr<Generator>* gen,
                  std::unique_ptr<SafetensorsFile>* file) {
  Status s = SafetensorsFile::open(path, file);
  if (!s) return s;
  const std::string* cfg = (*file)->metadata_value("config");
  if (!cfg) return Status::Error(path + ": no \"config\" in __metadata__");
  std::vector<TensorView> views;
  if (!(s = (*file)->tensor_views(&views))) return s;
  LoadOptions lo;
  lo.backend = o.backend;
  lo.precision = prec;
  lo.num_threads = o.threads;
  return Generator::create(*cfg, views, lo, gen);
}

int run_golden(const Opts& o) {
  std::unique_ptr<SafetensorsFile> mfile, gfile;
  std::unique_ptr<Generator> gen;
  auto t0 = std::chrono::steady_clock::now();
  Status s = load_model(o.model, o, o.precision, &gen, &mfile);
  if (!s) {
    std::fprintf(stderr, "facegan-check: %s\n", s.message.c_str());
    return 1;
  }
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!(s = SafetensorsFile::open(o.golden + ".golden.safetensors", &gfile))) {
    std::fprintf(stderr, "facegan-check: %s\n", s.message.c_str());
    return 1;
  }
  std::string jtext = read_file(o.golden + ".golden.json");
  json::Value gj;
  if (jtext.empty() || !(s = json::parse(jtext, &gj)) || !gj.get("cases") || !gj.get("cases")->is_array()) {
    std::fprintf(stderr, "facegan-check: cannot read %s.golden.json %s\n", o.golden.c_str(), s.message.c_str());
    return 1;
  }
  const ModelInfo& mi = gen->info();
  std::printf("model %s: %dx%d, %d channels, z %d, w %d, c %d, num_ws %d, %.2f M params; backend %s, %s; "
              "loaded in %.0f ms\n",
              o.model.c_str(), mi.img_resolution, mi.img_resolution, mi.img_channels, mi.z_dim, mi.w_dim,
              mi.c_dim, mi.num_ws, double(mi.num_params) / 1e6, gen->backend_name(), precision_name(o.precision),
              load_ms);
  Checker ck;
  ck.reduced = o.precision != Precision::FP32;
  const int R = mi.img_resolution, IC = mi.img_channels, NW = mi.num_ws, WD = mi.w_dim;
  const size_t img_n = size_t(IC) * R * R, ws_n = size_t(NW) * WD;

  auto tensor = [&](const std::string& key) -> const SafetensorsEntry* {
    const SafetensorsEntry* e = gfile->find(key);
    if (!e) {
      std::fprintf(stderr, "facegan-check: golden tensor %s missing\n", key.c_str());
      std::exit(1);
    }
    return e;
  };
  auto run_mapping = [&](const std::vector<int>& seeds, float psi, const std::vector<int>& classes,
                         std::vector<float>* ws) -> bool {
    int n = int(seeds.size());
    std::vector<double> zd(size_t(mi.z_dim));
    std::vector<float> z(size_t(n) * mi.z_dim), c(size_t(n) * std::max(mi.c_dim, 1), 0.0f);
    for (int i = 0; i < n; ++i) {
      numpy_randn(uint32_t(seeds[size_t(i)]), zd.size(), zd.data());
      for (int j = 0; j < mi.z_dim; ++j) z[size_t(i) * mi.z_dim + j] = float(zd[size_t(j)]);
      if (mi.c_dim > 0) c[size_t(i) * mi.c_dim + classes[size_t(i)]] = 1.0f;
    }
    ws->assign(size_t(n) * ws_n, 0.0f);
    MappingArgs a;
    a.n = n;
    a.z = z.data();
    a.c = mi.c_dim > 0 ? c.data() : nullptr;
    a.psi = psi;
    a.ws = ws->data();
    Status st = gen->mapping(a);
    if (!st) ck.line(false, "mapping", st.message);
    return bool(st);
  };
  auto run_synth = [&](const float* ws, int n, NoiseMode mode, std::vector<float>* img, std::vector<uint8_t>* u8) -> bool {
    img->assign(size_t(n) * img_n, 0.0f);
    u8->assign(size_t(n) * img_n, 0);
    SynthesisArgs a;
    a.n = n;
    a.ws = ws;
    a.noise = mode;
    a.img = img->data();
    a.img_u8 = u8->data();
    Status st = gen->synthesis(a);
    if (!st) ck.line(false, "synthesis", st.message);
    return bool(st);
  };
  auto mode_of = [](const std::string& m) {
    return m == "none" ? NoiseMode::None : m == "random" ? NoiseMode::Random : NoiseMode::Const;
  };

  std::vector<std::string> z_checked;
  std::vector<float> ws, img;
  std::vector<uint8_t> u8;
  auto t1 = std::chrono::steady_clock::now();
  for (const json::Value& cs : gj.get("cases")->array) {
    const json::Value* seedv = cs.get("seed");
    const json::Value* batch = cs.get("batch_seeds");
    const json::Value* mixing = cs.get("mixing");
    std::string mode = cs.get("noise_mode") ? cs.get("noise_mode")->str : "const";
    if (seedv) {
      int seed = int(seedv->number);
      float psi = float(cs.get("psi")->number);
      int cls = mi.c_dim > 0 ? (cs.get("class_index") && cs.get("class_index")->is_number()
                                    ? int(cs.get("class_index")->number) : seed % 10) : 0;
      std::string zkey = cs.get("z")->str;
      if (std::find(z_checked.begin(), z_checked.end(), zkey) == z_checked.end()) {
        z_checked.push_back(zkey);
        const SafetensorsEntry* ze = tensor(zkey);
        std::vector<double> zd(size_t(ze->numel()));
        numpy_randn(uint32_t(seed), zd.size(), zd.data());
        size_t bad = 0;
        for (size_t i = 0; i < zd.size(); ++i) {
          double g;
          std::memcpy(&g, ze->data + 8 * i, 8);
          if (g != zd[i]) ++bad;
        }
        ck.line(bad == 0, zkey, "numpy_randn: " + std::to_string(bad) + " of " + std::to_string(zd.size()) +
                                    " values differ (bit-exact)");
      }
      std::string wkey = cs.get("ws")->str;
      if (!run_mapping({seed}, psi, {cls}, &ws)) continue;
      std::vector<float> gws = as_f32(*tensor(wkey));
      ck.ws(wkey + " (mode " + mode + ")", ws.data(), gws.data(), ws_n);
      if (!run_synth(gws.data(), 1, mode_of(mode), &img, &u8)) continue;
      std::string ikey = cs.get("image")->str;
      std::vector<float> gimg = as_f32(*tensor(ikey));
      ck.img(ikey, img.data(), gimg.data(), img_n);
      if (cs.get("image_uint8")) {
        std::string ukey = cs.get("image_uint8")->str;
        const SafetensorsEntry* ue = tensor(ukey);
        ck.u8(ukey, u8.data(), ue->data, img_n);
      }
    } else if (mixing) {
      std::vector<float> a = as_f32(*tensor(mixing->get("first")->str));
      std::vector<float> b = as_f32(*tensor(mixing->get("second")->str));
      int cutoff = int(mixing->get("cutoff")->number);
      std::vector<float> mix(ws_n);
      for (int r = 0; r < NW; ++r)
        for (int j = 0; j < WD; ++j)
          mix[size_t(r) * WD + j] = (r < cutoff ? a : b)[size_t(r) * WD + j];
      std::string wkey = cs.get("ws")->str;
      std::vector<float> gws = as_f32(*tensor(wkey));
      ck.ws(wkey + " (built)", mix.data(), gws.data(), ws_n);
      if (!run_synth(gws.data(), 1, mode_of(mode), &img, &u8)) continue;
      std::string ikey = cs.get("image")->str;
      std::vector<float> gimg = as_f32(*tensor(ikey));
      ck.img(ikey, img.data(), gimg.data(), img_n);
    } else if (batch) {
      std::vector<int> seeds, classes;
      for (const auto& v : batch->array) {
        seeds.push_back(int(v.number));
        classes.push_back(int(v.number) % 10);
      }
      float psi = float(cs.get("psi")->number);
      int n = int(seeds.size());
      if (!run_mapping(seeds, psi, classes, &ws)) continue;
      char psis[32];
      std::snprintf(psis, sizeof psis, "%.1f", double(psi));
      std::vector<float> gws(size_t(n) * ws_n);
      for (int i = 0; i < n; ++i) {
        std::vector<float> g = as_f32(*tensor("ws/" + std::to_string(seeds[size_t(i)]) + "/" + psis));
        std::copy(g.begin(), g.end(), gws.begin() + long(size_t(i) * ws_n));
      }
      ck.ws("ws batch of " + std::to_string(n), ws.data(), gws.data(), size_t(n) * ws_n);
      if (!run_synth(gws.data(), n, mode_of(mode), &img, &u8)) continue;
      std::string ikey = cs.get("image")->str;
      std::vector<float> gimg = as_f32(*tensor(ikey));
      ck.img(ikey, img.data(), gimg.data(), size_t(n) * img_n);
    }
  }
  // Batch invariance on this model: seeds 0, 1, 42, 1234, 7 (classes seed % 10).
  if (!ck.reduced || o.backend.compare(0, 3, "cpu") == 0) {
    const std::vector<int> seeds = {0, 1, 42, 1234, 7};
    std::vector<int> classes;
    for (int sd : seeds) classes.push_back(sd % 10);
    if (run_mapping(seeds, 0.7f, classes, &ws)) check_batch_invariance(ck, *gen, ws, "model");
  }
  double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  std::printf("summary: %s  %d passed, %d failed  (backend %s, %s, %.0f ms)\n", ck.fail ? "FAIL" : "PASS", ck.pass,
              ck.fail, gen->backend_name(), precision_name(o.precision), run_ms);
  return ck.fail ? 1 : 0;
}

// ProGAN: the engine's toRGB output v vs the tfjs graph's outputs (test/fixtures/progan/
// progan-tfjs-outputs.safetensors: latents [4, z_dim] F64, images [4, H, W, C] = clip(v, 0, 1)
// of the float32 source, images_f16w_center32 [4, 32, 32, C] = the same graph run with float16
// weights, rows / columns [48, 80)). A model whose tensors are all F16 is judged on the crops,
// any other on the full images; max abs ≤ 1e-4 after the TF-Hub clip. Also: uint8 = the
// reference's proganToUint8 of v, batch of 4 = one by one (bit-exact), finite values.
int run_progan(const Opts& o) {
  std::unique_ptr<SafetensorsFile> mfile, ffile;
  std::unique_ptr<Generator> gen;
  auto t0 = std::chrono::steady_clock::now();
  Status s = load_model(o.model, o, o.precision, &gen, &mfile);
  if (!s || !(s = SafetensorsFile::open(o.golden, &ffile))) {
    std::fprintf(stderr, "facegan-check: %s\n", s.message.c_str());
    return 1;
  }
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const ModelInfo& mi = gen->info();
  if (mi.arch != "progan") {
    std::fprintf(stderr, "facegan-check: %s is a %s model, not progan\n", o.model.c_str(), mi.arch.c_str());
    return 1;
  }
  bool all_f16 = true;
  for (const auto& e : mfile->entries()) all_f16 = all_f16 && e.dtype == "F16";
  // The output map, from the config (the engine's uint8 is checked against it).
  json::Value cfg;
  double scale = 127.5, offset = 63.75, clip_lo = 0, clip_hi = 1;
  if (json::parse(*mfile->metadata_value("config"), &cfg) && cfg.get("output")) {
    const json::Value* out = cfg.get("output");
    if (out->get("scale")) scale = out->get("scale")->number;
    if (out->get("offset")) offset = out->get("offset")->number;
    if (const json::Value* c = out->get("tfhub_clip")) {
      clip_lo = c->array[0].number;
      clip_hi = c->array[1].number;
    }
  }
  std::printf("model %s: progan %dx%d, %d channels, z %d, %.2f M params (%s weights); backend %s; loaded in %.0f ms\n",
              o.model.c_str(), mi.img_resolution, mi.img_resolution, mi.img_channels, mi.z_dim,
              double(mi.num_params) / 1e6, all_f16 ? "F16" : "not all F16", gen->backend_name(), load_ms);
  Checker ck;
  const SafetensorsEntry* lat = ffile->find("latents");
  const SafetensorsEntry* full = ffile->find("images");
  const SafetensorsEntry* crop = ffile->find("images_f16w_center32");
  if (!lat || lat->shape.size() != 2 || lat->shape[1] != mi.z_dim || !full || !crop) {
    std::fprintf(stderr, "facegan-check: %s lacks latents [N, %d] / images / images_f16w_center32\n", o.golden.c_str(),
                 mi.z_dim);
    return 1;
  }
  const int n = int(lat->shape[0]), R = mi.img_resolution, IC = mi.img_channels;
  const size_t img_n = size_t(IC) * R * R;
  std::vector<float> zd = as_f32(*lat), fimg = as_f32(*full), fcrop = as_f32(*crop);
  const int cy0 = 48, cw = int(crop->shape[1]);
  std::vector<float> img(size_t(n) * img_n);
  std::vector<uint8_t> u8(size_t(n) * img_n);
  SynthesisArgs a;
  a.n = n;
  a.z = zd.data();
  a.img = img.data();
  a.img_u8 = u8.data();
  auto t1 = std::chrono::steady_clock::now();
  if (!(s = gen->synthesis(a))) {
    ck.line(false, "synthesis", s.message);
    return 1;
  }
  double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  for (int i = 0; i < n; ++i) {
    const float* v = img.data() + size_t(i) * img_n;  // [C][H][W]
    auto clipped = [&](int y, int x, int c) {
      return float(std::min(clip_hi, std::max(clip_lo, double(v[(size_t(c) * R + y) * R + x]))));
    };
    Stats sc, sf;
    std::vector<float> got_c, ref_c, got_f;
    for (int y = 0; y < cw; ++y)
      for (int x = 0; x < cw; ++x)
        for (int c = 0; c < IC; ++c) got_c.push_back(clipped(cy0 + y, cy0 + x, c));
    sc = compare(got_c.data(), fcrop.data() + size_t(i) * cw * cw * IC, got_c.size());
    for (int y = 0; y < R; ++y)
      for (int x = 0; x < R; ++x)
        for (int c = 0; c < IC; ++c) got_f.push_back(clipped(y, x, c));
    sf = compare(got_f.data(), fimg.data() + size_t(i) * img_n, got_f.size());
    const std::string tag = "z[" + std::to_string(i) + "]";
    if (o.precision != Precision::FP32) {  // fp16 / bf16 engines: PSNR, as the golden mode
      ck.line(sf.psnr() >= 40.0, tag + " full image",
              Checker::fmt("PSNR %.2f dB (max abs %.3g, need >= 40 dB) after the TF-Hub clip", sf.psnr(), sf.max_abs));
    } else if (all_f16) {
      ck.line(sc.max_abs <= 1e-4, tag + " f16-weight crop", Checker::fmt("max abs %.3g (tol 1e-4) after the TF-Hub clip", sc.max_abs));
      std::printf("INFO  %-28s max abs %.3g, PSNR %.2f dB (float16 weights vs the float32 source)\n",
                  (tag + " full image").c_str(), sf.max_abs, sf.psnr());
    } else {
      ck.line(sf.max_abs <= 1e-4, tag + " full image", Checker::fmt("max abs %.3g (tol 1e-4) after the TF-Hub clip", sf.max_abs));
    }
    // uint8 = round(clamp(v·scale + offset, 0, 255)), as proganToUint8 (double, half up).
    size_t bad = 0, nonfinite = 0;
    for (int y = 0; y < R; ++y)
      for (int x = 0; x < R; ++x)
        for (int c = 0; c < IC; ++c) {
          const double t = double(v[(size_t(c) * R + y) * R + x]) * scale + offset;
          nonfinite += !std::isfinite(t);
          const double cl = std::min(255.0, std::max(0.0, t));
          const int want = int(std::floor(cl + 0.5));
          bad += u8[size_t(i) * img_n + (size_t(y) * R + x) * IC + c] != want;
        }
    ck.line(bad == 0 && nonfinite == 0, tag + " uint8 mapping",
            std::to_string(bad) + " of " + std::to_string(img_n) + " pixels differ from round(clamp(v*" +
                Checker::fmt("%g + %g", scale, offset) + ", 0, 255))" + (nonfinite ? ", non-finite values" : ""));
  }
  // Batch invariance: each latent alone, and the batch reversed.
  {
    size_t diff = 0;
    std::vector<float> one(img_n), rz(zd.size()), rimg(img.size());
    std::vector<uint8_t> one8(img_n), r8(u8.size());
    for (int i = 0; i < n; ++i) {
      SynthesisArgs b = a;
      b.n = 1;
      b.z = zd.data() + size_t(i) * mi.z_dim;
      b.img = one.data();
      b.img_u8 = one8.data();
      if (!gen->synthesis(b)) ++diff;
      diff += std::memcmp(one.data(), img.data() + size_t(i) * img_n, img_n * 4) != 0;
      diff += std::memcmp(one8.data(), u8.data() + size_t(i) * img_n, img_n) != 0;
      std::copy(zd.begin() + long(size_t(i) * mi.z_dim), zd.begin() + long(size_t(i + 1) * mi.z_dim),
                rz.begin() + long(size_t(n - 1 - i) * mi.z_dim));
    }
    SynthesisArgs b = a;
    b.z = rz.data();
    b.img = rimg.data();
    b.img_u8 = r8.data();
    if (!gen->synthesis(b)) ++diff;
    for (int i = 0; i < n; ++i)
      diff += std::memcmp(rimg.data() + size_t(n - 1 - i) * img_n, img.data() + size_t(i) * img_n, img_n * 4) != 0;
    ck.line(diff == 0, "batch invariance", std::to_string(diff) + " differences between the batch of " +
                                               std::to_string(n) + ", one by one and reversed (bit-exact)");
  }
  std::printf("summary: %s  %d passed, %d failed  (backend %s, batch of %d in %.0f ms)\n", ck.fail ? "FAIL" : "PASS",
              ck.pass, ck.fail, gen->backend_name(), n, run_ms);
  return ck.fail ? 1 : 0;
}

int run_compare(const Opts& o) {
  tools::RandomModelSpec spec;
  if (!tools::random_model_spec(o.random_config, &spec)) usage("unknown --random-config");
  tools::RandomModel model;
  tools::make_random_model(spec, o.seed, &model);
  std::unique_ptr<Generator> ga, gb;
  LoadOptions la, lb;
  la.backend = o.backend;
  la.precision = o.precision;
  la.num_threads = o.threads;
  lb = la;
  lb.backend = o.backend_b;
  lb.precision = o.precision_b_set ? o.precision_b : o.precision;
  Status s = Generator::create(model.config_json, model.tensors, la, &ga);
  if (s) s = Generator::create(model.config_json, model.tensors, lb, &gb);
  if (!s) {
    std::fprintf(stderr, "facegan-check: %s\n", s.message.c_str());
    return 1;
  }
  const ModelInfo& mi = ga->info();
  std::printf("random %s (seed %llu): %dx%d, %.2f M params; %s/%s vs %s/%s, batch %d\n", o.random_config.c_str(),
              (unsigned long long)o.seed, mi.img_resolution, mi.img_resolution, double(mi.num_params) / 1e6,
              o.backend.c_str(), precision_name(la.precision), o.backend_b.c_str(), precision_name(lb.precision),
              o.batch);
  const int n = o.batch;
  const size_t ws_n = size_t(mi.num_ws) * mi.w_dim, img_n = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
  std::vector<float> z(size_t(n) * mi.z_dim), c(size_t(n) * std::max(1, mi.c_dim), 0.0f);
  for (int i = 0; i < n; ++i) {
    std::vector<double> zd(size_t(mi.z_dim));
    numpy_randn(uint32_t(o.seed * 1000 + uint64_t(i)), zd.size(), zd.data());
    for (int j = 0; j < mi.z_dim; ++j) z[size_t(i) * mi.z_dim + j] = float(zd[size_t(j)]);
    if (mi.c_dim) c[size_t(i) * mi.c_dim + size_t(i % mi.c_dim)] = 1.0f;
  }
  Checker ck;
  ck.reduced = la.precision != Precision::FP32 || lb.precision != Precision::FP32;
  std::vector<float> wsa(size_t(n) * ws_n), wsb(size_t(n) * ws_n);
  const bool progan = mi.arch == "progan";  // no mapping; synthesis takes z
  for (int pass = 0; pass < 2 && !progan; ++pass) {
    MappingArgs m;
    m.n = n;
    m.z = z.data();
    m.c = mi.c_dim ? c.data() : nullptr;
    m.psi = pass == 0 ? 1.0f : 0.7f;
    m.truncation_cutoff = pass == 0 ? -1 : mi.num_ws / 2;
    m.ws = wsa.data();
    if (!(s = ga->mapping(m))) { ck.line(false, "mapping A", s.message); break; }
    m.ws = wsb.data();
    if (!(s = gb->mapping(m))) { ck.line(false, "mapping B", s.message); break; }
    ck.ws(pass == 0 ? "ws psi 1" : "ws psi 0.7 cutoff", wsb.data(), wsa.data(), wsa.size());
  }
  for (NoiseMode mode : {NoiseMode::Const, NoiseMode::None, NoiseMode::Random}) {
    const char* mname = mode == NoiseMode::Const ? "const" : mode == NoiseMode::None ? "none" : "random";
    std::vector<float> ia(size_t(n) * img_n), ib(size_t(n) * img_n);
    std::vector<uint8_t> ua(ia.size()), ub(ia.size());
    if (progan && mode != NoiseMode::Const) continue;  // (no noise)
    SynthesisArgs sa;
    sa.n = n;
    if (progan) sa.z = z.data();
    else sa.ws = wsa.data();
    sa.noise = mode;
    sa.noise_seed = 7;
    sa.img = ia.data();
    sa.img_u8 = ua.data();
    auto t0 = std::chrono::steady_clock::now();
    if (!(s = ga->synthesis(sa))) { ck.line(false, std::string("synthesis A ") + mname, s.message); continue; }
    auto t1 = std::chrono::steady_clock::now();
    sa.img = ib.data();
    sa.img_u8 = ub.data();
    if (!(s = gb->synthesis(sa))) { ck.line(false, std::string("synthesis B ") + mname, s.message); continue; }
    auto t2 = std::chrono::steady_clock::now();
    // Random noise: every engine draws the same Philox stream (native/cpu/noise.h, cuda/noise.cu).
    Stats st = compare(ib.data(), ia.data(), ia.size());
    bool ok = ck.reduced ? st.psnr() >= 40.0 : st.max_abs <= 1e-3;
    ck.line(ok, std::string("img ") + mname,
            Checker::fmt("max abs %.3g, PSNR %.2f dB", st.max_abs, st.psnr()) +
                Checker::fmt("  (A %.0f ms, B %.0f ms)",
                             std::chrono::duration<double, std::milli>(t1 - t0).count(),
                             std::chrono::duration<double, std::milli>(t2 - t1).count()));
    if (!ck.reduced) ck.u8(std::string("u8 ") + mname, ub.data(), ua.data(), ua.size(), 4);
  }
  std::printf("summary: %s  %d passed, %d failed\n", ck.fail ? "FAIL" : "PASS", ck.pass, ck.fail);
  return ck.fail ? 1 : 0;
}

void set_env(const char* name, const char* value) {
#if defined(_WIN32)
  _putenv_s(name, value ? value : "");
#else
  if (value) setenv(name, value, 1);
  else unsetenv(name);
#endif
}

// Builds a safetensors image: header JSON then `data_len` zero bytes.
std::string make_st(const std::string& header, size_t data_len) {
  std::string f(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f[size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return f + header + std::string(data_len, '\0');
}

int run_self_test(const Opts& o) {
  Checker ck;
  // numpy.random.RandomState(0).randn(3)
  {
    double z[3];
    numpy_randn(0, 3, z);
    const double want[3] = {1.764052345967664, 0.4001572083672233, 0.9787379841057392};
    bool ok = true;
    for (int i = 0; i < 3; ++i) ok = ok && std::fabs(z[i] - want[i]) < 1e-15;
    ck.line(ok, "numpy_randn(0)", Checker::fmt("%.16g %.16g %.16g", z[0], z[1], z[2]));
  }
  // JSON: accepted and rejected documents.
  {
    const char* good[] = {"{}", "[1, -2.5e3, true, false, null, \"a\\u00e9\\ud83d\\ude00\"]", " {\"a\": {\"b\": [[]]}} "};
    const char* bad[] = {"", "{", "{\"a\":1,}", "[1 2]", "{\"a\":1,\"a\":2}", "01", "1.", "-", "\"\\x\"",
                         "\"\\ud800\"", "nul", "[1]x", "\"\x01\"", "\"\xc0\xaf\"", "1e999", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]"};
    int ok = 0, n = 0;
    for (const char* g : good) {
      json::Value v;
      ++n;
      if (json::parse(g, std::strlen(g), &v)) ++ok;
      else std::printf("      rejected valid JSON: %s\n", g);
    }
    for (const char* b : bad) {
      json::Value v;
      ++n;
      if (!json::parse(b, std::strlen(b), &v)) ++ok;
      else std::printf("      accepted invalid JSON: %s\n", b);
    }
    ck.line(ok == n, "json parser", std::to_string(ok) + "/" + std::to_string(n) + " documents judged right");
  }
  // safetensors: hostile headers must be rejected, a good one accepted.
  {
    struct Case { std::string file; bool good; const char* what; };
    const std::string t = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    std::vector<Case> cases = {
        {make_st(t, 16), true, "valid"},
        {make_st(t, 15), false, "data shorter than offsets"},
        {make_st(t, 20), false, "trailing bytes"},
        {make_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16), false, "size mismatch"},
        {make_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", 16), false,
         "overflowing shape"},
        {make_st("{\"t\":{\"dtype\":\"X9\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16), false, "unknown dtype"},
        {make_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), false, "overlap"},
        {make_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}}", 16), false, "negative dim"},
        {make_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16), false, "reversed offsets"},
        {make_st("{\"__metadata__\":{\"k\":1}}", 0), false, "non-string metadata"},
        {make_st("[1]", 0), false, "header not an object"},
        {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10), false, "huge header length"},
        {std::string("\x02\x00\x00", 3), false, "truncated length"},
    };
    int ok = 0;
    for (const Case& c : cases) {
      std::unique_ptr<SafetensorsFile> f;
      bool accepted = bool(SafetensorsFile::from_memory(c.file.data(), c.file.size(), &f));
      if (accepted == c.good) ++ok;
      else std::printf("      safetensors case '%s' judged wrong\n", c.what);
    }
    ck.line(ok == int(cases.size()), "safetensors reader",
            std::to_string(ok) + "/" + std::to_string(cases.size()) + " files judged right");
  }
  // Loading and calling with bad inputs: every failure is a Status naming the problem.
  {
    tools::RandomModelSpec spec;
    tools::random_model_spec("gray16", &spec);
    tools::RandomModel m;
    tools::make_random_model(spec, 3, &m);
    LoadOptions lo;
    lo.num_threads = o.threads;
    int ok = 0, n = 0;
    auto expect_fail = [&](const std::string& what, const Status& st, const char* needle) {
      ++n;
      if (!st && st.message.find(needle) != std::string::npos) ++ok;
      else std::printf("      %s: %s\n", what.c_str(), st ? "accepted" : st.message.c_str());
    };
    std::unique_ptr<Generator> g;
    expect_fail("bad json", Generator::create("{", m.tensors, lo, &g), "config");
    expect_fail("arch", Generator::create("{\"arch\":\"progan9\"}", m.tensors, lo, &g), "arch");
    {
      auto t = m.tensors;
      t.pop_back();
      expect_fail("missing tensor", Generator::create(m.config_json, t, lo, &g), "missing tensor");
    }
    {
      auto t = m.tensors;
      t[3].shape[0] += 1;
      expect_fail("bad shape", Generator::create(m.config_json, t, lo, &g), t[3].name.c_str());
    }
    {
      auto t = m.tensors;
      t.push_back(t[0]);
      t.back().name = "synthesis.b8.extra";
      expect_fail("unknown tensor", Generator::create(m.config_json, t, lo, &g), "synthesis.b8.extra");
    }
    {
      auto t = m.tensors;
      t[2].nbytes -= 4;
      expect_fail("short data", Generator::create(m.config_json, t, lo, &g), t[2].name.c_str());
    }
    {
      LoadOptions bad = lo;
      bad.backend = "tpu";
      expect_fail("backend", Generator::create(m.config_json, m.tensors, bad, &g), "unknown backend");
    }
    Status st = Generator::create(m.config_json, m.tensors, lo, &g);
    ++n;
    if (st) ++ok;
    else std::printf("      valid model rejected: %s\n", st.message.c_str());
    if (st) {
      const ModelInfo& mi = g->info();
      std::vector<float> z(size_t(mi.z_dim), 0.5f), ws(size_t(mi.num_ws) * mi.w_dim);
      MappingArgs ma;
      ma.n = 1;
      ma.z = z.data();
      ma.ws = ws.data();
      MappingArgs b = ma;
      b.n = 0;
      expect_fail("n = 0", g->mapping(b), "n must be");
      b = ma;
      b.n = 1025;
      expect_fail("n = 1025", g->mapping(b), "n must be");
      b = ma;
      b.z = nullptr;
      expect_fail("null z", g->mapping(b), "z is null");
      b = ma;
      b.psi = NAN;
      expect_fail("psi NaN", g->mapping(b), "psi");
      b = ma;
      b.truncation_cutoff = mi.num_ws + 1;
      expect_fail("cutoff", g->mapping(b), "cutoff");
      SynthesisArgs sa;
      sa.n = 1;
      sa.ws = ws.data();
      expect_fail("no output", g->synthesis(sa), "no output");
      sa.ws = nullptr;
      std::vector<float> img(size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution);
      sa.img = img.data();
      expect_fail("null ws", g->synthesis(sa), "ws is null");
      sa.ws = ws.data();
      sa.noise = NoiseMode(7);
      expect_fail("noise mode", g->synthesis(sa), "noise");
    }
    ck.line(ok == n, "API argument checks", std::to_string(ok) + "/" + std::to_string(n) + " cases reported right");
  }
  // Random noise: the CPU stream is the CUDA backend's Philox stream (noise_normal), any slice.
  {
    size_t bad = 0, n = 0;
    std::vector<float> buf(5000);
    for (uint64_t seed : {0ull, 99ull, 0x123456789abcdefull})
      for (int layer : {0, 3})
        for (uint32_t image : {0u, 1u, 1000u})
          for (size_t b0 : {size_t(0), size_t(1), size_t(2), size_t(3), size_t(4093)}) {
            const size_t e0 = b0 + 997;
            noise_fill(seed, layer, image, b0, e0, buf.data());
            for (size_t p = b0; p < e0; ++p, ++n)
              bad += buf[p - b0] != cuda::noise_normal(seed, layer, int(image), int(p));
          }
    ck.line(bad == 0, "noise = Philox stream", std::to_string(bad) + "/" + std::to_string(n) +
                                                    " values differ from noise_normal (bit-exact)");
  }
  // The engines key random noise by (seed, conv ordinal, image_offset + index): a model whose
  // noise_const planes are those Philox planes gives with const noise exactly the random image.
  for (const char* backend : {"cpu", "cpu-ref"}) {
    tools::RandomModelSpec spec;
    tools::random_model_spec("tinyc", &spec);
    tools::RandomModel m, mc;
    tools::make_random_model(spec, 21, &m);
    mc = m;
    const uint64_t seed = 0xfeedbeef12ull;
    const uint32_t offset = 6;
    const int n = 2;
    for (size_t i = 0; i < mc.tensors.size(); ++i) mc.tensors[i].data = mc.data[i].data();
    bool ok = true;
    std::vector<float> ws;
    LoadOptions lo;
    lo.backend = backend;
    lo.num_threads = o.threads;
    std::unique_ptr<Generator> g;
    Status st = Generator::create(m.config_json, m.tensors, lo, &g);
    if (!st) { ck.line(false, std::string("noise keying ") + backend, st.message); continue; }
    const ModelInfo& mi = g->info();
    const size_t img_n = size_t(mi.img_channels) * mi.img_resolution * mi.img_resolution;
    ws.assign(size_t(n) * mi.num_ws * mi.w_dim, 0.0f);
    for (size_t i = 0; i < ws.size(); ++i) ws[i] = float(int(i * 7919 % 2001) - 1000) * 1e-3f;
    std::vector<float> out(size_t(n) * img_n);
    SynthesisArgs sa;
    sa.n = n;
    sa.ws = ws.data();
    sa.noise = NoiseMode::Random;
    sa.noise_seed = seed;
    sa.image_offset = offset;
    sa.img = out.data();
    ok = ok && bool(g->synthesis(sa));
    for (int img = 0; img < n && ok; ++img) {
      // Image img with const noise = the Philox planes of image offset + img.
      int ordinal = 0;
      for (size_t i = 0; i < mc.tensors.size(); ++i) {
        const std::string& name = mc.tensors[i].name;
        if (name.size() < 12 || name.compare(name.size() - 12, 12, ".noise_const") != 0) continue;
        noise_fill(seed, ordinal++, offset + uint32_t(img), 0, mc.data[i].size(), mc.data[i].data());
      }
      std::unique_ptr<Generator> gc;
      ok = ok && bool(Generator::create(mc.config_json, mc.tensors, lo, &gc));
      std::vector<float> one(img_n);
      SynthesisArgs sc;
      sc.n = 1;
      sc.ws = ws.data() + size_t(img) * mi.num_ws * mi.w_dim;
      sc.noise = NoiseMode::Const;
      sc.img = one.data();
      ok = ok && gc && bool(gc->synthesis(sc)) && std::memcmp(one.data(), out.data() + size_t(img) * img_n, img_n * 4) == 0;
    }
    ck.line(ok, std::string("noise keying ") + backend,
            ok ? "random image == const image with the Philox planes of (seed, conv ordinal, image_offset + i)"
               : "random noise is not keyed as documented");
  }
  // The CPU engine with each kernel variant against the reference engine.
  const facegan::cpu::KernelSet* sets[8];
  int nsets = facegan::cpu::kernel_sets(sets, 8);
  const char* prev = std::getenv("FACEGAN_CPU_ISA");
  std::string saved = prev ? prev : "";
  for (int k = 0; k < nsets && k < 8; ++k) {
    set_env("FACEGAN_CPU_ISA", sets[k]->name);
    for (const char* cfg : {"gray16", "tiny", "tinyc", "wide256", "progan-tiny", "progan-wide"}) {
      for (int batch : {1, 3}) {
        Opts c = o;
        c.backend = "cpu-ref";
        c.backend_b = "cpu";
        c.random_config = cfg;
        c.batch = batch;
        c.seed = 11 + uint64_t(batch);
        std::printf("-- %s kernels, %s, batch %d\n", sets[k]->name, cfg, batch);
        std::fflush(stdout);
        if (run_compare(c) != 0) ck.line(false, std::string(sets[k]->name) + " " + cfg, "differs from cpu-ref");
        else ck.line(true, std::string(sets[k]->name) + " " + cfg + " b" + std::to_string(batch), "matches cpu-ref");
      }
    }
  }
  // Batch invariance of the CPU engine (every kernel variant) on the random configs, and the
  // same images with one worker thread as with the pool.
  for (int k = 0; k < nsets && k < 8; ++k) {
    set_env("FACEGAN_CPU_ISA", sets[k]->name);
    for (const char* cfg : {"gray16", "tiny", "tinyc", "wide256", "ffhq256", "progan-tiny", "progan-wide", "progan128"}) {
      tools::RandomModelSpec spec;
      tools::random_model_spec(cfg, &spec);
      tools::RandomModel m;
      tools::make_random_model(spec, 5, &m);
      const std::string label = std::string(sets[k]->name) + " " + cfg;
      std::unique_ptr<Generator> g, g1;
      LoadOptions lo;
      lo.num_threads = o.threads;
      Status st = Generator::create(m.config_json, m.tensors, lo, &g);
      if (!st) {
        ck.line(false, label, st.message);
        continue;
      }
      const ModelInfo& mi = g->info();
      std::vector<float> z(size_t(5) * mi.z_dim), c(size_t(5) * std::max(1, mi.c_dim), 0.0f);
      std::vector<float> ws(size_t(5) * mi.num_ws * mi.w_dim);
      for (int i = 0; i < 5; ++i) {
        std::vector<double> zd(size_t(mi.z_dim));
        numpy_randn(uint32_t(100 + i), zd.size(), zd.data());
        for (int j = 0; j < mi.z_dim; ++j) z[size_t(i) * mi.z_dim + j] = float(zd[size_t(j)]);
        if (mi.c_dim) c[size_t(i) * mi.c_dim + size_t(i % mi.c_dim)] = 1.0f;
      }
      if (mi.arch == "progan") {
        // No mapping: the batch-invariance check runs on z; and one thread as the pool.
        check_batch_invariance(ck, *g, z, label);
        lo.num_threads = 1;
        std::unique_ptr<Generator> g1p;
        std::vector<float> ia(size_t(5) * mi.img_channels * mi.img_resolution * mi.img_resolution), ib(ia.size());
        SynthesisArgs sa;
        sa.n = 5;
        sa.z = z.data();
        sa.img = ia.data();
        bool ok = bool(Generator::create(m.config_json, m.tensors, lo, &g1p)) && bool(g->synthesis(sa));
        sa.img = ib.data();
        ok = ok && bool(g1p->synthesis(sa)) && std::memcmp(ia.data(), ib.data(), ia.size() * 4) == 0;
        ck.line(ok, label + " threads inv.", ok ? "1 thread == the pool (bit-exact)" : "1 thread differs from the pool");
        continue;
      }
      MappingArgs ma;
      ma.n = 5;
      ma.z = z.data();
      ma.c = mi.c_dim ? c.data() : nullptr;
      ma.psi = 0.7f;
      ma.ws = ws.data();
      if (!(st = g->mapping(ma))) {
        ck.line(false, label + " mapping", st.message);
        continue;
      }
      // The mapping too: image i's ws alone equals its row of the batch.
      {
        size_t bad = 0;
        const size_t wn = size_t(mi.num_ws) * mi.w_dim;
        std::vector<float> one(wn);
        for (int i = 0; i < 5; ++i) {
          MappingArgs m1 = ma;
          m1.n = 1;
          m1.z = z.data() + size_t(i) * mi.z_dim;
          m1.c = mi.c_dim ? c.data() + size_t(i) * mi.c_dim : nullptr;
          m1.ws = one.data();
          if (!g->mapping(m1) || std::memcmp(one.data(), ws.data() + size_t(i) * wn, wn * 4) != 0) ++bad;
        }
        ck.line(bad == 0, label + " mapping batch inv.", std::to_string(bad) + "/5 ws differ (bit-exact)");
      }
      check_batch_invariance(ck, *g, ws, label);
      lo.num_threads = 1;
      if ((st = Generator::create(m.config_json, m.tensors, lo, &g1))) {
        std::vector<float> ia(size_t(5) * mi.img_channels * mi.img_resolution * mi.img_resolution), ib(ia.size());
        SynthesisArgs sa;
        sa.n = 5;
        sa.ws = ws.data();
        sa.noise = NoiseMode::Random;
        sa.noise_seed = 3;
        sa.img = ia.data();
        bool ok = bool(g->synthesis(sa));
        sa.img = ib.data();
        ok = ok && bool(g1->synthesis(sa)) && std::memcmp(ia.data(), ib.data(), ia.size() * 4) == 0;
        ck.line(ok, label + " threads inv.", ok ? "1 thread == the pool (bit-exact)" : "1 thread differs from the pool");
      }
    }
  }
  set_env("FACEGAN_CPU_ISA", prev ? saved.c_str() : nullptr);
  std::printf("self-test summary: %s  %d passed, %d failed\n", ck.fail ? "FAIL" : "PASS", ck.pass, ck.fail);
  return ck.fail ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  facegan::register_builtin_backends();
#ifdef FACEGAN_WITH_CUDA_EMU
  facegan::register_cuda_emu_backend();
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  facegan::register_cuda_emu_sm75_backend();
#endif
#ifdef FACEGAN_WITH_CUDA_EMU_SM90A
  facegan::register_cuda_emu_sm90a_backend();
#endif
#endif
  Opts o;
  std::vector<std::string> pos;
  bool compare_mode = false, self_test = false, progan = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--backend") o.backend = next();
    else if (a == "--precision") { if (!parse_precision(next(), &o.precision)) usage("bad --precision"); }
    else if (a == "--precision-b") { if (!parse_precision(next(), &o.precision_b)) usage("bad --precision-b"); o.precision_b_set = true; }
    else if (a == "--threads") o.threads = std::atoi(next().c_str());
    else if (a == "--compare-backends") { compare_mode = true; o.backend = next(); o.backend_b = next(); }
    else if (a == "--self-test") self_test = true;
    else if (a == "--progan") progan = true;
    else if (a == "--random-config") o.random_config = next();
    else if (a == "--batch") o.batch = std::atoi(next().c_str());
    else if (a == "--seed") o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "-h" || a == "--help") usage();
    else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else pos.push_back(a);
  }
  if (self_test) return run_self_test(o);
  if (compare_mode) {
    if (o.random_config.empty()) usage("--compare-backends needs --random-config");
    if (o.batch < 1 || o.batch > 1024) usage("--batch must be in [1, 1024]");
    return run_compare(o);
  }
  if (pos.size() != 2) usage();
  o.model = pos[0];
  o.golden = pos[1];
  return progan ? run_progan(o) : run_golden(o);
}
