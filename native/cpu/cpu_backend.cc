// The optimised CPU engine ("cpu"): load-time set-up, the mapping, and the synthesis driver, one
// walk over the network's LayerDescs for both architectures (cpu_engine.h describes the files).
//
// The walk keeps two activation buffers (x, the layer input; out) and two image buffers (the
// running ToRGB sum with its skip connections). Per layer kind:
//  - Dense (ProGAN's start): the latent pixel norm, the dense 4×4 layer, its pixel norm;
//  - Conv: Winograd (3×3 up 1 from 8², and ProGAN's nearest ×2 + 3×3 in polyphase form from 16²), the
//    im2col GEMM (small layers; ProGAN's nearest ×2 on the upsampled grid), or StyleGAN2's
//    transposed up-conv + FIR; a ToRGB right after a Winograd conv runs fused into it; ProGAN's
//    pixel norm follows (fused into Winograd tasks that hold every channel);
//  - ToRGB: added to the ×2 upsampled previous image (StyleGAN2's skips; ProGAN has none).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <stdexcept>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common.h"
#include "cpu_engine.h"
#include "noise.h"

namespace facegan {
namespace cpu {

void Buf::reserve(size_t n) {
  if (n <= n_) return;
  release();
  const size_t bytes = (n + kPadFront + kPadBack) * sizeof(float);
#if defined(__linux__)
  if (bytes >= (size_t(4) << 20)) {
    // Large activation buffers: 2 MB aligned and backed by transparent huge pages when the
    // system allows it (fewer TLB misses on the strided plane accesses, cheaper first touch).
    void* p = nullptr;
    const size_t rounded = (bytes + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
    if (posix_memalign(&p, size_t(2) << 20, rounded) != 0 || !p) throw std::bad_alloc();
    madvise(p, rounded, MADV_HUGEPAGE);
    huge_ = true;
    base_ = static_cast<float*>(p);
  } else
#endif
  {
    base_ = static_cast<float*>(::operator new(bytes, std::align_val_t(64)));
  }
  std::memset(base_, 0, kPadFront * sizeof(float));
  std::memset(base_ + kPadFront + n, 0, kPadBack * sizeof(float));
  p_ = base_ + kPadFront;
  n_ = n;
}

void Buf::zero() {
  if (n_) std::memset(p_, 0, n_ * sizeof(float));
}

void Buf::release() {
  if (base_) {
    if (huge_) std::free(base_);
    else ::operator delete(base_, std::align_val_t(64));
  }
  base_ = p_ = nullptr;
  n_ = 0;
  huge_ = false;
}

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

bool profiling() {
  static const bool on = std::getenv("FACEGAN_CPU_PROFILE") != nullptr;
  return on;
}

double thread_cpu_ms() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
#else
  return 0.0;
#endif
}

namespace {

const bool kProfile = profiling();

// The layer's nominal multiply-adds per image (what the official code computes): a conv's
// k²·C_in·C_out per pixel of the grid it runs on (StyleGAN2's transposed up-conv: the input
// grid; ProGAN's nearest ×2 + conv: the output grid), the dense start 16·C_in·C_out.
double nominal_macs(const LayerDesc& L) {
  if (L.kind == LayerDesc::Dense) return double(L.in_ch) * L.out_ch * 16;
  const double res = L.resample == LayerDesc::Nearest && L.up == 2 ? L.out_res : L.in_res;
  return double(L.in_ch) * L.out_ch * L.ksize * L.ksize * res * res;
}

// FACEGAN_CPU_PROFILE=1: one stderr line per layer (wall and calling-thread CPU time, nominal
// GFLOP/s; a fused ToRGB counts in the conv's line) and one per sub-batch.
class LayerTimer {
 public:
  LayerTimer(const char* label, double macs, int nb) : label_(label), macs_(macs), nb_(nb) {}
  ~LayerTimer() {
    if (!kProfile) return;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
    std::fprintf(stderr, "  %s  %8.2f ms (caller cpu %8.2f ms)  %6.1f GFLOP/s  (batch %d)\n", label_, ms,
                 thread_cpu_ms() - c0_, 2e-6 * macs_ * nb_ / ms, nb_);
  }

 private:
  const char* label_;
  double macs_;
  int nb_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double c0_ = kProfile ? thread_cpu_ms() : 0.0;
};

}  // namespace

Status CpuBackend::prepare(const Network& net, const LoadOptions& options) {
  if (options.precision == Precision::FP16)
    return Status::Error("cpu backend: precision fp16 is a GPU option (the cpu backend computes in fp32, or bf16 on AMX)");
  net_ = &net;
  ks_ = &best_kernel_set();
  bf16_ = options.precision == Precision::BF16;
  if (bf16_) {
    const char* why = std::strcmp(ks_->name, "avx512") != 0 ? "the avx512 kernels are not in use" : amx_bf16_unusable();
    if (why)
      return Status::Error(std::string("cpu backend: precision bf16 needs AMX-BF16 (with the avx512 kernels); ") + why +
                           " (kernels: " + ks_->name + ")");
  }
  int nt = options.num_threads;
  if (nt <= 0) nt = int(std::thread::hardware_concurrency());
  if (nt <= 0) nt = 1;
  nt = std::min(nt, 256);
  const int NR = ks_->NR;
  nc_target_ = int(round_up(size_t(std::max(384, 8 * NR)), size_t(NR)));

  const char* wenv = std::getenv("FACEGAN_CPU_WINOGRAD");
  const bool use_wino = !(wenv && wenv[0] == '0') && !bf16_;
  const char* fenv = std::getenv("FACEGAN_CPU_FUSE_RGB");
  fuse_rgb_ = !(fenv && fenv[0] == '0');
  stream_min_ = size_t(env_int("FACEGAN_CPU_STREAM_KB", 32 << 10)) << 10;
  // 0: the defaults (prepare_conv); N: Winograd for every 3×3 from output resolution N.
  const int wino_env = env_int("FACEGAN_CPU_WINO_MIN_RES", 0);
  const int wino_min_res = wino_env > 0 ? std::max(4, wino_env) : 0;
  // StyleGAN2 up-convs from 32² input run as sub-pixel phases (cpu_upconv.cc upconv_sub: measured
  // faster from 32² on ffhq256 / ffhq1024, slower at 16² where its 2.8× weights dominate); 0: off.
  sub_min_res_ = env_int("FACEGAN_CPU_SUB_MIN_RES", 32);
  if (sub_min_res_ <= 0 || bf16_) sub_min_res_ = 1 << 30;

  // Per-layer preparation; the scratch sizes grow with each layer's needs.
  size_t max_cols = size_t(nc_target_), max_crows = 0, max_z = 0, max_bp = 0;
  max_act_ = size_t(net.const_ch) * 16;
  demod_total_ = 0;
  for (size_t li = 0; li < net.layers.size(); ++li) {
    const LayerDesc& L = net.layers[li];
    max_act_ = std::max(max_act_, size_t(L.out_ch) * L.out_res * L.out_res);
    max_act_ = std::max(max_act_, size_t(L.in_ch) * L.in_res * L.in_res);
    max_ch_ = std::max(max_ch_, size_t(L.in_ch));
    if (L.kind == LayerDesc::Conv)
      prepare_conv(L, int(li), use_wino, wino_min_res, &max_cols, &max_crows, &max_z, &max_bp);
  }
  max_cols = round_up(max_cols, size_t(NR));
  max_z_ = max_z;
  zero_block_.reserve(size_t(6) * net.info.img_resolution);
  zero_block_.zero();
  // Unmodulated layers (ProGAN) run the same kernels with s = 1 and d = 1 (exact).
  ones_.reserve(std::max<size_t>(max_ch_, 1));
  std::fill(ones_.data(), ones_.data() + ones_.size(), 1.0f);

  // Mapping weights with their gain applied (float32, once).
  map_w_.clear();
  if (net.arch == Arch::StyleGAN2) {
    auto scaled = [&](const FcDesc& f) {
      std::vector<float> w(size_t(f.out) * f.in);
      for (size_t i = 0; i < w.size(); ++i) w[i] = f.W[i] * f.w_gain;
      map_w_.push_back(std::move(w));
    };
    if (net.mapping.has_embed) scaled(net.mapping.embed);
    for (const FcDesc& f : net.mapping.fcs) scaled(f);
  }

  pool_.reset(new ThreadPool(nt));
  scratch_.resize(size_t(pool_->size()));
  for (auto& s : scratch_) {
    s.Bp.reserve(std::max(size_t(kc_) * max_cols, max_bp));
    s.C.reserve(std::max(max_crows * max_cols, max_cbuf_));
    if (max_z) s.Z.reserve(max_z);
    s.segs.reserve(max_cols + 64);
  }
  return Status::Ok();
}

// The mapping network, one image per task (common.h map_sample), each layer y = dot(x, W'[o]) +
// b[o]·b_gain with W' = W·w_gain rounded to float32 once at load (as the official code forms
// weight·gain), the dot products by the vector kernel in a fixed order (so an image's ws never
// depends on the batch).
Status CpuBackend::mapping(const MappingArgs& a) {
  auto rows = [this](int index, const FcDesc& f, const float* x, float* y, int o0, int o1) {
    const float* Wg = map_w_[size_t(index)].data();
    for (int o = o0; o < o1; ++o) {
      float v = ks_->dot(x, Wg + size_t(o) * f.in, f.in) + f.b[o] * f.b_gain;
      if (f.lrelu) v = (v < 0.0f ? v * 0.2f : v) * 1.41421356237309504880f;
      y[o] = v;
    }
  };
  bool ok = true;
  if (a.n < pool_->size()) {
    // Fewer images than threads (batch 1): each layer's output rows split over the pool, the
    // images in turn (the same arithmetic per output).
    const int nt = pool_->size();
    const MappingFc fc = [&](int index, const FcDesc& f, const float* x, float* y) {
      ok = ok && pool_->run(nt, [&](int t, int) { rows(index, f, x, y, f.out * t / nt, f.out * (t + 1) / nt); });
    };
    for (int img = 0; img < a.n && ok && !is_cancelled(a.cancel); ++img) map_sample(*net_, a, img, fc);
  } else {
    const MappingFc fc = [&](int index, const FcDesc& f, const float* x, float* y) { rows(index, f, x, y, 0, f.out); };
    ok = pool_->run(a.n, [&](int img, int) {
      if (is_cancelled(a.cancel)) return;  // checked per image; the call answers Cancelled below
      map_sample(*net_, a, img, fc);
    });
  }
  if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
  return ok ? Status::Ok() : Status::Error("mapping failed: " + pool_->error());
}

// Backend::images_per_call, the Generator's chunk: two activation buffers, the nearest-upsampled
// input (ProGAN), the two images and a noise plane per image within a fixed memory budget
// (768 MiB), at most 64. The Generator splits larger requests; synthesis() runs what it is given.
int CpuBackend::images_per_call() {
  const int R = net_->info.img_resolution, IC = net_->info.img_channels;
  const size_t per_img = (2 * max_act_ + max_up_ + 2 * size_t(IC) * R * R + size_t(R) * R) * sizeof(float);
  const size_t budget = size_t(768) << 20;
  return int(std::max<size_t>(1, std::min<size_t>(64, budget / per_img)));
}

Status CpuBackend::synthesis(const SynthesisArgs& a) {
  std::atomic<uint64_t> bad{0};
  Status s = run_batch(a, 0, a.n, &bad);
  if (!s) return s;
  if (a.nonfinite_count) *a.nonfinite_count = bad.load();
  return Status::Ok();
}

const ConvPrep& CpuBackend::conv_of(int layer_index) const {
  for (const auto& c : convs_)
    if (c.index == layer_index) return c;
  return convs_[0];
}

void CpuBackend::run_or_throw(int ntasks, const std::function<void(int, int)>& fn) {
  if (!pool_->run(ntasks, fn)) throw std::runtime_error("a worker task failed: " + pool_->error());
}

// Styles of every modulated layer for every sample, then the demodulation coefficients.
void CpuBackend::styles_and_demod(const float* ws, int nb) {
  const Network& net = *net_;
  const int WD = net.info.w_dim, NW = net.info.num_ws, SD = net.style_dim;
  float* S = styles_.data();
  float* D = demod_.data();
  const int nl = int(net.layers.size());
  run_or_throw(nb * nl, [&](int t, int) {
    const int img = t / nl, li = t % nl;
    const LayerDesc& L = net.layers[size_t(li)];
    const float* w = ws + (size_t(img) * NW + L.w_index) * WD;
    float* s = S + size_t(img) * SD + L.style_offset;
    for (int i = 0; i < L.in_ch; ++i)
      s[i] = (ks_->dot(w, L.affine_W + size_t(i) * WD, WD) * L.affine_gain + L.affine_b[i]) * L.style_gain;
  });
  const int ncv = int(convs_.size());
  run_or_throw(nb * ncv, [&](int t, int) {
    const int img = t / ncv;
    const ConvPrep& cp = convs_[size_t(t % ncv)];
    const LayerDesc& L = *cp.L;
    const float* s = S + size_t(img) * SD + L.style_offset;
    float s2[1024];
    std::vector<float> big;
    float* sq = s2;
    if (L.in_ch > 1024) {
      big.resize(size_t(L.in_ch));
      sq = big.data();
    }
    for (int i = 0; i < L.in_ch; ++i) sq[i] = s[i] * s[i];
    float* d = D + size_t(img) * demod_total_ + cp.demod_off;
    for (int o = 0; o < L.out_ch; ++o)
      d[o] = float(1.0 / std::sqrt(double(ks_->dot(sq, cp.wsq.data() + size_t(o) * L.in_ch, L.in_ch)) + 1e-8));
  });
}

// The random noise planes of one conv layer for images [start, start + nb) (noise.h).
const float* CpuBackend::random_noise(const SynthesisArgs& a, const ConvPrep& cp, int start, int nb) {
  const size_t HW = size_t(cp.L->out_res) * cp.L->out_res;
  const int chunks = std::max(1, int(HW / 16384));
  run_or_throw(nb * chunks, [&](int t, int) {
    const int img = t / chunks, c = t % chunks;
    const size_t b = HW * size_t(c) / size_t(chunks), e = HW * size_t(c + 1) / size_t(chunks);
    noise_fill(a.noise_seed, cp.ordinal, a.image_offset + uint32_t(start + img), b, e, noise_.data() + img * HW + b);
  });
  return noise_.data();
}

// Writes the outputs of images [start, start + nb) from the float images `fimg` (nb × isz)
// and adds the number of NaN / ±Inf values among them to *bad (the backend.h contract).
void CpuBackend::write_outputs(const SynthesisArgs& a, int start, int nb, const float* fimg,
                               std::atomic<uint64_t>* bad) {
  const Network& net = *net_;
  const int R = net.info.img_resolution, IC = net.info.img_channels;
  const size_t isz = size_t(IC) * R * R;
  run_or_throw(nb, [&](int t, int) {
    const float* src = fimg + size_t(t) * isz;
    uint64_t nf = 0;
    for (size_t i = 0; i < isz; ++i) nf += std::isfinite(src[i]) ? 0 : 1;
    if (nf) bad->fetch_add(nf, std::memory_order_relaxed);
    if (a.img) std::memcpy(a.img + size_t(start + t) * isz, src, isz * sizeof(float));
    if (a.img_u8) to_u8_hwc(src, IC, R, R, a.img_u8 + size_t(start + t) * isz, net.output);
  });
}

Status CpuBackend::run_batch(const SynthesisArgs& a, int start, int nb, std::atomic<uint64_t>* bad) {
  const Network& net = *net_;
  const int R = net.info.img_resolution, IC = net.info.img_channels;
  act_[0].reserve(size_t(nb) * max_act_);
  act_[1].reserve(size_t(nb) * max_act_);
  if (max_up_) up_.reserve(size_t(nb) * max_up_);
  img_[0].reserve(size_t(nb) * IC * R * R);
  img_[1].reserve(size_t(nb) * IC * R * R);
  demod_.reserve(size_t(nb) * std::max<size_t>(demod_total_, 1));
  if (a.noise == NoiseMode::Random) noise_.reserve(size_t(nb) * R * R);
  const float* S = ones_.data();  // unmodulated: s = 1 (style stride 0), d = 1
  if (net.arch == Arch::StyleGAN2) {
    styles_.reserve(size_t(nb) * net.style_dim);
    styles_and_demod(a.ws + size_t(start) * net.info.num_ws * net.info.w_dim, nb);
    S = styles_.data();
  } else {
    std::fill(demod_.data(), demod_.data() + demod_.size(), 1.0f);
  }
  const float* D = demod_.data();

  const float* x = net.const_input;  // the layer input (StyleGAN2: the learned const)
  size_t x_stride = 0;               // per-image stride; 0: shared const
  int cur = 0;                       // act_ buffer holding x (when x_stride > 0)
  int img_cur = -1, img_res = 0;     // img_ buffer holding the image so far (-1: none yet)
  const int nl = int(net.layers.size());
  double macs = 0.0;
  for (const LayerDesc& L : net.layers) macs += nominal_macs(L);
  LayerTimer total("total", macs, nb);
  for (int li = 0; li < nl; ++li) {
    if (is_cancelled(a.cancel)) return Status::Cancelled("synthesis: cancelled");
    const LayerDesc& L = net.layers[size_t(li)];
    char label[80];
    if (kProfile)
      std::snprintf(label, sizeof label, "%-12s %4d->%4d %4d^2", L.name.c_str(), L.in_ch, L.out_ch, L.out_res);
    LayerTimer timer(label, nominal_macs(L), nb);
    switch (L.kind) {
      case LayerDesc::Dense: {
        dense(L, a.z + size_t(start) * net.info.z_dim, nb, act_[0].data());
        x = act_[0].data();
        x_stride = size_t(L.out_ch) * 16;
        cur = 0;
        break;
      }
      case LayerDesc::Conv: {
        const ConvPrep& cp = conv_of(li);
        const int dst = x_stride ? 1 - cur : 0;
        LayerIO io{x, x_stride, act_[dst].data(), size_t(L.out_ch) * L.out_res * L.out_res, nb, S, D,
                   L.has_noise ? a.noise : NoiseMode::None, nullptr};
        if (io.mode == NoiseMode::Random) io.noise = random_noise(a, cp, start, nb);
        bool normed = false;
        if (cp.wino) {
          // The following ToRGB runs fused into this convolution when the tasks allow it.
          const LayerDesc* next = li + 1 < nl ? &net.layers[size_t(li + 1)] : nullptr;
          const bool try_rgb = fuse_rgb_ && next && next->kind == LayerDesc::ToRGB && next->out_res == L.out_res;
          FusedRgb fr;
          if (try_rgb) {
            rgb_weights(*next, S, nb, &rgbw_);
            fr.L = next;
            fr.w = rgbw_.data();
            fr.prev = img_cur < 0 ? nullptr : img_[img_cur].data();
            fr.prev_res = img_res;
            fr.out = img_[img_cur < 0 ? 0 : 1 - img_cur].data();
            fr.last = li + 2 == nl;
          }
          if (conv3x3_wino(cp, io, try_rgb ? &fr : nullptr, &normed)) {
            img_cur = img_cur < 0 ? 0 : 1 - img_cur;
            img_res = L.out_res;
            ++li;  // the ToRGB is done
          }
        } else if (L.up == 1) {
          conv3x3(cp, io);
        } else if (L.resample == LayerDesc::Nearest) {
          upsample_nearest(L, x, x_stride, up_.data(), nb);
          io.in = up_.data();
          io.in_stride = size_t(L.in_ch) * L.out_res * L.out_res;
          conv3x3(cp, io);
        } else if (cp.sub) {
          upconv_sub(cp, io);
        } else {
          upconv(cp, io);
        }
        if (L.pixel_norm && !normed) pixel_norm(L, io.out, io.out_stride, nb);
        x = io.out;
        x_stride = io.out_stride;
        cur = dst;
        break;
      }
      case LayerDesc::ToRGB: {
        const int dst = img_cur < 0 ? 0 : 1 - img_cur;
        torgb(L, x, x_stride, img_cur < 0 ? nullptr : img_[img_cur].data(), img_res, img_[dst].data(), nb, S);
        img_cur = dst;
        img_res = L.out_res;
        break;
      }
    }
  }
  write_outputs(a, start, nb, img_[img_cur].data(), bad);
  return Status::Ok();
}

}  // namespace cpu

std::unique_ptr<Backend> create_cpu_backend() { return std::unique_ptr<Backend>(new cpu::CpuBackend()); }

}  // namespace facegan
